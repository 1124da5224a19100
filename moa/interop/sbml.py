"""SBML export: a moa model, a parameter set and a regimen as one SBML Level 3 Version 2 file.

``export(model, parameters, regimen)`` needs the ``sbml`` extra (python-libsbml). The file is
meant to be simulated by other tools (libroadrunner, COPASI) and to give the same answer as
:func:`moa.simulate`; ``tests/test_sbml.py`` checks that with libroadrunner.

How moa maps onto SBML
----------------------
- **States** are SBML species, each in one compartment and with one ``rateRule`` (its moa
  right-hand side). Rate rules rather than reactions: moa's mechanisms are written as terms of
  each state's rate (``Mechanism.term``), many of them not paired into a transfer between two
  pools, and the pairs that exist (``Mechanism.flow``) convert units with volume ratios; turning
  them into reactions would invent fluxes moa does not state. Tools that read species (the
  Jacobian and steady-state solvers of libroadrunner, diagram and structural tools) see every
  state; stoichiometry-based analysis (moieties, flux modes) sees no reactions.
- **Compartments** are where the mechanisms put each state (:func:`compartment_of`): plasma
  (antibody and paclitaxel central compartments, systemic PD-L1), peripheral (the antibody and
  paclitaxel peripheral compartments), lymph node (primed T cells, antigen reaching the draining
  node) and tumour (everything else the mechanisms place in the tumour). moa does not model the
  volumes of these spaces as states (its rates already carry the volumes that matter, as
  parameters), so each compartment has the nominal size 1 L (:data:`NOMINAL_COMPARTMENT_SIZE_L`):
  a tool that reports amounts (concentration x volume) then reports moa's numbers.
- **Species units**: a state in an amount per volume (nM, ug/L) is a concentration species
  (``hasOnlySubstanceUnits="false"``, substance nmol or ug, compartment in litre); a state in
  cells or dimensionless is an amount species (``hasOnlySubstanceUnits="true"``, substance
  ``item`` or dimensionless). SBML allows substances only in mole, item, gram, kilogram,
  avogadro or dimensionless (and scaled variants); a state in any other unit is refused.
- **Held states** (``export(..., hold=...)``): written as constant boundary species without a
  rate rule, e.g. the tumour clones for a steady-state analysis of the rest of the system
  (moa's quasi-steady start holds the same ones, :mod:`moa.steady_state`).
- **Extinction** (``Mechanism.species(..., extinct_below=...)``, one cell for a tumour clone): one
  event per such species, trigger ``species < threshold`` (persistent, ``initialValue="true"``,
  so it fires when the population falls below the threshold, not at t = 0), assignment
  ``species = 0``. moa applies the same rule after every accepted solver step; one difference:
  a population re-seeded by an inflow (mutation into the resistant clone) after its extinction
  is set to 0 by moa at every step while it stays below the threshold, and by the SBML event
  only after it has risen above the threshold and fallen below it again.
- **Parameters** (``model.parameters``) are constant parameters with the values of the
  parameter set and their units. **Conversions** (``g_per_mg``...) are constant parameters
  holding the number 1 written in their unit (``g_per_mg = 0.001 g/mg``), so no bare
  conversion factor appears in the equations.
- **Expressions** (observables) are parameters defined by ``assignmentRule`` s, so a simulator
  reports them too; the rate rules refer to them by name, as the mechanisms do.
- **Initial values** are evaluated from the parameter set (``CompiledModel.initial_T``) and
  written as each state's initial concentration or amount; when moa's initial value is an
  expression (of parameters, named expressions or other states) it is also written as an
  ``initialAssignment``, which SBML evaluates at t = 0 together with the other initial
  values (moa's meaning), so a simulator that changes a parameter gets the matching state.
- **Doses**: ``dose_per_mg_<drug>`` is a parameter with an assignment rule (moa's ``per_mg``,
  e.g. ``g_per_mg*nmol_per_mol/(mw*v1)``; its value equals ``CompiledModel.dose_per_mg_T``).
  Infusion inputs ``infusion_<drug>`` (mg/day, initially 0) enter the rate rules as
  ``infusion_<drug> * dose_per_mg_<drug>``. There is **one event per distinct dose time** (a
  bolus start, an infusion start or an infusion end): it adds ``amount_mg * dose_per_mg`` to
  each bolused species and sets each affected ``infusion_<drug>`` to the total rate of the
  infusions running from that time on. Every number of the regimen is a named constant
  parameter the events use: ``dose_time_<k>`` (day) of event k, ``dose<i>_<drug>_amount`` (in
  the dose's unit: mg, mg/kg or mg/m^2) and ``dose<i>_<drug>_duration`` (day, infusions) of
  dose i in regimen order; changing ``dose_time_<k>`` moves every dose of event k. One event
  per time, not per dose, because two events firing together both read the pre-event state
  and one increment would be lost. Triggers are ``time >= dose_time_<k>`` with
  ``persistent="true"``, ``initialValue="false"`` and ``useValuesFromTriggerTime="true"``:
  each fires exactly once, including a dose at t = 0 (the trigger is already true at the
  start, and ``initialValue="false"`` makes that a transition). Doses in mg/kg or mg/m² are written as
  ``dose<i>_<drug>_amount * body_weight`` (or ``body_surface_area``), so the amount follows the parameter.
- **Units**: unit definitions are derived with pint from moa's unit strings (moa/symbolic/units.py):
  each unit is reduced to SI base units and a factor, e.g. nM = 1e-6 mol m^-3. moa's
  ``cell`` (a dimension of its own) becomes SBML's base unit ``item``; ``molecule`` is
  1/N_A mol, as in pint. Every number in the math carries ``sbml:units`` (dimensionless,
  except the 0 of a stopped infusion or of an extinct state, and a number compared with a
  quantity), so
  libsbml can check the units of every rule; the exported document is required to pass
  ``checkConsistency`` (units and modelling practice included) with no errors and no
  warnings. libsbml compares dimensions, not scale factors (it would accept 1/hour where
  1/day is declared); moa's own unit check is the strict one, and the tests compare every
  unit definition's factor with pint. Volumes stay in metre^3 rather than litre so that
  libsbml can check rational powers such as volume^(1/3).
- **Tolerances**: see :data:`TOLERANCE_NOTE` (written into the file's notes).
"""

from __future__ import annotations

import math
import pathlib
import re
from collections.abc import Sequence
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import sympy

from .._version import __version__
from ..codegen import compile_model
from ..errors import UnitError
from ..parameters import ParameterSet, model_units
from ..regimen import DOSE_UNITS, PATIENT_UNITS, Regimen
from ..report.results import atomic_write
from ..symbolic import TIME, TIME_UNIT, Model
from ..symbolic.units import parse_unit, registry, unit_of

__all__ = [
    "export",
    "validate",
    "SBMLValidationError",
    "dose_per_mg_id",
    "compartment_of",
    "COMPARTMENTS",
    "NOMINAL_COMPARTMENT_SIZE_L",
    "TOLERANCE_NOTE",
]

SBML_LEVEL, SBML_VERSION = 3, 2

#: compartment id -> what it is (see :func:`compartment_of`)
COMPARTMENTS = {
    "plasma": "plasma (central compartments of the antibodies and paclitaxel, systemic PD-L1)",
    "peripheral": "peripheral tissue (peripheral compartments of the antibodies and paclitaxel)",
    "lymph_node": "tumour-draining lymph node and blood (T-cell priming, antigen reaching the node)",
    "tumour": "tumour (interstitium, contact zones, tumour and immune cells)",
    "body": "not placed by the mechanisms (a model outside moa.symbolic.named_models)",
}
#: Size of every compartment, litre. Nominal, not a model parameter: moa's states are
#: concentrations and cell counts whose rates already carry the volumes that matter, so the
#: compartment volume enters no equation; 1 L makes a tool's amounts equal moa's numbers.
NOMINAL_COMPARTMENT_SIZE_L = 1.0
_PLASMA_NAMES = ("pdl1_systemic",)
_LYMPH_NODE_NAMES = ("t_primed", "antigen")
_TUMOUR_MECHANISMS = (
    "binding",
    "t_cells",
    "tumour",
    "nab_paclitaxel",
    "regulatory_t_cells",
    "suppressive_myeloid_cells",
)
#: Tolerances libroadrunner needs for the exported file (measured in tests/test_sbml.py).
TOLERANCE_NOTE = (
    "libroadrunner's default settings (CVODE, relative_tolerance 1e-6, absolute_tolerance 1e-12) run the "
    "full model through one year of Q3W doses (3 mg/kg of each antibody and of nab-paclitaxel) within 2e-4 of "
    "moa.simulate (measured 1.0e-4, in the paclitaxel effect site); no other tolerance is needed. Agreement "
    "to 1e-6 and better takes relative_tolerance 1e-10 and absolute_tolerance 1e-12 in each state's own unit (given as "
    "a vector, "
    "as moa.interop.roadrunner.SBMLSimulator does). steadyState() refuses a model with events unless "
    "roadrunner.Config.ALLOW_EVENTS_IN_STEADY_STATE_CALCULATIONS is set: export untreated with the tumour "
    "clones held (hold=CLONES), which removes the extinction events, for a steady state."
)


# pint root unit -> SBML base unit kind
_KINDS = {
    "meter": "metre",
    "kilogram": "kilogram",
    "gram": "gram",
    "second": "second",
    "mole": "mole",
    "cell": "item",
    "ampere": "ampere",
    "kelvin": "kelvin",
    "candela": "candela",
    "radian": "radian",
}


class SBMLValidationError(ValueError):
    """The exported document failed libsbml's consistency check."""


def _libsbml():
    try:
        import libsbml
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("moa.interop.sbml needs python-libsbml: pip install 'moa[sbml]'") from None
    return libsbml


def dose_per_mg_id(drug: str) -> str:
    """SBML id of the parameter holding the increment of ``drug``'s dose species per mg."""
    return f"dose_per_mg_{drug}"


def compartment_of(model: Model, species: str) -> str:
    """Compartment id (a key of :data:`COMPARTMENTS`) of a state of ``model``, from where its mechanism puts it.

    Central compartments (``*_central``) and systemic PD-L1 (``pdl1_systemic*``) are plasma;
    ``*_peripheral`` and ``*_saturable`` (paclitaxel's peripheral compartments) are peripheral;
    primed T cells and antigen reaching the node are lymph node; any other state declared by a
    tumour mechanism (binding, T cells, tumour, paclitaxel effect site, Tregs, myeloid cells) is
    tumour; anything else is ``body``.
    """
    if species not in model.species_names:
        raise ValueError(f"species {species!r}: not a state of model {model.name!r}; allowed: {model.species_names}")
    if (
        species.endswith("_central")
        or species in _PLASMA_NAMES
        or species.startswith(tuple(n + "_" for n in _PLASMA_NAMES))
    ):
        return "plasma"
    if species.endswith(("_peripheral", "_saturable")):
        return "peripheral"
    if species in _LYMPH_NODE_NAMES:
        return "lymph_node"
    if any(
        mech.name in _TUMOUR_MECHANISMS and any(s.name == species for s in mech.species_list)
        for mech in model.mechanisms
    ):
        return "tumour"
    return "body"


_SUBSTANCE_ROOTS = {"mole", "kilogram", "gram", "cell"}


def _substance(unit: str) -> tuple[str, bool]:
    """(substance unit, is a concentration) of a state in moa unit ``unit``.

    A unit that, times a volume, is a substance (nM x L = nmol, ug/L x L = ug) makes a
    concentration species; a substance itself (cell) or a pure number makes an amount species.
    """

    def is_substance(text: str) -> bool:
        q = registry().Quantity(1.0, parse_unit(text)).to_root_units()
        parts = dict(q.units._units)
        return not parts or (
            len(parts) == 1 and next(iter(parts)) in _SUBSTANCE_ROOTS and next(iter(parts.values())) == 1
        )

    per_volume = f"({unit})*L"
    q = registry().Quantity(1.0, parse_unit(per_volume)).to_root_units()
    if dict(q.units._units) and is_substance(per_volume):
        return per_volume, True
    if is_substance(unit):
        return unit, False
    raise ValueError(
        f"state unit {unit!r}: SBML species need an amount (mole, gram, item: e.g. nmol, ug, cell), a "
        "dimensionless number, or an amount per volume (e.g. nM, ug/L)"
    )


def _check(code: int, what: str) -> None:
    libsbml = _libsbml()
    if code != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise RuntimeError(f"libsbml failed to {what}: {libsbml.OperationReturnValue_toString(code)}")


# ----- units ---------------------------------------------------------------------------------
class _Units:
    """Creates SBML unit definitions on demand from moa unit strings, one per distinct unit."""

    def __init__(self, sbml_model):
        self.sbml_model = sbml_model
        self.by_key: dict[tuple, str] = {}
        self.used_ids: set[str] = set()

    @staticmethod
    def _readable_id(text: str) -> str:
        s = text.replace("**", "^").replace(" ", "")
        s = s.replace("^", "_pow").replace("/", "_per_").replace("*", "_")
        s = re.sub(r"[^A-Za-z0-9_]", "", s).strip("_")
        s = re.sub(r"_+", "_", s)
        return "u_" + (s or "unit")

    def id(self, text: str) -> str:
        """UnitSId for moa unit ``text`` ("dimensionless" when it is exactly dimensionless)."""
        q = registry().Quantity(1.0, parse_unit(text)).to_root_units()
        magnitude = float(q.magnitude)
        parts = sorted((name, float(exp)) for name, exp in q.units._units.items())
        factor = float(f"{magnitude:.15g}")
        if not parts and factor == 1.0:
            return "dimensionless"
        key = (factor, tuple(parts))
        if key in self.by_key:
            return self.by_key[key]
        uid = self._readable_id(text)
        base = uid
        k = 2
        while uid in self.used_ids:
            uid, k = f"{base}_{k}", k + 1
        ud = self.sbml_model.createUnitDefinition()
        _check(ud.setId(uid), f"set unit id {uid}")
        ud.setName(text)
        # (multiplier * kind)^exponent: carry the factor on one unit, preferring exponent 1, so
        # that 1 nM = (1e-6 mole) metre^-3 and 1 L = (0.1 metre)^3. Volumes stay in metre^3 (not
        # litre): libsbml can then check rational powers such as volume^(1/3) (a diameter).
        carrier = next((i for i, (_, e) in enumerate(parts) if e == 1), None)
        if carrier is None:
            carrier = next((i for i, (_, e) in enumerate(parts) if e == -1), 0)
        for i, (name, exp) in enumerate(parts):
            if name not in _KINDS:
                raise ValueError(f"unit {text!r}: base unit {name!r} has no SBML equivalent; allowed: {sorted(_KINDS)}")
            u = ud.createUnit()
            u.setKind(_libsbml().UnitKind_forName(_KINDS[name]))
            u.setExponent(exp)
            u.setScale(0)
            u.setMultiplier(float(f"{magnitude ** (1.0 / exp):.15g}") if i == carrier else 1.0)
        if not parts:  # a pure number such as nmol/mol
            u = ud.createUnit()
            u.setKind(_libsbml().UNIT_KIND_DIMENSIONLESS)
            u.setExponent(1.0)
            u.setScale(0)
            u.setMultiplier(factor)
        self.by_key[key] = uid
        self.used_ids.add(uid)
        return uid


# ----- sympy -> MathML (libsbml AST) ----------------------------------------------------------
_FUNCTIONS = {
    sympy.exp: "AST_FUNCTION_EXP",
    sympy.log: "AST_FUNCTION_LN",
    sympy.Abs: "AST_FUNCTION_ABS",
    sympy.sin: "AST_FUNCTION_SIN",
    sympy.cos: "AST_FUNCTION_COS",
    sympy.tan: "AST_FUNCTION_TAN",
    sympy.sinh: "AST_FUNCTION_SINH",
    sympy.cosh: "AST_FUNCTION_COSH",
    sympy.tanh: "AST_FUNCTION_TANH",
    sympy.asin: "AST_FUNCTION_ARCSIN",
    sympy.acos: "AST_FUNCTION_ARCCOS",
    sympy.atan: "AST_FUNCTION_ARCTAN",
    sympy.floor: "AST_FUNCTION_FLOOR",
    sympy.ceiling: "AST_FUNCTION_CEILING",
}
_RELATIONS = {
    sympy.StrictLessThan: "AST_RELATIONAL_LT",
    sympy.LessThan: "AST_RELATIONAL_LEQ",
    sympy.StrictGreaterThan: "AST_RELATIONAL_GT",
    sympy.GreaterThan: "AST_RELATIONAL_GEQ",
    sympy.Equality: "AST_RELATIONAL_EQ",
    sympy.Unequality: "AST_RELATIONAL_NEQ",
}
_LOGIC = {sympy.And: "AST_LOGICAL_AND", sympy.Or: "AST_LOGICAL_OR", sympy.Xor: "AST_LOGICAL_XOR"}


class _MathBuilder:
    """Turns sympy expressions into libsbml ASTs directly (no string parsing, so model names
    such as ``e``, ``pi`` or ``time`` cannot be mistaken for constants)."""

    def __init__(self, known_ids: set[str], unit_of_expr, units: _Units):
        self.known_ids = known_ids
        self.unit_of_expr = unit_of_expr  # sympy expr -> moa unit string or None
        self.units = units

    def node(self, kind: str, *children):
        libsbml = _libsbml()
        n = libsbml.ASTNode(getattr(libsbml, kind))
        for c in children:
            _check(n.addChild(c), f"build MathML ({kind})")
        return n

    def number(self, value, unit: str = "dimensionless"):
        libsbml = _libsbml()
        value = sympy.sympify(value)
        if value.is_Integer:
            n = libsbml.ASTNode(libsbml.AST_INTEGER)
            n.setValue(int(value))
        elif value.is_Rational:
            n = libsbml.ASTNode(libsbml.AST_RATIONAL)
            n.setValue(int(value.p), int(value.q))
        else:
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(f"cannot write the non-finite number {value} to SBML")
            n = libsbml.ASTNode(libsbml.AST_REAL)
            n.setValue(v)
        _check(n.setUnits(unit), f"set units {unit} on a number")
        return n

    def name(self, symbol: sympy.Symbol):
        libsbml = _libsbml()
        if symbol == TIME:
            n = libsbml.ASTNode(libsbml.AST_NAME_TIME)
            n.setName("time")
            return n
        if symbol.name not in self.known_ids:
            raise ValueError(f"symbol {symbol.name!r} is not declared in the SBML model")
        n = libsbml.ASTNode(libsbml.AST_NAME)
        n.setName(symbol.name)
        return n

    def __call__(self, expr) -> object:
        return self.ast(sympy.sympify(expr))

    def ast(self, e):
        if e is sympy.true or e is sympy.false:
            return self.node("AST_CONSTANT_TRUE" if e is sympy.true else "AST_CONSTANT_FALSE")
        if e == sympy.pi:
            return self.node("AST_CONSTANT_PI")
        if e == sympy.E:
            return self.node("AST_CONSTANT_E")
        if e.is_Number:
            if e.is_negative:
                return self.node("AST_MINUS", self.number(-e))
            return self.number(e)
        if e.is_Symbol:
            return self.name(e)
        if e.is_Add:
            return self.add(e)
        if e.is_Mul:
            return self.mul(e)
        if e.is_Pow:
            return self.pow(e)
        if isinstance(e, sympy.Piecewise):
            args = []
            for value, cond in e.args:
                args.append(self.ast(value))
                if cond is sympy.true:
                    break
                args.append(self.ast(cond))
            return self.node("AST_FUNCTION_PIECEWISE", *args)
        if isinstance(e, (sympy.Max, sympy.Min)):
            # piecewise rather than <max/> (L3V2 only, not read by every tool)
            rel = sympy.GreaterThan if isinstance(e, sympy.Max) else sympy.LessThan
            args = list(e.args)
            acc = args[0]
            out = self.ast(acc)
            for b in args[1:]:
                out = self.node("AST_FUNCTION_PIECEWISE", out, self.relation(rel, acc, b), self.ast(b))
                acc = type(e)(acc, b, evaluate=False)
            return out
        if isinstance(e, sympy.Heaviside):
            x = e.args[0]
            return self.node(
                "AST_FUNCTION_PIECEWISE",
                self.number(1),
                self.relation(sympy.StrictGreaterThan, x, 0),
                self.number(0),
                self.relation(sympy.StrictLessThan, x, 0),
                self.number(sympy.Rational(1, 2)),
            )
        if type(e) in _RELATIONS:
            return self.relation(type(e), *e.args)
        if type(e) in _LOGIC:
            return self.node(_LOGIC[type(e)], *[self.ast(a) for a in e.args])
        if isinstance(e, sympy.Not):
            return self.node("AST_LOGICAL_NOT", self.ast(e.args[0]))
        if isinstance(e, sympy.Function) and e.func in _FUNCTIONS:
            return self.node(_FUNCTIONS[e.func], *[self.ast(a) for a in e.args])
        raise ValueError(
            f"cannot write {e} ({type(e).__name__}) to SBML: unsupported function; "
            f"allowed: + - * / ^, Piecewise, Max, Min, Heaviside, relations, {sorted(f.__name__ for f in _FUNCTIONS)}"
        )

    def relation(self, rel, a, b):
        """A comparison; a bare number compared with a quantity gets that quantity's unit."""
        a, b = sympy.sympify(a), sympy.sympify(b)

        def side(x, other):
            if not (x.is_Number and not other.is_Number):
                return self.ast(x)
            unit = self.unit_of_expr(other)
            uid = self.units.id(unit) if unit else "dimensionless"
            return self.node("AST_MINUS", self.number(-x, uid)) if x.is_negative else self.number(x, uid)

        return self.node(_RELATIONS[rel], side(a, b), side(b, a))

    def add(self, e):
        terms = list(e.as_ordered_terms())
        pos = [t for t in terms if not t.could_extract_minus_sign()]
        neg = [-t for t in terms if t.could_extract_minus_sign()]
        if pos:
            out = self.ast(pos[0])
            for t in pos[1:]:
                out = self.node("AST_PLUS", out, self.ast(t))
        else:
            out = self.node("AST_MINUS", self.ast(neg.pop(0)))
        for t in neg:
            out = self.node("AST_MINUS", out, self.ast(t))
        return out

    def mul(self, e):
        coeff, rest = e.as_coeff_Mul()
        if coeff.is_negative:
            return self.node("AST_MINUS", self.ast(-e))
        num, den = [], []
        for f in sympy.Mul.make_args(e):
            if f.is_Pow and f.exp.is_Number and f.exp.is_negative:
                den.append(f.base if f.exp == -1 else sympy.Pow(f.base, -f.exp, evaluate=False))
            elif f.is_Rational and not f.is_Integer and f.p == 1:
                den.append(sympy.Integer(f.q))
            else:
                num.append(f)

        def product(fs):
            out = self.ast(fs[0])
            for f in fs[1:]:
                out = self.node("AST_TIMES", out, self.ast(f))
            return out

        top = product(num) if num else self.number(1)
        return self.node("AST_DIVIDE", top, product(den)) if den else top

    def pow(self, e):
        base, exp = e.args
        if exp.is_Number and exp.is_negative:
            inner = base if exp == -1 else sympy.Pow(base, -exp, evaluate=False)
            return self.node("AST_DIVIDE", self.number(1), self.ast(inner))
        if exp == sympy.Rational(1, 2):
            return self.node("AST_FUNCTION_ROOT", self.ast(base))
        return self.node("AST_POWER", self.ast(base), self.ast(exp))


# ----- export --------------------------------------------------------------------------------
def _values(model: Model, parameters: ParameterSet) -> dict[str, float]:
    if not isinstance(parameters, ParameterSet):
        raise ValueError(f"parameters={type(parameters).__name__}: must be a ParameterSet (moa.load_parameters())")
    if parameters.is_batched:
        raise ValueError(
            f"parameters {parameters.name!r} is a batch of N={parameters.batch_size}; export one parameter set "
            "(select one with parameters.with_values({...: value}))"
        )
    P = parameters.matrix(model.parameter_names)
    return {n: float(P[i, 0]) for i, n in enumerate(model.parameter_names)}


def _dose_amount(dose, amount_id: str, B: _MathBuilder):
    """AST of the dose amount in mg: the amount parameter (mg), or it times body_weight / body_surface_area."""
    key = DOSE_UNITS[dose.unit]
    amount = B.name(sympy.Symbol(amount_id, real=True))
    return amount if key is None else B.node("AST_TIMES", amount, B.name(sympy.Symbol(key, real=True)))


def export(
    model: Model,
    parameters: ParameterSet,
    regimen: Regimen | None = None,
    path: str | pathlib.Path | None = None,
    *,
    hold: Sequence[str] = (),
) -> str:
    """SBML Level 3 Version 2 text of ``model`` with ``parameters`` and the doses of ``regimen``.

    Parameters
    ----------
    model: the assembled :class:`moa.symbolic.Model`.
    parameters: one (unbatched) :class:`moa.parameters.ParameterSet`; values are written with
        their units, initial states are evaluated from them.
    regimen: doses written as events (``None``: untreated, no events). Time is in days, t = 0
        is the first day of the regimen, as in :func:`moa.simulate`.
    path: if given, the text is also written there atomically.
    hold: states written as constant boundary species (no rate rule, no extinction), e.g.
        ``moa.mechanisms.tumour.CLONES`` for a steady state of the rest with the tumour clamped.

    Returns the SBML document as a string. Raises :class:`SBMLValidationError` if libsbml's
    consistency check reports an error or a warning.
    """
    libsbml = _libsbml()
    if regimen is not None:
        if not isinstance(regimen, Regimen):
            raise ValueError(f"regimen={type(regimen).__name__}: must be a moa Regimen or None (untreated)")
        unknown = sorted(set(regimen.drugs) - set(model.drugs))
        if unknown:
            raise ValueError(
                f"regimen {regimen.name!r} doses {unknown}, which the model cannot take; allowed drugs: {model.drugs}"
            )
    if isinstance(hold, str) or not all(isinstance(h, str) for h in hold):
        raise ValueError(f"hold={hold!r}: must be a sequence of state names")
    unknown_held = sorted(set(hold) - set(model.species_names))
    if unknown_held:
        raise ValueError(f"hold={unknown_held}: not states of model {model.name!r}; allowed: {model.species_names}")
    dosed_held = sorted(
        {r.species for r in model.dose_routes if r.drug in (regimen.drugs if regimen else ())} & set(hold)
    )
    if dosed_held:
        raise ValueError(
            f"hold={dosed_held}: these states receive doses of regimen {regimen.name!r}; a held state cannot be dosed"
        )
    if isinstance(parameters, ParameterSet):  # numbers in the units the model (and dose scaling) uses
        parameters = parameters.in_units({**model_units(model), **PATIENT_UNITS})
    values = _values(model, parameters)
    compiled = compile_model(model)
    P = np.vstack([parameters.matrix(model.parameter_names), np.zeros((len(model.inputs), 1))])
    initial = compiled.initial_T(P)[:, 0]
    if not np.all(np.isfinite(initial)):
        bad = [n for n, v in zip(model.species_names, initial) if not np.isfinite(v)]
        raise ValueError(f"initial values of {bad} are not finite for parameter set {parameters.name!r}")

    doc = libsbml.SBMLDocument(SBML_LEVEL, SBML_VERSION)
    m = doc.createModel()
    model_id = re.sub(r"[^A-Za-z0-9_]", "_", model.name)
    m.setId(model_id if re.match(r"[A-Za-z_]", model_id) else f"moa_{model_id}")
    m.setName(f"{model.name} (moa)")
    units = _Units(m)
    _check(m.setTimeUnits(units.id(TIME_UNIT)), "set time units")
    regimen_text = regimen.name if regimen is not None else "untreated"
    about = (
        f"Exported by moa {__version__} from model {model.name}, parameter set {parameters.name} "
        f"(hash {parameters.digest()}, overlays {list(parameters.overlays)}), regimen {regimen_text}"
        + (f", held (constant) states {list(hold)}" if hold else "")
        + ". "
        f"Time in {TIME_UNIT}; t = 0 is the first day of the regimen. States are species with rate rules; "
        f"compartments have the nominal size {NOMINAL_COMPARTMENT_SIZE_L:g} L (moa does not model their volumes), "
        "so amounts equal concentrations numerically."
    )
    notes = "".join(f"<p>{xml_escape(t)}</p>" for t in (about, "Tolerances: " + TOLERANCE_NOTE))
    _check(m.setNotes(f"<body xmlns='http://www.w3.org/1999/xhtml'>{notes}</body>"), "set notes")

    ids: set[str] = set()

    def claim(sid: str, what: str) -> str:
        if sid in ids:
            raise ValueError(f"{what} id {sid!r} is used twice in the SBML model; rename it in the mechanism")
        ids.add(sid)
        return sid

    # Declare every id first, so that the math builder can check the names it meets.
    species_ids = [claim(s.name, "species") for s in model.species]
    located = {s.name: compartment_of(model, s.name) for s in model.species}
    for cid in COMPARTMENTS:
        if cid in located.values():
            claim(cid, "compartment")
    for p in model.parameters:
        claim(p.name, "parameter")
    for c in model.conversions:
        claim(c.name, "conversion")
    for p in model.inputs:
        claim(p.name, "input")
    for r in model.dose_routes:
        claim(dose_per_mg_id(r.drug), "dose")
    for e in model.expressions:
        claim(e.name, "expression")
    patient_params = sorted({DOSE_UNITS[d.unit] for d in (regimen.doses if regimen else ()) if DOSE_UNITS[d.unit]})
    for name in patient_params:
        if name not in ids:
            if name not in parameters:
                raise ValueError(f"regimen {regimen_text!r} doses in per-{name} units but parameter set lacks {name!r}")
            claim(name, "patient parameter")

    unit_map = model.units()
    for r in model.dose_routes:
        sp = next(s for s in model.species if s.name == r.species)
        unit_map[sympy.Symbol(dose_per_mg_id(r.drug), real=True)] = parse_unit(sp.unit) / parse_unit("mg")

    def unit_of_expr(expr) -> str | None:
        try:
            return str(unit_of(expr, unit_map))
        except UnitError:  # a number compared with an expression moa cannot type: leave it dimensionless
            return None

    B = _MathBuilder(ids, unit_of_expr, units)

    def parameter(pid: str, value: float | None, unit: str, name: str, constant: bool):
        p = m.createParameter()
        p.setId(pid)
        p.setName(name)
        if value is not None:
            p.setValue(float(value))
        p.setUnits(units.id(unit))
        p.setConstant(constant)
        return p

    for cid, what in COMPARTMENTS.items():
        if cid in located.values():
            c = m.createCompartment()
            c.setId(cid)
            c.setName(what)
            c.setSpatialDimensions(3)
            c.setSize(NOMINAL_COMPARTMENT_SIZE_L)
            c.setUnits(units.id("L"))
            c.setConstant(True)
    for s, x0 in zip(model.species, initial):
        substance, concentration = _substance(s.unit)
        sp = m.createSpecies()
        sp.setId(s.name)
        sp.setName(s.description)
        sp.setCompartment(located[s.name])
        sp.setSubstanceUnits(units.id(substance))
        sp.setHasOnlySubstanceUnits(not concentration)
        _check(
            sp.setInitialConcentration(float(x0)) if concentration else sp.setInitialAmount(float(x0)),
            f"set the initial value of {s.name}",
        )
        sp.setBoundaryCondition(s.name in hold)
        sp.setConstant(s.name in hold)
        if isinstance(s.initial, sympy.Basic) and not s.initial.is_Number:
            ia = m.createInitialAssignment()
            ia.setSymbol(s.name)
            _check(ia.setMath(B(s.initial)), f"set initial assignment of {s.name}")

    for p in model.parameters:
        parameter(p.name, values[p.name], p.unit, p.description, True)
    for name in patient_params:
        if name not in values:
            parameter(
                name,
                float(np.asarray(parameters[name])),
                parameters.unit(name),
                parameters.specs[name].description or name,
                True,
            )
    for c in model.conversions:
        parameter(c.name, c.value, c.unit, f"unit conversion: the number 1 written in {c.unit}", True)
    for p in model.inputs:
        parameter(p.name, 0.0, p.unit, p.description, False)
    per_mg_values = compiled.dose_per_mg_T(P)[:, 0] if compiled.drugs else []
    for r, v in zip(model.dose_routes, per_mg_values):
        sp = next(s for s in model.species if s.name == r.species)
        parameter(
            dose_per_mg_id(r.drug),
            float(v),
            f"({sp.unit})/mg",
            f"increase of {r.species} per mg of {r.drug} given",
            False,
        )
        rule = m.createAssignmentRule()
        rule.setVariable(dose_per_mg_id(r.drug))
        _check(rule.setMath(B(r.per_mg)), f"set the dose rule of {r.drug}")
    for e in model.expressions:
        parameter(e.name, None, e.unit, e.description, False)
        rule = m.createAssignmentRule()
        rule.setVariable(e.name)
        _check(rule.setMath(B(e.expr)), f"set the assignment rule of {e.name}")

    # the model's own right-hand side with the names kept (Model.rhs() is this, expanded): readable rate rules
    named = model.rhs_named({r.drug: sympy.Symbol(dose_per_mg_id(r.drug), real=True) for r in model.dose_routes})
    for sid, rhs in zip(species_ids, named):
        if sid in hold:
            continue
        rule = m.createRateRule()
        rule.setVariable(sid)
        _check(rule.setMath(B(rhs)), f"set the rate rule of {sid}")

    if regimen is not None:
        _add_dose_events(m, model, regimen, B, units, claim)
    _add_extinction_events(m, model, hold, B, claim)

    errors = validate(doc)
    if errors:
        raise SBMLValidationError(f"exported SBML of {model.name!r} is not consistent:\n" + "\n".join(errors))
    text = libsbml.writeSBMLToString(doc)
    if path is not None:
        with atomic_write(path) as tmp:
            pathlib.Path(tmp).write_text(text)
    return text


def _constant(m, pid: str, value: float, unit_id: str, name: str) -> None:
    p = m.createParameter()
    p.setId(pid)
    p.setName(name)
    p.setValue(float(value))
    p.setUnits(unit_id)
    p.setConstant(True)


def _event(m, event_id: str, trigger_math, *, initially_true: bool, what: str):
    """A new event with a persistent trigger, assignments evaluated at trigger time; ``initially_true``
    is the trigger's value before t = 0 (True: a condition already met at the start does not fire)."""
    ev = m.createEvent()
    ev.setId(event_id)
    ev.setUseValuesFromTriggerTime(True)
    trig = ev.createTrigger()
    trig.setPersistent(True)
    trig.setInitialValue(initially_true)
    _check(trig.setMath(trigger_math), f"set the trigger of {what}")
    return ev


def _add_dose_events(m, model: Model, regimen: Regimen, B: _MathBuilder, units: _Units, claim) -> None:
    """One event per distinct time at which a bolus is given or an infusion starts or stops: the starts of the
    regimen's dosing segments (:meth:`moa.regimen.Regimen.segments`, the ones ``moa.simulate`` integrates over)
    where something is given or changes.

    Every number of the regimen becomes a named constant parameter: ``dose_time_<k>`` (the
    trigger time of event k), ``dose<i>_<drug>_amount`` and ``dose<i>_<drug>_duration``.
    """
    route = {r.drug: r for r in model.dose_routes}
    index_of = {id(d): i for i, d in enumerate(regimen.doses)}
    amount_id, duration_id = {}, {}
    for i, d in enumerate(regimen.doses):
        amount_id[i] = claim(f"dose{i}_{d.drug}_amount", "dose amount")
        _constant(
            m,
            amount_id[i],
            d.amount,
            units.id(d.unit),
            f"dose {i} of regimen {regimen.name}: {d.drug} {d.route} at t = {d.time_days:g} {TIME_UNIT}",
        )
        if d.route == "infusion":
            duration_id[i] = claim(f"dose{i}_{d.drug}_duration", "infusion duration")
            _constant(m, duration_id[i], d.duration_days, units.id(TIME_UNIT), f"duration of infusion {i} ({d.drug})")
    k = 0
    for segment in regimen.segments():
        if not (segment.boluses or segment.infusions):
            continue
        t = segment.start_days
        time_id = claim(f"dose_time_{k}", "dose time")
        _constant(m, time_id, t, units.id(TIME_UNIT), f"time of dose event {k}")
        ev = _event(
            m,
            claim(f"dose_event_{k}", "event"),
            B.node("AST_RELATIONAL_GEQ", B.name(TIME), B.name(sympy.Symbol(time_id, real=True))),
            initially_true=False,
            what=f"dose event {k}",
        )
        k += 1
        names = []
        # boluses: species += sum(amount_mg * dose_per_mg)
        increments: dict[str, list] = {}
        for d in segment.boluses:
            per_mg = B.name(sympy.Symbol(dose_per_mg_id(d.drug), real=True))
            amount = _dose_amount(d, amount_id[index_of[id(d)]], B)
            increments.setdefault(route[d.drug].species, []).append(B.node("AST_TIMES", amount, per_mg))
            names.append(f"{d.drug} {d.amount:g} {d.unit}")
        for species, incs in increments.items():
            math_ = B.name(sympy.Symbol(species, real=True))
            for inc in incs:
                math_ = B.node("AST_PLUS", math_, inc)
            ea = ev.createEventAssignment()
            ea.setVariable(species)
            _check(ea.setMath(math_), f"set dose assignment of {species}")
        # infusions: input = total rate of the infusions running on [t, next time)
        for drug in sorted(segment.infusions):
            running = segment.infusions[drug]
            if running:
                rate = None
                for d in running:
                    i = index_of[id(d)]
                    term = B.node(
                        "AST_DIVIDE", _dose_amount(d, amount_id[i], B), B.name(sympy.Symbol(duration_id[i], real=True))
                    )
                    rate = term if rate is None else B.node("AST_PLUS", rate, term)
                names.append(f"{drug} infusion rate set")
            else:
                rate = B.number(0, units.id("mg/day"))
                names.append(f"{drug} infusion stops")
            ea = ev.createEventAssignment()
            ea.setVariable(route[drug].infusion_symbol.name)
            _check(ea.setMath(rate), f"set infusion rate of {drug}")
        ev.setName(f"t = {t:g} {TIME_UNIT}: " + ", ".join(names))


def _add_extinction_events(m, model: Model, hold: Sequence[str], B: _MathBuilder, claim) -> None:
    """``species = 0`` when a state with ``extinct_below`` falls below its threshold (not for held states)."""
    for s in model.species:
        if s.extinct_below is None or s.name in hold:
            continue
        # initially true: fires when the state falls below, not for a state that starts there
        ev = _event(
            m,
            claim(f"extinction_{s.name}", "event"),
            B.relation(sympy.StrictLessThan, s.symbol, s.extinct_below),
            initially_true=True,
            what=f"the extinction of {s.name}",
        )
        ev.setName(f"{s.name} below its extinction threshold is set to 0")
        ea = ev.createEventAssignment()
        ea.setVariable(s.name)
        _check(ea.setMath(B.number(0, B.units.id(s.unit))), f"set the extinction of {s.name}")


def validate(doc_or_text, *, allow_warnings: bool = False) -> list[str]:
    """Problems libsbml's consistency check finds (all checks, units included).

    Returns one line per error (and per warning unless ``allow_warnings``); empty if clean.
    """
    libsbml = _libsbml()
    doc = libsbml.readSBMLFromString(doc_or_text) if isinstance(doc_or_text, str) else doc_or_text
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, True)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_MODELING_PRACTICE, True)
    doc.checkConsistency()
    out = []
    for i in range(doc.getNumErrors()):
        err = doc.getError(i)
        if err.getSeverity() >= libsbml.LIBSBML_SEV_ERROR or (
            not allow_warnings and err.getSeverity() == libsbml.LIBSBML_SEV_WARNING
        ):
            out.append(
                f"[{err.getSeverityAsString()} {err.getErrorId()}] line {err.getLine()}: {err.getMessage().strip()}"
            )
    return out
