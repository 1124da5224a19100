"""Rodas4 compiled to machine code with numba (optional extra ``moa[fast]``).

The method is the one of :mod:`moa.solvers.rodas4.stepper_numpy` -- same coefficients, step-size controller,
landing rule, dense output and failure codes -- but the integrator and the model's kernels are
compiled. :mod:`moa.solvers.rodas4.codegen` prints the model's right-hand side, its Jacobian (straight into the
slots of the sparse LU) and the sparse LU itself (from :class:`~moa.solvers.rodas4.lu_plan.SparseLUPlan`) as
scalar Python; that module, which imports the integrator (:mod:`moa.solvers.rodas4.integrator`) and binds it to
its kernels, is saved in the cache directory and compiled by numba, which also caches the machine code on disk.
The first use of a model pays the compilation (tens of seconds for the full model), announced by one line on
stderr (:data:`COMPILING_NOTICE`) when numba has no machine code for it yet; later processes load
it in about a second, silently.

Where numpy's batched Rodas4 advances every trajectory one step per Python iteration (so each
step costs a few hundred numpy calls with their temporaries), the compiled integrator takes one
trajectory from ``t0`` to ``t1`` before the next: its state, stages and LU (a few kB) stay in the
L1 cache and no step pays interpreter overhead. Results agree with the numpy backend to rounding.

Cache directory: ``$MOA_CACHE_DIR`` if set, else ``~/.cache/moa``; a temporary directory, with a
:class:`~moa.errors.CacheWarning`, when that cannot be written (a full disk, a read-only folder).

The cache heals itself. A module is executed only after its text has been checked against the
sha256 its name carries (a truncated or hand-edited module is written again, and numba's machine
code for it removed); an index file that is empty, names no module or names a module that does not
fit the model is ignored and rewritten; numba cache files that cannot be loaded (truncated ``.nbi``
or ``.nbc``) are removed and that code compiled again, in the same run. Each repair is announced
with a ``CacheWarning`` naming the file. Only when numba cannot compile the model at all does the
caller fall back to the numpy backend.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickletools
import re
import sys
import traceback
import types
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import sympy

from ...codegen.cache import atomic_write, cache_dir, fall_back, fallback_dir, warn
from ...symbolic.model import jacobian_entries
from ..base import Status
from .codegen import generator_fingerprint, kernel_source
from .lu_plan import SparseLUPlan
from .stepper_numpy import BatchResult

__all__ = [
    "available",
    "require",
    "checked_batch",
    "lu_plan",
    "JitKernels",
    "kernels",
    "kernels_for_model",
    "integrate_batch_jit",
    "cache_dir",
]


def available() -> bool:
    """True when numba can be imported (and ``MOA_NO_JIT`` is not set)."""
    if os.environ.get("MOA_NO_JIT"):
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


class JitKernels:
    """A loaded compiled module for one system (see :func:`kernels`)."""

    def __init__(self, module, plan: SparseLUPlan, path: Path):
        self.module, self.plan, self.path = module, plan, path
        self.n = plan.n
        self.compiled = False  # set once integrate_all has been compiled or loaded

    def rhs(self, y, p) -> np.ndarray:
        """Right-hand side of one trajectory (for checks)."""
        out = np.empty(self.n)
        self.module._rhs(np.ascontiguousarray(y, float), np.ascontiguousarray(p, float), out)
        return out


_MODULE_NAME = re.compile(r"moa_rodas_[0-9a-f]{20}\.py")


def _module_name(source: str) -> str:
    """``moa_rodas_<first 20 hex digits of the sha256 of source>.py``."""
    return f"moa_rodas_{hashlib.sha256(source.encode()).hexdigest()[:20]}.py"


class _DamagedModule(Exception):
    """A cached module whose text does not hash to its name (truncated, edited, unreadable)."""


def read_verified(path: Path) -> str:
    """The text of a cached module, checked against the hash in its name."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _DamagedModule(f"{path} cannot be read ({exc})") from exc
    if _module_name(source) != path.name:
        raise _DamagedModule(f"{path} does not match the content hash in its name (truncated or edited)")
    return source


_read_verified = read_verified  # old private name, still used by tests/test_jit_cache.py


def _numba_cache_files(path: Path) -> list[Path]:
    """numba's index and data files for the module at ``path`` (in ``__pycache__`` beside it)."""
    return sorted((path.parent / "__pycache__").glob(f"{path.stem}.*.nb[ic]"))


def _pickles_intact(path: Path) -> bool:
    """Whether a numba cache file is whole: an index (``.nbi``) is two pickles back to back, a data
    file (``.nbc``) one; each must run to its STOP opcode and end the file. Nothing is unpickled."""
    try:
        stream = io.BytesIO(path.read_bytes())
        for _ in range(2 if path.suffix == ".nbi" else 1):
            for _op in pickletools.genops(stream):
                pass
        return stream.read() == b""
    except Exception:  # noqa: BLE001 -- any parse error means damage
        return False


def _remove(paths) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def write_module(source: str, folder: Path | None = None) -> Path:
    """Save ``source`` as ``moa_rodas_<hash>.py`` in the cache folder (unchanged if already there
    and intact, so numba's cache beside it stays valid). A damaged file of that name is written
    again and numba's machine code for it removed; a folder that cannot be written (full disk) is
    replaced by :func:`_fallback_dir`, with a warning."""
    folder = cache_dir() if folder is None else folder
    path = folder / _module_name(source)
    damaged = False
    if path.exists():
        try:
            read_verified(path)
            return path
        except _DamagedModule as exc:
            damaged = True
            warn(f"compiled-solver cache: {exc}; writing it again and removing its numba cache")
    try:
        if damaged:
            _remove(_numba_cache_files(path))
        atomic_write(path, source)
    except OSError as exc:
        return write_module(source, fall_back(folder, exc))
    return path


_write_module = write_module  # old private name, still used by tests/test_jit_cache.py


def load_module(path: Path):
    """Execute the cached module at ``path`` after checking its text against its name (the text
    checked is the text executed), and register it under its name, replacing an earlier load."""
    source = read_verified(path)
    module = types.ModuleType(path.stem)
    module.__file__ = str(path)
    sys.modules[path.stem] = module
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 -- our own generated code
    except BaseException:
        del sys.modules[path.stem]
        raise
    return module


def _import(path: Path, plan: SparseLUPlan) -> JitKernels:
    name = path.stem
    if name in sys.modules:  # already loaded (and checked) in this process, maybe from another folder
        return JitKernels(sys.modules[name], plan, path)
    return JitKernels(load_module(path), plan, path)


def _fits(module, plan: SparseLUPlan) -> bool:
    """Whether a loaded module was generated for this LU plan (guards against an index that names
    another model's module)."""
    return (
        getattr(module, "N_SLOTS", None) == plan.nnz_fill
        and np.array_equal(getattr(module, "DIAG_SLOT", None), plan.diag_slot)
        and np.array_equal(getattr(module, "FILL_ROWS", None), plan.fill_rows)
        and np.array_equal(getattr(module, "FILL_COLS", None), plan.fill_cols)
    )


def require() -> None:
    """Raise ImportError (saying how to install it) unless the compiled backend can be used."""
    if not available():
        raise ImportError("the compiled Rodas4 needs numba: pip install 'moa[fast]' (or unset MOA_NO_JIT)")


def kernels(
    rhs: list[sympy.Expr], y_syms, p_syms, plan: SparseLUPlan | None = None, jacobian=None, families=None
) -> JitKernels:
    """Compiled Rodas4 for the autonomous system ``dy/dt = rhs(y; p)`` given symbolically.

    ``p_syms`` fixes the order of the rows of the parameter matrix passed to
    :func:`integrate_batch_jit`. ``jacobian``/``families``: the model's Jacobian entries and output families
    when the system is a model's (:func:`kernels_for_model`), so nothing is derived or cse'd twice.
    Requires numba (``pip install moa[fast]``).
    """
    require()
    y_syms, p_syms = list(y_syms), list(p_syms)
    plan = lu_plan(rhs, y_syms) if plan is None else plan
    return _import(write_module(kernel_source(list(rhs), y_syms, p_syms, plan, jacobian, families)), plan)


def lu_plan(rhs, y_syms) -> SparseLUPlan:
    """The sparse LU plan of the Jacobian pattern of ``rhs`` in ``y_syms`` (derived with sympy)."""
    rows, cols, _ = jacobian_entries(rhs, y_syms)
    return SparseLUPlan(len(y_syms), rows, cols)


@lru_cache(maxsize=16)
def _kernels_for_compiled(compiled, held: tuple[int, ...] = ()) -> JitKernels:
    require()
    plan = SparseLUPlan(compiled.n_species, compiled.jac_rows, compiled.jac_cols)
    # Writing the kernels takes sympy ~2 s for the full model (more for a held variant, which is cse'd
    # afresh): remember which module a model's generated numpy code (which fixes its equations and symbol
    # order) and its held rows led to.
    key = hashlib.sha256(
        "\n".join(
            [
                generator_fingerprint(),
                sympy.__version__,
                compiled.rhs_T.source,
                compiled.jac_values_T.source,
                repr(compiled.jac_rows.tolist()),
                repr(compiled.jac_cols.tolist()),
                repr(compiled.parameter_names),
            ]
            + ([f"held rows {list(held)}"] if held else [])
        ).encode()
    ).hexdigest()[:20]
    index = cache_dir() / f"model_{key}.txt"
    k = _from_index(index, plan)
    if k is not None:
        return k
    rhs, y_syms, p_syms = compiled.symbolic
    jacobian = compiled.model.jacobian()
    if held:
        # rows of held states are zero in the rate and in the Jacobian; the pattern (and so the LU plan) is kept
        rhs = [sympy.Integer(0) if i in held else e for i, e in enumerate(rhs)]
        jacobian = type(jacobian)(
            jacobian.rows,
            jacobian.cols,
            [sympy.Integer(0) if int(r) in held else v for r, v in zip(jacobian.rows, jacobian.values)],
        )
        k = kernels(rhs, y_syms, p_syms, plan, jacobian=jacobian)
    else:
        k = kernels(rhs, y_syms, p_syms, plan, jacobian=jacobian, families=compiled.families)
    index = k.path.parent / index.name  # beside the module (the fallback folder on a full disk)
    try:
        atomic_write(index, k.path.name)
    except OSError as exc:
        warn(
            f"cannot write the compiled-solver index {index} ({exc}): later runs will write the kernels "
            "again with sympy; free space there or set MOA_CACHE_DIR to a writable folder"
        )
    return k


def _from_index(index: Path, plan: SparseLUPlan) -> JitKernels | None:
    """The kernels the index file names, or None (to rebuild them) when there is no index; an
    index that is damaged or names a damaged or foreign module is reported and then rebuilt."""
    try:
        name = index.read_text().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        warn(f"compiled-solver cache: index {index} cannot be read ({exc}); rebuilding it")
        return None
    if not _MODULE_NAME.fullmatch(name):
        warn(f"compiled-solver cache: index {index} holds {name[:60]!r}, not a module name; rebuilding it")
        return None
    path = index.parent / name
    if not path.exists():
        warn(f"compiled-solver cache: index {index} names {name}, which is missing; rebuilding it")
        return None
    try:
        k = _import(path, plan)
    except _DamagedModule:
        return None  # kernels() writes the module again under the same name and says so
    if not _fits(k.module, plan):
        warn(f"compiled-solver cache: index {index} names {path}, which was built for another model; rebuilding it")
        return None
    return k


def kernels_for_model(compiled, compile_now: bool = False, held: Sequence[int] = ()) -> JitKernels:
    """Compiled Rodas4 for a :class:`moa.codegen.CompiledModel` (cached per model object).

    ``compile_now``: compile (or load from the disk cache) at once, on a one-step problem, so that a
    model numba cannot compile fails here rather than inside a simulation. ``held``: indices of states held
    constant (their rows of the rate and the Jacobian are zero): a separate module, used by the quasi-steady
    start (:func:`moa.steady_state.quasi_steady_state`).
    """
    held = tuple(sorted({int(i) for i in held}))
    bad = [i for i in held if not 0 <= i < compiled.n_species]
    if bad:
        raise ValueError(f"held={bad}: state indices must lie in 0..{compiled.n_species - 1}")
    k = _kernels_for_compiled(compiled, held)
    if compile_now and not k.compiled:
        if not _machine_code_cached(k.path):
            print(COMPILING_NOTICE, file=sys.stderr, flush=True)
        _compile_healing(k, compiled.n_parameters)
        k.compiled = True
    return k


#: One line on stderr when numba has to compile the model (not when it loads its cached machine code).
COMPILING_NOTICE = "moa: compiling the model for the numba solver (first run, about 30 s)..."


def _machine_code_cached(path: Path) -> bool:
    """Whether numba has an index of machine code for the integrator of the module at ``path``, for
    this Python (its file names carry the version); without one the first call compiles."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    return any((path.parent / "__pycache__").glob(f"{path.stem}.integrate_all-*.{tag}.nbi"))


def _first_call(k: JitKernels, n_parameters: int) -> None:
    """One tiny step, which makes numba load the machine code from its cache or compile it."""
    with np.errstate(all="ignore"):
        integrate_batch_jit(k, 0.0, 1e-9, np.zeros((k.n, 1)), np.ones((n_parameters, 1)), [], fixed_step=1e-9)


def _raised_by_numba_cache(exc: BaseException) -> bool:
    """Whether ``exc`` came out of numba's cache loading (``numba/core/caching.py``)."""
    marker = os.path.join("numba", "core", "caching.py")
    return any(frame.f_code.co_filename.endswith(marker) for frame, _ in traceback.walk_tb(exc.__traceback__))


# errors of a folder that cannot take numba's machine code (full disk, quota, read-only)
_UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _compile_healing(k: JitKernels, n_parameters: int) -> None:
    """Compile (or load) ``k`` on a first call, repairing the cache when that fails because of it.

    numba's cache files that cannot be loaded are removed (the damaged ones first, then all of the
    module's) and the module loaded afresh and compiled again; a folder where numba cannot save its
    machine code is swapped for :func:`_fallback_dir`. Anything else (an error that did not come out
    of numba's cache), or a failure after the repair, is raised: numba cannot compile this model.
    ``k`` is updated in place (it is held by a cache).
    """
    for attempt in range(2):
        try:
            _first_call(k, n_parameters)
            return
        except OSError as exc:
            if exc.errno not in _UNWRITABLE or k.path.parent == fallback_dir():
                raise
            path = write_module(read_verified(k.path), fall_back(k.path.parent, exc))
        except Exception as exc:  # noqa: BLE001 -- numba's and pickle's errors have no common base
            files = _numba_cache_files(k.path)
            bad = [f for f in files if not _pickles_intact(f)] if attempt == 0 else []
            if not files or not (bad or _raised_by_numba_cache(exc)):
                raise  # a compilation error, not a damaged cache
            removed = ", ".join(map(str, bad)) if bad else f"all {len(files)} numba cache files of {k.path}"
            warn(
                f"compiled-solver cache: numba's machine code for {k.path} could not be loaded "
                f"({type(exc).__name__}: {str(exc)[:200]}); removing {removed} and compiling again"
            )
            path = k.path
            try:
                _remove(bad or files)
            except OSError as rm_exc:  # cannot be removed: compile the module in a fresh folder
                path = write_module(read_verified(k.path), fall_back(k.path.parent, rm_exc))
        k.module, k.path = load_module(path), path
    _first_call(k, n_parameters)


#: The compiled integrator's own code for a trajectory non-finite at its start (reported as Status.NON_FINITE,
#: with its own message); its other codes are Status values.
NON_FINITE_START = 5

STATUS_MESSAGES = {
    Status.NON_FINITE: "non-finite rhs or Jacobian at t={t:.10g}",
    Status.STEP_UNDERFLOW: "step size underflow (h={h:.3g}){why} at t={t:.10g}",
    Status.TOO_MANY_STEPS: "max_steps={max_steps} exceeded at t={t:.10g}",
    NON_FINITE_START: "non-finite initial state, rhs or Jacobian at t={t:.6g}",
}


def checked_batch(n_states: int, t0, t1, y0, p, t_out, atol):
    """The argument checks and conversions every compiled Rodas4 driver (numba, CUDA) does first:
    ``(t0, t1, Y0 (n, N), P (m, N), t_out clipped to [t0, t1], atol per state, k0)`` where ``k0`` is
    the first output strictly after ``t0``."""
    t0, t1 = float(t0), float(t1)
    if not t1 >= t0:
        raise ValueError("integrate_batch needs t1 >= t0")
    # a C-ordered float array (moa.simulate's usual input) goes to the kernels as it is, not copied
    Y0 = np.atleast_2d(np.asarray(y0, dtype=float, order="C"))
    P = np.atleast_2d(np.asarray(p, dtype=float, order="C"))
    n, N = Y0.shape
    if n != n_states:
        raise ValueError(f"y0 has {n} states but the kernels were built for {n_states}")
    if P.shape[1] != N:
        raise ValueError(f"p has {P.shape[1]} columns but y0 has {N}")
    t_out = np.atleast_1d(np.asarray(t_out, dtype=float))
    slack = 64 * np.finfo(float).eps * max(abs(t0), abs(t1), 1e-300)
    if t_out.size and (np.any(np.diff(t_out) < 0) or t_out[0] < t0 - slack or t_out[-1] > t1 + slack):
        raise ValueError("t_out must be sorted and lie within [t0, t1]")
    t_out = np.ascontiguousarray(np.clip(t_out, t0, t1))
    atol_c = np.ascontiguousarray(
        np.broadcast_to(np.asarray(atol, dtype=float).ravel() if np.ndim(atol) else float(atol), (n,)), dtype=float
    )
    k0 = int(np.searchsorted(t_out, t0, side="right"))
    return t0, t1, Y0, P, t_out, atol_c, k0


def integrate_batch_jit(
    k: JitKernels,
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
) -> BatchResult:
    """Same contract as :func:`moa.solvers.rodas4.stepper_numpy.integrate_batch` (extinction included), on compiled
    kernels ``k``."""
    t0, t1, Y0, P, t_out, atol_c, k0 = checked_batch(k.n, t0, t1, y0, p, t_out, atol)
    n, N = Y0.shape
    y_out = np.full((t_out.size, n, N), np.nan)
    y_out[:k0] = Y0[None]
    ext_idx = np.ascontiguousarray(np.zeros(0, np.int64) if extinct_index is None else extinct_index, dtype=np.int64)
    ext_thr = np.ascontiguousarray(
        np.zeros((0, N))
        if extinct_threshold is None or ext_idx.size == 0
        else np.broadcast_to(np.asarray(extinct_threshold, float).reshape(ext_idx.size, -1), (ext_idx.size, N)),
        dtype=float,
    )
    ext_day = np.full((ext_idx.size, N), np.nan)
    if t1 == t0:
        return BatchResult(
            y_out,
            Y0.copy(),
            np.zeros(N, np.int64),
            [""] * N,
            np.full(N, t0),
            np.zeros(N, np.int64),
            np.zeros(N, np.int64),
            np.zeros(N) if h0 is None else np.asarray(h0, float).copy(),
            ext_day,
        )
    h0a = np.full(N, np.nan) if h0 is None else np.ascontiguousarray(np.broadcast_to(np.asarray(h0, float), (N,)))
    y_final = np.empty((n, N))
    status = np.zeros(N, np.int64)
    t_reached = np.empty(N)
    n_steps = np.zeros(N, np.int64)
    n_rej = np.zeros(N, np.int64)
    h_last = np.full(N, np.nan)
    last_nonfinite = np.zeros(N, dtype=np.bool_)
    h_now = np.zeros(N)
    k.module.integrate_all(
        Y0,
        P,
        t0,
        t1,
        t_out,
        k0,
        atol_c,
        float(rtol),
        h0a,
        int(max_steps),
        float(h_min),
        bool(dense_output),
        float(fixed_step or 0.0),
        y_out,
        y_final,
        status,
        t_reached,
        n_steps,
        n_rej,
        h_last,
        last_nonfinite,
        h_now,
        ext_idx,
        ext_thr,
        ext_day,
    )
    message = [""] * N
    for j in np.nonzero(status)[0]:
        why = " after non-finite stage values" if last_nonfinite[j] else ""
        message[j] = STATUS_MESSAGES[int(status[j])].format(t=t_reached[j], h=h_now[j], why=why, max_steps=max_steps)
    status[status == NON_FINITE_START] = Status.NON_FINITE
    return BatchResult(y_out, y_final, status, message, t_reached, n_steps, n_rej, h_last, ext_day)
