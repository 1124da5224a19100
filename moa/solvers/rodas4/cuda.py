"""Rodas4 on an NVIDIA GPU, one trajectory per thread at a time (optional extra ``moa[gpu]``: numba-cuda).

The method is the compiled Rodas4 of :mod:`moa.solvers.rodas4.numba_kernels` -- same coefficients, controller,
landing rule, dense output, extinction rule and status codes -- and the model's kernels (rhs,
Jacobian into the sparse LU's slots, the straight-line LU) are printed by the same printers; they are
decorated ``@cuda.jit(device=True)`` for ``@njit``, and ``_rhs_jac`` writes ``-J`` (:func:`_negated_jacobian`).
The integrator template ``cuda_template.py`` runs the step of
:func:`moa.solvers.rodas4.integrator.integrate_one` in one GPU thread per trajectory, its work arrays (about
9 kB for the 54-state full model; 17 kB of local memory with the compiler's spills) in per-thread local memory.

Work refill: a launch has as many threads as the card holds at once (:func:`launch_blocks`), and a
thread whose trajectory is done takes the next one from an atomic counter, inside one flat loop, so a
warp's lanes are not left idle until its slowest trajectory is done. The number of steps a trajectory
needs in one dose segment varies a lot (full model, one year of nab-paclitaxel + 2:2: 150-550 steps
per segment on average, the slowest of 1,024 sets 2-5 times the mean), and each segment is a launch;
``MOA_CUDA_REFILL=0`` launches one thread per trajectory instead, for comparing the two on a card.

Why numba-cuda (not CuPy raw kernels or JAX): our kernels are already numba-compatible scalar
Python, so the CPU and GPU backends share one generated text and one template style, and numba's
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) runs the very same kernel source on a machine without a
GPU, which is how the tests check it. A vectorised JAX/PyTorch solver moves every trajectory in
lockstep through many small kernels per step (diffrax did not reach one CPU core of moa, issue 18).

Layout: states ``(n, N)`` and parameters ``(m, N)`` with the trajectory index last, outputs
``(n_out, n, N)``, so a warp's accesses to one component are coalesced. Batches larger than
``chunk_size`` are streamed chunk after chunk (host -> device, kernel, device -> host). Each
trajectory has its own status and message; a failing one stops only its own thread.

No dense-LU fallback on the GPU (a 54 x 54 matrix per thread would not fit): a trajectory whose
unpivoted sparse LU is unstable (the case where the CPU backends switch to a pivoted dense LU) is
rerun on the CPU with the numba backend, from the segment's start, when numba's CPU backend is
available (so results keep their CPU meaning); otherwise it is reported as failed (status 4) with
that reason.

Nothing in moa imports this module at import time; :class:`moa.solvers.rodas4.solver.RodasSolver` loads
it for ``backend="cuda"`` (or ``"auto"`` with a GPU and a large batch).
"""

from __future__ import annotations

import importlib
import os
import time
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

if not hasattr(np, "row_stack"):
    # numba-cuda up to at least 0.30 registers an overload for ``np.row_stack`` when its target
    # loads; numpy 2.5 removed that alias of ``np.vstack``, so the first kernel launch fails with an
    # AttributeError. Restoring the alias (same function) lets those versions run.
    np.row_stack = np.vstack
import sympy

from ..base import Status
from . import numba_kernels
from . import codegen
from .codegen import NJIT_DECORATOR, kernel_body
from .lu_plan import SparseLUPlan
from .stepper_numpy import BatchResult
from .tableau import RODAS4

__all__ = [
    "missing",
    "available",
    "simulator",
    "require",
    "CudaKernels",
    "kernels",
    "kernels_for_model",
    "integrate_batch_cuda",
    "occupancy",
    "launch_blocks",
    "work_order",
    "threads_from_environment",
    "refill",
    "max_registers",
    "speed_up_numba_cuda_compile",
    "CHUNK_SIZE",
    "THREADS_PER_BLOCK",
]

_TEMPLATE = Path(__file__).with_name("cuda_template.py")
_DEVICE_DECORATOR = "@cuda.jit(device=True)"

#: Trajectories per kernel launch (outputs of one chunk: n_out x n x CHUNK_SIZE doubles on the card, 3.2 GB
#: for 28 daily outputs of 54 states). Several times the threads a card runs at once (33,792 for the full
#: model on an H200), so that the work refill has trajectories to hand out.
CHUNK_SIZE = 262_144
#: Threads per block: small blocks let the scheduler refill a multiprocessor as warps finish.
THREADS_PER_BLOCK = 64

# Register file and limits of every NVIDIA GPU since Volta (compute capability 7.0 to 9.0).
_REGS_PER_SM = 65_536
_MAX_THREADS_PER_SM = 2048
_MAX_BLOCKS_PER_SM = 32
_REG_ALLOC_UNIT = 256  # registers are given to a warp in multiples of 256


def simulator() -> bool:
    """True when numba's CUDA simulator is switched on (``NUMBA_ENABLE_CUDASIM=1``): kernels run as
    Python on the CPU (for tests; slow)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


@lru_cache(maxsize=1)
def missing() -> str:
    """Why the CUDA backend cannot run here ("" when it can): numba missing, numba-cuda missing, or
    no CUDA driver / GPU."""
    if os.environ.get("MOA_NO_CUDA"):
        return "MOA_NO_CUDA is set"
    try:
        import numba  # noqa: F401
    except ImportError:
        return "numba is not installed (pip install 'moa[gpu]')"
    try:
        cuda = importlib.import_module("numba.cuda")
    except ImportError as exc:
        return f"numba-cuda is not installed (pip install 'moa[gpu]'): {exc}"
    if simulator():
        return ""
    try:
        ok = cuda.is_available()
    except Exception as exc:  # noqa: BLE001 -- driver errors have no common base
        return f"no CUDA driver or GPU: {type(exc).__name__}: {exc}"
    if not ok:
        why = ""
        try:
            why = " ".join(str(cuda.cuda_error() or "").split())
        except Exception:  # noqa: BLE001
            pass
        return "no CUDA driver or GPU found (numba.cuda.is_available() is False" + (f": {why}" if why else "") + ")"
    return ""


def available() -> bool:
    """True when kernels can run: a CUDA GPU with its driver and numba-cuda, or the simulator."""
    return missing() == ""


def require() -> None:
    """Raise RuntimeError naming the missing piece unless the CUDA backend can run."""
    why = missing()
    if why:
        raise RuntimeError(f"RodasSolver(backend='cuda') cannot run: {why}")


def _linear_singly_assigned_variables(lower) -> None:
    """Drop-in for numba-cuda's ``Lower._find_singly_assigned_variable`` that counts each block's assignments
    once (numba's own CPU lowering does the same since 0.59). numba-cuda up to at least 0.30.4 rescans a
    block's assignments for every variable defined in it, which is quadratic in the length of a straight-line
    block: the printed LU and Jacobian of the full model spent about 60% of the kernel's 110 s of compile
    time there (cProfile, 2026-12-01). Same result: variables assigned exactly once, in one block, used
    only there and not needing an alloca."""
    from numba.cuda.core import ir
    from numba.cuda.core.analysis import compute_use_defs, must_use_alloca

    singly = set()
    blocks = lower.func_ir.blocks
    if not lower.func_ir.func_id.is_generator:
        use_defs = compute_use_defs(blocks)
        alloca_vars = must_use_alloca(blocks)
        def_blocks: dict = {}
        for blk, names in use_defs.defmap.items():
            for var in names:
                def_blocks.setdefault(var, set()).add(blk)
        used_in = {var for names in use_defs.usemap.values() for var in names}
        assigned_twice: dict = {}
        for blk, block in lower.blocks.items():
            counts: dict = {}
            for stmt in block.find_insts(ir.assign_types):
                counts[stmt.target.name] = counts.get(stmt.target.name, 0) + 1
            assigned_twice[blk] = {v for v, c in counts.items() if c > 1}
        for var, where in def_blocks.items():
            if var in alloca_vars or len(where) != 1 or var in used_in:
                continue
            (blk,) = where
            if var not in assigned_twice[blk]:
                singly.add(var)
    lower._singly_assigned_vars = singly
    lower._blk_local_varmap = {}


def speed_up_numba_cuda_compile() -> bool:
    """Install :func:`_linear_singly_assigned_variables` in numba-cuda's lowering (calling it again changes
    nothing). True when installed; False when this numba-cuda has no such method or lacks the modules the
    replacement uses, and its lowering is left as it is."""
    try:
        from numba.cuda import lowering
        from numba.cuda.core import analysis, ir  # noqa: F401 -- what the replacement uses (numba-cuda >= 0.2x)
    except ImportError:
        return False
    cls = getattr(lowering, "Lower", None)
    if cls is None or not hasattr(cls, "_find_singly_assigned_variable"):
        return False
    cls._find_singly_assigned_variable = _linear_singly_assigned_variables
    return True


def kernel_source(rhs: list[sympy.Expr], y_syms, p_syms, plan: SparseLUPlan) -> str:
    """The text of the CUDA module: the template plus this system's device functions, printed by
    the numba backend's printers (see :func:`cuda_source`)."""
    return cuda_source(codegen.kernel_source(rhs, list(y_syms), list(p_syms), plan), plan, _register_cap())


_KERNEL_DECORATOR = "@cuda.jit(cache=True)"


def max_registers() -> int | None:
    """The register cap per thread for the kernel from ``MOA_CUDA_MAX_REGISTERS`` (None when unset: the
    compiler's choice, 255 for the full model). A lower cap allows more threads per multiprocessor and
    spills more to local memory; ``benchmarks/gpu_build.py`` shows both without a GPU."""
    raw = os.environ.get("MOA_CUDA_MAX_REGISTERS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not 16 <= value <= 255:
        raise ValueError(f"MOA_CUDA_MAX_REGISTERS={raw!r}: must be an integer in 16..255 (or unset)")
    return value


def _register_cap() -> int | None:
    """:func:`max_registers` (checked in any case), or None in numba's CUDA simulator: it runs the kernel as Python,
    has no registers, and its ``cuda.jit`` refuses ``max_registers`` (so a dry run of the device script with a
    cap runs uncapped, with a warning, instead of failing)."""
    cap = max_registers()
    if cap is not None and simulator():
        warnings.warn(
            f"MOA_CUDA_MAX_REGISTERS={cap} ignored: numba's CUDA simulator has no registers",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return cap


def cuda_source(cpu_source: str, plan: SparseLUPlan, registers: int | None = None) -> str:
    """The CUDA module made from the numba backend's kernel module text ``cpu_source``: the same generated
    functions (:func:`~moa.solvers.rodas4.codegen.kernel_body`), decorated ``@cuda.jit(device=True)``, after the
    CUDA template; the diagonal of the iteration matrix is added by a printed straight-line function (the CPU
    backend's index arrays are dropped). ``registers``: a register cap per thread for the kernel (see
    :func:`max_registers`, which the kernel functions read when they first make a module)."""
    try:
        body = kernel_body(cpu_source)
    except ValueError:
        raise ValueError("cpu_source is not a module of the numba backend's current code generator") from None
    kept = [line for line in body.splitlines() if not line.startswith(("DIAG_SLOT =", "FILL_ROWS =", "FILL_COLS ="))]
    text = _negated_jacobian("\n".join(kept)).replace(NJIT_DECORATOR, _DEVICE_DECORATOR)
    extra = _matrix_functions(plan) + _stage_tables() + [f"N_STATES = {plan.n}"]
    template = _TEMPLATE.read_text()
    if registers is not None:
        if template.count(_KERNEL_DECORATOR) != 1:
            raise ValueError("cuda_template.py must have exactly one kernel decorated " + _KERNEL_DECORATOR)
        template = template.replace(_KERNEL_DECORATOR, f"@cuda.jit(cache=True, max_registers={int(registers)})")
    return template + text + "\n\n" + "\n".join(extra) + "\n"


def _negated_jacobian(text: str) -> str:
    """The kernels' text with ``_rhs_jac`` writing ``-J`` (each ``jv[k] = e`` printed as ``jv[k] = -(e)``), so
    that the iteration matrix ``c I - J`` is built in place by clearing the slots outside the pattern and
    adding ``c`` on the diagonal, with no pass over all slots (negation is exact: same numbers)."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("def "):
            inside = line.startswith("def _rhs_jac(")
        if inside and line.startswith("    jv["):
            target, _, expr = line.partition(" = ")
            line = f"{target} = -({expr})"
        out.append(line)
    return "\n".join(out)


def _matrix_functions(plan: SparseLUPlan) -> list[str]:
    """Straight-line device functions on the iteration matrix's slots: ``_add_diag(a, c)`` adds ``c`` on the
    diagonal; ``_clear_fill(a)`` zeroes the slots the Jacobian does not write (diagonal and fill-in outside
    its pattern), which hold the previous step's factors when the Jacobian is evaluated into ``a``."""
    diag = [_DEVICE_DECORATOR, "def _add_diag(a, c):"] + [f"    a[{s}] += c" for s in plan.diag_slot.tolist()]
    outside = sorted(set(range(plan.nnz_fill)) - set(plan.jac_slot.tolist()))
    clear = [_DEVICE_DECORATOR, "def _clear_fill(a):"] + ([f"    a[{s}] = 0.0" for s in outside] or ["    pass"])
    return diag + [""] + clear + [""]


def _stage_tables() -> list[str]:
    """``A_TAB``, ``C_TAB`` (6, 5): the stage weights of :data:`~moa.solvers.rodas4.tableau.RODAS4`, row ``s`` for
    stage ``s + 1`` (zero-padded), held in constant memory by the template's stage loop."""

    def table(rows) -> str:
        padded = [list(r) + [0.0] * (5 - len(r)) for r in rows]
        return "np.array(" + repr(padded) + ", dtype=np.float64)"

    return [f"A_TAB = {table(RODAS4.a)}", f"C_TAB = {table(RODAS4.c)}"]


class CudaKernels:
    """A loaded CUDA module for one system (see :func:`kernels`). ``kernel_seconds`` and
    ``compile_seconds`` add up the time spent in launches (including transfers) and in the first
    launch of each signature (numba compiles there)."""

    def __init__(self, module, plan: SparseLUPlan, path: Path):
        self.module, self.plan, self.path = module, plan, path
        self.n = plan.n
        self.kernel = module.integrate_kernel
        self.kernel_seconds = 0.0
        self.compile_seconds = 0.0
        self.launches = 0
        self.cpu_reruns = 0  # trajectory-segments rerun on the CPU (sparse LU needed the dense fallback)
        self._compiled = False
        self._resident: dict[int, int | None] = {}

    def resident_threads(self, threads_per_block: int = THREADS_PER_BLOCK) -> int | None:
        """Threads of this kernel the card runs at once in blocks of ``threads_per_block`` (the driver's
        occupancy calculation, else :func:`occupancy` from the registers per thread, times the
        multiprocessors); None before the first launch and in the simulator."""
        if not self._compiled or simulator():
            return None
        if threads_per_block not in self._resident:
            self._resident[threads_per_block] = _resident_threads(self.kernel, threads_per_block)
        return self._resident[threads_per_block]

    def resources(self) -> dict:
        """Registers and local memory per thread of the compiled kernel, and the occupancy they allow
        at :data:`THREADS_PER_BLOCK` (empty before the first launch or in the simulator)."""
        if not self._compiled or simulator():
            return {}
        try:
            regs = self.kernel.get_regs_per_thread()
            regs = max(regs.values()) if isinstance(regs, dict) else int(regs)
            local = self.kernel.get_local_mem_per_thread()
            local = max(local.values()) if isinstance(local, dict) else int(local)
        except Exception as exc:  # noqa: BLE001 -- an older numba-cuda without these queries
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"registers_per_thread": regs, "local_bytes_per_thread": local} | occupancy(regs)


def refill() -> bool:
    """False when ``MOA_CUDA_REFILL=0`` (one thread per trajectory, as before work refill; for comparing
    the two on a card); True otherwise."""
    raw = os.environ.get("MOA_CUDA_REFILL", "1").strip()
    if raw not in ("0", "1"):
        raise ValueError(f"MOA_CUDA_REFILL={raw!r}: must be 0 (one thread per trajectory) or 1 (work refill)")
    return raw == "1"


def threads_from_environment() -> int | None:
    """Threads per launch from ``MOA_CUDA_THREADS`` (None when unset): fewer than the card holds at once
    shrink the working set the threads keep in local memory (17 kB each for the full model), which may
    then stay in the L2 cache; for finding the best number on a card (``benchmarks/gpu.py --threads``)."""
    raw = os.environ.get("MOA_CUDA_THREADS", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"MOA_CUDA_THREADS={raw!r}: must be a whole number of threads >= 1 (or unset)")
    return int(raw)


def work_order(expected_work) -> np.ndarray:
    """The order in which a launch's threads take its trajectories: column indices, largest ``expected_work``
    first (ties and NaN, counted as 0, in column order); an empty array (column order) for None."""
    if expected_work is None:
        return np.zeros(0, np.int64)
    work = np.nan_to_num(np.asarray(expected_work, dtype=float), nan=0.0)
    return np.argsort(-work, kind="stable").astype(np.int64)


def launch_blocks(k: "CudaKernels", m: int, threads_per_block: int, threads: int | None) -> int:
    """Blocks of ``threads_per_block`` to launch for ``m`` trajectories: enough for ``threads`` when given
    (else ``MOA_CUDA_THREADS``), else for the card's resident threads (work refill), never more than one
    thread per trajectory; one thread per trajectory where the resident count is unknown (first launch,
    simulator) or refill is off."""
    per_trajectory = -(-m // threads_per_block)
    if threads is None:
        if not refill():
            return per_trajectory
        threads = threads_from_environment() or k.resident_threads(threads_per_block)
        if threads is None:
            return per_trajectory
    return max(1, min(per_trajectory, -(-threads // threads_per_block)))


def occupancy(regs_per_thread: int, threads_per_block: int = THREADS_PER_BLOCK) -> dict:
    """Blocks and threads a multiprocessor can hold at this register count (registers are the only
    limit: the kernel uses no shared memory), from the limits of compute capability 7.0-9.0."""
    warps_per_block = -(-threads_per_block // 32)
    regs_per_warp = -(-regs_per_thread * 32 // _REG_ALLOC_UNIT) * _REG_ALLOC_UNIT
    by_regs = _REGS_PER_SM // (regs_per_warp * warps_per_block)
    blocks = min(_MAX_BLOCKS_PER_SM, _MAX_THREADS_PER_SM // threads_per_block, by_regs)
    return {
        "threads_per_block": threads_per_block,
        "max_active_blocks_per_sm": blocks,
        "max_active_threads_per_sm": blocks * threads_per_block,
        "occupancy": blocks * warps_per_block / (_MAX_THREADS_PER_SM // 32),
    }


def _resident_threads(dispatcher, threads_per_block: int) -> int | None:
    from numba import cuda

    try:
        kernel = next(iter(dispatcher.overloads.values()))
        return int(kernel.max_cooperative_grid_blocks(threads_per_block)) * threads_per_block
    except Exception:  # noqa: BLE001 -- an older numba-cuda: from the registers instead
        pass
    try:
        regs = dispatcher.get_regs_per_thread()
        regs = max(regs.values()) if isinstance(regs, dict) else int(regs)
        sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
        return occupancy(regs, threads_per_block)["max_active_threads_per_sm"] * sms
    except Exception:  # noqa: BLE001 -- unknown: one thread per trajectory
        return None


def kernels(rhs: list[sympy.Expr], y_syms, p_syms, plan: SparseLUPlan | None = None) -> CudaKernels:
    """CUDA Rodas4 for ``dy/dt = rhs(y; p)`` given symbolically (``p_syms`` fixes the parameter rows)."""
    require()
    y_syms, p_syms = list(y_syms), list(p_syms)
    plan = numba_kernels.lu_plan(rhs, y_syms) if plan is None else plan
    return _load(kernel_source(list(rhs), y_syms, p_syms, plan), plan)


def _load(source: str, plan: SparseLUPlan) -> CudaKernels:
    if not simulator():
        speed_up_numba_cuda_compile()  # before the first launch compiles the kernel
    path = numba_kernels.write_module(source)  # moa_rodas_<hash>.py in the cache folder, checked on load
    return CudaKernels(numba_kernels.load_module(path), plan, path)


@lru_cache(maxsize=16)
def kernels_for_model(compiled, held: tuple[int, ...] = ()) -> CudaKernels:
    """CUDA Rodas4 for a :class:`moa.codegen.CompiledModel` (cached per model object), made from the
    numba backend's generated module for that model (written by sympy once, then read from the
    compiled-solver cache; numba's CPU compilation is not triggered). ``held``: states whose rate
    rows are zero, as :func:`moa.solvers.rodas4.numba_kernels.kernels_for_model` (the quasi-steady start)."""
    require()
    cpu = numba_kernels.kernels_for_model(compiled, held=held)  # its text, from the numba backend's cache
    source = cuda_source(numba_kernels.read_verified(cpu.path), cpu.plan, _register_cap())
    return _load(source, cpu.plan)


#: The GPU kernel's code for an unstable unpivoted LU (rerun on the CPU, else reported as Status.SOLVER_FAILURE).
_LU_UNSTABLE = 6
_MESSAGES = dict(numba_kernels.STATUS_MESSAGES)
_MESSAGES[_LU_UNSTABLE] = (
    "unpivoted sparse LU unstable at t={t:.10g} (pivot growth above the limit or a non-finite pivot); "
    "the GPU has no dense-LU fallback and numba's CPU backend was not available to rerun it"
)


def integrate_batch_cuda(
    k: CudaKernels,
    t0: float,
    t1: float,
    y0,
    p,
    t_out,
    *,
    rtol=1e-6,
    atol=1e-9,
    h0=None,
    max_steps=200_000,
    h_min=1e-14,
    dense_output: bool = True,
    fixed_step: float | None = None,
    extinct_index=None,
    extinct_threshold=None,
    chunk_size: int = CHUNK_SIZE,
    threads_per_block: int = THREADS_PER_BLOCK,
    threads: int | None = None,
    expected_work=None,
    cpu_kernels=None,
) -> BatchResult:
    """Same contract as :func:`moa.solvers.rodas4.numba_kernels.integrate_batch_jit`, on the GPU.

    ``cpu_kernels``: numba CPU kernels of the same system (:class:`moa.solvers.rodas4.numba_kernels.JitKernels`, or a
    function returning them or None, called only when needed), to rerun the trajectories whose sparse
    LU needs the dense fallback (status 6 on the GPU); without them those are reported failed
    (status 4).

    ``threads``: threads per launch (rounded up to whole blocks, at most one per trajectory). None: as
    many as the card holds at once (:meth:`CudaKernels.resident_threads`), each taking the next
    trajectory when its own is done (work refill, see ``cuda_template.integrate_kernel``); one thread per
    trajectory on the first launch (the kernel is compiled there, so its resources are not yet known),
    in the simulator, and with ``MOA_CUDA_REFILL=0``.

    ``expected_work``: (N,) any numbers that rank the trajectories by the work they are expected to need
    (``moa.simulate`` passes the steps each took so far); the threads take the largest first
    (:func:`work_order`). None: in column order. It changes the order, not the results.
    """
    from numba import cuda

    if not (isinstance(chunk_size, (int, np.integer)) and chunk_size >= 1):
        raise ValueError(f"chunk_size={chunk_size!r}: must be an integer >= 1")
    if not (isinstance(threads_per_block, (int, np.integer)) and 1 <= threads_per_block <= 1024):
        raise ValueError(f"threads_per_block={threads_per_block!r}: must be an integer in 1..1024")
    if threads is not None and not (isinstance(threads, (int, np.integer)) and threads >= 1):
        raise ValueError(f"threads={threads!r}: must be an integer >= 1 or None")
    t0, t1, Y0, P, t_out, atol_c, k0 = numba_kernels.checked_batch(k.n, t0, t1, y0, p, t_out, atol)
    n, N = Y0.shape
    if expected_work is not None:
        expected_work = np.asarray(expected_work, dtype=float)
        if expected_work.shape != (N,):
            raise ValueError(
                f"expected_work has shape {expected_work.shape}: must be ({N},), one number per trajectory"
            )
    ext_idx = np.ascontiguousarray(np.zeros(0, np.int64) if extinct_index is None else extinct_index, dtype=np.int64)
    ext_thr = np.ascontiguousarray(
        np.zeros((0, N))
        if extinct_threshold is None or ext_idx.size == 0
        else np.broadcast_to(np.asarray(extinct_threshold, float).reshape(ext_idx.size, -1), (ext_idx.size, N)),
        dtype=float,
    )
    if t1 == t0:
        y_out = np.full((t_out.size, n, N), np.nan)
        y_out[:k0] = Y0[None]
        return BatchResult(
            y_out,
            Y0.copy(),
            np.zeros(N, np.int64),
            [""] * N,
            np.full(N, t0),
            np.zeros(N, np.int64),
            np.zeros(N, np.int64),
            np.zeros(N) if h0 is None else np.asarray(h0, float).copy(),
            np.full((ext_idx.size, N), np.nan),
        )
    h0a = np.full(N, np.nan) if h0 is None else np.ascontiguousarray(np.broadcast_to(np.asarray(h0, float), (N,)))

    out = {
        "y_out": np.empty((t_out.size, n, N)),
        "y_final": np.empty((n, N)),
        "status": np.empty(N, np.int64),
        "t_reached": np.empty(N),
        "n_steps": np.empty(N, np.int64),
        "n_rej": np.empty(N, np.int64),
        "h_last": np.empty(N),
        "last_nonfinite": np.empty(N, np.bool_),
        "h_now": np.empty(N),
        "ext_day": np.empty((ext_idx.size, N)),
    }
    d_t_out, d_atol, d_ext_idx = cuda.to_device(t_out), cuda.to_device(atol_c), cuda.to_device(ext_idx)
    for lo in range(0, N, chunk_size):
        hi = min(N, lo + chunk_size)
        m = hi - lo
        d_out = {name: cuda.device_array(arr.shape[:-1] + (m,), dtype=arr.dtype) for name, arr in out.items()}
        if ext_idx.size:
            d_out["ext_day"].copy_to_device(np.full((ext_idx.size, m), np.nan))
        blocks = launch_blocks(k, m, threads_per_block, threads)
        start = time.perf_counter()
        k.module.integrate_kernel[blocks, threads_per_block](
            cuda.to_device(np.ascontiguousarray(Y0[:, lo:hi])),
            cuda.to_device(np.ascontiguousarray(P[:, lo:hi])),
            t0,
            t1,
            d_t_out,
            np.int64(k0),
            d_atol,
            float(rtol),
            cuda.to_device(np.ascontiguousarray(h0a[lo:hi])),
            np.int64(max_steps),
            float(h_min),
            bool(dense_output),
            float(fixed_step or 0.0),
            d_out["y_out"],
            d_out["y_final"],
            d_out["status"],
            d_out["t_reached"],
            d_out["n_steps"],
            d_out["n_rej"],
            d_out["h_last"],
            d_out["last_nonfinite"],
            d_out["h_now"],
            d_ext_idx,
            cuda.to_device(np.ascontiguousarray(ext_thr[:, lo:hi])),
            d_out["ext_day"],
            cuda.to_device(np.zeros(1, np.int64)),  # the work counter: the next trajectory to take
            cuda.to_device(work_order(None if expected_work is None else expected_work[lo:hi])),
        )
        for name, arr in out.items():
            if arr.size and m == N:
                d_out[name].copy_to_host(arr)  # one chunk: straight into the result, no second host copy
            elif arr.size:
                arr[..., lo:hi] = d_out[name].copy_to_host()
        seconds = time.perf_counter() - start
        if not k._compiled:
            k.compile_seconds += seconds  # the first launch compiles (its run time is included)
            k._compiled = True
        else:
            k.kernel_seconds += seconds
            k.launches += 1

    status = out["status"]
    redo = np.nonzero(status == _LU_UNSTABLE)[0]
    if redo.size and callable(cpu_kernels):
        cpu_kernels = cpu_kernels()
    if redo.size and cpu_kernels is not None:
        k.cpu_reruns += redo.size
        cpu = numba_kernels.integrate_batch_jit(
            cpu_kernels,
            t0,
            t1,
            Y0[:, redo],
            P[:, redo],
            t_out,
            rtol=rtol,
            atol=atol,
            h0=None if h0 is None else h0a[redo],
            max_steps=max_steps,
            h_min=h_min,
            dense_output=dense_output,
            fixed_step=fixed_step,
            extinct_index=extinct_index,
            extinct_threshold=None if ext_idx.size == 0 else ext_thr[:, redo],
        )
        out["y_out"][:, :, redo], out["y_final"][:, redo] = cpu.y, cpu.y_final
        out["ext_day"][:, redo] = cpu.extinct_day
        out["t_reached"][redo], out["n_steps"][redo], out["n_rej"][redo] = cpu.t_reached, cpu.n_steps, cpu.n_rejected
        out["h_last"][redo] = cpu.h_last
        status[redo] = cpu.status
        cpu_messages = dict(zip(redo.tolist(), cpu.message))
    else:
        cpu_messages = {}
    message = [""] * N
    for j in np.nonzero(status)[0]:
        if j in cpu_messages:
            message[j] = cpu_messages[j]
            continue
        why = " after non-finite stage values" if out["last_nonfinite"][j] else ""
        message[j] = _MESSAGES[int(status[j])].format(
            t=out["t_reached"][j], h=out["h_now"][j], why=why, max_steps=max_steps
        )
    status[status == numba_kernels.NON_FINITE_START] = Status.NON_FINITE
    status[status == _LU_UNSTABLE] = Status.SOLVER_FAILURE
    return BatchResult(
        out["y_out"],
        out["y_final"],
        status,
        message,
        out["t_reached"],
        out["n_steps"],
        out["n_rej"],
        out["h_last"],
        out["ext_day"],
    )
