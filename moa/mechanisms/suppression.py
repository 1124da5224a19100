"""Cells that suppress tumour CD8 T cells: regulatory T cells (Tregs) and suppressive myeloid
cells (MDSC and tumour-associated macrophages).

Both are recruited into the tumour in proportion to its volume (chemokines made by the
tumour bed) and turn over, so without drug their density relaxes to a setting lever
(``treg_density``, ``myeloid_density``, cells per mL of tumour; histology densities converted
as for CD8 T cells). Each suppresses effector proliferation and killing by a saturating
function of its density in the lesion (``treg_suppression``, ``myeloid_suppression``, 0..1);
the T-cell mechanism multiplies them into ``effector_function``, relative to their values at
the hot-TNBC reference densities (``*_reference_density``), because the killing rate and the
T-cell rates were calibrated in hot TNBC, where both cell types are present.

* Tregs carry 4-1BB constitutively in tumours (Freeman 2020 JCI; Buchan 2018 JCI Insight).
  At full 4-1BB signal their loss rate is multiplied by ``cd137_treg_loss_factor``: below 1
  agonism expands them (Zheng 2004 J Immunol; Elpek 2007 J Immunol: 4-1BB signalling drives
  Treg proliferation; the default, for an FcgammaR-independent agonist or an Fc-silent
  bispecific), above 1 it depletes them (FcgammaR-dependent depletion by Fc-competent
  anti-4-1BB IgG2a, Buchan 2018; Freeman 2020). The bounds span both directions.
* Myeloid cells carry PD-L1 (``pdl1_per_myeloid_cell``): ``pdl1_myeloid_nM`` is the binding
  mechanism's myeloid PD-L1, so the bispecific's anchor and the suppression come from the
  same cells and the anchor is counted once.
"""

from __future__ import annotations

from ..symbolic import Mechanism, ref

__all__ = ["regulatory_t_cells", "suppressive_myeloid_cells"]


def _saturating(max_fraction, density, half_density):
    """Fraction of effector function removed by cells at ``density`` (0 .. ``max_fraction``)."""
    return max_fraction * density / (density + half_density)


def regulatory_t_cells() -> Mechanism:
    m = Mechanism("regulatory_t_cells", "Tregs: recruitment, turnover, 4-1BB, suppression of effectors")
    volume = ref("tumour_volume")
    lesion = ref("lesion_volume")  # mL, T cells counted (T-cell mechanism)
    room = ref("t_cell_packing_room")  # 1, free fraction of the T-cell packing limit
    signal_41bb = ref("cd137_signal")

    density = m.parameter(
        "treg_density", "cell/mL", "Treg density the tumour recruits towards without drug (setting lever)"
    )
    turnover = m.parameter(
        "treg_turnover", "1/day", "loss rate of tumour Tregs (death and egress); sets recruitment with treg_density"
    )
    loss_factor = m.parameter(
        "cd137_treg_loss_factor",
        "1",
        "Treg loss rate at full 4-1BB signal relative to none (< 1: agonism expands Tregs; > 1: agonism depletes them)",
    )
    max_supp = m.parameter(
        "treg_max_suppression", "1", "fraction of effector proliferation and killing removed at saturating Treg density"
    )
    half = m.parameter("treg_suppression_half_density", "cell/mL", "Treg density for half-maximal suppression")
    v_min = m.parameter(
        "tumour_volume_floor", "mL", "volume floor so that densities stay finite as the tumour vanishes"
    )
    m.parameter("cd137_per_treg", "molecule/cell", "4-1BB on a tumour-infiltrating Treg (for the binding mechanism)")

    t_reg = m.species("t_reg", "cell", "regulatory T cells (FOXP3+ CD4) in the tumour", initial=density * volume)
    m.term(t_reg, turnover * density * volume * room, "recruitment (braked by T-cell packing)")
    m.term(t_reg, -turnover * (1 + (loss_factor - 1) * signal_41bb) * t_reg, "loss, changed by 4-1BB signal")
    treg_density = m.expression(
        "treg_density_lesion", t_reg / (lesion + v_min), "cell/mL", "Treg density in the lesion"
    )
    m.expression(
        "treg_suppression",
        _saturating(max_supp, treg_density, half),
        "1",
        "fraction of effector proliferation and killing removed by Tregs",
    )
    ref_density = m.parameter(
        "treg_reference_density", "cell/mL", "Treg density of hot TNBC, where killing and T-cell rates were calibrated"
    )
    m.expression(
        "treg_suppression_reference",
        _saturating(max_supp, ref_density, half),
        "1",
        "Treg suppression at the calibration (hot TNBC) density",
    )
    return m


def suppressive_myeloid_cells() -> Mechanism:
    m = Mechanism("suppressive_myeloid_cells", "MDSC/TAM: recruitment, turnover, PD-L1, suppression of effectors")
    nmol_per_molecule = m.conversion("nmol_per_molecule", "nmol/molecule")
    ml_per_l = m.conversion("mL_per_L", "mL/L")
    volume = ref("tumour_volume")

    density = m.parameter(
        "myeloid_density", "cell/mL", "suppressive myeloid cell density the tumour recruits towards (setting lever)"
    )
    turnover = m.parameter(
        "myeloid_turnover", "1/day", "loss rate of tumour myeloid cells; sets recruitment with myeloid_density"
    )
    pdl1_per_cell = m.parameter(
        "pdl1_per_myeloid_cell", "molecule/cell", "PD-L1 on a suppressive myeloid cell in the tumour"
    )
    max_supp = m.parameter(
        "myeloid_max_suppression",
        "1",
        "fraction of effector proliferation and killing removed at saturating myeloid density",
    )
    half = m.parameter("myeloid_suppression_half_density", "cell/mL", "myeloid density for half-maximal suppression")
    v_min = m.parameter(
        "tumour_volume_floor", "mL", "volume floor so that densities stay finite as the tumour vanishes"
    )

    cells = m.species(
        "myeloid_cells", "cell", "suppressive myeloid cells (MDSC, TAM) in the tumour", initial=density * volume
    )
    m.term(cells, turnover * (density * volume - cells), "recruitment and turnover")
    m.expression(
        "pdl1_myeloid_nM",
        pdl1_per_cell * cells / ref("tumour_interstitial_volume") * nmol_per_molecule * ml_per_l,
        "nM",
        "PD-L1 on suppressive myeloid cells, per interstitial volume (the bispecific's myeloid anchor)",
    )
    cell_density = m.expression(
        "myeloid_cell_density",
        cells / (volume + v_min),
        "cell/mL",
        "suppressive myeloid cells per mL of tumour (the binding mechanism's myeloid anchor density)",
    )
    m.expression(
        "myeloid_suppression",
        _saturating(max_supp, cell_density, half),
        "1",
        "fraction of effector proliferation and killing removed by suppressive myeloid cells",
    )
    ref_density = m.parameter(
        "myeloid_reference_density",
        "cell/mL",
        "myeloid density of hot TNBC, where killing and T-cell rates were calibrated",
    )
    m.expression(
        "myeloid_suppression_reference",
        _saturating(max_supp, ref_density, half),
        "1",
        "myeloid suppression at the calibration (hot TNBC) density",
    )
    return m
