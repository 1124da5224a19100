"""The model engine: mechanisms declare species, parameters and rate terms symbolically;
the engine assembles them into one model, checks units, derives the right-hand side and the
analytic Jacobian with sympy and compiles both into batched numpy functions.

A mechanism is written with a :class:`Mechanism` builder::

    pk = Mechanism("pharmacokinetics")
    conc = pk.species("conc_central", "nM", "free drug in plasma")
    cl = pk.parameter("clearance", "L/day", "linear clearance")
    v1 = pk.parameter("volume_central", "L", "central volume")
    pk.term(conc, -cl / v1 * conc, "linear clearance")

and models are built explicitly, ``Model([pk, binding, ...])`` (no global model object).

Compiled functions are component-major: states ``Y`` have shape ``(n, N)``, parameters
``P`` shape ``(m, N)``; ``rhs_T(t, Y, P) -> (n, N)``. The public row-major forms
``rhs(t, y[N, n], p[N, m]) -> [N, n]`` and ``jac(t, y, p) -> [N, n, n]`` wrap them.
The right-hand side must not depend on ``t`` explicitly: time-varying inputs (infusions)
are parameters that the simulator holds constant between breakpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import json
import keyword
import math
import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import Callable

import numpy as np
import sympy
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from .errors import ModelError, UnitError
from .units import conversion_factor, format_unit, parse_unit, same_unit, unit_of

__all__ = ["ref", "Species", "Parameter", "Conversion", "Term", "Expression", "DoseRoute", "Mechanism", "Model", "CompiledModel", "TIME"]

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


def _check_name(kind: str, name: str) -> None:
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
            raise UnitError(f"conversion {self.name!r}: unit {self.unit!r} is not a pure conversion (it has a dimension)")
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
        _check_name("conversion", name)
        conv = Conversion(name, unit)
        conv.value  # validate now, where the mechanism is written
        self.conversions.append(conv)
        return conv.symbol

    def species(self, name: str, unit: str, description: str, initial: sympy.Expr | float = 0.0,
                extinct_below: sympy.Expr | None = None) -> sympy.Symbol:
        """A state. ``extinct_below``: threshold (parameters only, the species' unit) under which the
        population is extinct and set to 0 (e.g. one cell)."""
        _check_name("species", name)
        _check_unit("species", name, unit)
        self.species_list.append(Species(name, unit, description, initial,
                                         None if extinct_below is None else sympy.sympify(extinct_below)))
        return sympy.Symbol(name, real=True)

    def parameter(self, name: str, unit: str, description: str) -> sympy.Symbol:
        _check_name("parameter", name)
        _check_unit("parameter", name, unit)
        self.parameters.append(Parameter(name, unit, description))
        return sympy.Symbol(name, real=True)

    def term(self, species: sympy.Symbol | str, expr: sympy.Expr | float, label: str) -> None:
        """Add ``expr`` to d(species)/dt."""
        self.terms.append(Term(str(species), sympy.sympify(expr), label, self.name))

    def flow(self, label: str, rate: sympy.Expr, source: sympy.Symbol | None = None, target: sympy.Symbol | None = None,
             target_scale: sympy.Expr | float = 1) -> None:
        """A transfer: ``rate`` leaves ``source`` and ``rate * target_scale`` enters ``target``.

        ``target_scale`` converts between the units of source and target (a volume ratio,
        or molecules per complex), so that the mass balance is explicit.
        """
        if source is not None:
            self.term(source, -rate, label)
        if target is not None:
            self.term(target, rate * target_scale, label)

    def expression(self, name: str, expr: sympy.Expr, unit: str, description: str) -> sympy.Symbol:
        _check_name("expression", name)
        self.expressions.append(Expression(name, sympy.sympify(expr), unit, description))
        return sympy.Symbol(name, real=True)

    def dose_route(self, drug: str, species: sympy.Symbol | str, per_mg: sympy.Expr) -> None:
        _check_name("drug", drug)
        self.dose_routes.append(DoseRoute(drug, str(species), sympy.sympify(per_mg)))


def _merge(kind: str, items: Iterable, key=lambda x: x.name) -> dict:
    """Merge declarations from several mechanisms; the same name must mean the same thing."""
    out: dict = {}
    for item in items:
        name = key(item)
        if name in out:
            prev = out[name]
            if not same_unit(parse_unit(prev.unit), parse_unit(item.unit)):
                raise ModelError(f"{kind} {name!r} declared twice with different units: {prev.unit!r} and {item.unit!r}")
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
        self.species: tuple[Species, ...] = tuple(_merge("species", (s for m in mechanisms for s in m.species_list)).values())
        params = _merge("parameter", (p for m in mechanisms for p in m.parameters))
        self.expressions: tuple[Expression, ...] = tuple(_merge("expression", (e for m in mechanisms for e in m.expressions)).values())
        self.dose_routes: tuple[DoseRoute, ...] = tuple(r for m in mechanisms for r in m.dose_routes)
        self.terms: tuple[Term, ...] = tuple(t for m in mechanisms for t in m.terms)
        self.conversions: tuple[Conversion, ...] = tuple(_merge("conversion", (c for m in mechanisms for c in m.conversions)).values())

        drugs = [r.drug for r in self.dose_routes]
        dup = {d for d in drugs if drugs.count(d) > 1}
        if dup:
            raise ModelError(f"drug(s) {sorted(dup)} have more than one dose route")
        # Infusion rates are inputs: parameters the simulator sets piecewise.
        self.inputs: tuple[Parameter, ...] = tuple(
            Parameter(r.infusion_symbol.name, "mg/day", f"infusion rate of {r.drug} (set by the regimen)") for r in self.dose_routes
        )
        self.parameters: tuple[Parameter, ...] = tuple(params.values())

        names = [s.name for s in self.species] + [p.name for p in self.parameters] + [e.name for e in self.expressions] + [
            i.name for i in self.inputs
        ] + [c.name for c in self.conversions]
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
                raise ModelError(f"term {term.label!r} ({term.mechanism}) uses undeclared symbol(s) {sorted(map(str, unknown))}")
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
                    raise ModelError(f"initial value of {s.name!r} uses undeclared symbol(s) {sorted(map(str, unknown))}")
            if s.extinct_below is not None:
                params = {p.symbol for p in self.parameters + self.conversions}
                if s.extinct_below.free_symbols - params:
                    raise ModelError(f"extinction threshold of {s.name!r} may use parameters only, uses "
                                     f"{sorted(map(str, s.extinct_below.free_symbols - params))}")

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
                raise UnitError(f"dose route of {r.drug!r}: per_mg has unit [{format_unit(got)}], needs [{format_unit(want)}]")
        for s in self.species:
            if isinstance(s.initial, sympy.Basic) and not s.initial.is_Number:
                got = unit_of(s.initial, units)
                if not same_unit(got, parse_unit(s.unit)):
                    raise UnitError(f"initial value of {s.name!r} has unit [{format_unit(got)}], needs [{s.unit}]")
            if s.extinct_below is not None and not s.extinct_below.is_Number:
                got = unit_of(s.extinct_below, units)
                if not same_unit(got, parse_unit(s.unit)):
                    raise UnitError(f"extinction threshold of {s.name!r} has unit [{format_unit(got)}], needs [{s.unit}]")

    # ----- symbolic equations ----------------------------------------------------------
    @functools.cached_property
    def _substitutions(self) -> dict:
        """Expression symbols -> their definitions in species and parameters only."""
        consts = {c.symbol: sympy.Float(c.value) for c in self.conversions}
        defs = {sympy.Symbol(e.name, real=True): e.expr.xreplace(consts) for e in self.expressions}
        return {**consts, **_resolve_definitions(defs, "expressions")}

    def expand(self, expr: sympy.Expr) -> sympy.Expr:
        """Replace named expressions by their definitions."""
        return sympy.sympify(expr).xreplace(self._substitutions)

    @functools.cached_property
    def rhs_symbolic(self) -> list[sympy.Expr]:
        """d(species)/dt per species, expressions expanded, infusion inputs included."""
        index = {name: i for i, name in enumerate(self.species_names)}
        rhs = [sympy.Integer(0)] * len(self.species)
        for term in self.terms:
            rhs[index[term.species]] += term.expr
        for r in self.dose_routes:
            rhs[index[r.species]] += r.infusion_symbol * r.per_mg
        return [self.expand(e) for e in rhs]

    def ode_terms(self, species: str) -> list[Term]:
        return [t for t in self.terms if t.species == species]

    @functools.cached_property
    def compiled(self) -> "CompiledModel":
        return CompiledModel(self)

    def __repr__(self) -> str:
        return f"Model({self.name!r}: {len(self.species)} species, {len(self.parameters)} parameters, {len(self.terms)} terms)"


# ----- code generation ---------------------------------------------------------------------
class _Printer(NumPyPrinter):
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


def _generate_source(fname: str, outputs: list[sympy.Expr], y_syms: list[sympy.Symbol], p_syms: list[sympy.Symbol],
                     n_out: int, index: list[str]) -> tuple[str, dict]:
    """Source for ``fname(t, Y, P) -> out`` with ``out[index[k]] = outputs[k]``, and the names it
    needs from other modules (``{module: [names]}``)."""
    printer = _Printer()
    replacements, reduced = sympy.cse(outputs, symbols=sympy.numbered_symbols("_x"), optimizations="basic")
    lines = [f"def {fname}(t, Y, P):"]
    lines += [f"    {s.name} = Y[{i}]" for i, s in enumerate(y_syms)]
    lines += [f"    {s.name} = P[{i}]" for i, s in enumerate(p_syms)]
    lines += [f"    {sym} = {printer.doprint(expr)}" for sym, expr in replacements]
    lines.append(f"    out = np.zeros(({n_out}, Y.shape[1]), dtype=float)")
    for idx, expr in zip(index, reduced):
        if expr != 0:
            lines.append(f"    out[{idx}] = {printer.doprint(expr)}")
    lines.append("    return out")
    return "\n".join(lines), {m: sorted(names) for m, names in printer.module_imports.items()}


def _generate(fname: str, outputs: list[sympy.Expr], y_syms: list[sympy.Symbol], p_syms: list[sympy.Symbol],
              n_out: int, index: list[str]) -> Callable:
    """``fname(t, Y, P) -> out`` with ``out[index[k]] = outputs[k]``, compiled by exec."""
    source, imports = _generate_source(fname, outputs, y_syms, p_syms, n_out, index)
    return _compile_source(fname, source, imports, {"np": np, "numpy": np})


def _compile_source(fname: str, source: str, module_imports: dict, namespace: dict) -> Callable:
    """exec generated source; the printer emits bare names (exp, log, maximum), bound from their modules."""
    namespace = dict(namespace)
    for module, names in module_imports.items():
        imported = importlib.import_module(module)
        namespace.update({name: getattr(imported, name) for name in names})
    exec(compile(source, f"<moa generated {fname}>", "exec"), namespace)
    func = namespace[fname]
    func.source = source
    return func


# ----- generated numpy source, cached on disk -------------------------------------------------
#: Bump when the generated functions change meaning without engine.py changing (never so far).
_SOURCE_CACHE_FORMAT = 1


def model_key(model: Model) -> str:
    """sha256 of everything the generated numpy code depends on: the model's declarations (species,
    parameters, inputs, conversions, expressions, terms, dose routes, in order), the engine's own
    source (printers, expansion, code layout) and the sympy version. Two models with equal keys
    generate the same text."""
    parts = [str(_SOURCE_CACHE_FORMAT), sympy.__version__, pathlib.Path(__file__).read_text(encoding="utf-8"), model.name]
    for group in (model.species, model.parameters, model.inputs, model.conversions, model.expressions, model.terms,
                  model.dose_routes):
        parts.append(repr(group))
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def _source_cache_file(key: str, part: str = "") -> pathlib.Path | None:
    from .solvers.jit import cache_dir  # deferred: the solvers import this module

    try:
        return cache_dir() / f"numpy_{key[:32]}{'_' + part if part else ''}.json"
    except OSError:
        return None


def _read_source_cache(path: pathlib.Path | None, key: str) -> dict | None:
    """The cached generation for ``key``, or None when absent, unreadable or not for this key."""
    if path is None or not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        body = json.dumps(record["generated"], sort_keys=True)
        if record["key"] != key or record["sha256"] != hashlib.sha256(body.encode("utf-8")).hexdigest():
            return None
        return record["generated"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_source_cache(path: pathlib.Path | None, key: str, generated: dict) -> None:
    """Write atomically (a temporary renamed over the target); a cache that cannot be written is skipped."""
    if path is None:
        return
    body = json.dumps(generated, sort_keys=True)
    record = {"key": key, "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(), "generated": generated}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _initial_values(model: Model) -> list[sympy.Expr]:
    """Initial values in parameters only: species in an initial value stand for *their* initial values."""
    raw = {s.symbol: (model.expand(s.initial) if isinstance(s.initial, sympy.Basic) else sympy.Float(s.initial))
           for s in model.species}
    done = _resolve_definitions(raw, "initial values")
    return [done[s.symbol] for s in model.species]


def _resolve_definitions(defs: dict, what: str) -> dict:
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


def _generate_scalar_source(fname: str, outputs: list[sympy.Expr], y_syms: list[sympy.Symbol],
                            p_syms: list[sympy.Symbol]) -> tuple[str, dict]:
    """Source for ``fname(Y, P) -> list[float]`` on plain sequences of floats (one trajectory), and
    the names it needs from other modules."""
    printer = ScalarPrinter({"fully_qualified_modules": False})
    replacements, reduced = sympy.cse(outputs, symbols=sympy.numbered_symbols("_x"), optimizations="basic")
    lines = [f"def {fname}(Y, P):"]
    if y_syms:
        lines.append(f"    {', '.join(s.name for s in y_syms)}, = Y")
    if p_syms:
        lines.append(f"    {', '.join(s.name for s in p_syms)}, = P")
    lines += [f"    {sym} = {printer.doprint(expr)}" for sym, expr in replacements]
    lines.append("    return [" + ", ".join(printer.doprint(e) for e in reduced) + "]")
    return "\n".join(lines), {m: sorted(names) for m, names in printer.module_imports.items()}


def jacobian_entries(rhs: Sequence[sympy.Expr], y: Sequence[sympy.Symbol]) -> tuple[list[int], list[int], list[sympy.Expr]]:
    """The Jacobian of ``rhs`` in ``y``: its structurally non-zero entries as rows, columns, expressions."""
    jac = sympy.Matrix(list(rhs)).jacobian(list(y))
    rows, cols, vals = [], [], []
    for i in range(len(y)):
        for j in range(len(y)):
            if jac[i, j] != 0:
                rows.append(i)
                cols.append(j)
                vals.append(jac[i, j])
    return rows, cols, vals


class CompiledModel:
    """Batched numpy functions generated from a :class:`Model`.

    Attributes ``jac_rows``/``jac_cols`` give the Jacobian's sparsity pattern;
    ``jac_values_T(t, Y, P) -> (nnz, N)`` its values.
    """

    def __init__(self, model: Model):
        self.model = model
        self.species_names = model.species_names
        self.parameter_names = model.parameter_names + model.input_names
        y = [s.symbol for s in model.species]
        p = [sympy.Symbol(n, real=True) for n in self.parameter_names]
        self.n_species, self.n_parameters = len(y), len(p)
        rhs = model.rhs_symbolic
        #: (rhs expressions, state symbols, parameter symbols in the order of P's rows), for code generators
        self.symbolic = (list(rhs), list(y), list(p))
        self.observable_names = [e.name for e in model.expressions]
        self.dose_index = {r.drug: self.species_names.index(r.species) for r in model.dose_routes}
        self.input_index = {r.drug: self.parameter_names.index(r.infusion_symbol.name) for r in model.dose_routes}
        self.drugs = [r.drug for r in model.dose_routes]
        ext = [(i, s) for i, s in enumerate(model.species) if s.extinct_below is not None]
        #: species that go extinct below a threshold: their indices, in model order
        self.extinct_index = np.array([i for i, _ in ext], dtype=np.int64)
        self.extinct_names = [s.name for _, s in ext]

        # The numpy source of the six function families takes sympy's cse tens of seconds for the
        # full model; it is a pure function of the model's declarations (model_key), so it is kept
        # on disk beside the numba modules and a later process only execs it.
        key = self.model_key = model_key(model)
        cache_file = _source_cache_file(key)
        generated = _read_source_cache(cache_file, key)
        #: "loaded" (numpy source read from the cache) or "generated" (derived with sympy this time)
        self.source_origin = "loaded" if generated is not None else "generated"
        if generated is None:
            generated = self._generate_all(model, rhs, y, p, ext)
            _write_source_cache(cache_file, key, generated)
        self.jac_rows = np.array(generated["jac_rows"], dtype=np.intp)
        self.jac_cols = np.array(generated["jac_cols"], dtype=np.intp)
        self.jac_nnz = len(generated["jac_rows"])
        namespace = {"np": np, "numpy": np}
        funcs = {name: _compile_source(name, src, imports, namespace)
                 for name, (src, imports) in generated["functions"].items()}
        self.rhs_T = funcs["rhs_T"]
        self.jac_values_T = funcs["jac_values_T"]
        self._observables_T = funcs["observables_T"]
        self._initial_T = funcs["initial_T"]
        self._dose_per_mg_T = funcs["dose_per_mg_T"]
        self._extinct_threshold_T = funcs["extinct_threshold_T"]

    @staticmethod
    def _generate_all(model, rhs, y, p, ext) -> dict:
        """Every generated numpy function's source (and the names it imports) and the Jacobian pattern."""
        rows, cols, vals = jacobian_entries(rhs, y)
        obs = [model.expand(sympy.Symbol(e.name, real=True)) for e in model.expressions]
        per_mg = [model.expand(r.per_mg) for r in model.dose_routes]
        thr = [model.expand(s.extinct_below) for _, s in ext]
        families = {
            "rhs_T": (rhs, len(y)),
            "jac_values_T": (vals, max(len(vals), 1)),
            "observables_T": (obs, max(len(obs), 1)),
            "initial_T": (_initial_values(model), len(y)),
            "dose_per_mg_T": (per_mg, max(len(per_mg), 1)),
            "extinct_threshold_T": (thr, max(len(thr), 1)),
        }
        functions = {name: _generate_source(name, list(outs), y, p, n_out, [str(k) for k in range(len(outs))])
                     for name, (outs, n_out) in families.items()}
        return {"jac_rows": rows, "jac_cols": cols, "functions": functions}

    @functools.cached_property
    def _jac_exprs(self) -> list[sympy.Expr]:
        rhs, y, _ = self.symbolic
        return jacobian_entries(rhs, y)[2]

    # one-trajectory forms for the scipy reference backend, generated on first use (sympy's cse of
    # the full model takes seconds, and the compiled Rodas4 does not need them)
    @functools.cached_property
    def rhs_scalar(self) -> Callable:
        return self._cached_scalar("rhs_scalar", lambda: self.symbolic[0])

    @functools.cached_property
    def jac_values_scalar(self) -> Callable:
        return self._cached_scalar("jac_values_scalar", lambda: self._jac_exprs)

    def _cached_scalar(self, fname: str, outputs: Callable[[], list]) -> Callable:
        """A one-trajectory function, its source read from the disk cache (same key as the batched
        functions, one file per function) or generated and written there."""
        cache_file = _source_cache_file(self.model_key, part=fname)
        generated = _read_source_cache(cache_file, self.model_key)
        if generated is None:
            _, y, p = self.symbolic
            source, imports = _generate_scalar_source(fname, outputs(), y, p)
            generated = {"source": source, "imports": imports}
            _write_source_cache(cache_file, self.model_key, generated)
        return _compile_source(fname, generated["source"], generated["imports"], {"math": math})

    # component-major (n, N) forms used by solvers
    def jac_dense_T(self, t, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Dense Jacobian, shape (n, n, N)."""
        J = np.zeros((self.n_species, self.n_species, Y.shape[1]))
        if self.jac_nnz:
            J[self.jac_rows, self.jac_cols] = self.jac_values_T(t, Y, P)[: self.jac_nnz]
        return J

    def observables_T(self, t, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
        return self._observables_T(t, Y, P)[: len(self.observable_names)]

    def initial_T(self, P: np.ndarray) -> np.ndarray:
        """Initial states (n, N) from parameters (m, N)."""
        return self._initial_T(0.0, np.zeros((self.n_species, P.shape[1])), P)

    def extinct_threshold_T(self, P: np.ndarray) -> np.ndarray:
        """(n_extinct, N): extinction threshold of each species in ``extinct_index``."""
        return self._extinct_threshold_T(0.0, np.zeros((self.n_species, P.shape[1])), P)[: self.extinct_index.size]

    def dose_per_mg_T(self, P: np.ndarray) -> np.ndarray:
        """(n_drugs, N): increment of each drug's dose species per mg given."""
        return self._dose_per_mg_T(0.0, np.zeros((self.n_species, P.shape[1])), P)[: len(self.drugs)]

    # row-major public forms
    def rhs(self, t, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """d y/dt for N parameter sets at once: y [N, n], p [N, m] -> [N, n]."""
        y, p = np.atleast_2d(y), np.atleast_2d(p)
        return self.rhs_T(t, y.T, p.T).T

    def jac(self, t, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Analytic Jacobian d(rhs)/dy: [N, n, n]."""
        y, p = np.atleast_2d(y), np.atleast_2d(p)
        return np.moveaxis(self.jac_dense_T(t, y.T, p.T), -1, 0)
