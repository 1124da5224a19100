"""Scenarios as data: tumour settings, drug formats and treatment arms from ``models/``.

``scenario(arm, setting)`` gives the parameter set and regimen of one arm in one setting::

    params, regimen = moa.scenarios.scenario("bsab_2x2", "cold", duration_days=365)
    ds = moa.simulate(moa.symbolic.named_models.full_model(), params, regimen, duration_days=365)
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import tomllib

from .checks import is_finite_real, read_utf8
from .errors import UnitError
from .parameters import MODELS_DIR, ParameterSet, convert_value, load_parameters
from .paths import require_models_dir
from .regimen import Regimen, regimen_from_table

__all__ = [
    "Overlay",
    "TreatmentArm",
    "load_settings",
    "load_formats",
    "load_arms",
    "scenario",
    "ARM_ORDER",
    "SETTING_ORDER",
]

#: Display order of arms and settings in figures and tables.
ARM_ORDER = (
    "untreated",
    "apdl1",
    "a41bb",
    "apdl1_a41bb",
    "bsab_1x1",
    "bsab_2x2",
    "nabp",
    "nabp_apdl1",
    "nabp_bsab_2x2",
)
SETTING_ORDER = ("hot_tnbc", "cold", "pdl1_negative_tnbc")


@dataclasses.dataclass(frozen=True)
class Overlay:
    """Named parameter values (a tumour setting or a drug format) with their sources."""

    name: str
    label: str
    values: dict
    sources: dict
    description: str = ""
    levers: tuple[str, ...] = ()  # the parameters that define a tumour setting (each also in ``values``)


@dataclasses.dataclass(frozen=True)
class TreatmentArm:
    """A treatment arm of ``models/arms.toml`` (a regimen of one or more drugs, and the format of its
    bispecific if any); not :class:`moa.mechanisms.binding.DrugArms`, the antigen-binding arms of one antibody."""

    name: str
    label: str
    table: dict
    format: str | None = None

    def regimen(self, duration_days: float) -> Regimen | None:
        """The doses up to ``duration_days``; ``None`` for the untreated arm."""
        if not self.table.get("doses"):
            return None
        return regimen_from_table(self.name, {"dose": self.table["doses"]}, duration_days)


def _read(path: pathlib.Path) -> dict:
    try:
        return tomllib.loads(read_utf8(path))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None


def _overlays(path: pathlib.Path, specs) -> dict[str, Overlay]:
    out = {}
    for name, table in _read(path).items():
        values, sources = {}, {}
        for key, entry in table.get("values", {}).items():
            where = f"{path.name}: {name}.{key}"
            if key not in specs:
                raise ValueError(f"{where}: unknown parameter; see models/parameters/")
            if not isinstance(entry, dict) or not {"value", "unit", "source"} <= set(entry):
                raise ValueError(f"{where}: must be {{ value = ..., unit = ..., source = ... }}")
            value = entry["value"]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}: value={value!r}: must be a number")
            try:  # written in any unit of the parameter's dimension; stored in the parameter's unit
                values[key] = float(
                    convert_value(float(value), entry["unit"], specs[key].unit, f"{path}: {name}.{key}")
                )
            except UnitError as exc:
                raise ValueError(f"{exc} (the parameter's unit is {specs[key].unit!r})") from None
            sources[key] = entry["source"]
        levers = table.get("levers", [])
        if not isinstance(levers, list) or any(k not in values for k in levers):
            raise ValueError(
                f"{path.name}: {name}.levers={levers!r}: must be a list of parameters set in {name}.values"
            )
        out[name] = Overlay(
            name, table.get("label", name), values, sources, table.get("description", ""), tuple(levers)
        )
    return out


@functools.lru_cache(maxsize=4)
def default_parameters(models_dir: pathlib.Path = MODELS_DIR) -> ParameterSet:
    return load_parameters(sorted((require_models_dir(models_dir) / "parameters").glob("*.toml")))


def load_settings(models_dir: pathlib.Path = MODELS_DIR) -> dict[str, Overlay]:
    return _overlays(models_dir / "settings.toml", default_parameters(models_dir).specs)


def load_formats(models_dir: pathlib.Path = MODELS_DIR) -> dict[str, Overlay]:
    return _overlays(models_dir / "formats.toml", default_parameters(models_dir).specs)


def load_arms(models_dir: pathlib.Path = MODELS_DIR) -> dict[str, TreatmentArm]:
    formats = load_formats(models_dir)
    out = {}
    for name, table in _read(models_dir / "arms.toml").items():
        fmt = table.get("format")
        if fmt is not None and fmt not in formats:
            raise ValueError(f"arms.toml: {name}.format={fmt!r}: allowed formats are {sorted(formats)}")
        arm = TreatmentArm(name, table.get("label", name), table, fmt)
        try:
            arm.regimen(21.0)  # validate doses now
        except ValueError as exc:
            raise ValueError(f"arms.toml: arm {name!r}: {exc}") from None
        out[name] = arm
    return out


def scenario(
    arm: str,
    setting: str,
    duration_days: float = 365.0,
    base: ParameterSet | None = None,
    models_dir: pathlib.Path = MODELS_DIR,
    strict: bool = False,
) -> tuple[ParameterSet, Regimen | None]:
    """Parameters (defaults + setting + format overlays) and regimen of ``arm`` in ``setting``.

    An overlay value outside its parameter's sweep bounds gives a BoundsWarning (a ValueError
    with ``strict=True``); one outside the physical domain is always refused.
    """
    if not (is_finite_real(duration_days) and duration_days > 0):
        raise ValueError(
            f"scenario({arm!r}, {setting!r}): duration_days={duration_days!r}: must be a finite number of days > 0"
        )
    arms, settings, formats = load_arms(models_dir), load_settings(models_dir), load_formats(models_dir)
    if arm not in arms:
        raise ValueError(f"arm={arm!r}: allowed arms are {sorted(arms)}")
    if setting not in settings:
        raise ValueError(f"setting={setting!r}: allowed settings are {sorted(settings)}")
    params = (base or default_parameters(models_dir)).with_overlay(setting, settings[setting].values, strict=strict)
    fmt = arms[arm].format
    if fmt:
        params = params.with_overlay(fmt, formats[fmt].values, strict=strict)
    params = ParameterSet(params.specs, dict(params), name=f"{arm}@{setting}", overlays=params.overlays)
    return params, arms[arm].regimen(duration_days)
