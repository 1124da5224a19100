"""Parameter data: values with unit, bounds and source, read from TOML files in ``models/``.

A parameter file is a table per parameter::

    [clearance_antibody]
    value = 0.20
    unit = "L/day"
    lower = 0.10
    upper = 0.40
    source = "Stroh 2017, atezolizumab popPK"
    description = "linear clearance of an IgG1"

``source`` is a citation, ``assumed: <why>`` or ``calibrated: <what>``. Overlays (drug formats,
tumour settings) are tables of ``name = value`` that must name known parameters.

**Units.** A spec keeps the unit its file was written in (``"mL/h"`` is fine for a clearance).
The unit a number must be *used* in is the one the mechanism declares
(``m.parameter(name, unit, ...)``); :meth:`ParameterSet.in_units` converts every spec and value
to given units with pint and refuses a different dimension, naming the file, the field, the
value and both units. ``moa.simulate`` and the SBML export call it with the model's declared
units (:func:`model_units`) before anything reaches the compiled model, so every downstream
number (the parameter matrix, dose amounts, sweep coordinates) is in the mechanism's unit.
Code that reads one parameter outside a model (dose scaling by body weight, binding
equilibria) asks for it in the unit it needs with :meth:`ParameterSet.value_in`. New values
(``with_values``, overlays) may be plain numbers in the spec's unit or pint Quantities
(converted).

**Physical domain vs. sweep bounds.** ``domain`` (one of :data:`DOMAINS`; default
``"nonnegative"``) is what the quantity can physically be, and is always enforced: a value
outside it is refused naming the parameter, the value, the domain and where the value came
from. ``lower``/``upper`` are the plausible range for sweeps and must lie inside the domain;
a new value outside them is allowed with a :class:`moa.errors.BoundsWarning`, or refused with
``strict=True``. A spec's own default value must lie within its bounds.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import pathlib
import tomllib
import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import pint

from .checks import is_finite_real, read_utf8
from .errors import BoundsWarning
from .paths import data_dir, require_models_dir
from .symbolic.units import UnitError, format_unit, parse_unit, registry

__all__ = [
    "ParameterSpec",
    "ParameterSet",
    "load_parameter_file",
    "load_parameters",
    "MODELS_DIR",
    "DOMAINS",
    "check_domain",
    "convert_value",
    "convert_spec",
    "model_units",
]

#: The model files: ``models/`` of the checkout, of ``MOA_DATA_DIR`` or of the installed package (see moa.paths).
MODELS_DIR = data_dir() / "models"
_FIELDS = {"value", "unit", "lower", "upper", "source", "description", "scale", "domain"}

#: Physical domains: name -> (lowest value, lowest included?, highest value), in the
#: parameter's unit (for dimensionless units, after conversion to the plain number 1).
DOMAINS = {
    "nonnegative": (0.0, True, math.inf),  # >= 0 (the default)
    "positive": (0.0, False, math.inf),  # > 0: volumes, masses, densities, KDs, capacities
    "fraction": (0.0, True, 1.0),  # [0, 1]
    "at_least_one": (1.0, True, math.inf),  # >= 1: fold changes, valencies
}
_DOMAIN_TEXT = {"nonnegative": ">= 0", "positive": "> 0", "fraction": "in [0, 1]", "at_least_one": ">= 1"}


def _to_plain_number(unit: str) -> float:
    """Factor that turns a value in ``unit`` into a plain number, 1 unless the unit is
    dimensionless but scaled (``"percent"``), for which domains such as fraction are stated."""
    q = registry().Quantity(1.0, parse_unit(unit))
    return float(q.to("dimensionless").magnitude) if q.dimensionless else 1.0


def check_domain(name: str, value, domain: str, unit: str, origin: str) -> None:
    """Raise ValueError unless every element of ``value`` (in ``unit``) lies in ``domain``.

    The message names the parameter, the value, the domain and ``origin`` (where the value came from).
    """
    if domain not in DOMAINS:
        raise ValueError(f"{origin}: parameter {name!r}: domain={domain!r}: allowed domains are {sorted(DOMAINS)}")
    low, low_included, high = DOMAINS[domain]
    arr = np.asarray(value, dtype=float) * _to_plain_number(unit)
    bad = (arr < low) | (arr > high) | ((arr == low) & (not low_included))
    if np.any(bad):
        first = float(np.asarray(value, dtype=float).ravel()[np.argmax(bad.ravel())])
        raise ValueError(
            f"{origin}: parameter {name!r}={first:g} {unit}: outside its physical domain "
            f"{domain!r} (must be {_DOMAIN_TEXT[domain]})"
        )


def convert_value(value, from_unit: str, to_unit: str, what: str):
    """``value`` (number or array) in ``from_unit`` expressed in ``to_unit``.

    ``what`` says where the value came from (file and field) for the error raised when the
    dimensions differ.
    """
    ureg = registry()
    a, b = parse_unit(from_unit), parse_unit(to_unit)
    if a == b:
        return value
    try:
        out = ureg.Quantity(np.asarray(value, dtype=float), a).to(b).magnitude
    except pint.DimensionalityError:
        shown = f"{float(value):g}" if np.ndim(value) == 0 else f"array of {np.size(value)}"
        raise UnitError(
            f"{what}: value={shown} in {from_unit!r} [{format_unit(a)}] cannot be expressed in "
            f"{to_unit!r} [{format_unit(b)}]: different dimensions"
        ) from None
    return float(out) if np.ndim(out) == 0 else np.asarray(out, dtype=float)


def model_units(model) -> dict[str, str]:
    """The unit each parameter of ``model`` (a :class:`moa.symbolic.Model`) is declared in."""
    return {p.name: p.unit for p in model.parameters}


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """One parameter's value, unit, sweep bounds and source."""

    name: str
    value: float
    unit: str
    lower: float
    upper: float
    source: str
    description: str = ""
    scale: str = "lin"  # "lin" or "log": how sweeps sample between the bounds
    domain: str = "nonnegative"  # physical domain, one of DOMAINS; always enforced
    origin: str = dataclasses.field(default="", compare=False)  # file the spec was read from ("" if built in code)

    def __post_init__(self):
        where = f"parameter {self.name!r}"
        for field in ("value", "lower", "upper"):
            v = getattr(self, field)
            if not is_finite_real(v):
                raise ValueError(f"{where}: {field}={v!r}: must be a finite number")
        try:
            parse_unit(self.unit)
        except UnitError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not self.source or not str(self.source).strip():
            raise ValueError(f"{where}: source is empty: give a citation, 'assumed: <why>' or 'calibrated: <what>'")
        if self.domain not in DOMAINS:
            raise ValueError(f"{where}: domain={self.domain!r}: allowed domains are {sorted(DOMAINS)}")
        for field in ("value", "lower", "upper"):
            check_domain(self.name, getattr(self, field), self.domain, self.unit, f"field {field!r}")
        if not self.lower <= self.value <= self.upper:
            raise ValueError(f"{where}: value={self.value} lies outside [lower={self.lower}, upper={self.upper}]")
        if self.scale not in ("lin", "log"):
            raise ValueError(f"{where}: scale={self.scale!r}: must be 'lin' or 'log'")
        if self.scale == "log" and self.lower <= 0:
            raise ValueError(f"{where}: scale='log' needs lower > 0, got lower={self.lower}")


def load_parameter_file(path: str | pathlib.Path) -> dict[str, ParameterSpec]:
    """Read one TOML file of parameter tables, validating every field."""
    path = pathlib.Path(path)
    try:
        data = tomllib.loads(read_utf8(path))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    out = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(
                f"{path}: {name} = {table!r}: every top-level entry must be a table with value, unit, lower, "
                "upper, source"
            )
        unknown = set(table) - _FIELDS
        if unknown:
            raise ValueError(
                f"{path}: parameter {name!r}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}"
            )
        missing = {"value", "unit", "lower", "upper", "source"} - set(table)
        if missing:
            raise ValueError(f"{path}: parameter {name!r}: missing field(s) {sorted(missing)}")
        try:
            out[name] = ParameterSpec(name=name, **table, origin=str(path))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return out


def convert_spec(spec: ParameterSpec, unit: str) -> ParameterSpec:
    """``spec`` with value and bounds expressed in ``unit`` (refused when the dimensions differ)."""
    if parse_unit(spec.unit) == parse_unit(unit):
        return spec
    what = f"{spec.origin or 'parameter spec'}: parameter {spec.name!r}"
    value, lower, upper = (convert_value(getattr(spec, f), spec.unit, unit, what) for f in ("value", "lower", "upper"))
    # rounding in the conversion may push a bound a few ulps past the value
    lower, upper = min(lower, value), max(upper, value)
    return dataclasses.replace(spec, value=value, unit=unit, lower=lower, upper=upper)


class ParameterSet(Mapping):
    """Named parameter values with their specs; values may be scalars or length-N arrays.

    ``with_values`` returns a new set with some values replaced (validated against the
    specs); array values make a batch of N parameter sets.
    """

    def __init__(
        self,
        specs: Mapping[str, ParameterSpec],
        values: Mapping[str, object] | None = None,
        name: str = "default",
        overlays: tuple[str, ...] = (),
    ):
        self.specs = dict(specs)
        self.name = name
        self.overlays = tuple(overlays)
        self._values: dict[str, np.ndarray | float] = {k: float(s.value) for k, s in self.specs.items()}
        if values:
            # values handed over with the specs (copies, slices of a batch) were checked against
            # their bounds where they entered; the domain is checked again here
            self._values.update(self._validated(values, bounds="ignore", origin="values"))
            self.batch_size  # refuse arrays of different lengths now, not at the first simulate

    def _validated(self, values: Mapping[str, object], bounds: str, origin: str) -> dict:
        """Checked values in each spec's unit. ``bounds``: "ignore", "warn" or "strict"."""
        out = {}
        for key, v in values.items():
            if key not in self.specs:
                near = (
                    difflib.get_close_matches(key, list(self.specs), n=5, cutoff=0.6)
                    or [k for k in self.specs if key.lower() in k.lower() or k.lower() in key.lower()][:5]
                )
                raise ValueError(
                    f"parameter {key!r}: unknown; "
                    + (f"did you mean {near}?" if near else f"see models/ for the {len(self.specs)} known names")
                )
            spec = self.specs[key]
            if isinstance(v, pint.Quantity):
                v = convert_value(v.magnitude, f"{v.units:~C}", spec.unit, f"{origin}: parameter {key!r}")
            arr = np.asarray(v, dtype=float)
            if arr.ndim > 1:
                raise ValueError(f"parameter {key!r}: value must be a number or a 1-D array, got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"parameter {key!r}={v!r}: must be finite")
            check_domain(key, arr, spec.domain, spec.unit, origin)
            outside = (arr < spec.lower) | (arr > spec.upper)
            if bounds != "ignore" and np.any(outside):
                first = float(arr.ravel()[np.argmax(outside.ravel())])
                text = (
                    f"{origin}: parameter {key!r}={first:g} {spec.unit} lies outside its sweep bounds "
                    f"[{spec.lower:g}, {spec.upper:g}] {spec.unit}"
                )
                if bounds == "strict":
                    raise ValueError(text + " (strict bounds)")
                warnings.warn(
                    text + "; allowed, as it is inside the physical domain "
                    f"{spec.domain!r} (pass strict=True to refuse)",
                    BoundsWarning,
                    stacklevel=3,
                )
            out[key] = float(arr) if arr.ndim == 0 else arr
        return out

    def with_values(
        self,
        values: Mapping[str, object],
        *,
        strict: bool = False,
        check_bounds: bool = False,
        name: str | None = None,
        origin: str = "with_values",
    ) -> "ParameterSet":
        """A copy with ``values`` replaced.

        Values are numbers in the spec's unit or pint Quantities (converted). Every value must lie in
        the parameter's physical domain; one outside the sweep bounds gives a BoundsWarning, or a
        ValueError with ``strict=True`` (``check_bounds=True`` is the older spelling of strict).
        """
        checked = self._validated(values, "strict" if (strict or check_bounds) else "warn", origin)
        return ParameterSet(self.specs, {**self._values, **checked}, name or self.name, self.overlays)

    def with_overlay(self, overlay_name: str, values: Mapping[str, object], *, strict: bool = False) -> "ParameterSet":
        """Apply a named overlay (drug format, tumour setting); checked as in :meth:`with_values`."""
        checked = self._validated(values, "strict" if strict else "warn", f"overlay {overlay_name!r}")
        return ParameterSet(self.specs, {**self._values, **checked}, self.name, self.overlays + (overlay_name,))

    def in_units(self, units: Mapping[str, str]) -> "ParameterSet":
        """A copy whose specs and values named in ``units`` are expressed in those units.

        Used with :func:`model_units` so the numbers handed to a model are in the units its
        mechanisms declare. A different dimension is refused naming the file, the parameter, the
        value and both units. Names in ``units`` that this set lacks are left to the caller.
        """
        specs, values = dict(self.specs), dict(self._values)
        for name, unit in units.items():
            if name not in specs or parse_unit(specs[name].unit) == parse_unit(unit):
                continue
            spec = specs[name]
            specs[name] = convert_spec(spec, unit)
            values[name] = convert_value(
                values[name],
                spec.unit,
                unit,
                f"{spec.origin or 'parameter set ' + repr(self.name)}: parameter {name!r}",
            )
        out = ParameterSet.__new__(ParameterSet)  # values were checked on the way in: no second check
        out.specs, out.name, out.overlays, out._values = specs, self.name, self.overlays, values
        return out

    def value_in(self, name: str, unit: str):
        """The value of ``name`` expressed in ``unit`` (number or array)."""
        if name not in self._values:
            raise ValueError(f"parameter set {self.name!r} lacks {name!r}; add it to models/")
        spec = self.specs[name]
        return convert_value(
            self._values[name],
            spec.unit,
            unit,
            f"{spec.origin or 'parameter set ' + repr(self.name)}: parameter {name!r}",
        )

    # Mapping interface
    def __getitem__(self, key: str):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def batch_size(self) -> int:
        """N: 1 unless some value is an array."""
        lengths = {k: np.size(v) for k, v in self._values.items() if np.ndim(v) == 1}
        sizes = set(lengths.values())
        if len(sizes) > 1:
            by_length = {n: sorted(k for k, m in lengths.items() if m == n) for n in sorted(sizes)}
            named = "; ".join(
                f"length {n}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}" for n, keys in by_length.items()
            )
            raise ValueError(
                f"parameter arrays have different lengths ({named}); all batched values must have the same length"
            )
        return sizes.pop() if sizes else 1

    @property
    def is_batched(self) -> bool:
        return any(np.ndim(v) == 1 for v in self._values.values())

    def matrix(self, names: Iterable[str]) -> np.ndarray:
        """(m, N) array of the named values, broadcast to the batch size."""
        names = list(names)
        missing = [n for n in names if n not in self._values]
        if missing:
            raise ValueError(f"parameter set {self.name!r} lacks value(s) for {missing}; add them to models/")
        N = self.batch_size
        return np.array([np.broadcast_to(np.asarray(self._values[n], dtype=float), (N,)) for n in names])

    def digest(self) -> str:
        """Stable short hash of all values (for provenance): sha256 of the JSON of every value rounded to
        15 decimals, where a batched (per-sample) value enters as the sha256 of its rounded float64 bytes
        (little-endian) with its length, not as a JSON list: a batch of 10,000 sets hashes in milliseconds
        instead of a quarter second. A set of single values hashes as it always has."""
        payload = {k: _digest_value(v) for k, v in sorted(self._values.items())}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def unit(self, name: str) -> str:
        return self.specs[name].unit

    def __repr__(self) -> str:
        return (
            f"ParameterSet({self.name!r}, {len(self)} parameters, overlays={list(self.overlays)}, N={self.batch_size})"
        )


def _digest_value(value):
    """A value as :meth:`ParameterSet.digest` hashes it: a number (rounded to 15 decimals), or for an array
    ``{"n": length, "float64_sha256": hex}`` over its rounded little-endian float64 bytes."""
    if np.ndim(value) == 0:
        return np.asarray(value).round(15).tolist()
    a = np.asarray(value, dtype=float).round(15)
    data = np.ascontiguousarray(a, dtype="<f8").tobytes()
    return {"n": int(a.size), "float64_sha256": hashlib.sha256(data).hexdigest()}


def load_parameters(paths: Iterable[str | pathlib.Path] | None = None, name: str = "default") -> ParameterSet:
    """Load and merge parameter files (default: every ``models/parameters/*.toml``)."""
    if paths is None:
        paths = sorted((require_models_dir(MODELS_DIR) / "parameters").glob("*.toml"))
        if not paths:
            raise FileNotFoundError(f"moa's model files: no *.toml in {MODELS_DIR / 'parameters'}")
    specs: dict[str, ParameterSpec] = {}
    for path in paths:
        for key, spec in load_parameter_file(path).items():
            if key in specs:
                raise ValueError(f"parameter {key!r} is defined in more than one file (second: {path})")
            specs[key] = spec
    return ParameterSet(specs, name=name)
