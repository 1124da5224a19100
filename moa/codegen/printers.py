"""Printers: sympy expressions of the symbolic model as Python source, in two dialects.

* numpy, batched and component-major (:class:`NumpyBatchedPrinter`, :func:`numpy_function_source`):
  ``fname(t, Y[n, N], P[m, N]) -> out[n_out, N]``, one numpy operation per line for all N trajectories;
* scalar (:class:`ScalarPrinter`, :func:`scalar_function_source`): plain floats and the ``math`` module, for one
  trajectory (the scipy backend) and, through :mod:`moa.solvers.rodas4.codegen`, for numba.

Printers only print. Common subexpressions are found once per output family (:class:`OutputFamilies`) and every
dialect prints that one result; a printer never derives an equation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

import sympy
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

__all__ = [
    "NumpyBatchedPrinter",
    "ScalarPrinter",
    "CseResult",
    "cse",
    "OutputFamilies",
    "numpy_function_source",
    "scalar_function_source",
    "compile_source",
]

#: ``(replacements [(symbol, expression)], reduced outputs)`` as ``sympy.cse`` returns them.
CseResult = tuple[list[tuple[sympy.Symbol, sympy.Expr]], list[sympy.Expr]]


def cse(outputs: Sequence[sympy.Expr]) -> CseResult:
    """sympy's common-subexpression elimination as every printer of moa uses it (``_x0, _x1, ...``, basic
    optimisations); the printed text, and so the floating-point operations, depend on these settings."""
    return sympy.cse(list(outputs), symbols=sympy.numbered_symbols("_x"), optimizations="basic")


class OutputFamilies:
    """Output families of one model, each put through :func:`cse` once, on first use, and kept.

    A family is a list of expressions printed together (one generated function per dialect): for a model
    (:class:`moa.codegen.compiled_model.CompiledModel`) ``rhs``, ``jacobian`` (values on the sparsity pattern),
    ``rhs_jacobian`` (both, for numba's combined kernel, which then shares their subexpressions),
    ``observables``, ``initial_values``, ``dose_per_mg`` and ``extinction_thresholds``. The numpy, scalar and
    numba printers of a family all print the same cse result.
    """

    def __init__(self, outputs: dict[str, Callable[[], list[sympy.Expr]]]):
        self._outputs = outputs
        self._done: dict[str, CseResult] = {}

    def outputs(self, name: str) -> list[sympy.Expr]:
        """The family's expressions (not reduced)."""
        return list(self._outputs[name]())

    def cse(self, name: str) -> CseResult:
        """The family's cse result, computed on the first call."""
        if name not in self._done:
            self._done[name] = cse(self.outputs(name))
        return self._done[name]


class NumpyBatchedPrinter(NumPyPrinter):
    """numpy source on arrays of trajectories: Max/Min as nested elementwise calls, Heaviside as np.heaviside."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": False})

    def _print_DiracDelta(self, expr):
        # derivative of a step (Heaviside): zero except on a set of measure zero
        return f"(0.0*{self._print(expr.args[0])})"

    def _fold(self, ufunc: str, expr) -> str:
        """Max/Min of several arguments as nested elementwise calls (broadcasts scalars and arrays)."""
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"np.{ufunc}({out}, {a})"
        return out

    def _print_Max(self, expr):
        return self._fold("maximum", expr)

    def _print_Min(self, expr):
        return self._fold("minimum", expr)

    def _print_Pi(self, expr):
        return "np.pi"

    def _print_Heaviside(self, expr):
        return f"np.heaviside({self._print(expr.args[0])}, 0.5)"


class ScalarPrinter(PythonCodePrinter):
    """Plain-float Python (math module): for one trajectory this beats numpy's per-call overhead."""

    def _print_Max(self, expr):
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Min(self, expr):
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Heaviside(self, expr):
        x = self._print(expr.args[0])
        return f"(1.0 if ({x}) > 0 else (0.5 if ({x}) == 0 else 0.0))"

    def _print_DiracDelta(self, expr):
        return "0.0"


def numpy_function_source(
    fname: str, reduced: CseResult, y_syms: list[sympy.Symbol], p_syms: list[sympy.Symbol], n_out: int, index: list[str]
) -> tuple[str, dict]:
    """Source for ``fname(t, Y, P) -> out`` with ``out[index[k]] = outputs[k]`` from a family's cse result,
    and the names it needs from other modules (``{module: [names]}``)."""
    printer = NumpyBatchedPrinter()
    replacements, outputs = reduced
    lines = [f"def {fname}(t, Y, P):"]
    lines += [f"    {s.name} = Y[{i}]" for i, s in enumerate(y_syms)]
    lines += [f"    {s.name} = P[{i}]" for i, s in enumerate(p_syms)]
    lines += [f"    {sym} = {printer.doprint(expr)}" for sym, expr in replacements]
    lines.append(f"    out = np.zeros(({n_out}, Y.shape[1]), dtype=float)")
    for idx, expr in zip(index, outputs):
        if expr != 0:
            lines.append(f"    out[{idx}] = {printer.doprint(expr)}")
    lines.append("    return out")
    return "\n".join(lines), {m: sorted(names) for m, names in printer.module_imports.items()}


def scalar_function_source(
    fname: str, reduced: CseResult, y_syms: list[sympy.Symbol], p_syms: list[sympy.Symbol]
) -> tuple[str, dict]:
    """Source for ``fname(Y, P) -> list[float]`` on plain sequences of floats (one trajectory) from a family's
    cse result, and the names it needs from other modules."""
    printer = ScalarPrinter({"fully_qualified_modules": False})
    replacements, outputs = reduced
    lines = [f"def {fname}(Y, P):"]
    if y_syms:
        lines.append(f"    {', '.join(s.name for s in y_syms)}, = Y")
    if p_syms:
        lines.append(f"    {', '.join(s.name for s in p_syms)}, = P")
    lines += [f"    {sym} = {printer.doprint(expr)}" for sym, expr in replacements]
    lines.append("    return [" + ", ".join(printer.doprint(e) for e in outputs) + "]")
    return "\n".join(lines), {m: sorted(names) for m, names in printer.module_imports.items()}


def compile_source(fname: str, source: str, module_imports: dict, namespace: dict) -> Callable:
    """exec generated source; the printer emits bare names (exp, log, maximum), bound from their modules.
    The function keeps its text as ``.source``."""
    namespace = dict(namespace)
    for module, names in module_imports.items():
        imported = importlib.import_module(module)
        namespace.update({name: getattr(imported, name) for name in names})
    exec(compile(source, f"<moa generated {fname}>", "exec"), namespace)
    func = namespace[fname]
    func.source = source
    return func
