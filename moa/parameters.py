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
tumour settings) are tables of ``name = value`` that must name known parameters and stay
within their bounds.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import pathlib
import tomllib
from collections.abc import Iterable, Mapping

import numpy as np

from .units import UnitError, parse_unit

__all__ = ["ParameterSpec", "ParameterSet", "load_parameter_file", "load_parameters", "MODELS_DIR"]

MODELS_DIR = pathlib.Path(__file__).resolve().parent.parent / "models"
_FIELDS = {"value", "unit", "lower", "upper", "source", "description", "scale", "domain"}


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

    def __post_init__(self):
        where = f"parameter {self.name!r}"
        for field in ("value", "lower", "upper"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{where}: {field}={v!r}: must be a finite number")
        try:
            parse_unit(self.unit)
        except UnitError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not self.source or not str(self.source).strip():
            raise ValueError(f"{where}: source is empty: give a citation, 'assumed: <why>' or 'calibrated: <what>'")
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
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    out = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(f"{path}: {name} = {table!r}: every top-level entry must be a table with value, unit, lower, upper, source")
        unknown = set(table) - _FIELDS
        if unknown:
            raise ValueError(f"{path}: parameter {name!r}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
        missing = {"value", "unit", "lower", "upper", "source"} - set(table)
        if missing:
            raise ValueError(f"{path}: parameter {name!r}: missing field(s) {sorted(missing)}")
        try:
            out[name] = ParameterSpec(name=name, **{k: v for k, v in table.items() if k != "domain"})  # domain: checked in the params branch
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return out


class ParameterSet(Mapping):
    """Named parameter values with their specs; values may be scalars or length-N arrays.

    ``with_values`` returns a new set with some values replaced (validated against the
    specs); array values make a batch of N parameter sets.
    """

    def __init__(self, specs: Mapping[str, ParameterSpec], values: Mapping[str, object] | None = None, name: str = "default",
                 overlays: tuple[str, ...] = ()):
        self.specs = dict(specs)
        self.name = name
        self.overlays = tuple(overlays)
        self._values: dict[str, np.ndarray | float] = {k: float(s.value) for k, s in self.specs.items()}
        if values:
            self._values.update(self._validated(values, check_bounds=False))

    def _validated(self, values: Mapping[str, object], check_bounds: bool) -> dict:
        out = {}
        for key, v in values.items():
            if key not in self.specs:
                near = difflib.get_close_matches(key, list(self.specs), n=5, cutoff=0.6) or [
                    k for k in self.specs if key.lower() in k.lower() or k.lower() in key.lower()][:5]
                raise ValueError(f"parameter {key!r}: unknown; " + (f"did you mean {near}?" if near else f"see models/ for the {len(self.specs)} known names"))
            arr = np.asarray(v, dtype=float)
            if arr.ndim > 1:
                raise ValueError(f"parameter {key!r}: value must be a number or a 1-D array, got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"parameter {key!r}={v!r}: must be finite")
            if np.any(arr < 0):
                raise ValueError(f"parameter {key!r}={v!r}: must be >= 0 (all moa parameters are non-negative)")
            spec = self.specs[key]
            if check_bounds and (np.any(arr < spec.lower) or np.any(arr > spec.upper)):
                raise ValueError(f"parameter {key!r}={v!r}: outside its bounds [{spec.lower}, {spec.upper}] {spec.unit}")
            out[key] = float(arr) if arr.ndim == 0 else arr
        return out

    def with_values(self, values: Mapping[str, object], *, check_bounds: bool = False, name: str | None = None) -> "ParameterSet":
        """A copy with ``values`` replaced. ``check_bounds=True`` also enforces the sweep bounds."""
        new = ParameterSet(self.specs, {**self._values, **self._validated(values, check_bounds)}, name or self.name, self.overlays)
        return new

    def with_overlay(self, overlay_name: str, values: Mapping[str, object]) -> "ParameterSet":
        """Apply a named overlay (drug format, tumour setting); values must lie within bounds."""
        try:
            checked = self._validated(values, check_bounds=True)
        except ValueError as exc:
            raise ValueError(f"overlay {overlay_name!r}: {exc}") from None
        return ParameterSet(self.specs, {**self._values, **checked}, self.name, self.overlays + (overlay_name,))

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
        sizes = {np.size(v) for v in self._values.values() if np.ndim(v) == 1}
        if len(sizes) > 1:
            raise ValueError(f"parameter arrays have different lengths {sorted(sizes)}; all batched values must have the same length")
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
        """Stable short hash of all values (for provenance)."""
        payload = {k: np.asarray(v).round(15).tolist() for k, v in sorted(self._values.items())}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def unit(self, name: str) -> str:
        return self.specs[name].unit

    def __repr__(self) -> str:
        return f"ParameterSet({self.name!r}, {len(self)} parameters, overlays={list(self.overlays)}, N={self.batch_size})"


def load_parameters(paths: Iterable[str | pathlib.Path] | None = None, name: str = "default") -> ParameterSet:
    """Load and merge parameter files (default: every ``models/parameters/*.toml``)."""
    if paths is None:
        paths = sorted((MODELS_DIR / "parameters").glob("*.toml"))
    specs: dict[str, ParameterSpec] = {}
    for path in paths:
        for key, spec in load_parameter_file(path).items():
            if key in specs:
                raise ValueError(f"parameter {key!r} is defined in more than one file (second: {path})")
            specs[key] = spec
    return ParameterSet(specs, name=name)
