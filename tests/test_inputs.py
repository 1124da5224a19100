"""Bad inputs raise ValueError naming the field and the value (issue 3, point 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import moa
from moa.symbolic.named_models import pk_model
from moa.symbolic import Mechanism, Model
from moa.errors import BoundsWarning
from moa.parameters import ParameterSet, ParameterSpec

PK = pk_model("bsab")
DEFAULTS = moa.load_parameters()
Q3W = moa.every("bsab", 3.0, "mg/kg", 21.0, 42.0)


def decay_model() -> Model:
    m = Mechanism("decay")
    x = m.species("x", "nM", "decaying species", initial=m.parameter("x0", "nM", "initial amount"))
    m.term(x, -m.parameter("k", "1/day", "decay rate") * x, "first-order decay")
    return Model([m], name="decay")


DECAY = decay_model()
DECAY_PARAMETERS = ParameterSet(
    {"x0": ParameterSpec("x0", 5.0, "nM", 0.0, 10.0, "test"), "k": ParameterSpec("k", 0.3, "1/day", 0.0, 1.0, "test")}
)


# ----- parameters -------------------------------------------------------------------------------
def test_unknown_parameter_name_is_refused_with_suggestions():
    with pytest.raises(ValueError, match=r"'cl_bsb'.*unknown.*cl_bsab"):
        moa.simulate(PK, DEFAULTS, Q3W, duration_days=42.0, overrides={"cl_bsb": 0.2})


@pytest.mark.parametrize(
    "value, says", [(-1.0, ">= 0"), (float("nan"), "finite"), (float("inf"), "finite"), ([0.1, -0.2], ">= 0")]
)
def test_negative_or_non_finite_parameter_value_is_refused(value, says):
    with pytest.raises(ValueError) as err:
        moa.simulate(PK, DEFAULTS, Q3W, duration_days=42.0, overrides={"cl_bsab": value})
    assert "cl_bsab" in str(err.value) and says in str(err.value)


@pytest.mark.parametrize(
    "field, kwargs, says",
    [
        ("unit", dict(unit="furlongs_per_fortnight_squared"), "furlongs_per_fortnight_squared"),
        ("value", dict(value=float("nan")), "value=nan"),
        ("source", dict(source=" "), "source"),
        ("bounds", dict(value=20.0), "value=20.0"),
    ],
)
def test_bad_parameter_spec_is_refused(field, kwargs, says):
    fields = dict(name="kd_test", value=1.0, unit="nM", lower=0.0, upper=10.0, source="test") | kwargs
    with pytest.raises(ValueError) as err:
        ParameterSpec(**fields)
    assert "kd_test" in str(err.value) and says in str(err.value)


def test_unknown_species_unit_is_refused_naming_the_species():
    m = Mechanism("bad")
    with pytest.raises(ValueError, match=r"species 'tumour_volume'.*'mL3'"):
        m.species("tumour_volume", "mL3", "tumour volume")


def test_overlay_outside_bounds_warns_and_strict_refuses():
    spec = DEFAULTS.specs["cl_bsab"]
    with pytest.warns(BoundsWarning, match=r"overlay 'fast clearance'.*cl_bsab.*bounds"):
        fast = DEFAULTS.with_overlay("fast clearance", {"cl_bsab": spec.upper * 2})
    assert fast["cl_bsab"] == spec.upper * 2
    with pytest.raises(ValueError, match=r"overlay 'fast clearance'.*cl_bsab.*bounds"):
        DEFAULTS.with_overlay("fast clearance", {"cl_bsab": spec.upper * 2}, strict=True)


# ----- regimen ----------------------------------------------------------------------------------
def test_empty_regimen_is_refused():
    with pytest.raises(ValueError, match=r"regimen 'x' has no doses.*regimen=None"):
        moa.simulate(PK, DEFAULTS, moa.Regimen("x"), duration_days=10.0)


@pytest.mark.parametrize(
    "kwargs, says",
    [
        (dict(unit="mg/L"), "unit='mg/L'"),
        (dict(unit="mg/kg/day"), "allowed units"),
        (dict(route="oral"), "route='oral'"),
        (dict(route="infusion"), "duration_days=0.0"),
        (dict(amount=-3.0), "amount=-3.0"),
        (dict(amount=float("inf")), "amount=inf"),
        (dict(time_days=-1.0), "time_days=-1.0"),
        (dict(drug=""), "drug=''"),
    ],
)
def test_bad_dose_is_refused(kwargs, says):
    fields = dict(drug="bsab", amount=3.0, unit="mg/kg", time_days=0.0) | kwargs
    with pytest.raises(ValueError) as err:
        moa.Dose(**fields)
    assert says in str(err.value)


def test_dose_of_a_drug_the_model_cannot_take_is_refused():
    with pytest.raises(ValueError, match=r"\['apdl1'\].*allowed drugs: \['bsab'\]"):
        moa.simulate(PK, DEFAULTS, moa.every("apdl1", 3.0, "mg/kg", 21.0, 42.0), duration_days=42.0)


def test_per_kg_dose_without_body_weight_is_refused():
    with pytest.raises(ValueError, match="body_weight"):
        moa.Dose("drug", 1.0, "mg/kg", 0.0).amount_mg({})


@pytest.mark.parametrize(
    "call, says",
    [
        (lambda: moa.every("bsab", 1.0, "mg", 0.0, 10.0), "interval_days=0.0"),
        (lambda: moa.every("bsab", 1.0, "mg", 7.0, 0.0), "until_days=0.0"),
        (lambda: moa.cycles("bsab", 1.0, "mg", (1, 30), 28.0, 2), "days=[1, 30]"),
        (lambda: moa.cycles("bsab", 1.0, "mg", (1,), 28.0, 0), "n_cycles=0"),
    ],
)
def test_bad_schedule_is_refused(call, says):
    with pytest.raises(ValueError) as err:
        call()
    assert says in str(err.value)


# ----- time grid and solver -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "times, says",
    [
        ([0.0, 2.0, 1.0], "index 2 (2.0 -> 1.0)"),
        ([0.0, 1.0, 1.0], "repeats"),
        ([-1.0, 0.0, 1.0], "times[0]=-1.0"),
        ([0.0, float("nan")], "non-finite"),
        ([], "non-empty"),
    ],
)
def test_bad_time_grid_is_refused(times, says):
    with pytest.raises(ValueError) as err:
        moa.simulate(DECAY, DECAY_PARAMETERS, times=times)
    assert says in str(err.value)


@pytest.mark.parametrize(
    "kwargs, says",
    [
        (dict(rtol=0.5), "rtol=0.5"),
        (dict(rtol=1e-15), "rtol=1e-15"),
        (dict(rtol=0.0), "rtol=0.0"),
        (dict(atol=-1e-9), "atol=-1e-09"),
        (dict(solver="Euler"), "solver='Euler'"),
        (dict(on_failure="ignore"), "on_failure='ignore'"),
        (dict(pre_equilibrate_days=-1.0), "pre_equilibrate_days=-1.0"),
    ],
)
def test_bad_solver_settings_are_refused(kwargs, says):
    with pytest.raises(ValueError) as err:
        moa.simulate(DECAY, DECAY_PARAMETERS, duration_days=1.0, **kwargs)
    assert says in str(err.value)


def test_missing_duration_and_times_is_refused():
    with pytest.raises(ValueError, match="duration_days or times"):
        moa.simulate(DECAY, DECAY_PARAMETERS)


# ----- properties ---------------------------------------------------------------------------------
increasing_grids = st.tuples(
    st.floats(min_value=0.0, max_value=5.0),
    st.lists(st.floats(min_value=1e-3, max_value=10.0), min_size=0, max_size=15),
).map(lambda start_steps: np.cumsum([start_steps[0], *start_steps[1]]))


@settings(max_examples=30, deadline=None)
@given(increasing_grids)
def test_any_strictly_increasing_grid_is_accepted_and_kept(times):
    ds = moa.simulate(DECAY, DECAY_PARAMETERS, times=times, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(ds["time"].values, times)
    np.testing.assert_allclose(ds["x"].values, 5.0 * np.exp(-0.3 * times), rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("times", [[5e-324], [0.0, 1e-200, 2.0], [0.0, 1.0, 1.0 + 1e-13, 3.0]])
@pytest.mark.parametrize("backend", ["LSODA", "numpy", "numba"])
def test_vanishingly_short_segments_on_every_backend(times, backend):
    """Found by hypothesis (times=[5e-324]): on a denormal span Rodas4's 1/(gamma h) overflows, and
    LSODA never returned on ~1e-200 day. Every backend takes one Euler step on spans < 1e-12 day."""
    from moa.solvers.rodas4 import numba_kernels as jit
    from moa.solvers import RodasSolver

    if backend == "numba" and not jit.available():
        pytest.skip("numba not installed")
    solver = "LSODA" if backend == "LSODA" else RodasSolver(backend=backend)
    times = np.array(times)
    ds = moa.simulate(DECAY, DECAY_PARAMETERS, times=times, rtol=1e-8, atol=1e-12, solver=solver)
    assert int(ds["status"]) == 0
    np.testing.assert_allclose(ds["x"].values, 5.0 * np.exp(-0.3 * times), rtol=1e-6, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(increasing_grids.filter(lambda t: len(t) >= 2), st.data())
def test_any_grid_that_steps_back_or_repeats_is_refused(times, data):
    i = data.draw(st.integers(min_value=1, max_value=len(times) - 1))
    bad = times.copy()
    bad[i] = data.draw(st.floats(min_value=0.0, max_value=float(times[i - 1])))
    with pytest.raises(ValueError, match="times"):
        moa.simulate(DECAY, DECAY_PARAMETERS, times=bad)


@given(st.floats(max_value=0.0, exclude_max=True) | st.just(-math.inf) | st.just(math.nan))
def test_any_negative_or_nan_dose_amount_is_refused(amount):
    with pytest.raises(ValueError, match="amount="):
        moa.Dose("bsab", amount, "mg", 0.0)


@given(st.floats(max_value=0.0, exclude_max=True, allow_infinity=False))
def test_any_negative_parameter_value_is_refused(value):
    with pytest.raises(ValueError, match="'k'.*>= 0"):
        DECAY_PARAMETERS.with_values({"k": value})
