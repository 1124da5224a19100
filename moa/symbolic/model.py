"""The model: mechanisms merged into one ODE system whose equations are derived once, symbolically.

``Model([...])`` merges the mechanisms' declarations, refuses unknown symbols and name clashes and checks every
term's unit. Its derived equations -- :meth:`Model.rhs`, :meth:`Model.jacobian` (sparsity pattern and
expressions), :meth:`Model.observables`, :meth:`Model.initial_values` -- are computed on first use and kept on
the model; every code printer (:mod:`moa.codegen`, :mod:`moa.solvers.rodas4.codegen`) and exporter
(:mod:`moa.interop.sbml`) prints them and none derives them again. Building a model runs nothing.

The right-hand side must not depend on ``t`` explicitly: time-varying inputs (infusions) are parameters that
the simulator holds constant between breakpoints.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import sympy

from ..errors import ModelError, UnitError
from .mechanism import TIME, TIME_UNIT, Conversion, DoseRoute, Expression, Mechanism, Parameter, Species, Term
from .units import format_unit, parse_unit, same_unit, unit_of

__all__ = ["Model", "JacobianEntries", "jacobian_entries", "resolve_definitions"]


class JacobianEntries(NamedTuple):
    """The structurally non-zero entries of a Jacobian: ``J[rows[k], cols[k]] = values[k]``."""

    rows: list[int]
    cols: list[int]
    values: list[sympy.Expr]


def _merge(kind: str, items: Iterable, key=lambda x: x.name) -> dict:
    """Merge declarations from several mechanisms; the same name must mean the same thing."""
    out: dict = {}
    for item in items:
        name = key(item)
        if name in out:
            prev = out[name]
            if not same_unit(parse_unit(prev.unit), parse_unit(item.unit)):
                raise ModelError(
                    f"{kind} {name!r} declared twice with different units: {prev.unit!r} and {item.unit!r}"
                )
            continue
        out[name] = item
    return out


class Model:
    """Mechanisms assembled into one ODE system. Building checks names and units."""

    def __init__(self, mechanisms: Sequence[Mechanism], name: str = "model"):
        if not mechanisms:
            raise ModelError("mechanisms=[]: a model needs at least one mechanism")
        self.name = name
        self.mechanisms = tuple(mechanisms)
        self.species: tuple[Species, ...] = tuple(
            _merge("species", (s for m in mechanisms for s in m.species_list)).values()
        )
        params = _merge("parameter", (p for m in mechanisms for p in m.parameters))
        self.expressions: tuple[Expression, ...] = tuple(
            _merge("expression", (e for m in mechanisms for e in m.expressions)).values()
        )
        self.dose_routes: tuple[DoseRoute, ...] = tuple(r for m in mechanisms for r in m.dose_routes)
        self.terms: tuple[Term, ...] = tuple(t for m in mechanisms for t in m.terms)
        self.conversions: tuple[Conversion, ...] = tuple(
            _merge("conversion", (c for m in mechanisms for c in m.conversions)).values()
        )

        drugs = [r.drug for r in self.dose_routes]
        dup = {d for d in drugs if drugs.count(d) > 1}
        if dup:
            raise ModelError(f"drug(s) {sorted(dup)} have more than one dose route")
        # Infusion rates are inputs: parameters the simulator sets piecewise.
        self.inputs: tuple[Parameter, ...] = tuple(
            Parameter(r.infusion_symbol.name, "mg/day", f"infusion rate of {r.drug} (set by the regimen)")
            for r in self.dose_routes
        )
        self.parameters: tuple[Parameter, ...] = tuple(params.values())

        names = (
            [s.name for s in self.species]
            + [p.name for p in self.parameters]
            + [e.name for e in self.expressions]
            + [i.name for i in self.inputs]
            + [c.name for c in self.conversions]
        )
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ModelError(f"name(s) {clash} are used for more than one of species/parameter/expression/input")
        self._check_symbols()
        self.check_units()

    # ----- structure -------------------------------------------------------------------
    @property
    def species_names(self) -> list[str]:
        return [s.name for s in self.species]

    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def input_names(self) -> list[str]:
        return [p.name for p in self.inputs]

    @property
    def drugs(self) -> list[str]:
        return [r.drug for r in self.dose_routes]

    def units(self) -> dict[sympy.Symbol, object]:
        u = {s.symbol: parse_unit(s.unit) for s in self.species}
        u.update({p.symbol: parse_unit(p.unit) for p in self.parameters + self.inputs + self.conversions})
        u[TIME] = parse_unit(TIME_UNIT)
        u.update({sympy.Symbol(e.name, real=True): parse_unit(e.unit) for e in self.expressions})
        return u

    def _check_symbols(self) -> None:
        known = {s.symbol for s in self.species} | {p.symbol for p in self.parameters + self.inputs + self.conversions}
        known |= {sympy.Symbol(e.name, real=True) for e in self.expressions}
        species = set(self.species_names)
        for term in self.terms:
            if term.species not in species:
                raise ModelError(f"term {term.label!r} ({term.mechanism}) acts on unknown species {term.species!r}")
            unknown = term.expr.free_symbols - known
            if TIME in term.expr.free_symbols:
                raise ModelError(f"term {term.label!r} depends on t explicitly; model time-varying drive as an input")
            if unknown:
                raise ModelError(
                    f"term {term.label!r} ({term.mechanism}) uses undeclared symbol(s) {sorted(map(str, unknown))}"
                )
        for e in self.expressions:
            unknown = e.expr.free_symbols - known
            if unknown:
                raise ModelError(f"expression {e.name!r} uses undeclared symbol(s) {sorted(map(str, unknown))}")
        for r in self.dose_routes:
            if r.species not in species:
                raise ModelError(f"dose route of {r.drug!r} targets unknown species {r.species!r}")
        for s in self.species:
            if isinstance(s.initial, sympy.Basic):
                unknown = s.initial.free_symbols - known
                if unknown:
                    raise ModelError(
                        f"initial value of {s.name!r} uses undeclared symbol(s) {sorted(map(str, unknown))}"
                    )
            if s.extinct_below is not None:
                params = {p.symbol for p in self.parameters + self.conversions}
                if s.extinct_below.free_symbols - params:
                    raise ModelError(
                        f"extinction threshold of {s.name!r} may use parameters only, uses "
                        f"{sorted(map(str, s.extinct_below.free_symbols - params))}"
                    )

    def check_units(self) -> None:
        """Refuse any term whose unit is not exactly its species' unit per day."""
        units = self.units()
        for e in self.expressions:
            got = unit_of(e.expr, units)
            if not same_unit(got, parse_unit(e.unit)):
                raise UnitError(f"expression {e.name!r} has unit [{format_unit(got)}] but declares [{e.unit}]")
        per_day = parse_unit(TIME_UNIT)
        sp = {s.name: s for s in self.species}
        for term in self.terms:
            want = parse_unit(sp[term.species].unit) / per_day
            try:
                got = unit_of(term.expr, units)
            except UnitError as exc:
                raise UnitError(f"term {term.label!r} ({term.mechanism}) on {term.species}: {exc}") from None
            if not same_unit(got, want):
                raise UnitError(
                    f"term {term.label!r} ({term.mechanism}) on {term.species}: unit [{format_unit(got)}] "
                    f"but d{term.species}/dt needs [{format_unit(want)}]"
                )
        for r in self.dose_routes:
            want = parse_unit(sp[r.species].unit) / parse_unit("mg")
            got = unit_of(r.per_mg, units)
            if not same_unit(got, want):
                raise UnitError(
                    f"dose route of {r.drug!r}: per_mg has unit [{format_unit(got)}], needs [{format_unit(want)}]"
                )
        for s in self.species:
            if isinstance(s.initial, sympy.Basic) and not s.initial.is_Number:
                got = unit_of(s.initial, units)
                if not same_unit(got, parse_unit(s.unit)):
                    raise UnitError(f"initial value of {s.name!r} has unit [{format_unit(got)}], needs [{s.unit}]")
            if s.extinct_below is not None and not s.extinct_below.is_Number:
                got = unit_of(s.extinct_below, units)
                if not same_unit(got, parse_unit(s.unit)):
                    raise UnitError(
                        f"extinction threshold of {s.name!r} has unit [{format_unit(got)}], needs [{s.unit}]"
                    )

    # ----- symbolic equations ----------------------------------------------------------
    @functools.cached_property
    def _substitutions(self) -> dict:
        """Expression symbols -> their definitions in species and parameters only."""
        consts = {c.symbol: sympy.Float(c.value) for c in self.conversions}
        defs = {sympy.Symbol(e.name, real=True): e.expr.xreplace(consts) for e in self.expressions}
        return {**consts, **resolve_definitions(defs, "expressions")}

    def expand(self, expr: sympy.Expr) -> sympy.Expr:
        """Replace named expressions by their definitions."""
        return sympy.sympify(expr).xreplace(self._substitutions)

    def rhs_named(self, dose_per_mg: Mapping[str, sympy.Expr] | None = None) -> list[sympy.Expr]:
        """d(species)/dt per species as the mechanisms wrote it: the terms summed in declaration order, named
        expressions and conversions kept as symbols, plus each dose route's infusion input times its ``per_mg``
        (or times ``dose_per_mg[drug]``, e.g. a named SBML parameter). :meth:`rhs` is this, expanded."""
        index = {name: i for i, name in enumerate(self.species_names)}
        rhs = [sympy.Integer(0)] * len(self.species)
        for term in self.terms:
            rhs[index[term.species]] += term.expr
        for r in self.dose_routes:
            per_mg = r.per_mg if dose_per_mg is None else dose_per_mg[r.drug]
            rhs[index[r.species]] += r.infusion_symbol * per_mg
        return rhs

    @functools.cached_property
    def rhs_symbolic(self) -> list[sympy.Expr]:
        """d(species)/dt per species, expressions expanded, infusion inputs included."""
        return [self.expand(e) for e in self.rhs_named()]

    def ode_terms(self, species: str) -> list[Term]:
        return [t for t in self.terms if t.species == species]

    @functools.cached_property
    def _jacobian(self) -> JacobianEntries:
        return jacobian_entries(self.rhs(), self.state_symbols())

    @functools.cached_property
    def _observables(self) -> list[sympy.Expr]:
        return [self.expand(sympy.Symbol(e.name, real=True)) for e in self.expressions]

    @functools.cached_property
    def _initial_values(self) -> list[sympy.Expr]:
        raw = {
            s.symbol: (self.expand(s.initial) if isinstance(s.initial, sympy.Basic) else sympy.Float(s.initial))
            for s in self.species
        }
        done = resolve_definitions(raw, "initial values")
        return [done[s.symbol] for s in self.species]

    def rhs(self) -> list[sympy.Expr]:
        """d(species)/dt per species, in model order (derived once; see :attr:`rhs_symbolic`)."""
        return self.rhs_symbolic

    def jacobian(self) -> JacobianEntries:
        """d(rhs)/d(states): its structurally non-zero entries (rows, columns, expressions), derived once."""
        return self._jacobian

    def observables(self) -> list[sympy.Expr]:
        """Each named expression in species and parameters only, in declaration order (derived once)."""
        return self._observables

    def initial_values(self) -> list[sympy.Expr]:
        """Initial value of each species in parameters only: a species named in an initial value stands for *its*
        initial value (derived once)."""
        return self._initial_values

    def dose_per_mg(self) -> list[sympy.Expr]:
        """Per dose route (model order): the rise of its species per mg given, in parameters only."""
        return [self.expand(r.per_mg) for r in self.dose_routes]

    def extinction_thresholds(self) -> list[sympy.Expr]:
        """Per species with ``extinct_below`` (model order): the threshold, in parameters only."""
        return [self.expand(s.extinct_below) for s in self.species if s.extinct_below is not None]

    def state_symbols(self) -> list[sympy.Symbol]:
        """The state symbols in the order of the rows of ``Y``."""
        return [s.symbol for s in self.species]

    def parameter_symbols(self) -> list[sympy.Symbol]:
        """The parameter symbols in the order of the rows of ``P``: parameters, then infusion inputs."""
        return [sympy.Symbol(n, real=True) for n in self.parameter_names + self.input_names]

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}: {len(self.species)} species, {len(self.parameters)} parameters, "
            f"{len(self.terms)} terms)"
        )


def resolve_definitions(defs: dict, what: str) -> dict:
    """Substitute definitions into each other until each is free of defined symbols."""
    done: dict = {}

    def resolve(sym, stack=()):
        if sym in done:
            return done[sym]
        if sym in stack:
            raise ModelError(f"{what} refer to each other in a cycle: {' -> '.join(map(str, stack + (sym,)))}")
        expr = defs[sym]
        inner = {x: resolve(x, stack + (sym,)) for x in expr.free_symbols if x in defs}
        done[sym] = expr.xreplace(inner)
        return done[sym]

    for sym in defs:
        resolve(sym)
    return done


def jacobian_entries(rhs: Sequence[sympy.Expr], y: Sequence[sympy.Symbol]) -> JacobianEntries:
    """The Jacobian of ``rhs`` in ``y``: its structurally non-zero entries as rows, columns, expressions
    (row-major). For a model use :meth:`Model.jacobian`, derived once; this serves systems given as bare
    expressions (tests, benchmarks)."""
    jac = sympy.Matrix(list(rhs)).jacobian(list(y))
    rows, cols, vals = [], [], []
    for i in range(len(y)):
        for j in range(len(y)):
            if jac[i, j] != 0:
                rows.append(i)
                cols.append(j)
                vals.append(jac[i, j])
    return JacobianEntries(rows, cols, vals)
