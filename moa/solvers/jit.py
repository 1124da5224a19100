"""Rodas4 compiled to machine code with numba (optional extra ``moa[fast]``).

The method is the one of :mod:`moa.solvers.rodas` -- same coefficients, step-size controller,
landing rule, dense output and failure codes -- but the integrator and the model's kernels are
compiled. sympy writes the model's right-hand side, its Jacobian (straight into the slots of the
sparse LU) and the sparse LU itself (from :class:`~moa.solvers.rodas.SparseLUPlan`) as scalar
Python; that text, appended to the integrator template ``_jit_rodas.py``, is saved as a module in
the cache directory and compiled by numba, which also caches the machine code on disk. The first
use of a model pays the compilation (tens of seconds for the full model); later processes load it
in about a second.

Where numpy's batched Rodas4 advances every trajectory one step per Python iteration (so each
step costs a few hundred numpy calls with their temporaries), the compiled integrator takes one
trajectory from ``t0`` to ``t1`` before the next: its state, stages and LU (a few kB) stay in the
L1 cache and no step pays interpreter overhead. Results agree with the numpy backend to rounding.

Cache directory: ``$MOA_CACHE_DIR`` if set, else ``~/.cache/moa``; a temporary directory when
neither is writable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import sympy

from ..engine import _ScalarPrinter
from . import rodas
from .rodas import RODAS4, BatchResult, SparseLUPlan

__all__ = ["available", "require", "JitKernels", "kernels", "kernels_for_model", "integrate_batch_jit", "cache_dir"]

_TEMPLATE = Path(__file__).with_name("_jit_rodas.py")


def available() -> bool:
    """True when numba can be imported (and ``MOA_NO_JIT`` is not set)."""
    if os.environ.get("MOA_NO_JIT"):
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    """Where generated kernel modules (and numba's machine code beside them) are kept."""
    for candidate in (os.environ.get("MOA_CACHE_DIR"), Path.home() / ".cache" / "moa"):
        if not candidate:
            continue
        path = Path(candidate) / "jit"
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
            return path
        except OSError:
            continue
    path = Path(tempfile.gettempdir()) / f"moa-jit-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    path.mkdir(parents=True, exist_ok=True)
    return path


_DECORATOR = '@njit(cache=True, error_model="numpy")'


def _function(printer, name: str, args: str, y_syms, p_syms, outputs: list[tuple[str, sympy.Expr]]) -> list[str]:
    """``def name(args)``: bind states and parameters by name, cse, then ``target = expr`` lines."""
    exprs = [e for _, e in outputs]
    replacements, reduced = sympy.cse(exprs, symbols=sympy.numbered_symbols("_x"), optimizations="basic")
    lines = [_DECORATOR, f"def {name}({args}):"]
    used = set().union(*(e.free_symbols for e in exprs)) if exprs else set()
    lines += [f"    {s.name} = y[{i}]" for i, s in enumerate(y_syms) if s in used]
    lines += [f"    {s.name} = p[{i}]" for i, s in enumerate(p_syms) if s in used]
    lines += [f"    {sym} = {printer.doprint(e)}" for sym, e in replacements]
    lines += [f"    {target} = {printer.doprint(e)}" for (target, _), e in zip(outputs, reduced)]
    if len(lines) == 2:
        lines.append("    pass")
    return lines


def _lu_functions(plan: SparseLUPlan) -> list[str]:
    """Scalar straight-line factorisation and solve, printed from the plan's operation lists (the
    same operations, in the same order, as its numpy kernels)."""
    f = [_DECORATOR, "def _factor(a, d):", "    g = 0.0"]
    for op in plan.factor_ops:
        if op[0] == "pivot":
            f.append(f"    d[{op[1]}] = 1.0 / a[{op[2]}]")
        elif op[0] == "scale":
            f.append(f"    a[{op[1]}] *= d[{op[2]}]")
            f.append(f"    g = max(g, abs(a[{op[1]}]))")   # largest multiplier, for the pivot check
        else:
            f.append(f"    a[{op[1]}] -= a[{op[2]}] * a[{op[3]}]")
    f.append("    return g")
    s = [_DECORATOR, "def _solve(a, d, b):"]
    for op in plan.solve_ops:
        if op[0] == "sub":
            s.append(f"    b[{op[1]}] -= a[{op[2]}] * b[{op[3]}]")
        else:
            s.append(f"    b[{op[1]}] *= d[{op[2]}]")
    if len(s) == 2:
        s.append("    pass")
    return f + [""] + s


def kernel_source(rhs: list[sympy.Expr], y_syms: list[sympy.Symbol], p_syms: list[sympy.Symbol],
                  plan: SparseLUPlan) -> str:
    """The text of the compiled module: the integrator template plus this system's kernels."""
    n = len(y_syms)
    if len(rhs) != n or plan.n != n:
        raise ValueError(f"rhs has {len(rhs)} entries, states {n}, LU plan {plan.n}")
    printer = _ScalarPrinter({"fully_qualified_modules": False})  # the engine's one-trajectory printer
    jac = sympy.Matrix(rhs).jacobian(y_syms)
    rhs_out = [(f"out[{i}]", e) for i, e in enumerate(rhs)]
    jac_out = [(f"jv[{plan.jac_slot[k]}]", jac[int(r), int(c)])
               for k, (r, c) in enumerate(zip(plan.jac_rows, plan.jac_cols))]
    if plan._jac_has_dupes:
        raise ValueError("the Jacobian pattern has duplicate entries")
    body = ["", "", "# ---- generated kernels " + "-" * 70]
    body += _function(printer, "_rhs", "y, p, out", y_syms, p_syms, rhs_out) + [""]
    body += _function(printer, "_rhs_jac", "y, p, out, jv", y_syms, p_syms, rhs_out + jac_out) + [""]
    body += _lu_functions(plan) + [""]
    imports = sorted({f"from {m} import {name}" for m, names in printer.module_imports.items()
                      for name in names})
    consts = _method_constants() + [
        f"N_SLOTS = {plan.nnz_fill}",
        f"DIAG_SLOT = np.array({plan.diag_slot.tolist()}, dtype=np.int64)",
        f"FILL_ROWS = np.array({plan.fill_rows.tolist()}, dtype=np.int64)",
        f"FILL_COLS = np.array({plan.fill_cols.tolist()}, dtype=np.int64)",
    ]
    return _TEMPLATE.read_text() + "\n".join(body + imports + consts) + "\n"


def _method_constants() -> list[str]:
    """Rodas4's coefficients and the controller's constants, taken from the numpy backend so that
    both implementations use one set of numbers."""
    t = RODAS4
    lines = [f"GAMMA = {t.gamma!r}"]
    for i in range(1, 6):   # stage i + 1; its argument weights A only up to stage 5 (stage 6's is stage 5's + U5)
        lines += [f"A{i + 1}{j + 1} = {v!r}" for j, v in enumerate(t.a[i])] if i < 5 else []
        lines += [f"C{i + 1}{j + 1} = {v!r}" for j, v in enumerate(t.c[i])]
    lines += [f"H2{j + 1} = {v!r}" for j, v in enumerate(t.h2)] + [f"H3{j + 1} = {v!r}" for j, v in enumerate(t.h3)]
    lines += [f"SAFE = {rodas._SAFE!r}", f"FAC_MIN = {rodas._FAC_MIN!r}", f"FAC_MAX = {rodas._FAC_MAX!r}",
              f"GROWTH_LIMIT = {rodas._GROWTH_LIMIT!r}"]
    return lines


class JitKernels:
    """A loaded compiled module for one system (see :func:`kernels`)."""

    def __init__(self, module, plan: SparseLUPlan, path: Path):
        self.module, self.plan, self.path = module, plan, path
        self.n = plan.n
        self.compiled = False   # set once integrate_all has been compiled or loaded

    def rhs(self, y, p) -> np.ndarray:
        """Right-hand side of one trajectory (for checks)."""
        out = np.empty(self.n)
        self.module._rhs(np.ascontiguousarray(y, float), np.ascontiguousarray(p, float), out)
        return out


def _write_module(source: str) -> Path:
    """Save ``source`` as ``moa_rodas_<hash>.py`` in the cache folder (unchanged if already there,
    so numba's cache beside it stays valid)."""
    path = cache_dir() / f"moa_rodas_{hashlib.sha256(source.encode()).hexdigest()[:20]}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(source)
        os.replace(tmp, path)   # atomic: a concurrent process sees the old or the new file whole
    return path


def _import(path: Path, plan: SparseLUPlan) -> JitKernels:
    name = path.stem
    if name in sys.modules:     # already imported in this process (possibly from another cache folder)
        return JitKernels(sys.modules[name], plan, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    return JitKernels(module, plan, path)


def require() -> None:
    """Raise ImportError (saying how to install it) unless the compiled backend can be used."""
    if not available():
        raise ImportError("the compiled Rodas4 needs numba: pip install 'moa[fast]' (or unset MOA_NO_JIT)")


def kernels(rhs: list[sympy.Expr], y_syms, p_syms, plan: SparseLUPlan | None = None) -> JitKernels:
    """Compiled Rodas4 for the autonomous system ``dy/dt = rhs(y; p)`` given symbolically.

    ``p_syms`` fixes the order of the rows of the parameter matrix passed to
    :func:`integrate_batch_jit`. Requires numba (``pip install moa[fast]``).
    """
    require()
    y_syms, p_syms = list(y_syms), list(p_syms)
    if plan is None:
        jac = sympy.Matrix(rhs).jacobian(y_syms)
        nz = [(i, j) for i in range(len(y_syms)) for j in range(len(y_syms)) if jac[i, j] != 0]
        plan = SparseLUPlan(len(y_syms), [i for i, _ in nz], [j for _, j in nz])
    return _import(_write_module(kernel_source(list(rhs), y_syms, p_syms, plan)), plan)


@lru_cache(maxsize=16)
def _kernels_for_compiled(compiled) -> JitKernels:
    require()
    plan = SparseLUPlan(compiled.n_species, compiled.jac_rows, compiled.jac_cols)
    # Writing the kernels takes sympy ~2 s for the full model: remember which module a model's
    # generated numpy code (which fixes its equations and symbol order) led to.
    key = hashlib.sha256("\n".join([
        _TEMPLATE.read_text(), sympy.__version__, compiled.rhs_T.source, compiled.jac_values_T.source,
        repr(compiled.jac_rows.tolist()), repr(compiled.jac_cols.tolist()), repr(compiled.parameter_names),
    ]).encode()).hexdigest()[:20]
    index = cache_dir() / f"model_{key}.txt"
    if index.exists():
        path = index.parent / index.read_text().strip()
        if path.exists():
            return _import(path, plan)
    rhs, y_syms, p_syms = compiled.symbolic
    k = kernels(rhs, y_syms, p_syms, plan)
    tmp = index.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(k.path.name)
    os.replace(tmp, index)
    return k


def kernels_for_model(compiled, compile_now: bool = False) -> JitKernels:
    """Compiled Rodas4 for a :class:`moa.engine.CompiledModel` (cached per model object).

    ``compile_now``: compile (or load from the disk cache) at once, on a one-step problem, so that a
    model numba cannot compile fails here rather than inside a simulation.
    """
    k = _kernels_for_compiled(compiled)
    if compile_now and not k.compiled:
        n, m = compiled.n_species, compiled.n_parameters
        with np.errstate(all="ignore"):
            integrate_batch_jit(k, 0.0, 1e-9, np.zeros((n, 1)), np.ones((m, 1)), [], fixed_step=1e-9)
        k.compiled = True
    return k


_MESSAGES = {
    1: "non-finite rhs or Jacobian at t={t:.10g}",
    2: "step size underflow (h={h:.3g}){why} at t={t:.10g}",
    3: "max_steps={max_steps} exceeded at t={t:.10g}",
    5: "non-finite initial state, rhs or Jacobian at t={t:.6g}",
}


def integrate_batch_jit(k: JitKernels, t0: float, t1: float, y0, p, t_out, *, rtol=1e-6, atol=1e-9, h0=None,
                        max_steps=200_000, h_min=1e-14, dense_output: bool = True,
                        fixed_step: float | None = None, extinct_index=None,
                        extinct_threshold=None) -> BatchResult:
    """Same contract as :func:`moa.solvers.rodas.integrate_batch` (extinction included), on compiled
    kernels ``k``."""
    t0, t1 = float(t0), float(t1)
    if not t1 >= t0:
        raise ValueError("integrate_batch needs t1 >= t0")
    Y0 = np.array(y0, dtype=float, ndmin=2, order="C")
    P = np.array(p, dtype=float, ndmin=2, order="C")
    n, N = Y0.shape
    if n != k.n:
        raise ValueError(f"y0 has {n} states but the kernels were built for {k.n}")
    if P.shape[1] != N:
        raise ValueError(f"p has {P.shape[1]} columns but y0 has {N}")
    t_out = np.atleast_1d(np.asarray(t_out, dtype=float))
    slack = 64 * np.finfo(float).eps * max(abs(t0), abs(t1), 1e-300)
    if t_out.size and (np.any(np.diff(t_out) < 0) or t_out[0] < t0 - slack or t_out[-1] > t1 + slack):
        raise ValueError("t_out must be sorted and lie within [t0, t1]")
    t_out = np.ascontiguousarray(np.clip(t_out, t0, t1))
    atol_c = np.ascontiguousarray(np.broadcast_to(np.asarray(atol, dtype=float).ravel()
                                                  if np.ndim(atol) else float(atol), (n,)), dtype=float)
    y_out = np.full((t_out.size, n, N), np.nan)
    k0 = int(np.searchsorted(t_out, t0, side="right"))
    y_out[:k0] = Y0[None]
    ext_idx = np.ascontiguousarray(np.zeros(0, np.int64) if extinct_index is None else extinct_index, dtype=np.int64)
    ext_thr = np.ascontiguousarray(np.zeros((0, N)) if extinct_threshold is None or ext_idx.size == 0 else np.broadcast_to(
        np.asarray(extinct_threshold, float).reshape(ext_idx.size, -1), (ext_idx.size, N)), dtype=float)
    ext_day = np.full((ext_idx.size, N), np.nan)
    if t1 == t0:
        return BatchResult(y_out, Y0.copy(), np.zeros(N, np.int64), [""] * N, np.full(N, t0),
                           np.zeros(N, np.int64), np.zeros(N, np.int64),
                           np.zeros(N) if h0 is None else np.asarray(h0, float).copy(), ext_day)
    h0a = np.full(N, np.nan) if h0 is None else np.ascontiguousarray(np.broadcast_to(np.asarray(h0, float), (N,)))
    y_final = np.empty((n, N))
    status = np.zeros(N, np.int64)
    t_reached = np.empty(N)
    n_steps = np.zeros(N, np.int64)
    n_rej = np.zeros(N, np.int64)
    h_last = np.full(N, np.nan)
    last_nonfinite = np.zeros(N, dtype=np.bool_)
    h_now = np.zeros(N)
    k.module.integrate_all(Y0, P, t0, t1, t_out, k0, atol_c, float(rtol), h0a, int(max_steps), float(h_min),
                           bool(dense_output), float(fixed_step or 0.0), y_out, y_final, status, t_reached,
                           n_steps, n_rej, h_last, last_nonfinite, h_now, ext_idx, ext_thr, ext_day)
    message = [""] * N
    for j in np.nonzero(status)[0]:
        why = " after non-finite stage values" if last_nonfinite[j] else ""
        message[j] = _MESSAGES[int(status[j])].format(t=t_reached[j], h=h_now[j], why=why, max_steps=max_steps)
    status[status == 5] = 1
    return BatchResult(y_out, y_final, status, message, t_reached, n_steps, n_rej, h_last, ext_day)
