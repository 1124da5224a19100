"""moa.parallel: a batch split over processes equals the single-process result; failures of a
chunk are recorded per sample and do not stop the other chunks."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import moa
from moa.symbolic.named_models import full_model, pk_model
from moa.report.provenance import recorded_value, records_of
from moa.parallel import _inside_main_guard, resolve_builder, simulate_parallel, split_parameters
from moa.scenarios import scenario
from moa.solvers import RodasSolver
from parallel_helpers import KillingSolver

DAYS = 14.0  # bispecific at t = 0, nab-paclitaxel at t = 0, 7, 14 (the last at the end time)


@pytest.fixture(scope="module")
def batch():
    params, regimen = scenario("nabp_bsab_2x2", "hot_tnbc", duration_days=DAYS)
    n = 16
    params = params.with_values(
        {
            "cl_bsab": np.linspace(0.12, 0.35, n),
            "kill_rate_max": np.geomspace(0.1, 2.0, n),
            "pdl1_per_tumour_cell": np.geomspace(1e3, 2e5, n),
        }
    )
    return params, regimen


@pytest.fixture(scope="module")
def single(batch):
    params, regimen = batch
    return moa.simulate(full_model(), params, regimen, duration_days=DAYS, solver="rodas")


def _assert_same(a, b):
    assert a.sizes == b.sizes
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        if v == "message":
            assert list(a[v].values) == list(b[v].values)
        else:
            np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-12, atol=0, err_msg=v)
    for c in a.coords:
        np.testing.assert_array_equal(a[c].values, b[c].values)


def test_parallel_equals_single_process_spawn(batch, single):
    params, regimen = batch
    par = simulate_parallel(
        "full_model",
        params,
        regimen,
        duration_days=DAYS,
        workers=2,
        chunks=3,
        mp_context="spawn",
        solver="rodas",
        progress=True,
    )
    _assert_same(single, par)
    assert np.all(par["status"].values == 0)
    assert par.attrs["parameter_hash"] == single.attrs["parameter_hash"]
    assert par.attrs["parallel_chunks"] == 3 and par.attrs["parallel_workers"] == 2
    records = records_of(par.attrs)  # each chunk's run record, for moa.report.results.rerun
    assert [r["label"]["samples"][0] for r in records] == [0, 5, 11] and records[-1]["label"]["samples"][1] == 16
    np.testing.assert_array_equal(
        np.concatenate([recorded_value(r["parameters"]["cl_bsab"]["value"]) for r in records]), params["cl_bsab"]
    )


def test_auto_solver_is_chosen_on_the_whole_batch(batch, monkeypatch):
    """Without numba: 16 samples -> rodas, even though each of 4 chunks (4 samples) alone would pick LSODA."""
    params, regimen = batch
    monkeypatch.setenv("MOA_NO_JIT", "1")  # forked workers inherit it
    single = moa.simulate(full_model(), params, regimen, duration_days=DAYS, solver=RodasSolver(backend="numpy"))
    par = simulate_parallel(full_model, params, regimen, duration_days=DAYS, workers=2, chunks=4, mp_context="fork")
    assert par.attrs["solver"] == "moa-rodas4"
    _assert_same(single, par)


class ExplodingSolver(RodasSolver):
    """Raises (a bug, not a recorded solver failure) whenever its batch holds cl_bsab above 0.3."""

    def integrate(self, compiled, t0, t1, Y0, P, t_out, rtol, atol):
        if np.any(P[compiled.parameter_names.index("cl_bsab")] > 0.3):
            raise RuntimeError("boom: cl_bsab > 0.3")
        return super().integrate(compiled, t0, t1, Y0, P, t_out, rtol, atol)


def test_failed_chunk_is_recorded_per_sample(batch, single):
    params, regimen = batch
    cl = np.asarray(params["cl_bsab"])
    par = simulate_parallel(
        "full_model",
        params,
        regimen,
        duration_days=DAYS,
        workers=2,
        chunks=4,
        mp_context="fork",
        solver=ExplodingSolver(),
    )
    bad_chunk = np.arange(12, 16)  # chunks of 4; only the last holds cl_bsab > 0.3
    assert np.any(cl[bad_chunk] > 0.3) and np.all(cl[:12] <= 0.3)
    status, message = par["status"].values, par["message"].values
    assert np.all(status[bad_chunk] == 4)
    for k in bad_chunk:
        assert "boom" in message[k] and "samples 12..15" in message[k]
        assert np.all(np.isnan(par["tumour_cells"].values[k]))
    np.testing.assert_allclose(par["cl_bsab"].values, cl)  # coordinates kept for the failed chunk
    ok = single.isel(sample=slice(0, 12))
    np.testing.assert_allclose(par["tumour_cells"].values[:12], ok["tumour_cells"].values, rtol=1e-12)
    assert np.all(status[:12] == 0)

    last8 = split_parameters(params, [(8, 16)])[0]  # chunks 8..11 (fine) and 12..15 (raises)
    with pytest.raises(moa.SimulationError, match="parameter set 4 of 8"):
        simulate_parallel(
            "full_model",
            last8,
            regimen,
            duration_days=DAYS,
            workers=2,
            chunks=2,
            mp_context="fork",
            solver=ExplodingSolver(),
            on_failure="raise",
        )


def test_builder_names_and_bad_inputs(batch):
    params, regimen = batch
    assert resolve_builder("full_model") is moa.symbolic.named_models.full_model
    assert resolve_builder("moa.symbolic.named_models:pk_model") is moa.symbolic.named_models.pk_model
    with pytest.raises(ValueError, match="no builder 'full_modle'"):
        resolve_builder("full_modle")
    with pytest.raises(ValueError, match="cannot import"):
        resolve_builder("no_such_module:f")
    with pytest.raises(ValueError, match="batched ParameterSet"):
        simulate_parallel("full_model", moa.load_parameters(), regimen, duration_days=DAYS)
    with pytest.raises(ValueError, match="workers"):
        simulate_parallel("full_model", params, regimen, duration_days=DAYS, workers=0)
    parts = split_parameters(params, [(0, 5), (5, 16)])
    assert [p.batch_size for p in parts] == [5, 11]
    np.testing.assert_array_equal(parts[1]["cl_bsab"], np.asarray(params["cl_bsab"])[5:])


# ----- a dying worker costs only its own chunk (issue 10, item 7) -------------------------------
PK_DAYS = 7.0


@pytest.fixture(scope="module")
def pk_batch():
    """8 bispecific PK parameter sets (2 per chunk with chunks=4) and their single-process result."""
    params = moa.load_parameters().with_values({"cl_bsab": np.linspace(0.12, 0.33, 8)})
    regimen = moa.every("bsab", 3.0, "mg/kg", 7.0, PK_DAYS)
    single = moa.simulate(pk_model("bsab"), params, regimen, duration_days=PK_DAYS, solver=RodasSolver(backend="numpy"))
    return params, regimen, single


def test_a_worker_killed_by_one_chunk_fails_only_that_chunk(pk_batch):
    params, regimen, single = pk_batch
    poisoned = float(np.asarray(params["cl_bsab"])[2])  # chunk 1 of 4: samples 2..3
    par = simulate_parallel(
        "pk_model",
        params,
        regimen,
        duration_days=PK_DAYS,
        workers=2,
        chunks=4,
        mp_context="fork",
        solver=KillingSolver(backend="numpy", poisoned_value=poisoned),
    )
    status, message = par["status"].values, par["message"].values
    assert list(np.nonzero(status)[0]) == [2, 3] and np.all(status[[2, 3]] == 4)
    for k in (2, 3):
        assert "worker process died (killed by signal SIGKILL) while simulating samples 2..3" in message[k]
        assert np.all(np.isnan(par["bsab_central"].values[k]))
    ok = [0, 1, 4, 5, 6, 7]
    for v in single.data_vars:
        if v != "message":
            np.testing.assert_array_equal(par[v].values[ok], single[v].values[ok], err_msg=v)
    assert list(par["message"].values[ok]) == list(single["message"].values[ok])
    assert par.attrs["parallel_chunk_retries"] >= 1


def test_a_chunk_whose_worker_dies_once_is_retried_and_succeeds(pk_batch, tmp_path):
    params, regimen, single = pk_batch
    marker = tmp_path / "died_once"
    poisoned = float(np.asarray(params["cl_bsab"])[6])  # chunk 3 of 4
    par = simulate_parallel(
        "pk_model",
        params,
        regimen,
        duration_days=PK_DAYS,
        workers=2,
        chunks=4,
        mp_context="fork",
        solver=KillingSolver(backend="numpy", poisoned_value=poisoned, once_marker=str(marker)),
    )
    assert marker.exists()  # the worker did die once
    assert np.all(par["status"].values == 0)
    for v in single.data_vars:
        if v != "message":
            np.testing.assert_array_equal(par[v].values, single[v].values, err_msg=v)
    assert par.attrs["parallel_chunk_retries"] >= 1


UNGUARDED = """\
import numpy as np
import moa
from moa.parallel import simulate_parallel

params = moa.load_parameters().with_values({"cl_bsab": np.linspace(0.12, 0.33, 4)})
simulate_parallel("pk_model", params, moa.every("bsab", 3.0, "mg/kg", 7.0, 7.0), duration_days=7.0, workers=2)
"""


def test_a_script_without_the_main_guard_is_told_to_add_it(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    root = pathlib.Path(moa.__file__).parents[1]
    env = {
        **os.environ,
        "MOA_NO_JIT": "1",
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0
    assert "RuntimeError" in done.stderr and 'if __name__ == "__main__":' in done.stderr
    assert f"{script} (line 6)" in done.stderr
    assert not _inside_main_guard(str(script), 6)
    # The same call under the guard (either spelling) passes the check.
    for test in ("__name__ == '__main__'", '"__main__" == __name__'):
        script.write_text(UNGUARDED.replace("simulate_parallel(", f"if {test}:\n    simulate_parallel("))
        assert _inside_main_guard(str(script), 7)
