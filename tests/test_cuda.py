"""The CUDA Rodas4 (moa.solvers.rodas4.cuda) without a GPU: its kernels run in numba's CUDA simulator, in
a subprocess (the simulator must be switched on before numba.cuda is imported), against the numba
CPU backend (tests/cuda_check.py); backend selection and errors on a machine without a GPU."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from moa.solvers.rodas4 import numba_kernels as jit
from moa.solvers import RodasSolver

ROOT = pathlib.Path(__file__).resolve().parent.parent
needs_numba = pytest.mark.skipif(not jit.available(), reason="numba not installed (pip install 'moa[fast]')")


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra)
    env.pop("MOA_NO_CUDA", None)
    return env


@pytest.fixture(scope="module")
def simulated():
    """tests/cuda_check.py in numba's CUDA simulator: Robertson, failures, full model 30 days x 2 sets."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "cuda_check.py"), "--n-full", "2", "--days", "30"],
        env=_env(NUMBA_ENABLE_CUDASIM="1"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@needs_numba
def test_robertson_same_steps_as_numba(simulated):
    r = simulated["robertson"]
    assert r["status_cuda"] == r["status_cpu"] == [0, 0, 0, 0]
    assert r["n_steps_cuda"] == r["n_steps_cpu"] and len(set(r["n_steps_cuda"])) > 1  # own step sequences
    assert r["n_rejected_cuda"] == r["n_rejected_cpu"]
    assert r["y_rel_diff"] <= 1e-10


@needs_numba
def test_full_model_same_steps_as_numba(simulated):
    m = simulated["full_model"]
    assert m["solver_cuda"] == "moa-rodas4-cuda" and m["solver_cpu"] == "moa-rodas4-numba"
    assert m["status_cuda"] == m["status_cpu"] == [0, 0]
    assert m["segments"] >= 3  # doses cut the 30 days into segments
    assert m["steps_equal"] and m["rejected_equal"], (m["n_steps_cuda"], m["n_steps_cpu"])
    assert m["n_steps_cuda"][0] != m["n_steps_cuda"][1]
    assert m["y_rel_diff"] <= 1e-10


@needs_numba
def test_failing_trajectory_reported_others_finish(simulated):
    f = simulated["failures"]
    assert f["status_cuda"] == [0, 1, 2, 0] == f["status_cpu"]
    assert "non-finite initial state" in f["message_cuda"][1]
    assert "step size underflow" in f["message_cuda"][2]
    assert f["message_cuda"][0] == f["message_cuda"][3] == ""
    assert f["n_steps_cuda"] == f["n_steps_cpu"] and f["n_steps_cuda"][0] > 100
    assert f["y_rel_diff"] <= 1e-10


@needs_numba
def test_auto_never_picks_the_simulator(simulated):
    assert simulated["auto_picks_cuda"] is False


def test_without_gpu_auto_never_picks_cuda(monkeypatch):
    from moa.solvers.rodas4 import cuda

    if cuda.available() and not cuda.simulator():
        pytest.skip("this machine has a CUDA GPU")
    assert RodasSolver(backend="auto", gpu_min_batch=1)._gpu_for(10**7) is False
    monkeypatch.setattr(cuda, "missing", lambda: "no CUDA driver or GPU found (test)")
    assert RodasSolver(backend="auto", gpu_min_batch=1)._gpu_for(10**7) is False


def test_cuda_backend_names_the_missing_piece(monkeypatch):
    from moa.solvers.rodas4 import cuda

    cuda.missing.cache_clear()
    try:
        if cuda.available():
            pytest.skip("this machine has a CUDA GPU")
        with pytest.raises(RuntimeError, match="no CUDA driver or GPU|numba-cuda is not installed"):
            RodasSolver(backend="cuda")
        cuda.missing.cache_clear()
        monkeypatch.setitem(sys.modules, "numba.cuda", None)  # as if numba-cuda were not installed
        with pytest.raises(RuntimeError, match=r"numba-cuda is not installed \(pip install 'moa\[gpu\]'\)"):
            RodasSolver(backend="cuda")
        cuda.missing.cache_clear()
        monkeypatch.setitem(sys.modules, "numba", None)
        with pytest.raises(RuntimeError, match="numba is not installed"):
            RodasSolver(backend="cuda")
    finally:
        cuda.missing.cache_clear()


def test_nothing_imports_cuda_at_import_time():
    code = (
        "import sys, moa, moa.solvers, moa.solvers.rodas4.solver, moa.simulate; "
        "print(sorted(m for m in sys.modules if m in ('moa.solvers.rodas4.cuda', 'numba.cuda')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("regs, blocks, fraction", [(32, 32, 1.0), (64, 16, 0.5), (255, 4, 0.125), (168, 6, 0.1875)])
def test_occupancy_from_registers(regs, blocks, fraction):
    """64 threads per block (2 warps); a warp's registers come in units of 256 out of 65,536 per SM."""
    from moa.solvers.rodas4.cuda import occupancy

    occ = occupancy(regs, 64)
    assert occ["max_active_blocks_per_sm"] == blocks
    assert occ["max_active_threads_per_sm"] == 64 * blocks
    assert occ["occupancy"] == pytest.approx(fraction)


@needs_numba
def test_unstable_sparse_lu_goes_to_the_cpu_or_is_reported(simulated):
    """Where the CPU backends need the dense-LU fallback, the GPU reruns the trajectory on the CPU
    (identical results) or, without CPU kernels, reports it with the reason (status 4)."""
    d = simulated["dense_fallback"]
    assert d["cpu_reruns"] == 4
    assert d["status_rerun"] == [0, 0, 0, 0] and d["n_steps_rerun"] == d["n_steps_cpu"]
    assert d["y_rel_diff_rerun"] == 0.0
    assert d["status_no_cpu"] == [4, 4, 4, 4] and "no dense-LU fallback" in d["message_no_cpu"]
