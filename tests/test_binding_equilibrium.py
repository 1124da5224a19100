"""Binding: conservation, detailed balance, ODE relaxation to moa.binding.equilibrium, the
bell-shaped ternary complex, conditional agonism and the peripheral safety surrogate."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy
from scipy.integrate import solve_ivp

import moa
from moa.assemble import full_model
from moa.binding import drug_binding, equilibrium, peripheral_engagement
from moa.docgen import bell_metrics
from moa.mechanisms.binding import DRUG_ARMS, complex_name, complex_states
from moa.scenarios import scenario

#: Setting these to zero closes the tumour binding subsystem: no receptor synthesis or
#: turnover, no internalisation, no exchange with plasma.
CLOSED = {"kdeg_pdl1": 0.0, "kdeg_cd137": 0.0, "kint_pdl1_complex": 0.0, "k_tumour_exchange": 0.0}
DRUGS = [a.drug for a in DRUG_ARMS]


@pytest.fixture(scope="session")
def model():
    return full_model()


def _p(model, params):
    return np.concatenate([params.matrix(model.parameter_names)[:, 0], np.zeros(len(model.inputs))])


def _closed_run(model, arm, drug_in_tumour_nM, t_end=1000.0):
    """Integrate the full model with the binding subsystem closed, drug placed in the tumour."""
    params, _ = scenario(arm, "hot_tnbc")
    params = params.with_values(CLOSED)
    P = _p(model, params)
    c = model.compiled
    y0 = c.initial_T(P[:, None])[:, 0].copy()
    index = {n: i for i, n in enumerate(model.species_names)}
    for drug, conc in drug_in_tumour_nM.items():
        y0[index[f"{drug}_tumour"]] = conc
    sol = solve_ivp(lambda t, y: c.rhs(t, y[None], P[None])[0], (0.0, t_end), y0, method="LSODA",
                    jac=lambda t, y: c.jac(t, y[None], P[None])[0], rtol=1e-10, atol=1e-14,
                    t_eval=np.concatenate([[0.0], np.geomspace(1e-4, t_end, 40)]))
    assert sol.status == 0, sol.message
    return params, index, sol.y


def _totals(index, Y):
    """Total PD-L1, 4-1BB, PD-1 and each drug in the tumour, from states (n, time)."""
    pdl1 = Y[index["pdl1_free"]] + Y[index["pd1_pdl1"]]
    cd137 = Y[index["cd137_free"]].copy()
    pd1 = Y[index["pd1_free"]] + Y[index["pd1_pdl1"]]
    drugs = {}
    for arms in DRUG_ARMS:
        drugs[arms.drug] = Y[index[f"{arms.drug}_tumour"]].copy()
        for a, b in complex_states(arms):
            C = Y[index[complex_name(arms.drug, a, b)]]
            pdl1, cd137, drugs[arms.drug] = pdl1 + a * C, cd137 + b * C, drugs[arms.drug] + C
    return pdl1, cd137, pd1, drugs


MIX = {"bsab": 20.0, "apdl1": 5.0, "a41bb": 1.0}


@pytest.mark.parametrize("arm", ["bsab_2x2", "bsab_1x1"])
def test_closed_binding_subsystem_conserves_receptors_and_drug(model, arm):
    _, index, Y = _closed_run(model, arm, MIX)
    pdl1, cd137, pd1, drugs = _totals(index, Y)
    for name, total in [("PD-L1", pdl1), ("4-1BB", cd137), ("PD-1", pd1)] + list(drugs.items()):
        assert np.max(np.abs(total / total[0] - 1)) < 1e-8, name
    # and binding did happen (the check is not about states that never moved)
    assert Y[index["bsab_tumour"], -1] < 0.5 * MIX["bsab"]


@pytest.mark.parametrize("arm", ["bsab_2x2", "bsab_1x1"])
def test_ode_binding_relaxes_to_the_direct_equilibrium(model, arm):
    params, index, Y = _closed_run(model, arm, MIX)
    pdl1, cd137, pd1, drugs = _totals(index, Y)
    eq = equilibrium([(drug_binding(params, d), drugs[d][0]) for d in DRUGS], pdl1[0], cd137[0], pd1_nM=pd1[0],
                     kd_pd1_nM=float(params["kd_pd1_pdl1"]), chi_pd1=float(params["chi_pd1"]))
    compared = 0
    for name in eq.data_vars:
        if name not in index:
            continue
        want, got = float(eq[name]), Y[index[name], -1]
        # relative 1e-6, plus an absolute allowance at the ODE's atol for states of ~1e-12 nM
        assert abs(got - want) <= 1e-6 * want + 1e-13, (name, got, want)
        compared += want > 0  # states the format cannot form (bsab_LL for 1:1) must stay at zero
    assert compared >= 10
    # at t = 0 the ODE state was far from it
    assert abs(Y[index["bsab_tumour"], 0] / float(eq["bsab_free"]) - 1) > 0.5


# ----- detailed balance from the model's symbolic rate terms ---------------------------------
_EDGE = re.compile(r"^(PD-L1|4-1BB) arm binds \((\d),(\d)\)->\((\d),(\d)\)$")


def _binding_edges(model, params, drug, substitute=None):
    """{((a,b),(a',b')): K} with K = k_forward/k_backward (1/nM) from each reaction's rate term."""
    values = {sympy.Symbol(k, real=True): float(np.asarray(v)) for k, v in params.items()}
    edges = {}
    for t in model.terms:
        m = _EDGE.match(t.label)
        if t.mechanism != "binding" or not m or not t.species.startswith(f"{drug}_"):
            continue
        src, dst = (int(m[2]), int(m[3])), (int(m[4]), int(m[5]))
        if t.species != complex_name(drug, *dst):
            continue  # the same reaction's terms on the reactants
        expr = t.expr if substitute is None else substitute(src, dst, t.expr)
        reactant = sympy.Symbol(f"{drug}_tumour" if src == (0, 0) else complex_name(drug, *src), real=True)
        receptor = sympy.Symbol("pdl1_free" if m[1] == "PD-L1" else "cd137_free", real=True)
        product = sympy.Symbol(t.species, real=True)
        k_forward = sympy.diff(expr, reactant, receptor)
        k_backward = -sympy.diff(expr, product)
        edges[(src, dst)] = float(k_forward.subs(values)) / float(k_backward.subs(values))
    return edges


def _cycle_mismatch(edges):
    """Largest |log| of (product of K around a unit square of the (a,b) grid); 0 when balanced."""
    worst, squares = 0.0, 0
    for (a, b) in {s for s, _ in edges}:
        path1 = [((a, b), (a + 1, b)), ((a + 1, b), (a + 1, b + 1))]
        path2 = [((a, b), (a, b + 1)), ((a, b + 1), (a + 1, b + 1))]
        if all(e in edges for e in path1 + path2):
            ratio = edges[path1[0]] * edges[path1[1]] / (edges[path2[0]] * edges[path2[1]])
            worst, squares = max(worst, abs(np.log(ratio))), squares + 1
    return worst, squares


def _distinct_chis(arm):
    """Avidity factors all different, so a wrong factor on one path cannot hide."""
    params, _ = scenario(arm, "hot_tnbc")
    return params.with_values({"chi_cis_pdl1": 300.0, "chi_cis_cd137": 30.0, "chi_trans": 7.0})


@pytest.mark.parametrize("arm, n_squares", [("bsab_2x2", 4), ("bsab_1x1", 1)])
def test_detailed_balance_around_every_binding_cycle(model, arm, n_squares):
    params = _distinct_chis(arm)
    edges = _binding_edges(model, params, "bsab")
    # keep the states the format can form (1:1: a <= 1 and b <= 1); beyond them states stay empty
    n_l, n_b = float(params["valency_pdl1_bsab"]), float(params["valency_cd137_bsab"])
    live = {(s, d): k for (s, d), k in edges.items() if max(s[0], d[0]) <= n_l and max(s[1], d[1]) <= n_b}
    assert all(k > 0 for k in live.values())
    worst, squares = _cycle_mismatch(live)
    assert squares == n_squares and worst < 1e-12
    # the product of constants along any path from free drug is moa.binding's weight
    weight = drug_binding(params, "bsab").weight
    potential = {(0, 0): 1.0}
    for (src, dst), k in sorted(live.items(), key=lambda e: sum(e[0][0])):
        potential.setdefault(dst, potential[src] * k)
        assert potential[dst] == pytest.approx(potential[src] * k, rel=1e-12)
    for state, value in potential.items():
        if state != (0, 0):
            assert value == pytest.approx(weight(*state), rel=1e-12), state


def test_detailed_balance_check_catches_a_path_dependent_avidity_factor(model):
    params = _distinct_chis("bsab_2x2")
    chi_trans, chi_cis = sympy.Symbol("chi_trans", real=True), sympy.Symbol("chi_cis_pdl1", real=True)

    def broken(src, dst, expr):  # bridging from (1,0) uses the cis factor: depends on the path
        return expr.subs(chi_trans, chi_cis) if (src, dst) == ((1, 0), (1, 1)) else expr

    worst, squares = _cycle_mismatch(_binding_edges(model, params, "bsab", substitute=broken))
    assert squares == 4 and worst > 1.0


# ----- the ternary complex -------------------------------------------------------------------
@pytest.fixture(scope="module")
def bells():
    return {arm: bell_metrics(scenario(arm, "hot_tnbc")[0]) for arm in ("bsab_2x2", "bsab_1x1")}


@pytest.mark.parametrize("arm", ["bsab_2x2", "bsab_1x1"])
def test_ternary_complex_is_bell_shaped_in_drug_concentration(bells, arm):
    m = bells[arm]
    y, k = m["ternary_nM"], m["peak_index"]
    assert 0 < k < len(y) - 1
    # low at both ends of 1e-4..1e5 nM: it rises, then the hook (the 2:2 tail is long: avidity)
    assert y[0] < 0.01 * y[k] and y[-1] < 0.25 * y[k]
    assert np.all(np.diff(y[: k + 1]) >= -1e-12 * y[k]) and np.all(np.diff(y[k:]) <= 1e-12 * y[k])
    assert 1 < m["width_decades"] < 8


def test_formats_differ_and_the_difference_is_measured(bells):
    two, one = bells["bsab_2x2"], bells["bsab_1x1"]
    assert two["pdl1_nM"] == one["pdl1_nM"] and two["cd137_nM"] == one["cd137_nM"]
    # the numbers docs/model.md reports; directions as the model gives them with default constants
    assert two["peak_fraction"] > one["peak_fraction"]
    assert two["conc_at_peak_nM"] < one["conc_at_peak_nM"] / 1.5
    assert two["width_decades"] > one["width_decades"] + 0.1


def test_ternary_in_the_ode_model_rises_then_falls_with_dose(model):
    """The same bell in the ODE model: ternary in the tumour at day 7 over single doses."""
    doses_mg_per_kg = [0.001, 0.3, 30.0, 3000.0]  # beyond the clinical range on purpose: the hook
    params, _ = scenario("bsab_2x2", "hot_tnbc", duration_days=7)
    params = params.with_values({"kint_pdl1_complex": 0.0})  # keep receptors from being cleared by the drug
    ternary = [float(moa.simulate(model, params, moa.every("bsab", d, "mg/kg", 7.0, 7.0), times=[0, 7]).ternary_bsab[-1])
               for d in doses_mg_per_kg]
    k = int(np.argmax(ternary))
    assert 0 < k < len(ternary) - 1, ternary
    assert ternary[-1] < 0.8 * ternary[k] and ternary[0] < 0.1 * ternary[k], ternary


# ----- conditional agonism and the safety surrogate --------------------------------------------
@pytest.fixture(scope="module")
def no_pdl1_runs(model):
    out = {}
    for arm in ("bsab_2x2", "bsab_1x1", "a41bb"):
        params, regimen = scenario(arm, "hot_tnbc", duration_days=42)
        for pdl1 in (True, False):
            p = params if pdl1 else params.with_values({"pdl1_per_tumour_cell": 0.0, "pdl1_per_myeloid_cell": 0.0})
            out[arm, pdl1] = (p, moa.simulate(model, p, regimen, duration_days=42))
    return out


@pytest.mark.parametrize("arm", ["bsab_2x2", "bsab_1x1"])
def test_without_pdl1_the_bispecific_gives_no_4_1bb_signal_but_the_agonist_does(no_pdl1_runs, arm):
    with_pdl1 = no_pdl1_runs[arm, True][1].cd137_signal.values
    without = no_pdl1_runs[arm, False][1].cd137_signal.values
    agonist = no_pdl1_runs["a41bb", False][1].cd137_signal.values
    assert with_pdl1.max() > 0.5  # anchored: strong signal
    assert without.max() < 1e-6  # no anchor: (near) none
    assert agonist[1:].min() > 0.3  # the free agonist does not need PD-L1


def test_peripheral_4_1bb_engagement_is_much_lower_for_the_bispecific(no_pdl1_runs):
    p2, ds2 = no_pdl1_runs["bsab_2x2", True]
    pa, dsa = no_pdl1_runs["a41bb", True]
    bispecific, agonist = float(peripheral_engagement(ds2, p2).max()), float(peripheral_engagement(dsa, pa).max())
    assert bispecific < 0.1 * agonist, (bispecific, agonist)
    assert agonist > 0.3
