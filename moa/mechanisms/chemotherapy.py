"""nab-paclitaxel: pharmacokinetics reduced from Chen 2014 and its effects.

PK (Chen et al. 2014, Cancer Chemother Pharmacol 74:969; values via QSPIO-TNBC): three
compartments in µg/L with saturable elimination from the central compartment, a linear
peripheral compartment (V3, Q3) and a saturable peripheral compartment (V2, transporter
flux ``vmax_t (C1/(kt + C1) - C2/(kt + C2))``). The reduction: none of the structure is
dropped; dosing is a bolus (the 30-minute infusion is short against days).

Effects, on an effect-compartment concentration ``nabp_effect`` (nM; tumour-to-plasma
ratio times plasma, delayed by ``ke0``):

* Emax killing of proliferating tumour cells: clone ``i`` dies at
  ``kill_max * Ce/(Ce + EC50) * sensitivity_i * fitness_i`` per cell, where the clone's relative
  proliferation rate ``fitness_i`` stands for its cycling fraction (taxanes kill cells in
  mitosis) and ``sensitivity_i`` is 1 except for the taxane-resistant clone. The per-cell rate
  does not depend on tumour size: QSPIO-TNBC's penetration cap (``C reach/(C + reach)``), which
  made log-kill speed up as the tumour shrank, is gone; slowing of shrinkage comes from the
  resistant clone taking over.
* Emax toxicity to proliferating T cells (primed cells and effectors);
* immunogenic cell death: chemotherapy-killed cells release antigen with a boost factor.
"""

from __future__ import annotations

from ..symbolic import Mechanism, ref

__all__ = ["nab_paclitaxel"]


def nab_paclitaxel() -> Mechanism:
    m = Mechanism("nab_paclitaxel", "nab-paclitaxel PK (Chen 2014) and its effect on tumour and T cells")
    v1 = m.parameter("v1_nabp", "L", "nab-paclitaxel central volume")
    v2 = m.parameter("v2_nabp", "L", "nab-paclitaxel saturable-distribution peripheral volume")
    v3 = m.parameter("v3_nabp", "L", "nab-paclitaxel linear peripheral volume")
    q3 = m.parameter("q3_nabp", "L/day", "linear inter-compartmental clearance (V1-V3)")
    vmax_t = m.parameter("vmax_transport_nabp", "ug/day", "maximal saturable transport V1-V2")
    kt = m.parameter("km_transport_nabp", "ug/L", "half-saturation of V1-V2 transport")
    vmax_el = m.parameter("vmax_elimination_nabp", "ug/day", "maximal saturable elimination")
    km_el = m.parameter("km_elimination_nabp", "ug/L", "half-saturation of elimination")
    mw = m.parameter("mw_paclitaxel", "g/mol", "molecular weight of paclitaxel")
    ratio = m.parameter("tumour_plasma_ratio_nabp", "1", "tumour to plasma paclitaxel concentration ratio")
    ke0 = m.parameter("ke0_nabp", "1/day", "effect-compartment equilibration rate")
    ug_per_mg = m.conversion("ug_per_mg", "ug/mg")
    nmol_per_ug = m.conversion("nmol_g_per_ug_mol", "nmol*g/(ug*mol)")

    c1 = m.species("nabp_central", "ug/L", "paclitaxel in plasma")
    c2 = m.species("nabp_saturable", "ug/L", "paclitaxel in the saturable peripheral compartment")
    c3 = m.species("nabp_peripheral", "ug/L", "paclitaxel in the linear peripheral compartment")
    ce = m.species("nabp_effect", "nM", "paclitaxel effect-compartment concentration (tumour)")

    transport = vmax_t * (c1 / (kt + c1) - c2 / (kt + c2))
    m.term(c1, -vmax_el * c1 / (km_el + c1) / v1, "saturable elimination")
    m.term(c1, -q3 * (c1 - c3) / v1, "linear distribution")
    m.term(c3, q3 * (c1 - c3) / v3, "linear distribution")
    m.term(c1, -transport / v1, "saturable distribution")
    m.term(c2, transport / v2, "saturable distribution")
    m.term(ce, ke0 * (ratio * c1 * nmol_per_ug / mw - ce), "effect-compartment equilibration")
    m.dose_route("nabp", c1, ug_per_mg / v1)

    kill_max = m.parameter("nabp_kill_max", "1/day", "maximal paclitaxel kill rate of reachable tumour cells")
    ec50 = m.parameter("nabp_ec50", "nM", "paclitaxel concentration for half-maximal killing")
    sens_res = m.parameter(
        "nabp_resistant_sensitivity", "1", "nab-paclitaxel kill of a resistant cell relative to a sensitive one"
    )
    tox_max = m.parameter("nabp_tcell_tox_max", "1/day", "maximal paclitaxel death rate of proliferating T cells")
    icd = m.parameter("nabp_icd_boost", "1", "antigen released per chemotherapy-killed cell relative to other deaths")

    S, R, X = ref("tumour_cells_sensitive"), ref("tumour_cells_resistant"), ref("tumour_cells_escape")
    effect = ce / (ce + ec50)
    per_cell = m.expression(
        "chemo_kill_per_cell",
        kill_max * effect,
        "1/day",
        "nab-paclitaxel kill rate per proliferating sensitive tumour cell",
    )
    kill_s = per_cell * S
    kill_r = per_cell * sens_res * ref("resistant_fitness") * R
    kill_x = per_cell * ref("escape_fitness") * X
    m.expression(
        "chemo_kill_rate", kill_s + kill_r + kill_x, "cell/day", "tumour cells killed by nab-paclitaxel per day"
    )
    m.term(S, -kill_s, "nab-paclitaxel killing")
    m.term(R, -kill_r, "nab-paclitaxel killing")
    m.term(X, -kill_x, "nab-paclitaxel killing")
    released = kill_s + kill_r + ref("escape_antigen_fraction") * kill_x
    m.term(ref("antigen"), icd * released, "immunogenic cell death")
    m.term(ref("t_primed"), -tox_max * effect * ref("t_primed"), "nab-paclitaxel toxicity")
    m.term(ref("t_eff"), -tox_max * effect * ref("t_eff"), "nab-paclitaxel toxicity")
    return m
