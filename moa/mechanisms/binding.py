"""Binding in the tumour: antibodies on PD-L1 and 4-1BB, bridging in cell-cell contacts, PD-1:PD-L1.

Every antibody is described by its arms: ``valency_pdl1`` PD-L1-binding arms and
``valency_cd137`` 4-1BB (CD137)-binding arms (2:2 bispecific: 2 and 2; 1:1: 1 and 1;
anti-PD-L1 IgG: 2 and 0; anti-4-1BB IgG: 0 and 2). A bound molecule is the state
``(a, b)``: ``a`` PD-L1 arms and ``b`` 4-1BB arms engaged (``bsab_LLB`` is a = 2, b = 1).

**Contact zones.** Every tumour T cell holds one contact with a PD-L1-bearing (anchor) cell:
a tumour or myeloid cell (when T cells would cover more anchor surface than exists, a fraction
``1/(1 + demand)`` of them holds one, ``demand`` = T-cell contact area over anchor surface). The
contact zone is a thin slab of area ``synapse_area`` and gap ``synapse_gap`` (QSP-IO: about
38 um^2 and 3 nm). It holds the receptors of its footprint:
the T cell's 4-1BB and PD-1 times ``synapse_area / t_cell_area``, and the anchor surface's
PD-L1 density times ``synapse_area``; receptors do not move between the footprint and the
rest of the membrane (QSP-IO convention). Off-contact receptors (``pdl1_free``,
``cd137_free``) bind drug as before; contact receptors (``pdl1_syn``, ``cd137_syn``,
``pd1_free``) are separate pools. All concentrations are tissue-average nM of tumour
interstitium; ``contact_volume_fraction`` phi = contacts x area x gap / interstitial volume
converts a contact pool to its local concentration in the slab (``[R]_local = [R] / phi``).

Rates:

* off contact, first arm from solution: ``(n - a) kon [D] [R]``; a further arm on the same
  kind of receptor (same cell): ``(n - a) chi_cis kon [C] [R]`` (3D avidity factor);
  no bridging off contact (the cells are not close);
* in a contact, the first arm binds from solution with the 3D rate; **every further arm**
  (same kind or the other kind, i.e. the trans bridge) binds in 2D, with
  ``kon_2D = kon / synapse_gap`` on the per-area density, which is the 3D rate on the
  local concentration: ``(n - a) kon [C] [R] / phi``;
* unbinding of one of ``a`` bound arms: ``a koff [C]`` with ``koff = kon KD``.

Bridged (ternary) complexes exist only in contacts. The factor of a complex depends only on
its composition (``chi_cis`` per further arm off contact, ``1/phi`` per further arm in a
contact), so the product of equilibrium constants around every cycle closes: detailed
balance holds by construction, for any valency. At equilibrium

    off contact:  [C(a, 0)] = [D] binom(nL, a) ([L]/KD_L)^a chi_cis_pdl1^(a-1)   (same for 4-1BB)
    in contacts:  [C(a, b)] = [D] binom(nL, a) binom(nB, b) ([Lc]/KD_L)^a ([Bc]/KD_B)^b phi^(1-a-b)

which is what :mod:`moa.binding_equilibrium` solves directly. Because 1/phi is of order 1e5-1e6, a bridge
is limited by the receptors in the contact footprint, not by tissue-average PD-L1: a T cell
facing a PD-L1-poor cell cannot bridge more 4-1BB than that cell's footprint offers.

PD-1 (in contacts only) binds free contact PD-L1 in 2D, ``chi_pd1 kon [P] [Lc] / phi``
(antibody-bound PD-L1 is blocked); ``chi_pd1`` corrects the ideal 2D affinity. Receptors are
made at the rate that keeps their total at a target set by cell numbers (and IFN-gamma for
tumour PD-L1) and turn over at ``kdeg``; drug complexes are internalised at ``kint``.

**Clustering.** 4-1BB signals from cross-linked receptors: ``cd137_crosslinked`` (per T
cell) counts 4-1BB in PD-L1-anchored bridges, plus agonist-held 4-1BB weighted by
``agonist_efficacy_a41bb`` and unanchored bispecific-held 4-1BB weighted by
``cis_efficacy_bsab``; the signal is a Hill function of that count
(``cd137_cluster_k``, exponent ``cd137_cluster_hill`` >= 1), so that it rises more
steeply than linearly and a PD-L1 density threshold for the bispecific emerges.
"""

from __future__ import annotations

import dataclasses

import sympy

from ..symbolic import Mechanism, ref

__all__ = [
    "DrugArms",
    "DRUG_ARMS",
    "complex_states",
    "complex_name",
    "contact_name",
    "off_contact_states",
    "contact_states",
    "tumour_binding",
]


@dataclasses.dataclass(frozen=True)
class DrugArms:
    """Which receptors a drug binds (its valencies are parameters, bounded 0..2 per kind)."""

    drug: str
    label: str
    binds_pdl1: bool
    binds_cd137: bool

    @property
    def max_pdl1(self) -> int:
        return 2 if self.binds_pdl1 else 0

    @property
    def max_cd137(self) -> int:
        return 2 if self.binds_cd137 else 0


DRUG_ARMS = (
    DrugArms("bsab", "PD-L1 x 4-1BB bispecific", True, True),
    DrugArms("apdl1", "anti-PD-L1 mAb", True, False),
    DrugArms("a41bb", "anti-4-1BB agonist mAb", False, True),
)


def complex_states(arms: DrugArms) -> list[tuple[int, int]]:
    """All bound compositions (a, b) of a drug, free drug (0, 0) excluded."""
    return [(a, b) for a in range(arms.max_pdl1 + 1) for b in range(arms.max_cd137 + 1) if a + b > 0]


def off_contact_states(arms: DrugArms) -> list[tuple[int, int]]:
    """Bound states off contact: one kind of receptor only (no bridge without a contact)."""
    return [(a, b) for a, b in complex_states(arms) if not (a and b)]


def contact_states(arms: DrugArms) -> list[tuple[int, int]]:
    """Bound states in contact zones: every composition, bridges (a >= 1 and b >= 1) included."""
    return complex_states(arms)


def complex_name(drug: str, a: int, b: int) -> str:
    """Species name of an off-contact complex, or of a bridge (bridges exist only in contacts)."""
    return f"{drug}_{'L' * a}{'B' * b}"


def contact_name(drug: str, a: int, b: int) -> str:
    """Species name of complex (a, b) in a contact zone (``_syn`` unless it is a bridge)."""
    return complex_name(drug, a, b) + ("" if a and b else "_syn")


def _describe(label: str, a: int, b: int, where: str) -> str:
    parts = []
    if a:
        parts.append(f"{a} PD-L1")
    if b:
        parts.append(f"{b} 4-1BB")
    kind = " (trans bridge, ternary)" if a and b else ""
    return f"{label} bound to {' and '.join(parts)}{kind}, {where}"


def tumour_binding(drugs: tuple[DrugArms, ...] = DRUG_ARMS) -> Mechanism:
    m = Mechanism("binding", "antibody binding to PD-L1 and 4-1BB in the tumour, bridging in cell contacts, PD-1:PD-L1")
    nmol_per_molecule = m.conversion("nmol_per_molecule", "nmol/molecule")
    ml_per_l = m.conversion("mL_per_L", "mL/L")
    ml_per_slab = m.conversion("mL_per_um2_nm", "mL/(um^2*nm)")

    # receptor targets set by the cells that carry them
    interstitial_volume = ref("tumour_interstitial_volume")  # mL, from the tumour mechanism
    t_cells = ref("tumour_t_cells")  # cell, from the T-cell mechanism
    ifng = ref("ifng_tumour")  # nM, from the T-cell mechanism
    pdl1_per_cell = m.parameter("pdl1_per_tumour_cell", "molecule/cell", "PD-L1 on a tumour cell without IFN-gamma")
    pdl1_fold = m.parameter("pdl1_ifng_fold", "1", "maximal fold increase of tumour PD-L1 by IFN-gamma")
    ifng_ec50 = m.parameter("ifng_ec50_pdl1", "nM", "IFN-gamma concentration for half-maximal PD-L1 induction")
    density = m.parameter("tumour_cell_density", "cell/mL", "tumour cells per mL of tumour")
    interstitial_fraction = m.parameter(
        "tumour_interstitial_fraction", "1", "antibody-accessible (interstitial) fraction of tumour volume"
    )
    # the anchor on myeloid cells is the suppressive myeloid population (moa.mechanisms.suppression):
    # its density in the tumour and its PD-L1 per cell, so anchor and suppression come from the same cells
    myeloid_density = ref("myeloid_cell_density")
    pdl1_per_myeloid = m.parameter(
        "pdl1_per_myeloid_cell", "molecule/cell", "PD-L1 on a suppressive myeloid cell in the tumour"
    )
    cd137_per_cell = m.parameter("cd137_per_t_cell", "molecule/cell", "4-1BB on a tumour-infiltrating CD8 T cell")
    pd1_per_cell = m.parameter("pd1_per_t_cell", "molecule/cell", "PD-1 on a tumour-infiltrating CD8 T cell")
    kdeg_pdl1 = m.parameter("kdeg_pdl1", "1/day", "turnover rate of free PD-L1 (also PD-1 and PD-1:PD-L1)")
    kdeg_cd137 = m.parameter("kdeg_cd137", "1/day", "turnover rate of free 4-1BB")
    kint = m.parameter("kint_pdl1_complex", "1/day", "internalisation rate of antibody-receptor complexes")

    # contact geometry: one contact per tumour T cell
    synapse_area = m.parameter(
        "synapse_area", "um^2/cell", "area of the contact zone of one T cell with an anchor cell"
    )
    synapse_gap = m.parameter("synapse_gap", "nm", "gap (depth) of the contact zone")
    t_cell_area = m.parameter("t_cell_area", "um^2/cell", "surface area of a T cell")
    tumour_cell_area = m.parameter("tumour_cell_area", "um^2/cell", "surface area of a tumour cell")
    myeloid_cell_area = m.parameter("myeloid_cell_area", "um^2/cell", "surface area of a tumour myeloid cell")
    contact_floor = m.parameter(
        "contact_floor", "1", "numerical floor of the contact volume fraction (no T cells left)"
    )

    induction = 1 + (pdl1_fold - 1) * ifng / (ifng + ifng_ec50)
    anchor_pdl1 = pdl1_per_cell * induction * density + pdl1_per_myeloid * myeloid_density  # molecule/mL of tumour
    pdl1_target = m.expression(
        "pdl1_target",
        anchor_pdl1 * nmol_per_molecule * ml_per_l / interstitial_fraction,
        "nM",
        "PD-L1 concentration the tumour tends to (tumour cells with IFN-gamma induction, plus myeloid cells)",
    )
    t_per_volume = t_cells / interstitial_volume
    per_volume = t_per_volume * nmol_per_molecule * ml_per_l
    cd137_target = m.expression(
        "cd137_target", cd137_per_cell * per_volume, "nM", "4-1BB concentration set by tumour T cells"
    )
    pd1_target = m.expression("pd1_target", pd1_per_cell * per_volume, "nM", "PD-1 concentration set by tumour T cells")
    anchor_area = (density * tumour_cell_area + myeloid_density * myeloid_cell_area) / interstitial_fraction
    # T cells compete for anchor surface: with demand s = T x area / anchor surface, a fraction 1/(1+s) of
    # them holds a contact, so contacts never cover more than the anchor surface (s is about 1e-3 normally)
    demand = t_per_volume * synapse_area / anchor_area
    in_contact = m.expression(
        "t_cell_contact_fraction", 1 / (1 + demand), "1", "fraction of tumour T cells holding a contact"
    )
    anchor_share = m.expression(
        "anchor_contact_share",
        demand * in_contact,
        "1",
        "fraction of anchor-cell (tumour and myeloid) surface in T-cell contacts",
    )
    t_share = m.expression(
        "t_cell_contact_share",
        synapse_area / t_cell_area * in_contact,
        "1",
        "fraction of all tumour T-cell surface in contacts",
    )
    phi = m.expression(
        "contact_volume_fraction",
        t_per_volume * in_contact * synapse_area * synapse_gap * ml_per_slab,
        "1",
        "volume of all contact zones per interstitial volume",
    )
    local = 1 / (phi + contact_floor)  # tissue-average nM -> local nM in the contact slab
    m.expression(
        "pdl1_per_contact",
        anchor_pdl1 * synapse_area / (anchor_area * interstitial_fraction),
        "molecule/cell",
        "PD-L1 in one T cell's contact zone (anchor surface density x synapse area; per T cell)",
    )

    kon_pd1 = m.parameter("kon_pd1_pdl1", "1/(nM*day)", "PD-1:PD-L1 association rate (3D)")
    kd_pd1 = m.parameter("kd_pd1_pdl1", "nM", "PD-1:PD-L1 dissociation constant (3D)")
    chi_pd1 = m.parameter("chi_pd1", "1", "correction to the ideal 2D PD-1:PD-L1 affinity in the contact zone")
    # start with PD-1:PD-L1 near its equilibrium in the contacts: P L / (P + L + 1/K) is exact when either
    # partner is scarce, and within a factor 2 otherwise (the fast binding corrects it within hours)
    pd1_contact = t_share * pd1_target
    pdl1_contact = anchor_share * pdl1_target
    pl0 = pd1_contact * pdl1_contact / (pd1_contact + pdl1_contact + kd_pd1 / (chi_pd1 * local))
    L = m.species("pdl1_free", "nM", "free PD-L1 off contact in the tumour", initial=(1 - anchor_share) * pdl1_target)
    Lc = m.species("pdl1_syn", "nM", "free PD-L1 in T-cell contact zones", initial=pdl1_contact - pl0)
    B = m.species("cd137_free", "nM", "free 4-1BB off contact on tumour T cells", initial=(1 - t_share) * cd137_target)
    Bc = m.species("cd137_syn", "nM", "free 4-1BB in T-cell contact zones", initial=t_share * cd137_target)
    P = m.species("pd1_free", "nM", "free PD-1 in T-cell contact zones", initial=pd1_contact - pl0)
    PL = m.species("pd1_pdl1", "nM", "PD-1:PD-L1 complexes in contact zones (checkpoint engaged)", initial=pl0)

    m.term(L, kdeg_pdl1 * ((1 - anchor_share) * pdl1_target - L), "PD-L1 synthesis and turnover")
    m.term(Lc, kdeg_pdl1 * (anchor_share * pdl1_target - Lc), "PD-L1 synthesis and turnover")
    m.term(B, kdeg_cd137 * ((1 - t_share) * cd137_target - B), "4-1BB synthesis and turnover")
    m.term(Bc, kdeg_cd137 * (t_share * cd137_target - Bc), "4-1BB synthesis and turnover")
    m.term(P, kdeg_pdl1 * (pd1_contact - P), "PD-1 synthesis and turnover")
    m.term(PL, -kdeg_pdl1 * PL, "PD-1:PD-L1 turnover")

    checkpoint = chi_pd1 * kon_pd1 * P * Lc * local - kon_pd1 * kd_pd1 * PL
    _reaction(m, checkpoint, [P, Lc], [PL], "PD-1 binds PD-L1 in contacts")

    chi_cis_l = m.parameter(
        "chi_cis_pdl1", "1", "avidity factor for a further arm on PD-L1 of the same cell, off contact"
    )
    chi_cis_b = m.parameter(
        "chi_cis_cd137", "1", "avidity factor for a further arm on 4-1BB of the same cell, off contact"
    )
    k_exchange = m.parameter(
        "k_tumour_exchange", "1/day", "antibody exchange rate between plasma and tumour interstitium"
    )
    partition = m.parameter("tumour_partition", "1", "tumour interstitial to plasma concentration ratio at equilibrium")

    pdl1_bound, cd137_bound = [], []
    cd137_trans, cd137_agonist, cd137_cis_bsab = [], [], []
    for arms in drugs:
        d = arms.drug
        free = m.species(f"{d}_tumour", "nM", f"free {arms.label} in the tumour interstitium")
        plasma = ref(f"{d}_central")
        m.term(free, k_exchange * (partition * plasma - free), "exchange with plasma")
        off = {(0, 0): free}
        for a, b in off_contact_states(arms):
            off[(a, b)] = m.species(complex_name(d, a, b), "nM", _describe(arms.label, a, b, "off contact"))
        syn = {(0, 0): free}
        for a, b in contact_states(arms):
            syn[(a, b)] = m.species(contact_name(d, a, b), "nM", _describe(arms.label, a, b, "in contact zones"))
        for (a, b), c in [*off.items(), *syn.items()]:
            if a + b == 0:
                continue
            m.term(c, -kint * c, "internalisation")
            if a:
                pdl1_bound.append(a * c)
            if b:
                cd137_bound.append(b * c)
                if a:
                    cd137_trans.append(b * c)
                elif d == "bsab":
                    cd137_cis_bsab.append(b * c)
                else:
                    cd137_agonist.append(b * c)
        if arms.binds_pdl1:
            n_l = m.parameter(f"valency_pdl1_{d}", "1", f"PD-L1-binding arms of the {arms.label}")
            kon_l = m.parameter(f"kon_pdl1_{d}", "1/(nM*day)", f"association rate of a PD-L1 arm of the {arms.label}")
            kd_l = m.parameter(f"kd_pdl1_{d}", "nM", f"KD of a PD-L1 arm of the {arms.label}")
        if arms.binds_cd137:
            n_b = m.parameter(f"valency_cd137_{d}", "1", f"4-1BB-binding arms of the {arms.label}")
            kon_b = m.parameter(f"kon_cd137_{d}", "1/(nM*day)", f"association rate of a 4-1BB arm of the {arms.label}")
            kd_b = m.parameter(f"kd_cd137_{d}", "nM", f"KD of a 4-1BB arm of the {arms.label}")
        for (a, b), c in off.items():  # off contact: one kind of receptor per molecule
            if b == 0 and a + 1 <= arms.max_pdl1:
                chi = 1 if a == 0 else chi_cis_l
                net = (n_l - a) * chi * kon_l * c * L - (a + 1) * kon_l * kd_l * off[(a + 1, 0)]
                _reaction(m, net, [c, L], [off[(a + 1, 0)]], f"PD-L1 arm binds ({a},{b})->({a + 1},{b}) off contact")
            if a == 0 and b + 1 <= arms.max_cd137:
                chi = 1 if b == 0 else chi_cis_b
                net = (n_b - b) * chi * kon_b * c * B - (b + 1) * kon_b * kd_b * off[(0, b + 1)]
                _reaction(m, net, [c, B], [off[(0, b + 1)]], f"4-1BB arm binds ({a},{b})->({a},{b + 1}) off contact")
        for (a, b), c in syn.items():  # in contacts: every further arm binds in 2D (local concentration)
            if a + 1 <= arms.max_pdl1:
                chi = 1 if a + b == 0 else local
                net = (n_l - a) * chi * kon_l * c * Lc - (a + 1) * kon_l * kd_l * syn[(a + 1, b)]
                _reaction(m, net, [c, Lc], [syn[(a + 1, b)]], f"PD-L1 arm binds ({a},{b})->({a + 1},{b}) in contacts")
            if b + 1 <= arms.max_cd137:
                chi = 1 if a + b == 0 else local
                net = (n_b - b) * chi * kon_b * c * Bc - (b + 1) * kon_b * kd_b * syn[(a, b + 1)]
                _reaction(m, net, [c, Bc], [syn[(a, b + 1)]], f"4-1BB arm binds ({a},{b})->({a},{b + 1}) in contacts")

    floor = m.parameter(
        "receptor_floor", "nM", "numerical floor in receptor fractions, far below any real receptor level"
    )
    pdl1_total = m.expression("pdl1_total", L + Lc + PL + sum(pdl1_bound), "nM", "all PD-L1 in the tumour")
    cd137_total = m.expression("cd137_total", B + Bc + sum(cd137_bound), "nM", "all 4-1BB in the tumour")
    m.expression(
        "pdl1_drug_occupancy", sum(pdl1_bound) / (pdl1_total + floor), "1", "fraction of tumour PD-L1 bound by antibody"
    )
    m.expression(
        "pd1_engaged", PL / (P + PL + floor), "1", "fraction of contact-zone PD-1 engaged by PD-L1 (checkpoint signal)"
    )
    m.expression("ternary_bsab", sum(cd137_trans), "nM", "4-1BB held in PD-L1-anchored bridges by the bispecific")

    agonist_eff = m.parameter(
        "agonist_efficacy_a41bb", "1", "signal per engaged 4-1BB of the free agonist relative to a bridge"
    )
    cis_eff = m.parameter("cis_efficacy_bsab", "1", "signal per 4-1BB held by the bispecific without a PD-L1 anchor")
    cluster_k = m.parameter(
        "cd137_cluster_k", "molecule/cell", "cross-linked 4-1BB per T cell for half-maximal costimulation"
    )
    hill = m.parameter("cd137_cluster_hill", "1", "Hill exponent of 4-1BB signal in cross-linked 4-1BB (clustering)")
    engaged = (sum(cd137_trans) + agonist_eff * sum(cd137_agonist) + cis_eff * sum(cd137_cis_bsab)) / (
        cd137_total + floor
    )
    frac = m.expression("cd137_engaged", engaged, "1", "signalling-weighted fraction of tumour 4-1BB engaged")
    crosslinked = m.expression(
        "cd137_crosslinked",
        frac * cd137_per_cell,
        "molecule/cell",
        "signalling-weighted cross-linked 4-1BB per tumour T cell",
    )
    # (x^2 + floor)^(n/2) ~ |x|^n: smooth at 0 and defined for any n >= 1 if round-off makes x a hair negative
    drive = ((crosslinked / cluster_k) ** 2 + contact_floor) ** (hill / 2)
    m.expression("cd137_signal", drive / (1 + drive), "1", "4-1BB costimulation in the tumour (0 none, 1 maximal)")
    return m


def _reaction(m: Mechanism, net: sympy.Expr, consumed: list, produced: list, label: str) -> None:
    for s in consumed:
        m.term(s, -net, label)
    for s in produced:
        m.term(s, net, label)
