"""Units: one pint registry for moa, and a strict unit check of sympy expressions.

The check is stricter than dimensional analysis. Two quantities may only be added when
their units are *identical up to a factor of exactly 1*: ``1/h + 1/day`` has consistent
dimensions but is refused, because adding them without a conversion factor is the bug we
want to catch. Conversions (molecules per cell to nM, mg to nmol) must therefore appear in
the model as explicit parameters with their own units and sources.
"""

from __future__ import annotations

import functools
import math

import pint
import sympy

from ..errors import UnitError

__all__ = ["registry", "parse_unit", "unit_of", "same_unit", "format_unit"]


@functools.lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """The shared registry, with the counting units of this domain added."""
    ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    # Cells are counted, never converted into moles: a dimension of their own.
    ureg.define("cell = [cell_count] = cells")
    return ureg


@functools.lru_cache(maxsize=512)
def parse_unit(text: str) -> pint.Unit:
    """Parse a unit string such as ``"nM"``, ``"1/day"``, ``"molecule/cell"``.

    ``"1"`` and ``"dimensionless"`` give the dimensionless unit.
    """
    if not isinstance(text, str) or not text.strip():
        raise UnitError(f"unit={text!r}: must be a non-empty string such as 'nM' or '1/day'")
    ureg = registry()
    try:
        q = ureg.Quantity(1.0, text) if text.strip() not in ("1", "dimensionless") else ureg.Quantity(1.0)
    except Exception as exc:  # pint raises several kinds
        raise UnitError(f"unit={text!r}: not a unit moa knows ({exc})") from None
    if q.magnitude != 1.0:
        raise UnitError(f"unit={text!r}: contains a number; write the number in the value, not the unit")
    return q.units


def format_unit(unit: pint.Unit) -> str:
    """Short, readable spelling of a unit ("nM/d" style)."""
    s = f"{unit:~P}"
    return s if s else "1"


def conversion_factor(a: pint.Unit, b: pint.Unit) -> float | None:
    """Factor f with 1 a = f b, or None when the dimensions differ."""
    ureg = registry()
    q = ureg.Quantity(1.0, a) / ureg.Quantity(1.0, b)
    if not q.dimensionless:
        return None
    return float(q.to("dimensionless").magnitude)


def same_unit(a: pint.Unit, b: pint.Unit) -> bool:
    """True when ``a`` and ``b`` are the same unit (same dimension, factor exactly 1)."""
    f = conversion_factor(a, b)
    return f is not None and math.isclose(f, 1.0, rel_tol=1e-12)


def _describe(a: pint.Unit, b: pint.Unit) -> str:
    f = conversion_factor(a, b)
    if f is None:
        return "different dimensions"
    return f"same dimension but 1 {format_unit(a)} = {f:g} {format_unit(b)}; add an explicit conversion parameter"


def unit_of(expr: sympy.Expr, units: dict[sympy.Symbol, pint.Unit]) -> pint.Unit:
    """Unit of a sympy expression whose symbols have the given units.

    Raises UnitError naming the offending sub-expression when terms of a sum differ,
    a function argument is not dimensionless, or a symbol has no unit.
    """
    ureg = registry()
    one = ureg.dimensionless

    def walk(e: sympy.Expr) -> pint.Unit:
        if e.is_Number or e in (sympy.pi, sympy.E):
            return one
        if e.is_Symbol:
            if e not in units:
                raise UnitError(f"symbol {e} has no unit")
            return units[e]
        if e.is_Mul:
            u = one
            for arg in e.args:
                u = u * walk(arg)
            return u
        if e.is_Add or isinstance(e, (sympy.Max, sympy.Min)):
            us = [walk(arg) for arg in e.args]
            for arg, u in zip(e.args[1:], us[1:]):
                if not same_unit(u, us[0]):
                    raise UnitError(
                        f"cannot add {e.args[0]} [{format_unit(us[0])}] and {arg} [{format_unit(u)}]: "
                        + _describe(u, us[0])
                    )
            return us[0]
        if e.is_Pow:
            base, expo = e.args
            ub = walk(base)
            if expo.is_Number:
                return ub ** float(expo) if not expo.is_Integer else ub ** int(expo)
            ue = walk(expo)
            if not (same_unit(ub, one) and same_unit(ue, one)):
                raise UnitError(
                    f"in {e}: a symbolic exponent needs a dimensionless base and exponent, "
                    f"got base [{format_unit(ub)}], exponent [{format_unit(ue)}]"
                )
            return one
        if isinstance(e, sympy.Piecewise):
            us = [walk(branch) for branch, _cond in e.args]
            for (branch, _), u in zip(e.args[1:], us[1:]):
                if not same_unit(u, us[0]):
                    raise UnitError(f"branches of {e} differ: [{format_unit(us[0])}] vs [{format_unit(u)}]")
            return us[0]
        if isinstance(e, sympy.Abs):
            return walk(e.args[0])
        if isinstance(e, sympy.Function):
            for arg in e.args:
                u = walk(arg)
                if not same_unit(u, one):
                    raise UnitError(
                        f"argument of {e.func.__name__} in {e} must be dimensionless, got [{format_unit(u)}]"
                    )
            return one
        raise UnitError(f"cannot determine the unit of {e} ({type(e).__name__})")

    return walk(sympy.sympify(expr))
