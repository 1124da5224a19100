"""The batched Rodas4 solver (numpy and compiled backends) on the full model (54 states,
nab-paclitaxel + 2:2 bispecific doses): it agrees with scipy LSODA run one trajectory at a time, and
a trajectory that fails is reported with its index and reason while the others finish and match their own runs."""

from __future__ import annotations

import numpy as np
import pytest

import moa
from moa.symbolic.named_models import full_model
from moa.interop.roadrunner import relative_difference
from moa.scenarios import scenario
from moa.solvers.rodas4 import numba_kernels as jit
from moa.solvers import RodasSolver

DAYS = 30.0  # bispecific at t = 0, 21; nab-paclitaxel at t = 0, 7, 14, 28
RTOL_AGREE = 1e-4
# Three patients: slow/fast antibody clearance, weak/strong killing, slow/fast growth.
SETS = {
    "cl_bsab": [0.12, 0.2, 0.38],
    "kill_rate_max": [0.08, 0.3, 2.5],
    "tumour_growth_rate": [0.055, 0.0095, 0.006],
    "pdl1_per_tumour_cell": [2e3, 1.2e5, 2.5e5],
}
COMPARED = (
    "tumour_cells",
    "tumour_volume",
    "bsab_central",
    "bsab_tumour",
    "nabp_central",
    "t_eff",
    "t_pex",
    "pdl1_free",
    "cd137_signal",
    "pdl1_drug_occupancy",
    "immune_kill_rate",
)


@pytest.fixture(scope="module")
def setup():
    params, regimen = scenario("nabp_bsab_2x2", "hot_tnbc", duration_days=DAYS)
    return full_model(), params, regimen


@pytest.fixture(scope="module")
def singles(setup):
    """Each parameter set alone with scipy LSODA (tight tolerances: the reference side)."""
    model, params, regimen = setup
    out = []
    for k in range(3):
        p = params.with_values({name: v[k] for name, v in SETS.items()})
        out.append(moa.simulate(model, p, regimen, duration_days=DAYS, solver="LSODA", rtol=1e-9, atol=1e-12))
    return out


BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not jit.available(), reason="numba not installed"))]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def batch(setup, backend):
    model, params, regimen = setup
    return moa.simulate(
        model,
        params.with_values({k: np.array(v) for k, v in SETS.items()}),
        regimen,
        duration_days=DAYS,
        solver=RodasSolver(backend=backend),
    )  # moa.simulate's default tolerances


def _max_rel(ds_a, ds_b, variables=COMPARED) -> dict[str, float]:
    return {
        v: relative_difference(np.asarray(ds_a[v]), np.asarray(ds_b[v]), floor_fraction=1e-3, abs_floor=1e-9)
        for v in variables
    }


def test_batched_rodas_agrees_with_single_lsoda(batch, singles):
    assert batch.attrs["solver"] in ("moa-rodas4", "moa-rodas4-numba")
    assert np.all(batch["status"].values == 0)
    for k, single in enumerate(singles):
        assert int(single["status"]) == 0
        diffs = _max_rel(batch.isel(sample=k), single)
        assert max(diffs.values()) < RTOL_AGREE, (k, diffs)
    # the sets really differ (the test is not comparing three copies of one trajectory)
    final = batch["tumour_cells"].values[:, -1]
    assert np.ptp(np.log10(np.maximum(final, 1e-30))) > 1


def test_failing_trajectory_is_reported_and_the_others_finish(setup, backend, batch, singles):
    """Sample 1 gets an absurd association rate (1e300): its Jacobian overflows, the iteration
    matrix is singular, the step is rejected until it underflows. Before the fix the dense
    fallback raised LinAlgError and took the whole batch down."""
    model, params, regimen = setup
    values = {k: np.array([v[0], v[1], v[1], v[2]]) for k, v in SETS.items()}
    values["kon_pdl1_bsab"] = np.array(
        [params["kon_pdl1_bsab"], params["kon_pdl1_bsab"], 1e300, params["kon_pdl1_bsab"]]
    )
    with np.errstate(all="ignore"):
        ds = moa.simulate(
            model,
            params.with_values(values),
            regimen,
            duration_days=DAYS,
            solver=RodasSolver(backend=backend),
            on_failure="record",
        )
    status, message = ds["status"].values, ds["message"].values
    assert status.tolist()[:2] == [0, 0] and status[3] == 0
    assert status[2] != 0
    assert "underflow" in message[2] or "non-finite" in message[2]
    assert "t=" in message[2]
    assert np.all(np.isnan(ds["tumour_cells"].values[2, 1:]))
    for k_batch, k_single in ((0, 0), (1, 1), (3, 2)):
        # independent of the failing neighbour: the same numbers as the batch without it ...
        clean = batch.isel(sample=k_single)
        np.testing.assert_allclose(ds["tumour_cells"].values[k_batch], clean["tumour_cells"].values, rtol=1e-12)
        # ... and within the agreement tolerance of the single LSODA run
        diffs = _max_rel(ds.isel(sample=k_batch), singles[k_single])
        assert max(diffs.values()) < RTOL_AGREE, (k_batch, diffs)

    with pytest.raises(moa.SimulationError, match=r"parameter set 2 of 4"), np.errstate(all="ignore"):
        moa.simulate(
            model, params.with_values(values), regimen, duration_days=DAYS, solver=RodasSolver(backend=backend)
        )


def test_non_finite_initial_rhs_is_reported(setup, backend):
    """An overflowing growth rate makes the rhs non-finite at t = 0: status 1 for that sample only."""
    model, params, regimen = setup
    p = params.with_values({"tumour_growth_rate": np.array([0.01, 1e300, 0.02] + [0.01] * 5)})
    with np.errstate(all="ignore"):
        ds = moa.simulate(
            model, p, regimen, times=[0.0, 1.0, 2.0], solver=RodasSolver(backend=backend), on_failure="record"
        )
    assert ds["status"].values.tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert "non-finite" in ds["message"].values[1] and "t=0" in ds["message"].values[1]
    assert np.all(np.isfinite(ds["tumour_cells"].values[[0, 2]]))


@pytest.mark.skipif(not jit.available(), reason="numba not installed")
def test_compiled_and_numpy_backends_agree(setup):
    """Same method, two implementations: a difference beyond the tolerances would mean a bug in one of
    them. Since the contact-zone binding (issue 13) the contact complexes sit at 1e-7..1e-4 nM, within a
    few decades of atol = 1e-9 nM, so step-size decisions (and with them the trajectories) differ between
    the two implementations' round-off at about 1e-6 (both are that close to Radau at rtol 1e-10); the
    step-for-step agreement of the two is checked on Robertson and a linear system in tests/test_jit.py."""
    model, params, regimen = setup
    p = params.with_values({k: np.array(v) for k, v in SETS.items()})
    a = moa.simulate(model, p, regimen, duration_days=DAYS, solver=RodasSolver(backend="numba"))
    b = moa.simulate(model, p, regimen, duration_days=DAYS, solver=RodasSolver(backend="numpy"))
    assert a.attrs["solver"] == "moa-rodas4-numba" and b.attrs["solver"] == "moa-rodas4"
    diffs = _max_rel(a, b)
    assert max(diffs.values()) < 1e-5, diffs


def test_solver_steps_are_counted_per_sample_and_repeat(setup, backend, batch, singles):
    """Accepted and rejected Rodas4 steps per sample, summed over the dosing segments, reach the Dataset;
    an identical run counts the same steps; scipy (which counts rhs evaluations, not steps) gives NaN."""
    model, params, regimen = setup
    for name in ("n_steps", "n_rejected"):
        assert batch[name].dims == ("sample",) and batch[name].attrs["units"] == "1"
    steps, rejected = batch["n_steps"].values, batch["n_rejected"].values
    assert np.all(steps > 0) and np.all(rejected >= 0) and rejected.sum() > 0
    assert np.all(steps >= len(regimen.doses)) and np.all(steps == np.round(steps))  # >= 1 step per segment
    assert len(set(steps.tolist())) > 1  # the patients took their own step sequences
    again = moa.simulate(
        model,
        params.with_values({k: np.array(v) for k, v in SETS.items()}),
        regimen,
        duration_days=DAYS,
        solver=RodasSolver(backend=backend),
    )
    np.testing.assert_array_equal(again["n_steps"].values, steps)
    np.testing.assert_array_equal(again["n_rejected"].values, rejected)
    assert np.isnan(float(singles[0]["n_steps"])) and np.isnan(float(singles[0]["n_rejected"]))
    kept = moa.simulate(
        model, params, regimen, times=[0.0, 1.0], keep=["tumour_volume"], solver=RodasSolver(backend=backend)
    )
    assert list(kept.data_vars) == ["tumour_volume", "status", "message"]  # counted, returned when kept
