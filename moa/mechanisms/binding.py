"""Binding in the tumour: antibodies on PD-L1 and 4-1BB, trans bridging, PD-1:PD-L1.

Every antibody is described by its arms: ``valency_pdl1`` PD-L1-binding arms and
``valency_cd137`` 4-1BB (CD137)-binding arms (2:2 bispecific: 2 and 2; 1:1: 1 and 1;
anti-PD-L1 IgG: 2 and 0; anti-4-1BB IgG: 0 and 2). A bound molecule is the state
``(a, b)``: ``a`` PD-L1 arms and ``b`` 4-1BB arms engaged (``bsab_LLB`` is a = 2, b = 1).

Rates (all concentrations tissue-average nM in the tumour interstitium):

* first arm, from solution: ``(n - a) kon [D] [R]``;
* a further arm on a receptor of the **same kind** as one already bound (same cell):
  ``(n - a) chi_cis kon [C] [R]``;
* a further arm on the **other** receptor, the first of its kind (bridging a tumour or
  myeloid cell to a T cell, the ternary complex): ``(n - a) chi_trans kon [C] [R]``;
* unbinding of one of ``a`` bound arms: ``a koff [C]`` with ``koff = kon KD``.

The avidity factor of a complex depends only on its composition
(``chi_trans`` if both kinds are bound, ``chi_cis`` for every further arm of a kind), so the
product of equilibrium constants around every cycle closes: detailed balance holds by
construction, for any valency. At equilibrium

    [C(a, b)] = [D] binom(nL, a) binom(nB, b) ([L]/KD_L)^a ([B]/KD_B)^b chi(a, b)

which is what :mod:`moa.binding` solves directly.

PD-1 on T cells binds free PD-L1 (not drug-bound PD-L1: the antibodies block the PD-1
site), with a 2D enhancement ``chi_pd1`` over the 3D affinity. Receptors are made at the
rate that keeps their total at a target set by cell numbers (and IFN-gamma for PD-L1) and
turn over at ``kdeg``; drug complexes are internalised at ``kint``.
"""

from __future__ import annotations

import dataclasses

import sympy

from ..engine import Mechanism, ref

__all__ = ["DrugArms", "DRUG_ARMS", "complex_states", "complex_name", "avidity_exponents", "tumour_binding"]


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
    """All bound states (a, b) of a drug, free drug (0, 0) excluded."""
    return [(a, b) for a in range(arms.max_pdl1 + 1) for b in range(arms.max_cd137 + 1) if a + b > 0]


def complex_name(drug: str, a: int, b: int) -> str:
    return f"{drug}_{'L' * a}{'B' * b}"


def avidity_exponents(a: int, b: int) -> tuple[int, int, int]:
    """Powers of (chi_cis_pdl1, chi_cis_cd137, chi_trans) in the equilibrium constant of (a, b)."""
    return max(a - 1, 0), max(b - 1, 0), int(a >= 1 and b >= 1)


def _describe(label: str, a: int, b: int) -> str:
    parts = []
    if a:
        parts.append(f"{a} PD-L1")
    if b:
        parts.append(f"{b} 4-1BB")
    kind = " (trans bridge, ternary)" if a and b else ""
    return f"{label} bound to {' and '.join(parts)}{kind}"


def tumour_binding(drugs: tuple[DrugArms, ...] = DRUG_ARMS) -> Mechanism:
    m = Mechanism("binding", "antibody binding to PD-L1 and 4-1BB in the tumour, trans bridging, PD-1:PD-L1")
    nmol_per_molecule = m.conversion("nmol_per_molecule", "nmol/molecule")
    ml_per_l = m.conversion("mL_per_L", "mL/L")

    # receptor targets set by the cells that carry them
    interstitial_volume = ref("tumour_interstitial_volume")  # mL, from the tumour mechanism
    t_cells = ref("tumour_t_cells")  # cell, from the T-cell mechanism
    ifng = ref("ifng_tumour")  # nM, from the T-cell mechanism
    pdl1_per_cell = m.parameter("pdl1_per_tumour_cell", "molecule/cell", "PD-L1 on a tumour cell without IFN-gamma")
    pdl1_fold = m.parameter("pdl1_ifng_fold", "1", "maximal fold increase of tumour PD-L1 by IFN-gamma")
    ifng_ec50 = m.parameter("ifng_ec50_pdl1", "nM", "IFN-gamma concentration for half-maximal PD-L1 induction")
    density = m.parameter("tumour_cell_density", "cell/mL", "tumour cells per mL of tumour")
    interstitial_fraction = m.parameter("tumour_interstitial_fraction", "1", "antibody-accessible (interstitial) fraction of tumour volume")
    pdl1_myeloid = ref("pdl1_myeloid_nM")  # nM, PD-L1 on suppressive myeloid cells (suppression mechanism)
    cd137_per_cell = m.parameter("cd137_per_t_cell", "molecule/cell", "4-1BB on a tumour-infiltrating CD8 T cell")
    pd1_per_cell = m.parameter("pd1_per_t_cell", "molecule/cell", "PD-1 on a tumour-infiltrating CD8 T cell")
    kdeg_pdl1 = m.parameter("kdeg_pdl1", "1/day", "turnover rate of free PD-L1 (also PD-1 and PD-1:PD-L1)")
    kdeg_cd137 = m.parameter("kdeg_cd137", "1/day", "turnover rate of free 4-1BB")
    kint = m.parameter("kint_pdl1_complex", "1/day", "internalisation rate of antibody-receptor complexes")

    induction = 1 + (pdl1_fold - 1) * ifng / (ifng + ifng_ec50)
    pdl1_target = m.expression(
        "pdl1_target", pdl1_per_cell * induction * density * nmol_per_molecule * ml_per_l / interstitial_fraction + pdl1_myeloid,
        "nM", "PD-L1 concentration the tumour tends to (tumour cells with IFN-gamma induction, plus myeloid cells)")
    per_volume = t_cells / interstitial_volume * nmol_per_molecule * ml_per_l
    cd137_target = m.expression("cd137_target", cd137_per_cell * per_volume, "nM", "4-1BB concentration set by tumour T cells")
    pd1_target = m.expression("pd1_target", pd1_per_cell * per_volume, "nM", "PD-1 concentration set by tumour T cells")

    kon_pd1 = m.parameter("kon_pd1_pdl1", "1/(nM*day)", "PD-1:PD-L1 association rate (3D)")
    kd_pd1 = m.parameter("kd_pd1_pdl1", "nM", "PD-1:PD-L1 dissociation constant (3D)")
    chi_pd1 = m.parameter("chi_pd1", "1", "2D enhancement of PD-1:PD-L1 binding in the synapse")
    # start with PD-1 engagement at its equilibrium on the PD-L1 target (PD-1 is scarce next to PD-L1)
    engaged0 = chi_pd1 * pdl1_target / kd_pd1
    L = m.species("pdl1_free", "nM", "free PD-L1 in the tumour", initial=ref("pdl1_target"))
    B = m.species("cd137_free", "nM", "free 4-1BB on tumour T cells", initial=ref("cd137_target"))
    P = m.species("pd1_free", "nM", "free PD-1 on tumour T cells", initial=pd1_target / (1 + engaged0))
    PL = m.species("pd1_pdl1", "nM", "PD-1:PD-L1 complexes (checkpoint engaged)", initial=pd1_target * engaged0 / (1 + engaged0))

    m.term(L, kdeg_pdl1 * (pdl1_target - L), "PD-L1 synthesis and turnover")
    m.term(B, kdeg_cd137 * (cd137_target - B), "4-1BB synthesis and turnover")
    m.term(P, kdeg_pdl1 * (pd1_target - P), "PD-1 synthesis and turnover")
    m.term(PL, -kdeg_pdl1 * PL, "PD-1:PD-L1 turnover")

    checkpoint = chi_pd1 * kon_pd1 * P * L - kon_pd1 * kd_pd1 * PL
    m.term(P, -checkpoint, "PD-1 binds PD-L1")
    m.term(L, -checkpoint, "PD-1 binds PD-L1")
    m.term(PL, checkpoint, "PD-1 binds PD-L1")

    chi_cis_l = m.parameter("chi_cis_pdl1", "1", "avidity factor for a further arm on PD-L1 of the same cell")
    chi_cis_b = m.parameter("chi_cis_cd137", "1", "avidity factor for a further arm on 4-1BB of the same cell")
    chi_trans = m.parameter("chi_trans", "1", "avidity factor for bridging PD-L1 to 4-1BB across two cells")
    k_exchange = m.parameter("k_tumour_exchange", "1/day", "antibody exchange rate between plasma and tumour interstitium")
    partition = m.parameter("tumour_partition", "1", "tumour interstitial to plasma concentration ratio at equilibrium")

    pdl1_bound, cd137_bound = [], []
    cd137_trans, cd137_agonist, cd137_cis_bsab = [], [], []
    for arms in drugs:
        d = arms.drug
        free = m.species(f"{d}_tumour", "nM", f"free {arms.label} in the tumour interstitium")
        plasma = ref(f"{d}_central")
        m.term(free, k_exchange * (partition * plasma - free), "exchange with plasma")
        conc = {(0, 0): free}
        for a, b in complex_states(arms):
            conc[(a, b)] = m.species(complex_name(d, a, b), "nM", _describe(arms.label, a, b))
            m.term(conc[(a, b)], -kint * conc[(a, b)], "internalisation")
            if a:
                pdl1_bound.append(a * conc[(a, b)])
            if b:
                cd137_bound.append(b * conc[(a, b)])
                if a:
                    cd137_trans.append(b * conc[(a, b)])
                elif d == "bsab":
                    cd137_cis_bsab.append(b * conc[(a, b)])
                else:
                    cd137_agonist.append(b * conc[(a, b)])
        if arms.binds_pdl1:
            n_l = m.parameter(f"valency_pdl1_{d}", "1", f"PD-L1-binding arms of the {arms.label}")
            kon_l = m.parameter(f"kon_pdl1_{d}", "1/(nM*day)", f"association rate of a PD-L1 arm of the {arms.label}")
            kd_l = m.parameter(f"kd_pdl1_{d}", "nM", f"KD of a PD-L1 arm of the {arms.label}")
        if arms.binds_cd137:
            n_b = m.parameter(f"valency_cd137_{d}", "1", f"4-1BB-binding arms of the {arms.label}")
            kon_b = m.parameter(f"kon_cd137_{d}", "1/(nM*day)", f"association rate of a 4-1BB arm of the {arms.label}")
            kd_b = m.parameter(f"kd_cd137_{d}", "nM", f"KD of a 4-1BB arm of the {arms.label}")
        for (a, b), c in conc.items():
            if a + 1 <= arms.max_pdl1:  # one more PD-L1 arm
                chi = 1 if a + b == 0 else (chi_cis_l if a >= 1 else chi_trans)
                net = (n_l - a) * chi * kon_l * c * L - (a + 1) * kon_l * kd_l * conc[(a + 1, b)]
                _reaction(m, net, [c, L], [conc[(a + 1, b)]], f"PD-L1 arm binds ({a},{b})->({a + 1},{b})")
            if b + 1 <= arms.max_cd137:  # one more 4-1BB arm
                chi = 1 if a + b == 0 else (chi_cis_b if b >= 1 else chi_trans)
                net = (n_b - b) * chi * kon_b * c * B - (b + 1) * kon_b * kd_b * conc[(a, b + 1)]
                _reaction(m, net, [c, B], [conc[(a, b + 1)]], f"4-1BB arm binds ({a},{b})->({a},{b + 1})")

    floor = m.parameter("receptor_floor", "nM", "numerical floor in receptor fractions, far below any real receptor level")
    pdl1_total = m.expression("pdl1_total", L + PL + sum(pdl1_bound), "nM", "all PD-L1 in the tumour")
    cd137_total = m.expression("cd137_total", B + sum(cd137_bound), "nM", "all 4-1BB in the tumour")
    m.expression("pdl1_drug_occupancy", sum(pdl1_bound) / (pdl1_total + floor), "1", "fraction of tumour PD-L1 bound by antibody")
    m.expression("pd1_engaged", PL / (P + PL + floor), "1", "fraction of PD-1 engaged by PD-L1 (checkpoint signal)")
    m.expression("ternary_bsab", sum(c for c in cd137_trans), "nM", "4-1BB held in PD-L1-anchored bridges by the bispecific")

    agonist_eff = m.parameter("agonist_efficacy_a41bb", "1", "signal per engaged 4-1BB of the free agonist relative to a bridge")
    cis_eff = m.parameter("cis_efficacy_bsab", "1", "signal per 4-1BB held by the bispecific without a PD-L1 anchor")
    ec50 = m.parameter("cd137_signal_ec50", "1", "engaged 4-1BB fraction giving half-maximal costimulation")
    engaged = (sum(cd137_trans) + agonist_eff * sum(cd137_agonist) + cis_eff * sum(cd137_cis_bsab)) / (cd137_total + floor)
    frac = m.expression("cd137_engaged", engaged, "1", "signalling-weighted fraction of tumour 4-1BB engaged")
    m.expression("cd137_signal", frac / (frac + ec50), "1", "4-1BB costimulation in the tumour (0 none, 1 maximal)")
    return m


def _reaction(m: Mechanism, net: sympy.Expr, consumed: list, produced: list, label: str) -> None:
    for s in consumed:
        m.term(s, -net, label)
    for s in produced:
        m.term(s, net, label)
