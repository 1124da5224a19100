"""The CUDA Rodas4 (moa.solvers.rodas4.cuda) without a GPU: its kernels run in numba's CUDA simulator, in
a subprocess (the simulator must be switched on before numba.cuda is imported), against the numba
CPU backend (tests/cuda_check.py); backend selection and errors on a machine without a GPU."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

import pytest

import moa
from moa.parameters import load_parameters
from moa.solvers.rodas4 import numba_kernels as jit
from moa.solvers import RodasSolver
from moa.symbolic.named_models import pk_model

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
@pytest.mark.parametrize("case", ["robertson", "failures"])
def test_one_thread_taking_every_trajectory_gives_the_same_numbers(simulated, case):
    """Work refill: one GPU thread integrates the four trajectories one after another, in the order of an
    expected work (a failed one, a NaN parameter or a step-size underflow, in between), with the very same
    outputs, steps and statuses as one thread per trajectory; the full model's launches ran that way too,
    ordered by the steps moa.simulate counted so far (test above)."""
    r, one_each = simulated[case + "_refill"], simulated[case]
    assert r["same_as_one_thread_each"]
    assert r["status"] == one_each["status_cuda"] and r["n_steps"] == one_each["n_steps_cuda"]
    assert r["n_rejected"] == one_each["n_rejected_cuda"]


def test_work_order_takes_the_most_expected_work_first():
    from moa.solvers.rodas4.cuda import work_order

    assert work_order(None).tolist() == []
    assert work_order([1.0, 4.0, 2.0, 3.0]).tolist() == [1, 3, 2, 0]
    assert work_order([0.0, np.nan, 5.0, 0.0]).tolist() == [2, 0, 1, 3]  # NaN counts as 0; ties in column order
    assert work_order(np.zeros(3)).dtype == np.int64


def test_simulate_passes_steps_so_far_to_a_backend_that_takes_them():
    """moa.simulate gives ``expected_work`` (steps so far of the samples still running) only to a backend that
    declares ``takes_expected_work`` and whose ``integrate`` takes it (a subclass overriding ``integrate`` with
    the plain signature keeps working); the first segment sees zeros, later ones the steps counted."""
    import moa
    from moa.solvers.base import SegmentDriver
    from moa.solvers.scipy_backend import ScipySolver

    seen = []

    class Recording(SegmentDriver):
        name = "recording LSODA"
        takes_expected_work = True

        def __init__(self):
            self.inner = ScipySolver("LSODA")

        def integrate_segment(self, compiled, t0, t1, Y0, P, t_out, rtol, atol, expected_work=None):
            seen.append(np.array(expected_work))
            res = self.inner.integrate_segment(compiled, t0, t1, Y0, P, t_out, rtol, atol)
            res.n_steps = np.full(Y0.shape[1], 10.0) * (1 + np.arange(Y0.shape[1]))  # counts the hint will add up
            res.n_rejected = np.ones(Y0.shape[1])
            return res

    from moa.symbolic.named_models import full_model
    from moa.scenarios import scenario

    params, regimen = scenario("nabp_bsab_2x2", "hot_tnbc", duration_days=22.0)
    batch = params.with_values({"tumour_growth_rate": np.array([0.002, 0.004])})
    moa.simulate(full_model(), batch, regimen, duration_days=22.0, solver=Recording())
    assert len(seen) >= 3 and seen[0].tolist() == [0.0, 0.0]
    assert seen[1].tolist() == [11.0, 21.0] and seen[2].tolist() == [22.0, 42.0]

    class PlainSignature(Recording):  # overrides integrate without the hint: called as before
        def integrate(self, compiled, t0, t1, Y0, P, t_out, rtol, atol):
            return super().integrate(compiled, t0, t1, Y0, P, t_out, rtol, atol)

    seen.clear()
    moa.simulate(full_model(), batch, regimen, duration_days=22.0, solver=PlainSignature())
    assert len(seen) >= 3 and all(hint.tolist() is None for hint in seen)


def test_launch_blocks_fill_the_card_and_no_more(monkeypatch):
    """Enough blocks for the card's resident threads when it is known (refill), or for MOA_CUDA_THREADS; one
    thread per trajectory when neither is known or when MOA_CUDA_REFILL=0; never more threads than
    trajectories; a bad setting is refused naming the variable."""
    from moa.solvers.rodas4 import cuda

    class Card:
        def __init__(self, resident):
            self.resident = resident

        def resident_threads(self, threads_per_block):
            return self.resident

    monkeypatch.delenv("MOA_CUDA_REFILL", raising=False)
    monkeypatch.delenv("MOA_CUDA_THREADS", raising=False)
    assert cuda.launch_blocks(Card(33_792), 100_000, 64, None) == 528  # 132 SMs x 4 blocks of 64
    assert cuda.launch_blocks(Card(33_792), 1_000, 64, None) == 16  # fewer trajectories than the card holds
    assert cuda.launch_blocks(Card(None), 100_000, 64, None) == 1_563  # unknown: one thread each
    assert cuda.launch_blocks(Card(33_792), 100_000, 64, 100) == 2  # threads asked for, whole blocks
    assert cuda.launch_blocks(Card(33_792), 3, 1, 1) == 1
    monkeypatch.setenv("MOA_CUDA_THREADS", "8448")  # fewer threads than the card holds: 132 blocks
    assert cuda.launch_blocks(Card(33_792), 100_000, 64, None) == 132
    assert cuda.launch_blocks(Card(None), 100_000, 64, None) == 132
    for bad in ("0", "-5", "8k", "1e4"):
        monkeypatch.setenv("MOA_CUDA_THREADS", bad)
        with pytest.raises(ValueError, match=rf"MOA_CUDA_THREADS='{bad}': must be a whole number of threads >= 1"):
            cuda.launch_blocks(Card(33_792), 100_000, 64, None)
    monkeypatch.delenv("MOA_CUDA_THREADS")
    monkeypatch.setenv("MOA_CUDA_REFILL", "0")
    assert cuda.launch_blocks(Card(33_792), 100_000, 64, None) == 1_563
    monkeypatch.setenv("MOA_CUDA_REFILL", "yes")
    with pytest.raises(ValueError, match=r"MOA_CUDA_REFILL='yes': must be 0 .* or 1"):
        cuda.launch_blocks(Card(33_792), 100_000, 64, None)


@needs_numba
def test_quasi_steady_start_relaxes_on_the_gpu_with_the_same_steps(simulated):
    """A batch moa.simulate sends to the GPU relaxes its quasi-steady start there too (the held system's
    kernels), taking the CPU's steps: the start would otherwise cost more on one core than the GPU's run."""
    q = simulated["quasi_steady"]
    assert "(cuda)" in q["start_cuda"] and "(numba)" in q["start_cpu"]
    assert q["start_cuda"].replace("(cuda)", "(numba)") == q["start_cpu"]  # same days, convergence, rates
    assert q["status_cuda"] == q["status_cpu"] == [0, 0]
    assert q["calls"] >= 3 and q["steps_equal"] and q["rejected_equal"], (q["n_steps_cuda"], q["n_steps_cpu"])
    assert q["start_rel_diff"] <= 1e-10


def test_a_failing_gpu_start_falls_back_to_the_cpu_with_a_warning():
    """With backend "auto", a quasi-steady start the GPU cannot do (here: there is no GPU, though the
    solver claims to send the batch there) is relaxed on the CPU, with a warning; "cuda" would raise."""
    from moa.solvers.rodas4 import cuda

    if cuda.available():
        pytest.skip("this machine has a CUDA GPU (or the simulator is on)")

    class ClaimsGpu(RodasSolver):
        def sends_to_gpu(self, n_trajectories):
            return True

    solver = ClaimsGpu(backend="auto")
    with pytest.warns(RuntimeWarning, match="quasi-steady start: the CUDA Rodas4 failed .*relaxing on the CPU"):
        ds = moa.simulate(
            pk_model("bsab"), load_parameters(), None, times=[0.0, 1.0], solver=solver, start="quasi_steady"
        )
    assert ds.attrs["start"].startswith("quasi_steady") and "(cuda)" not in ds.attrs["start"]
    assert ("(numba)" if jit.available() else "(numpy)") in ds.attrs["start"]
    assert int(ds["status"].values) == 0


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


_LOWERING_CHECK = r"""
import json
from numba import types
from numba.cuda import lowering
from numba.cuda.compiler import compile_cuda
from moa.solvers.rodas4 import cuda

# a long straight-line block (the shape of the printed LU and Jacobian), names assigned more than once,
# and a loop with a branch (several blocks)
src = ["def f(a, n):", "    x = a[0]"]
for i in range(1, 400):
    src += [f"    x = x * a[{i % 7}] + a[{(i * 3) % 11}]", f"    z = x - a[{i % 5}]", f"    y{i} = z * z"]
src += ["    s = 0.0", "    for k in range(n):", "        s += a[k] * y7", "        if s > y3:",
        "            s = s - y5", "    return s + x"]
ns = {}
exec("\n".join(src), ns)
numba_cuda_own = lowering.Lower._find_singly_assigned_variable
found = []
def both(lower):
    numba_cuda_own(lower)
    want = set(lower._singly_assigned_vars)
    cuda._linear_singly_assigned_variables(lower)
    found.append([len(want), want == set(lower._singly_assigned_vars)])
lowering.Lower._find_singly_assigned_variable = both
compile_cuda(ns["f"], types.float64, (types.Array(types.float64, 1, "C"), types.int64), cc=(9, 0))
lowering.Lower._find_singly_assigned_variable = numba_cuda_own

# a block in which a name is assigned twice (numba's SSA pass never leaves one, but the rule is part of the contract)
from types import SimpleNamespace
from numba.cuda.core import ir
loc = ir.Loc("check", 1)
scope = ir.Scope(None, loc)
block = ir.Block(scope, loc)
x, y = ir.Var(scope, "x", loc), ir.Var(scope, "y", loc)
for stmt in (ir.Assign(ir.Const(1.0, loc), x, loc), ir.Assign(ir.Const(2.0, loc), x, loc), ir.Assign(x, y, loc)):
    block.append(stmt)
block.append(ir.Return(y, loc))
def fake():
    blocks = {0: block}
    func_ir = SimpleNamespace(blocks=blocks, func_id=SimpleNamespace(is_generator=False))
    return SimpleNamespace(func_ir=func_ir, blocks=blocks)
own, ours = fake(), fake()
numba_cuda_own(own)
cuda._linear_singly_assigned_variables(ours)
found.append([len(own._singly_assigned_vars), own._singly_assigned_vars == ours._singly_assigned_vars == {"y"}])
print(json.dumps({"found": found, "installed": cuda.speed_up_numba_cuda_compile(),
                  "now": lowering.Lower._find_singly_assigned_variable is cuda._linear_singly_assigned_variables}))
"""


def test_linear_lowering_finds_the_same_variables_as_numba_cuda():
    """moa's replacement for numba-cuda's quadratic ``_find_singly_assigned_variable`` (cuda.py) gives the same set
    on a function with a long straight-line block, reassigned names and several blocks (lowered to LLVM IR only: no
    GPU, no NVVM needed)."""
    pytest.importorskip("numba_cuda", reason="the gpu extra (numba-cuda) is not installed")
    proc = subprocess.run(
        [sys.executable, "-c", _LOWERING_CHECK], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["found"]) == 2 and out["found"][0][0] > 700 and out["found"][1][0] == 1
    assert out["found"][0][1] is True and out["found"][1][1] is True
    assert out["installed"] is True and out["now"] is True


def test_cuda_module_negates_the_jacobian_and_clears_outside_its_pattern():
    """The CUDA module's ``_rhs_jac`` writes -J (the CPU module's J negated, ``_rhs`` untouched), ``_clear_fill``
    zeroes exactly the LU slots outside the Jacobian's pattern, and the stage tables are Rodas4's weights."""
    import re

    import sympy as sp

    from moa.solvers.rodas4 import codegen, cuda
    from moa.solvers.rodas4.tableau import RODAS4

    y1, y2, y3, k1, k2 = sp.symbols("y1 y2 y3 k1 k2")
    rhs = [-k1 * y1 + y2 * y3, k1 * y1 - k2 * y2**2, k2 * y2**2 - y3 * y1]  # fill-in at (1, 2), (2, 1)
    ys, ps = [y1, y2, y3], [k1, k2]
    plan = jit.lu_plan(rhs, ys)
    cpu = codegen.kernel_source(rhs, ys, ps, plan)
    text = cuda.cuda_source(cpu, plan)

    def body(src: str, name: str) -> list[str]:
        lines = src[src.rindex(f"def {name}(") :].splitlines()[1:]  # the generated one (the template has placeholders)
        return lines[: next(i for i, s in enumerate(lines) if not s.startswith("    "))]

    cpu_jac = [line for line in body(cpu, "_rhs_jac") if line.startswith("    jv[")]
    gpu_jac = [line for line in body(text, "_rhs_jac") if line.startswith("    jv[")]
    assert len(cpu_jac) == len(plan.jac_slot) == len(gpu_jac) > 0
    for c, g in zip(cpu_jac, gpu_jac):
        target, _, expr = c.partition(" = ")
        assert g == f"{target} = -({expr})"
    assert body(text, "_rhs") == body(cpu, "_rhs")
    cleared = sorted(int(m) for m in re.findall(r"a\[(\d+)\] = 0\.0", "\n".join(body(text, "_clear_fill"))))
    assert cleared == sorted(set(range(plan.nnz_fill)) - set(plan.jac_slot.tolist()))
    assert len(cleared) >= 1  # this system's LU has slots outside the pattern
    tables = {}
    exec("\n".join(line for line in text.splitlines() if line.startswith(("A_TAB =", "C_TAB ="))), {"np": np}, tables)
    for s in range(1, 6):
        assert tables["A_TAB"][s, : len(RODAS4.a[s])].tolist() == list(RODAS4.a[s])
        assert tables["C_TAB"][s, :s].tolist() == list(RODAS4.c[s])


def test_register_cap_from_the_environment(monkeypatch):
    """``MOA_CUDA_MAX_REGISTERS`` caps the kernel's registers (the kernel's decorator, nothing else, changes); a bad
    value is refused naming the variable, the value and the range."""
    import sympy as sp

    from moa.solvers.rodas4 import codegen, cuda

    monkeypatch.delenv("MOA_CUDA_MAX_REGISTERS", raising=False)
    assert cuda.max_registers() is None
    monkeypatch.setenv("MOA_CUDA_MAX_REGISTERS", " 128 ")
    assert cuda.max_registers() == 128
    for bad in ("12", "256", "many", "1e2"):
        monkeypatch.setenv("MOA_CUDA_MAX_REGISTERS", bad)
        with pytest.raises(ValueError, match=rf"MOA_CUDA_MAX_REGISTERS='{bad}': must be an integer in 16\.\.255"):
            cuda.max_registers()
    y, k = sp.symbols("y k")
    plan = jit.lu_plan([-k * y], [y])
    cpu = codegen.kernel_source([-k * y], [y], [k], plan)
    plain, capped = cuda.cuda_source(cpu, plan), cuda.cuda_source(cpu, plan, 128)
    assert "@cuda.jit(cache=True, max_registers=128)" in capped and "max_registers=" not in plain
    assert capped.replace("@cuda.jit(cache=True, max_registers=128)", "@cuda.jit(cache=True)") == plain


def test_register_cap_is_dropped_with_a_warning_in_the_simulator(monkeypatch):
    """numba's CUDA simulator has no registers and its cuda.jit refuses max_registers: a dry run with a cap runs
    uncapped and says so; a bad value is still refused there; on a GPU the cap is kept."""
    from moa.solvers.rodas4 import cuda

    monkeypatch.setenv("MOA_CUDA_MAX_REGISTERS", "128")
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    assert cuda._register_cap() == 128
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    with pytest.warns(RuntimeWarning, match="MOA_CUDA_MAX_REGISTERS=128 ignored: numba's CUDA simulator"):
        assert cuda._register_cap() is None
    monkeypatch.setenv("MOA_CUDA_MAX_REGISTERS", "300")
    with pytest.raises(ValueError, match="MOA_CUDA_MAX_REGISTERS='300'"):
        cuda._register_cap()


def test_device_script_parses_and_asks_gpu_warm_only_for_what_it_does():
    """benchmarks/gpu_device.sh runs on a lent machine with minutes to spare: it must parse, and each side compile
    it asks of benchmarks/gpu_warm.py must be one that script knows (a typo would only show on the device)."""
    import re
    import shutil

    script = ROOT / "benchmarks" / "gpu_device.sh"
    bash = shutil.which("bash")
    assert bash is not None
    assert subprocess.run([bash, "-n", str(script)], capture_output=True).returncode == 0
    code = "\n".join(line.split("#")[0] for line in script.read_text().splitlines())  # comments dropped
    direct = re.findall(r"gpu_warm\.py\s+(\w+)", code)
    via_warm = re.findall(r"\bwarm\s+\"?[\w$]+\"?\s+(\w+)", code)  # warm NAME WHAT ...
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_warm
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    asked = set(direct + via_warm)
    assert {"generate", "cuda", "start", "cpu"} <= asked  # the script asks for each of them
    assert asked <= set(gpu_warm.WHAT), sorted(asked - set(gpu_warm.WHAT))
