"""Rodas4 on an NVIDIA GPU, one thread per trajectory (optional extra ``moa[gpu]``: numba-cuda).

The method is the compiled Rodas4 of :mod:`moa.solvers.rodas4.numba_kernels` -- same coefficients, controller,
landing rule, dense output, extinction rule and status codes -- and the model's kernels (rhs,
Jacobian into the sparse LU's slots, the straight-line LU) are printed by the same printers; only the
decorator differs (``@cuda.jit(device=True)`` for ``@njit``). The integrator template
``cuda_template.py`` runs :func:`moa.solvers.rodas4.integrator.integrate_one`'s loop in one GPU thread per trajectory,
its work arrays (about 14 kB for the 54-state full model) in per-thread local memory.

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
    "CHUNK_SIZE",
    "THREADS_PER_BLOCK",
]

_TEMPLATE = Path(__file__).with_name("cuda_template.py")
_DEVICE_DECORATOR = "@cuda.jit(device=True)"

#: Trajectories per kernel launch (outputs of one chunk: n_out x n x CHUNK_SIZE doubles on the card).
CHUNK_SIZE = 65_536
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


def kernel_source(rhs: list[sympy.Expr], y_syms, p_syms, plan: SparseLUPlan) -> str:
    """The text of the CUDA module: the template plus this system's device functions, printed by
    the numba backend's printers (see :func:`cuda_source`)."""
    return cuda_source(codegen.kernel_source(rhs, list(y_syms), list(p_syms), plan), plan)


def cuda_source(cpu_source: str, plan: SparseLUPlan) -> str:
    """The CUDA module made from the numba backend's kernel module text ``cpu_source``: the same generated
    functions (:func:`~moa.solvers.rodas4.codegen.kernel_body`), decorated ``@cuda.jit(device=True)``, after the
    CUDA template; the diagonal of the iteration matrix is added by a printed straight-line function (the CPU
    backend's index arrays are dropped)."""
    try:
        body = kernel_body(cpu_source)
    except ValueError:
        raise ValueError("cpu_source is not a module of the numba backend's current code generator") from None
    kept = [line for line in body.splitlines() if not line.startswith(("DIAG_SLOT =", "FILL_ROWS =", "FILL_COLS ="))]
    text = "\n".join(kept).replace(NJIT_DECORATOR, _DEVICE_DECORATOR)
    extra = _matrix_functions(plan) + _stage_tables() + [f"N_STATES = {plan.n}"]
    return _TEMPLATE.read_text() + text + "\n\n" + "\n".join(extra) + "\n"


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


def kernels(rhs: list[sympy.Expr], y_syms, p_syms, plan: SparseLUPlan | None = None) -> CudaKernels:
    """CUDA Rodas4 for ``dy/dt = rhs(y; p)`` given symbolically (``p_syms`` fixes the parameter rows)."""
    require()
    y_syms, p_syms = list(y_syms), list(p_syms)
    plan = numba_kernels.lu_plan(rhs, y_syms) if plan is None else plan
    return _load(kernel_source(list(rhs), y_syms, p_syms, plan), plan)


def _load(source: str, plan: SparseLUPlan) -> CudaKernels:
    path = numba_kernels.write_module(source)  # moa_rodas_<hash>.py in the cache folder, checked on load
    return CudaKernels(numba_kernels.load_module(path), plan, path)


@lru_cache(maxsize=16)
def kernels_for_model(compiled) -> CudaKernels:
    """CUDA Rodas4 for a :class:`moa.codegen.CompiledModel` (cached per model object), made from the
    numba backend's generated module for that model (written by sympy once, then read from the
    compiled-solver cache; numba's CPU compilation is not triggered)."""
    require()
    cpu = numba_kernels.kernels_for_model(compiled)  # its text, from the numba backend's cache (no sympy when cached)
    return _load(cuda_source(numba_kernels.read_verified(cpu.path), cpu.plan), cpu.plan)


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
    cpu_kernels=None,
) -> BatchResult:
    """Same contract as :func:`moa.solvers.rodas4.numba_kernels.integrate_batch_jit`, on the GPU.

    ``cpu_kernels``: numba CPU kernels of the same system (:class:`moa.solvers.rodas4.numba_kernels.JitKernels`, or a
    function returning them or None, called only when needed), to rerun the trajectories whose sparse
    LU needs the dense fallback (status 6 on the GPU); without them those are reported failed
    (status 4).
    """
    from numba import cuda

    if not (isinstance(chunk_size, (int, np.integer)) and chunk_size >= 1):
        raise ValueError(f"chunk_size={chunk_size!r}: must be an integer >= 1")
    if not (isinstance(threads_per_block, (int, np.integer)) and 1 <= threads_per_block <= 1024):
        raise ValueError(f"threads_per_block={threads_per_block!r}: must be an integer in 1..1024")
    t0, t1, Y0, P, t_out, atol_c, k0 = numba_kernels.checked_batch(k.n, t0, t1, y0, p, t_out, atol)
    n, N = Y0.shape
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
        blocks = -(-m // threads_per_block)
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
        )
        for name, arr in out.items():
            if arr.size:
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
