"""Mechanisms: the builder in which a piece of biology declares its species, parameters and rate terms.

A mechanism is written with a :class:`Mechanism` builder::

    pk = Mechanism("pharmacokinetics")
    conc = pk.species("conc_central", "nM", "free drug in plasma")
    cl = pk.parameter("clearance", "L/day", "linear clearance")
    v1 = pk.parameter("volume_central", "L", "central volume")
    pk.term(conc, -cl / v1 * conc, "linear clearance")

and models are built explicitly, ``Model([pk, binding, ...])`` (:mod:`moa.symbolic.model`; no global model
object). Declarations are plain frozen values: building a mechanism runs nothing.
"""

from __future__ import annotations

import dataclasses
import keyword
import re

import sympy

from ..errors import ModelError, UnitError
from .units import conversion_factor, parse_unit

__all__ = [
    "ref",
    "Species",
    "Parameter",
    "Conversion",
    "Term",
    "Expression",
    "DoseRoute",
    "Mechanism",
    "TIME",
    "TIME_UNIT",
]


#: The model's time unit. Every rate term must have the unit of its species per day.
TIME_UNIT = "day"
TIME = sympy.Symbol("t", real=True)
_RESERVED = {"t", "Y", "P", "np", "out", "n", "N"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def ref(name: str) -> sympy.Symbol:
    """A symbol declared by another mechanism (species, parameter or expression).

    The model checks, when assembled, that every referenced name is declared somewhere.
    """
    return sympy.Symbol(name, real=True)


def check_name(kind: str, name: str) -> None:
    """Refuse a name that cannot be a generated variable (not an identifier, a keyword or reserved)."""
    if not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name) or name in _RESERVED:
        raise ModelError(
            f"{kind} name={name!r}: must be a Python identifier starting with a letter, "
            f"not a keyword and not one of {sorted(_RESERVED)}"
        )


def _check_unit(kind: str, name: str, unit: str) -> None:
    """Parse ``unit`` where it is declared, so the error names the species or parameter."""
    try:
        parse_unit(unit)
    except UnitError as exc:
        raise UnitError(f"{kind} {name!r}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class Species:
    """A state variable: its unit, meaning and initial value (number or parameter expression).

    ``extinct_below`` (a parameter expression in the species' unit, or None): a population that
    falls below it is extinct -- every solver sets it to exactly 0 after the step that takes it
    there and records the time (see :mod:`moa.solvers.base`).
    """

    name: str
    unit: str
    description: str
    initial: sympy.Expr | float = 0.0
    extinct_below: sympy.Expr | None = None

    @property
    def symbol(self) -> sympy.Symbol:
        return sympy.Symbol(self.name, real=True)


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A named constant whose value comes from ``models/`` data."""

    name: str
    unit: str
    description: str

    @property
    def symbol(self) -> sympy.Symbol:
        return sympy.Symbol(self.name, real=True)


@dataclasses.dataclass(frozen=True)
class Conversion:
    """A unit-conversion constant: a symbol whose unit is dimensionless in disguise
    (``nM*L/nmol``, ``nmol/molecule``) and whose value pint derives from that unit.

    It lets equations convert units explicitly without a bare number in the code.
    """

    name: str
    unit: str

    @property
    def symbol(self) -> sympy.Symbol:
        return sympy.Symbol(self.name, real=True)

    @property
    def value(self) -> float:
        factor = conversion_factor(parse_unit(self.unit), parse_unit("dimensionless"))
        if factor is None:
            raise UnitError(
                f"conversion {self.name!r}: unit {self.unit!r} is not a pure conversion (it has a dimension)"
            )
        # The constant is the number 1 written in this unit: 1 = value * unit.
        return 1.0 / factor


@dataclasses.dataclass(frozen=True)
class Term:
    """One additive contribution ``expr`` to ``d species / dt``, labelled for errors and docs."""

    species: str
    expr: sympy.Expr
    label: str
    mechanism: str = ""


@dataclasses.dataclass(frozen=True)
class Expression:
    """A named derived quantity (occupancy, signal, diameter); reported as an observable."""

    name: str
    expr: sympy.Expr
    unit: str
    description: str


@dataclasses.dataclass(frozen=True)
class DoseRoute:
    """Where a drug's dose goes: ``species`` rises by ``per_mg * amount_mg``.

    ``per_mg`` must have the unit of the species per mg (it usually is ``1/(MW * V)``).
    An infusion of the same drug adds ``per_mg * rate_mg_per_day`` to ``d species/dt``.
    """

    drug: str
    species: str
    per_mg: sympy.Expr

    @property
    def infusion_symbol(self) -> sympy.Symbol:
        return sympy.Symbol(f"infusion_{self.drug}", real=True)


class Mechanism:
    """Builder for one readable piece of biology: species, parameters, terms, expressions."""

    def __init__(self, name: str, description: str = ""):
        self.name = name
        self.description = description
        self.species_list: list[Species] = []
        self.parameters: list[Parameter] = []
        self.terms: list[Term] = []
        self.expressions: list[Expression] = []
        self.dose_routes: list[DoseRoute] = []
        self.conversions: list[Conversion] = []

    def conversion(self, name: str, unit: str) -> sympy.Symbol:
        """A unit-conversion constant (value derived from ``unit`` by pint), e.g. ``"nmol/molecule"``."""
        check_name("conversion", name)
        conv = Conversion(name, unit)
        conv.value  # validate now, where the mechanism is written
        self.conversions.append(conv)
        return conv.symbol

    def species(
        self,
        name: str,
        unit: str,
        description: str,
        initial: sympy.Expr | float = 0.0,
        extinct_below: sympy.Expr | None = None,
    ) -> sympy.Symbol:
        """A state. ``extinct_below``: threshold (parameters only, the species' unit) under which the
        population is extinct and set to 0 (e.g. one cell)."""
        check_name("species", name)
        _check_unit("species", name, unit)
        self.species_list.append(
            Species(name, unit, description, initial, None if extinct_below is None else sympy.sympify(extinct_below))
        )
        return sympy.Symbol(name, real=True)

    def parameter(self, name: str, unit: str, description: str) -> sympy.Symbol:
        check_name("parameter", name)
        _check_unit("parameter", name, unit)
        self.parameters.append(Parameter(name, unit, description))
        return sympy.Symbol(name, real=True)

    def term(self, species: sympy.Symbol | str, expr: sympy.Expr | float, label: str) -> None:
        """Add ``expr`` to d(species)/dt."""
        self.terms.append(Term(str(species), sympy.sympify(expr), label, self.name))

    def flow(
        self,
        label: str,
        rate: sympy.Expr,
        source: sympy.Symbol | None = None,
        target: sympy.Symbol | None = None,
        target_scale: sympy.Expr | float = 1,
    ) -> None:
        """A transfer: ``rate`` leaves ``source`` and ``rate * target_scale`` enters ``target``.

        ``target_scale`` converts between the units of source and target (a volume ratio,
        or molecules per complex), so that the mass balance is explicit.
        """
        if source is not None:
            self.term(source, -rate, label)
        if target is not None:
            self.term(target, rate * target_scale, label)

    def expression(self, name: str, expr: sympy.Expr, unit: str, description: str) -> sympy.Symbol:
        check_name("expression", name)
        self.expressions.append(Expression(name, sympy.sympify(expr), unit, description))
        return sympy.Symbol(name, real=True)

    def dose_route(self, drug: str, species: sympy.Symbol | str, per_mg: sympy.Expr) -> None:
        check_name("drug", drug)
        self.dose_routes.append(DoseRoute(drug, str(species), sympy.sympify(per_mg)))
