"""Binding with contact zones: conservation, detailed balance, ODE relaxation to
moa.binding_equilibrium.equilibrium, the bell-shaped ternary complex, the emergent PD-L1 threshold of
conditional agonism, 2:2 against 1:1, and the liver safety readout."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy
import xarray as xr
from scipy.integrate import solve_ivp

from moa.codegen import compile_model
import moa
from moa.symbolic.named_models import full_model
from moa.binding_equilibrium import (
    bell_metrics,
    drug_binding,
    equilibrium,
    in_vitro,
    contact_geometry,
    clustering,
    pdl1_threshold,
    liver_signal,
    liver_toxicity_readout,
)
from moa.cli import main as cli_main
from moa.symbolic import Mechanism, Model
from moa.mechanisms.binding import (
    DRUG_ARMS,
    complex_name,
    contact_name,
    contact_states,
    off_contact_states,
    tumour_binding,
)
from moa.parameters import load_parameters
from moa.scenarios import load_formats, scenario

#: Setting these to zero closes the tumour binding subsystem: no receptor synthesis or
#: turnover, no internalisation, no exchange with plasma.
CLOSED = {"kdeg_pdl1": 0.0, "kdeg_cd137": 0.0, "kint_pdl1_complex": 0.0, "k_tumour_exchange": 0.0}
DRUGS = [a.drug for a in DRUG_ARMS]
#: what the other mechanisms would provide, held fixed (hot-TNBC-like lesion of 8 mL)
STUB = {
    "tumour_interstitial_volume": 8.0 * 0.522,
    "tumour_t_cells": 3.6e7,
    "ifng_tumour": 0.003,
    "myeloid_cell_density": 2.7e7,
    "bsab_central": 0.0,
    "apdl1_central": 0.0,
    "a41bb_central": 0.0,
}
STUB_UNITS = {
    "tumour_interstitial_volume": "mL",
    "tumour_t_cells": "cell",
    "ifng_tumour": "nM",
    "myeloid_cell_density": "cell/mL",
}


@pytest.fixture(scope="session")
def binding_model():
    """The binding mechanism alone, with the quantities of other mechanisms as fixed inputs."""
    stub = Mechanism("stub", "fixed inputs of the binding mechanism")
    for name in STUB:
        stub.parameter(name, STUB_UNITS.get(name, "nM"), f"{name} held fixed")
    return Model([tumour_binding(), stub], name="binding_only")


@pytest.fixture(scope="session")
def model():
    return full_model()


def _values(params):
    return {**{k: float(np.asarray(v)) for k, v in params.items()}, **STUB}


def _closed_run(binding_model, arm, drug_in_tumour_nM, t_end=1e6):
    """Integrate the closed binding subsystem, drug placed in the tumour interstitium.

    Long: drug moves between off-contact and contact pools only through free drug, and a
    bivalently bound antibody lets go slowly (years without receptor turnover)."""
    params, _ = scenario(arm, "hot_tnbc")
    params = params.with_values(CLOSED)
    values = _values(params)
    c = compile_model(binding_model)
    P = np.array([values[n] for n in c.parameter_names])
    y0 = c.initial_T(P[:, None])[:, 0].copy()
    index = {n: i for i, n in enumerate(binding_model.species_names)}
    for drug, conc in drug_in_tumour_nM.items():
        y0[index[f"{drug}_tumour"]] = conc
    sol = solve_ivp(
        lambda t, y: c.rhs(t, y[None], P[None])[0],
        (0.0, t_end),
        y0,
        method="LSODA",
        jac=lambda t, y: c.jac(t, y[None], P[None])[0],
        rtol=1e-10,
        atol=1e-16,
        t_eval=np.concatenate([[0.0], np.geomspace(1e-6, t_end, 40)]),
    )
    assert sol.status == 0, sol.message
    obs = c.observables_T(0.0, y0[:, None], P[:, None])[:, 0]
    phi = obs[c.observable_names.index("contact_volume_fraction")] + values["contact_floor"]
    return params, index, sol.y, phi


def _totals(index, Y):
    """Each receptor pool and each drug in the tumour, from states (n, time)."""
    t = {
        "pdl1": Y[index["pdl1_free"]].copy(),
        "pdl1_contact": Y[index["pdl1_syn"]] + Y[index["pd1_pdl1"]],
        "cd137": Y[index["cd137_free"]].copy(),
        "cd137_contact": Y[index["cd137_syn"]].copy(),
        "pd1": Y[index["pd1_free"]] + Y[index["pd1_pdl1"]],
    }
    for arms in DRUG_ARMS:
        d = arms.drug
        t[d] = Y[index[f"{d}_tumour"]].copy()
        for a, b in off_contact_states(arms):
            C = Y[index[complex_name(d, a, b)]]
            t["pdl1"], t["cd137"], t[d] = t["pdl1"] + a * C, t["cd137"] + b * C, t[d] + C
        for a, b in contact_states(arms):
            C = Y[index[contact_name(d, a, b)]]
            t["pdl1_contact"], t["cd137_contact"], t[d] = (
                t["pdl1_contact"] + a * C,
                t["cd137_contact"] + b * C,
                t[d] + C,
            )
    return t


MIX = {"bsab": 20.0, "apdl1": 5.0, "a41bb": 1.0}


@pytest.mark.parametrize("arm", ["bsab_2x2", "bsab_1x1"])
def test_closed_binding_subsystem_conserves_every_receptor_pool_and_drug(binding_model, arm):
    _, index, Y, _ = _closed_run(binding_model, arm, MIX)
    totals = _totals(index, Y)
    assert len(totals) == 8
    for name, total in totals.items():
        assert np.max(np.abs(total / total[0] - 1)) < 1e-8, name
    # and binding did happen, bridges included (the check is not about states that never moved)
    assert Y[index["bsab_tumour"], -1] < 0.5 * MIX["bsab"]
    bridged = sum(b * Y[index[contact_name("bsab", a, b)], -1] for a, b in contact_states(DRUG_ARMS[0]) if a and b)
    assert bridged > 0.5 * totals["cd137_contact"][0]


@pytest.mark.parametrize("arm", ["bsab_2x2", "bsab_1x1"])
def test_ode_binding_relaxes_to_the_direct_contact_zone_equilibrium(binding_model, arm):
    params, index, Y, phi = _closed_run(binding_model, arm, MIX)
    t = {k: v[0] for k, v in _totals(index, Y).items()}
    eq = equilibrium(
        [(drug_binding(params, d), t[d]) for d in DRUGS],
        t["pdl1"],
        t["cd137"],
        t["pdl1_contact"],
        t["cd137_contact"],
        pd1_nM=t["pd1"],
        contact_volume_fraction=phi,
        kd_pd1_nM=float(params["kd_pd1_pdl1"]),
        chi_pd1=float(params["chi_pd1"]),
    )
    compared = 0
    for name in eq.data_vars:
        if name not in index:
            continue
        want, got = float(eq[name]), Y[index[name], -1]
        # relative 1e-6, plus an absolute allowance at the ODE's atol for states of ~1e-15 nM
        assert abs(got - want) <= 1e-6 * want + 1e-15, (name, got, want)
        compared += want > 1e-12  # states the format cannot form (bsab_LL for 1:1) must stay at zero
    assert compared >= 14
    for name in ("pdl1", "pdl1_contact", "cd137", "cd137_contact"):
        assert abs(float(eq[f"residual_{name}"])) < 1e-10
    # at t = 0 the ODE state was far from it
    assert abs(Y[index["bsab_tumour"], 0] / float(eq["bsab_free"]) - 1) > 0.5


def test_equilibrium_reduces_to_the_closed_form_of_one_monovalent_arm():
    """One PD-L1 arm, no 4-1BB: [C] = D L / KD with D + C = D_tot, L + C = L_tot (a quadratic)."""
    drug = drug_binding(load_parameters().with_values({"valency_pdl1_bsab": 1.0, "valency_cd137_bsab": 1.0}), "bsab")
    d_tot, l_tot, kd = 3.0, 2.0, drug.kd_pdl1_nM
    s = d_tot + l_tot + kd
    c = (s - np.sqrt(s * s - 4 * d_tot * l_tot)) / 2
    eq = equilibrium([(drug, d_tot)], l_tot, 0.0)
    assert float(eq["bsab_L"]) == pytest.approx(c, rel=1e-12)


# ----- detailed balance from the model's symbolic rate terms ---------------------------------
_EDGE = re.compile(r"^(PD-L1|4-1BB) arm binds \((\d),(\d)\)->\((\d),(\d)\) (off contact|in contacts)$")


def _binding_edges(model, params, drug, zone, substitute=None):
    """{((a,b),(a',b')): K} with K = k_forward/k_backward (1/nM) from each reaction's rate term."""
    values = {sympy.Symbol(k, real=True): v for k, v in _values(params).items()}
    values.update({sympy.Symbol(c.name, real=True): c.value for c in model.conversions})
    phi_expr = model.expand(sympy.Symbol("contact_volume_fraction", real=True))
    values[sympy.Symbol("contact_volume_fraction", real=True)] = float(phi_expr.subs(values))
    name = complex_name if zone == "off contact" else contact_name
    edges = {}
    for t in model.terms:
        m = _EDGE.match(t.label)
        if t.mechanism != "binding" or not m or m[6] != zone or not t.species.startswith(f"{drug}_"):
            continue
        src, dst = (int(m[2]), int(m[3])), (int(m[4]), int(m[5]))
        if t.species != name(drug, *dst):
            continue  # the same reaction's terms on the reactants
        expr = t.expr if substitute is None else substitute(src, dst, t.expr)
        reactant = sympy.Symbol(f"{drug}_tumour" if src == (0, 0) else name(drug, *src), real=True)
        suffix = "free" if zone == "off contact" else "syn"
        receptor = sympy.Symbol(f"pdl1_{suffix}" if m[1] == "PD-L1" else f"cd137_{suffix}", real=True)
        product = sympy.Symbol(t.species, real=True)
        k_forward = sympy.diff(expr, reactant, receptor)
        k_backward = -sympy.diff(expr, product)
        edges[(src, dst)] = float(k_forward.subs(values)) / float(k_backward.subs(values))
    return edges, values[sympy.Symbol("contact_volume_fraction", real=True)] + float(params["contact_floor"])


def _cycle_mismatch(edges):
    """Largest |log| of (product of K around a unit square of the (a,b) grid); 0 when balanced."""
    worst, squares = 0.0, 0
    for a, b in {s for s, _ in edges}:
        path1 = [((a, b), (a + 1, b)), ((a + 1, b), (a + 1, b + 1))]
        path2 = [((a, b), (a, b + 1)), ((a, b + 1), (a + 1, b + 1))]
        if all(e in edges for e in path1 + path2):
            ratio = edges[path1[0]] * edges[path1[1]] / (edges[path2[0]] * edges[path2[1]])
            worst, squares = max(worst, abs(np.log(ratio))), squares + 1
    return worst, squares


def _distinct_chis(arm):
    """Avidity factors all different, so a wrong factor on one path cannot hide."""
    params, _ = scenario(arm, "hot_tnbc")
    return params.with_values({"chi_cis_pdl1": 300.0, "chi_cis_cd137": 30.0})


def _live(edges, params):
    n_l, n_b = float(params["valency_pdl1_bsab"]), float(params["valency_cd137_bsab"])
    return {(s, d): k for (s, d), k in edges.items() if max(s[0], d[0]) <= n_l and max(s[1], d[1]) <= n_b}


@pytest.mark.parametrize("arm, n_squares", [("bsab_2x2", 4), ("bsab_1x1", 1)])
def test_detailed_balance_around_every_contact_zone_cycle(binding_model, arm, n_squares):
    model = binding_model
    params = _distinct_chis(arm)
    edges, phi = _binding_edges(model, params, "bsab", "in contacts")
    live = _live(edges, params)  # 1:1: a <= 1 and b <= 1; beyond them states stay empty
    assert all(k > 0 for k in live.values())
    worst, squares = _cycle_mismatch(live)
    assert squares == n_squares and worst < 1e-12
    # the product of constants along any path from free drug is moa.binding_equilibrium's contact weight
    drug = drug_binding(params, "bsab")
    potential = {(0, 0): 1.0}
    for (src, dst), k in sorted(live.items(), key=lambda e: sum(e[0][0])):
        potential.setdefault(dst, potential[src] * k)
        assert potential[dst] == pytest.approx(potential[src] * k, rel=1e-12)
    for state, value in potential.items():
        if state != (0, 0):
            assert value == pytest.approx(drug.weight_contact(*state, phi), rel=1e-12), state
    # off contact: only chains (no bridges), each with moa.binding_equilibrium's off-contact weight
    off, _ = _binding_edges(model, params, "bsab", "off contact")
    off = _live(off, params)
    assert all(a * b == 0 for (_, (a, b)) in off)
    for (src, dst), k in off.items():
        if src == (0, 0):
            assert k == pytest.approx(drug.weight_off(*dst), rel=1e-12)


def test_detailed_balance_check_catches_a_path_dependent_bridge_factor(binding_model):
    model = binding_model
    params = _distinct_chis("bsab_2x2")
    cd137_syn = sympy.Symbol("cd137_syn", real=True)

    def broken(src, dst, expr):  # bridging from (1,0) twice as strong as along the other path
        return expr.subs(cd137_syn, 2 * cd137_syn) if (src, dst) == ((1, 0), (1, 1)) else expr

    edges, _ = _binding_edges(model, params, "bsab", "in contacts", substitute=broken)
    worst, squares = _cycle_mismatch(edges)
    assert squares == 4 and worst > 0.5


# ----- the ternary complex -------------------------------------------------------------------
@pytest.fixture(scope="module")
def bells():
    return {arm: bell_metrics(scenario(arm, "hot_tnbc")[0]) for arm in ("bsab_2x2", "bsab_1x1")}


@pytest.mark.parametrize("arm", ["bsab_2x2", "bsab_1x1"])
def test_ternary_complex_is_bell_shaped_in_drug_concentration(bells, arm):
    m = bells[arm]
    y, k = m["ternary_nM"], m["peak_index"]
    assert 0 < k < len(y) - 1
    assert y[0] < 0.01 * y[k] and y[-1] < 0.5 * y[k]
    assert np.all(np.diff(y[: k + 1]) >= -1e-9 * y[k]) and np.all(np.diff(y[k:]) <= 1e-9 * y[k])


def test_ternary_in_the_ode_model_rises_then_falls_with_dose(model):
    """The same bell in the ODE model: bridges in the tumour at day 7 over single doses."""
    doses_mg_per_kg = [0.0001, 0.3, 30.0, 30000.0]  # beyond the clinical range on purpose: the hook
    params, _ = scenario("bsab_1x1", "hot_tnbc", duration_days=7)
    params = params.with_values({"kint_pdl1_complex": 0.0})  # keep receptors from being cleared by the drug
    ternary = [
        float(moa.simulate(model, params, moa.every("bsab", d, "mg/kg", 7.0, 7.0), times=[0, 7]).ternary_bsab[-1])
        for d in doses_mg_per_kg
    ]
    k = int(np.argmax(ternary))
    assert 0 < k < len(ternary) - 1, ternary
    assert ternary[-1] < 0.8 * ternary[k] and ternary[0] < 0.1 * ternary[k], ternary


# ----- conditional agonism: a PD-L1 density threshold emerges ----------------------------------
def _format(fmt):
    return load_parameters().with_values(load_formats()[fmt].values)


@pytest.mark.parametrize("fmt", ["bsab_2x2", "bsab_1x1"])
def test_bispecific_signal_needs_pdl1_density_the_agonist_does_not(fmt):
    p = _format(fmt)
    conc = np.array([1.0, 10.0, 100.0])  # nM, around the peak of the bell for dense anchors
    pdl1 = np.array([[1e3], [1e5]])
    cells = 1e6
    bs = in_vitro(
        drug_binding(p, "bsab"),
        conc,
        pdl1,
        cells,
        float(p["cd137_per_t_cell"]),
        cells,
        contact_geometry(p),
        clustering(p),
    )["cd137_signal"].values
    assert np.all(bs[0] < 0.1 * bs[1]), bs
    assert np.all(bs[1] > 0.5)
    ag = in_vitro(
        drug_binding(p, "a41bb"),
        conc,
        pdl1,
        cells,
        float(p["cd137_per_t_cell"]),
        cells,
        contact_geometry(p),
        clustering(p),
    )["cd137_signal"].values
    np.testing.assert_allclose(ag[0], ag[1], rtol=1e-9)
    assert ag.min() > 0.5
    # without the Hill clustering (exponent 1) the contrast is weaker: the threshold is cooperativity, not bookkeeping
    flat = in_vitro(
        drug_binding(p, "bsab"),
        conc,
        pdl1,
        cells,
        float(p["cd137_per_t_cell"]),
        cells,
        contact_geometry(p),
        clustering(p.with_values({"cd137_cluster_hill": 1.0})),
    )["cd137_signal"].values
    assert np.all(flat[0] / flat[1] > bs[0] / bs[1])


def test_pdl1_threshold_lies_between_1e3_and_1e5_and_2x2_needs_less_pdl1():
    grid = np.geomspace(1e2, 1e6, 33)
    thr = {
        fmt: pdl1_threshold(_format(fmt), pdl1_per_cell=grid)["threshold_pdl1_per_cell"]
        for fmt in ("bsab_2x2", "bsab_1x1")
    }
    assert 1e3 < thr["bsab_2x2"] < thr["bsab_1x1"] < 1e5, thr


def test_cli_prints_the_threshold(capsys):
    assert cli_main(["binding", "--threshold"]) == 0
    out = capsys.readouterr().out
    rows = [r.split(",") for r in out.strip().splitlines()]
    assert rows[0][:2] == ["format", "threshold_pdl1_per_cell"]
    values = {r[0]: float(r[1]) for r in rows[1:]}
    assert set(values) == {"2x2", "1x1"} and all(1e3 < v < 1e5 for v in values.values())


# ----- in vivo: PD-L1-negative tumours, no anchor ---------------------------------------------
@pytest.fixture(scope="module")
def vivo_runs(model):
    out = {}
    for arm in ("bsab_2x2", "bsab_1x1", "a41bb"):
        for setting in ("hot_tnbc", "pdl1_negative_tnbc"):
            params, regimen = scenario(arm, setting, duration_days=42)
            out[arm, setting] = (params, moa.simulate(model, params, regimen, duration_days=42))
        params, regimen = scenario(arm, "hot_tnbc", duration_days=42)
        params = params.with_values({"pdl1_per_tumour_cell": 0.0, "pdl1_per_myeloid_cell": 0.0})
        out[arm, "no_pdl1"] = (params, moa.simulate(model, params, regimen, duration_days=42))
    return out


@pytest.mark.parametrize("arm", ["bsab_2x2", "bsab_1x1"])
def test_pdl1_negative_tumour_gets_much_less_4_1bb_signal_from_the_bispecific(vivo_runs, arm):
    cycle2 = slice(21, 42)
    hot = float(vivo_runs[arm, "hot_tnbc"][1].cd137_signal.sel(time=cycle2).mean())
    neg = float(vivo_runs[arm, "pdl1_negative_tnbc"][1].cd137_signal.sel(time=cycle2).mean())
    assert hot > 0.5 and neg < 0.25 * hot, (hot, neg)


@pytest.mark.parametrize("arm", ["bsab_2x2", "bsab_1x1"])
def test_without_pdl1_the_bispecific_gives_little_4_1bb_signal_but_the_agonist_does(vivo_runs, arm):
    without = vivo_runs[arm, "no_pdl1"][1].cd137_signal.values
    agonist = vivo_runs["a41bb", "no_pdl1"][1].cd137_signal.values
    assert without.max() < 0.05  # only the weak unanchored signal (cis_efficacy_bsab)
    assert agonist[1:].min() > 0.3  # the free agonist does not need PD-L1


# ----- safety readout ------------------------------------------------------------------------
def _readout(model, arm, drug, dose, overrides=None):
    params, _ = scenario(arm, "hot_tnbc", duration_days=21)
    if overrides:
        params = params.with_values(overrides)
    ds = moa.simulate(model, params, moa.every(drug, dose, "mg/kg", 21.0, 21.0), times=np.linspace(0, 21, 43))
    return float(liver_toxicity_readout(liver_signal(ds, params), params)), float(
        params["liver_toxicity_auc_threshold"]
    )


def test_agonist_liver_readout_has_dynamic_range_and_the_threshold_separates_0_1_from_1_mg_per_kg(model):
    low, threshold = _readout(model, "a41bb", "a41bb", 0.1)
    high, _ = _readout(model, "a41bb", "a41bb", 1.0)
    assert high >= 3 * low, (low, high)
    assert low < threshold < high


def test_bispecific_liver_readout_rises_with_its_unanchored_signal(model):
    base, threshold = _readout(model, "bsab_2x2", "bsab", 15.0, {"cis_efficacy_bsab": 0.0})
    cis, _ = _readout(model, "bsab_2x2", "bsab", 15.0, {"cis_efficacy_bsab": 0.3})
    assert base < 0.1 * threshold and cis > 3 * base


def test_liver_signal_solves_all_times_and_samples_at_once_as_one_by_one():
    """liver_signal hands every output time of every sample to one batched equilibrium call; each
    point alone (its own call) gives the same signal to 1e-10. Plasma levels span undosed to far
    above every KD, for each drug alone and together, with a failed (NaN) sample kept NaN."""
    params = load_parameters().with_values({"cis_efficacy_bsab": 0.1})
    conc = np.concatenate([[0.0], np.geomspace(1e-4, 3e3, 9)])  # nM
    zeros = np.zeros_like(conc)
    plasma = {
        "bsab_central": np.stack([conc, zeros, conc[::-1], conc]),
        "apdl1_central": np.stack([zeros, conc, conc, zeros]),
        "a41bb_central": np.stack([zeros, conc[::-1], zeros, conc]),
    }
    plasma = {k: v.T.copy() for k, v in plasma.items()}  # (time, sample)
    for v in plasma.values():
        v[:, 3] = np.nan  # a failed sample
    ds = xr.Dataset(
        {k: (("time", "sample"), v) for k, v in plasma.items()}, coords={"time": np.arange(conc.size, dtype=float)}
    )
    batched = liver_signal(ds, params).values
    one_by_one = np.array(
        [
            [float(liver_signal(ds.isel(time=[i], sample=[j]), params).values[0, 0]) for j in range(ds.sizes["sample"])]
            for i in range(ds.sizes["time"])
        ]
    )
    assert np.all(np.isnan(batched[:, 3])) and np.all(np.isfinite(batched[:, :3]))
    assert batched[:, :3].max() > 0.1 and batched[0, 0] == 0.0  # the readout spans its range
    np.testing.assert_allclose(batched[:, :3], one_by_one[:, :3], rtol=1e-10, atol=1e-12)
