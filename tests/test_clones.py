"""Issue 12: tumour clones, chemotherapy kinetics, extinction below one cell, quasi-steady start,
one "best change".

The full-model runs use the compiled/batched Rodas4 (``solver="rodas"``) and start at the
quasi-steady state, as the experiments do; each is shared by the tests that read it.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import sympy
import xarray as xr

from moa.codegen import compile_model
import moa
from moa.analysis import best_percent_change, load_recist, recist
from moa.symbolic.named_models import full_model
from moa.symbolic import Mechanism, Model
from moa.errors import UnitError
from moa.mechanisms.tumour import CLONES
from moa.parameters import ParameterSet, ParameterSpec
from moa.scenarios import scenario
from moa.solvers import RodasSolver
from moa.solvers.scipy_backend import ScipySolver

TWO_YEARS = 730.0


@pytest.fixture(scope="module")
def model():
    return full_model()


def _run(model, arm, setting="hot_tnbc", days=TWO_YEARS, overrides=None):
    params, regimen = scenario(arm, setting, days)
    if overrides:
        params = params.with_values(overrides)
    return moa.simulate(model, params, regimen, duration_days=days, solver="rodas", start="quasi_steady")


@pytest.fixture(scope="module")
def nabp_runs(model):
    """nab-paclitaxel alone, hot TNBC: resistant clone on (default) and switched off."""
    on = _run(model, "nabp")
    off = _run(model, "nabp", overrides={"initial_resistant_fraction": 0.0, "resistance_transition_rate": 0.0})
    return on, off


# ----- nab-paclitaxel alone: partial response or stable disease, then relapse ------------------
def test_nabp_alone_is_not_a_complete_response_and_progresses_within_two_years(nabp_runs):
    rec = recist(nabp_runs[0]["tumour_diameter"])
    assert rec["best_response"].item() in ("PR", "SD")
    assert rec["progressed"].item() and rec["progression_day"].item() <= TWO_YEARS


def test_nabp_shrinkage_decelerates_over_scans(nabp_runs):
    """log-shrinkage rate over the first two scans is faster than over the next two."""
    d = nabp_runs[0]["tumour_diameter"]
    scans = recist(d)["time"].values
    d0, d2, d4 = (float(d.sel(time=scans[k])) for k in (0, 2, 4))
    early = np.log(d0 / d2) / (scans[2] - scans[0])
    late = np.log(d2 / d4) / (scans[4] - scans[2])
    assert early > 0 and early > late


def test_progression_comes_from_the_resistant_clone_and_is_later_without_it(nabp_runs):
    on, off = nabp_runs
    rec_on, rec_off = recist(on["tumour_diameter"]), recist(off["tumour_diameter"])
    day = rec_on["progression_day"].item()
    assert float(on["resistant_fraction"].sel(time=day)) > 0.5
    assert not rec_off["progressed"].item() or rec_off["progression_day"].item() > day


def test_bispecific_selects_the_escape_clone(model):
    ds = _run(model, "bsab_2x2", days=168.0)
    frac = ds["escape_fraction"]
    assert float(frac.sel(time=168.0)) > 1.5 * float(frac.sel(time=0.0))
    untreated = _run(model, "untreated", days=168.0)["escape_fraction"]
    assert float(frac.sel(time=168.0)) > float(untreated.sel(time=168.0))


# ----- clone bookkeeping ------------------------------------------------------------------------
def test_clones_sum_to_the_tumour_and_fractions_are_shares(nabp_runs):
    ds = nabp_runs[0]
    total = sum(ds[c] for c in CLONES)
    np.testing.assert_allclose(ds["tumour_cells"], total, rtol=1e-12)
    for frac, clone in (("resistant_fraction", "tumour_cells_resistant"), ("escape_fraction", "tumour_cells_escape")):
        assert float(ds[frac].min()) >= 0 and float(ds[frac].max()) <= 1
        np.testing.assert_allclose(ds[frac], ds[clone] / (total + 1.0), rtol=1e-10)


def test_acquired_resistance_conserves_tumour_cells(model):
    """With growth and killing off, the sensitive -> resistant transition moves cells, creates none."""
    params, _ = scenario("untreated", "hot_tnbc")
    params = params.with_values({"tumour_growth_rate": 0.0, "kill_rate_max": 0.0, "resistance_transition_rate": 1e-4})
    c = compile_model(model)
    P = np.vstack([params.matrix(model.parameter_names), np.zeros((len(model.inputs), 1))])
    Y = c.initial_T(P)
    dY = c.rhs_T(0.0, Y, P)[:, 0]
    rows = [c.species_names.index(s) for s in CLONES]
    assert dY[rows[1]] == pytest.approx(1e-4 * Y[rows[0], 0], rel=1e-12)
    assert abs(sum(dY[r] for r in rows)) <= 1e-12 * Y[rows[0], 0]


def _replace_term(model, mechanism, label, change):
    out = []
    for mech in model.mechanisms:
        if mech.name == mechanism:
            mech = copy.copy(mech)
            mech.terms = [dataclasses.replace(t, expr=change(t.expr)) if t.label == label else t for t in mech.terms]
        out.append(mech)
    return out


@pytest.mark.parametrize(
    "mechanism,label",
    [
        ("tumour", "Gompertz growth"),
        ("tumour", "acquired taxane resistance"),
        ("nab_paclitaxel", "nab-paclitaxel killing"),
    ],
)
def test_unit_check_covers_the_clone_terms(model, mechanism, label):
    rate = sympy.Symbol("tumour_growth_rate", real=True)
    with pytest.raises(UnitError, match=label):
        Model(_replace_term(model, mechanism, label, lambda e: e / rate))


# ----- extinction below one cell ----------------------------------------------------------------
def _toy():
    """A clone killed by a decaying drug, then growing: it passes 1e-3 cells on the way down."""
    m = Mechanism("toy")
    one = m.parameter("one_cell", "cell", "extinction threshold")
    n0 = m.parameter("clone_0", "cell", "initial clone")
    r = m.parameter("growth", "1/day", "growth rate")
    k = m.parameter("kill", "1/(day*nM)", "kill per drug")
    kel = m.parameter("kel", "1/day", "drug elimination")
    v = m.parameter("dose_per_mg", "nM/mg", "drug concentration per mg")
    x = m.species("clone", "cell", "a clone", initial=n0, extinct_below=one)
    d = m.species("drug", "nM", "a drug")
    m.term(x, (r - k * d) * x, "growth and kill")
    m.term(d, -kel * d, "elimination")
    m.dose_route("drug", d, v)
    model = Model([m], name="toy_extinction")
    values = {
        "one_cell": (1.0, "cell"),
        "clone_0": (1e3, "cell"),
        "growth": (0.3, "1/day"),
        "kill": (1.0, "1/(day*nM)"),
        "kel": (0.5, "1/day"),
        "dose_per_mg": (1.0, "nM/mg"),
    }
    params = ParameterSet({n: ParameterSpec(n, val, u, 0.0, 1e6, "test") for n, (val, u) in values.items()})
    return model, params, moa.Regimen("kill", (moa.Dose("drug", 10.0, "mg", 0.0),))


@pytest.mark.parametrize(
    "solver",
    [ScipySolver("LSODA"), RodasSolver(backend="numpy"), RodasSolver(backend="auto")],
    ids=["scipy", "rodas-numpy", "rodas-auto"],
)
def test_a_clone_below_one_cell_never_regrows(solver):
    model, params, regimen = _toy()
    ds = moa.simulate(model, params, regimen, duration_days=60.0, solver=solver)
    x = ds["clone"].values
    assert x.min() == 0.0 and x[-1] == 0.0  # gone, and stays gone once the drug has cleared
    day = float(ds["extinct_day_clone"])
    assert 0 < day < 20 and np.all(x[ds.time.values > day + 1] == 0)
    # the same trajectory without extinction (threshold 0) dips to ~1e-3 cells and regrows
    free = moa.simulate(model, params.with_values({"one_cell": 0.0}), regimen, duration_days=60.0, solver=solver)
    assert free["clone"].min() < 1e-2 and float(free["clone"][-1]) > 1.0
    assert np.isnan(float(free["extinct_day_clone"]))


def test_extinction_is_per_trajectory_in_a_batch():
    model, params, regimen = _toy()
    batch = params.with_values({"kill": np.array([1.0, 0.01, 1.0])})
    ds = moa.simulate(model, batch, regimen, duration_days=60.0, solver=RodasSolver(backend="numpy"))
    day = ds["extinct_day_clone"].values
    assert np.isfinite(day[[0, 2]]).all() and np.isnan(day[1])
    assert ds["clone"].values[1, -1] > 1e3 and np.all(ds["clone"].values[[0, 2], -1] == 0)


# ----- quasi-steady start -----------------------------------------------------------------------
T_CELL_STATES = ("t_eff", "t_pex", "t_ex", "t_primed")


@pytest.fixture(scope="module")
def untreated_28(model):
    out = {}
    for setting in ("hot_tnbc", "cold", "pdl1_negative_tnbc"):
        params, _ = scenario("untreated", setting, 28.0)
        out[setting] = (
            moa.simulate(model, params, None, duration_days=28.0, solver="rodas", start="quasi_steady"),
            moa.simulate(model, params, None, duration_days=28.0, solver="rodas"),
        )
    return out


def _drift(x: xr.DataArray) -> float:
    v = np.asarray(x, dtype=float)
    return float(np.max(np.abs(v / v[0] - 1)))


def test_untreated_patients_start_in_balance(untreated_28):
    """The quasi-steady start removes the initial transient (from the parameter-derived state effectors
    fall by more than 5% in weeks, see below). What is left over 28 days follows the tumour, which grows
    21-29% untreated (volume doubling about 100 days, Ryu 2014): CD8 states drift < 5% in hot and
    PD-L1-negative TNBC; in every setting every T-cell state (CD8, primed, Tregs, which are recruited
    in proportion to the tumour volume) drifts less than the tumour itself. In the cold setting the
    tumour grows fastest (+29%) and its effectors follow by 5.5% (the literal 5% of issue 12 is not met
    there; see the closing note)."""
    for setting, (ds, _) in untreated_28.items():
        tumour = _drift(ds["tumour_cells"])
        for v in ("t_eff", "t_pex", "t_ex", "t_primed", "t_reg"):
            assert _drift(ds[v]) < tumour, (setting, v, _drift(ds[v]), tumour)
        if setting != "cold":
            for v in ("t_eff", "t_pex", "t_ex", "t_primed"):
                assert _drift(ds[v]) < 0.05, (setting, v, _drift(ds[v]))
        assert ds.attrs["start"].startswith("quasi_steady") and "converged 1/1" in ds.attrs["start"]


def _tumour_clamped(model) -> Model:
    """The model with every tumour clone held at its initial size (all clone terms removed)."""
    mechs = []
    for mech in model.mechanisms:
        mech = copy.copy(mech)
        mech.terms = [t for t in mech.terms if t.species not in CLONES]
        mechs.append(mech)
    return Model(mechs)


@pytest.fixture(scope="module")
def clamped_28(model):
    clamped, out = _tumour_clamped(model), {}
    numpy_rodas = RodasSolver(backend="numpy")  # a variant model: no numba compilation for it
    for setting in ("hot_tnbc", "cold", "pdl1_negative_tnbc"):
        params, _ = scenario("untreated", setting, 28.0)
        out[setting] = moa.simulate(clamped, params, None, duration_days=28.0, solver=numpy_rodas, start="quasi_steady")
    params, _ = scenario("untreated", "hot_tnbc", 28.0)
    out["hot_tnbc, parameter start"] = moa.simulate(clamped, params, None, duration_days=28.0, solver=numpy_rodas)
    return out


def test_start_is_in_balance_when_the_tumour_is_held(clamped_28):
    """Issue 12's criterion, separated from tumour growth: with the tumour clones held at their
    initial size, every T-cell state (CD8 primed, effector, progenitor-exhausted, exhausted, and
    Tregs) of every untreated default patient drifts less than 5% over 28 days from the
    quasi-steady start (measured: < 0.1%). What remains in the free-running model (test above) is
    the response to a tumour that grows 21-29% in those 28 days, not a start-up transient."""
    for setting in ("hot_tnbc", "cold", "pdl1_negative_tnbc"):
        ds = clamped_28[setting]
        assert _drift(ds["tumour_cells"]) == 0.0
        for v in T_CELL_STATES + ("t_reg",):
            assert _drift(ds[v]) < 0.05, (setting, v, _drift(ds[v]))


def test_parameter_start_drifts_when_the_tumour_is_held(clamped_28):
    """The check above can fail: the same clamped patient from the parameter-derived state drifts."""
    raw = clamped_28["hot_tnbc, parameter start"]
    assert _drift(raw["t_eff"]) > 0.05


def test_parameter_start_is_out_of_balance(untreated_28):
    """The check above can fail: from the parameter-derived state effectors fall by more than 5%."""
    _, raw = untreated_28["hot_tnbc"]
    assert _drift(raw["t_eff"]) > 0.05


def test_quasi_steady_start_holds_the_tumour(untreated_28, model):
    ds, raw = untreated_28["hot_tnbc"]
    for c in CLONES:
        assert float(ds[c][0]) == pytest.approx(float(raw[c][0]), rel=1e-12)


def test_unknown_start_is_refused(model):
    params, _ = scenario("untreated", "hot_tnbc", 7.0)
    with pytest.raises(ValueError, match="start='steady'.*allowed"):
        moa.simulate(model, params, None, duration_days=7.0, start="steady")


# ----- one "best change" ------------------------------------------------------------------------
def _diameters(values, step):
    t = np.arange(len(values)) * step
    return xr.DataArray(np.asarray(values, dtype=float), dims="time", coords={"time": t})


def test_best_change_is_read_at_scans_only():
    rules = load_recist()
    n = int(2 * rules.scan_interval_days) + 1
    d = np.full(n, 20.0)
    d[int(rules.scan_interval_days) // 2] = 5.0  # a dip between scans does not count
    d[int(rules.scan_interval_days)] = 16.0  # -20% at the first scan
    got = best_percent_change(_diameters(d, 1.0), rules)
    assert float(got) == pytest.approx(-20.0)
    assert float(recist(_diameters(d, 1.0), rules)["best_percent_change"]) == float(got)


def test_best_change_ignores_scans_after_progression():
    rules = load_recist()
    # scans: 20 -> 12 (PR) -> 20 (PD: +67% and +8 mm over the nadir) -> 4 (after PD: not counted)
    d = _diameters([20.0, 12.0, 20.0, 4.0], rules.scan_interval_days)
    rec = recist(d, rules)
    assert rec["progression_day"].item() == 2 * rules.scan_interval_days
    assert float(rec["best_percent_change"]) == pytest.approx(-40.0)


def test_best_change_is_undefined_before_the_first_scan():
    rules = load_recist()
    d = _diameters([20.0, 10.0, 5.0], rules.scan_interval_days / 4)  # ends before the first scan
    assert np.isnan(float(best_percent_change(d, rules)))


def test_extinction_threshold_is_unit_checked_and_parameter_only():
    from moa.errors import ModelError

    def build(threshold):
        m = Mechanism("toy")
        x = m.species("clone", "cell", "a clone", initial=1.0, extinct_below=threshold(m))
        m.term(x, -m.parameter("death", "1/day", "death") * x, "death")
        return Model([m])

    with pytest.raises(UnitError, match="extinction threshold of 'clone'"):
        build(lambda m: m.parameter("thr", "nM", "a threshold in the wrong unit"))
    with pytest.raises(ModelError, match="extinction threshold of 'clone' may use parameters only"):
        build(lambda m: sympy.Symbol("clone", real=True))
    assert compile_model(build(lambda m: m.parameter("thr", "cell", "one cell"))).extinct_names == ["clone"]


def test_quasi_steady_start_is_solved_once_per_patient(monkeypatch):
    """Simulations of the same model and parameter values with different doses share one
    quasi-steady solve (the dose-response experiments run one simulation per dose); new values, or
    a new model object, solve again, and every run gets the same start as an uncached solve."""
    import sys

    sim_module = sys.modules["moa.simulate"]
    m = Mechanism("relax")
    prod = m.parameter("production", "cell/day", "influx")
    dec = m.parameter("decay", "1/day", "loss")
    kel = m.parameter("kel", "1/day", "drug elimination")
    v = m.parameter("dose_per_mg", "nM/mg", "drug concentration per mg")
    pop0 = m.parameter("pop_0", "cell", "initial population")
    pop = m.species("pop", "cell", "a relaxing population", initial=pop0)
    d = m.species("drug", "nM", "a drug")
    m.term(pop, prod - dec * pop, "influx and loss")
    m.term(d, -kel * d, "elimination")
    m.dose_route("drug", d, v)
    values = {
        "pop_0": (1.0, "cell"),
        "production": (10.0, "cell/day"),
        "decay": (0.1, "1/day"),
        "kel": (0.5, "1/day"),
        "dose_per_mg": (1.0, "nM/mg"),
    }
    params = ParameterSet({n: ParameterSpec(n, val, u, 0.0, 1e6, "test") for n, (val, u) in values.items()})
    calls = []

    real = sim_module.quasi_steady_state
    monkeypatch.setattr(sim_module, "_QSS_CACHE", {})
    monkeypatch.setattr(
        sim_module, "quasi_steady_state", lambda model, P, **kw: (calls.append(1), real(model, P, **kw))[1]
    )
    model = Model([m], name="relax")
    runs = [
        moa.simulate(
            model,
            params,
            moa.Regimen(f"{mg} mg", (moa.Dose("drug", mg, "mg", 1.0),)),
            duration_days=5.0,
            solver=RodasSolver(backend="numpy"),
            start="quasi_steady",
        )
        for mg in (1.0, 10.0, 100.0)
    ]
    assert len(calls) == 1
    assert all(float(r["pop"][0]) == pytest.approx(100.0, rel=1e-3) for r in runs)  # production / decay, to the
    # solve's 1e-4 per day relative rate (|dy/dt| = 0.1 (100 - y) <= 1e-4 y)
    assert all(float(r["pop"][0]) == float(runs[0]["pop"][0]) for r in runs)
    moa.simulate(
        model,
        params.with_values({"decay": 0.2}),
        None,
        duration_days=5.0,
        solver=RodasSolver(backend="numpy"),
        start="quasi_steady",
    )
    assert len(calls) == 2
    moa.simulate(
        Model([m], name="relax"),
        params,
        None,
        duration_days=5.0,
        solver=RodasSolver(backend="numpy"),
        start="quasi_steady",
    )
    assert len(calls) == 3


def test_scipy_extinction_exactly_at_a_segment_end_sets_the_last_output_to_zero():
    """A crossing that lands on the segment's last time left no time to restart from (the benchmark's
    LSODA run once failed there with a shape error): the output at t1 is the state after extinction."""
    day = np.full((1, 1), np.nan)
    ys, y_end, _, failure = ScipySolver("LSODA")._solve(
        lambda t, x: np.array([-1.0]),
        lambda t, x: np.zeros((1, 1)),
        0.0,
        0.5,
        np.array([1.0]),
        np.array([0.25, 0.5]),
        1e-8,
        1e-10,
        np.array([0]),
        np.array([[0.5]]),
        day,
    )
    assert failure is None
    np.testing.assert_allclose(ys, [[0.75, 0.0]])  # y = 1 - t reaches the threshold 0.5 exactly at t1 = 0.5
    assert y_end[0] == 0.0 and day[0, 0] == 0.5
