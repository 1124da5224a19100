"""Running scenarios: arms across settings and parameter sweeps, as labelled datasets.

These are the building blocks of the experiments: each returns an ``xarray.Dataset`` whose
dims name what varies (``setting``, ``arm``, ``dose_mg_per_kg``, a swept parameter) and whose
``status``/``message`` say which points failed and why (a sweep never dies on one point).
Every run starts at the untreated patient's quasi-steady state (``simulate(..., start="quasi_steady")``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from .symbolic.named_models import full_model
from .binding_equilibrium import liver_signal
from .parameters import ParameterSet
from .report.provenance import concat_runs
from .regimen import Regimen, every
from .scenarios import load_arms, scenario
from .simulate import simulate, variable_names

__all__ = ["stack_parameter_sets", "run_arm", "run_arms", "sweep", "run_points", "run_doses", "KEY_VARIABLES"]

#: Variables kept by the experiments (a full dataset has ~70).
KEY_VARIABLES = (
    "tumour_diameter",
    "tumour_volume",
    "tumour_cells",
    "t_eff",
    "t_pex",
    "t_ex",
    "t_primed",
    "tumour_t_cells",
    "cd137_signal",
    "cd137_engaged",
    "pd1_engaged",
    "pdl1_drug_occupancy",
    "ternary_bsab",
    "bsab_central",
    "apdl1_central",
    "a41bb_central",
    "nabp_effect",
    "immune_kill_rate",
    "chemo_kill_rate",
    "cd137_costimulation",
    "t_reg",
    "myeloid_cells",
    "effector_function",
    "t_cell_density",
    "tumour_cells_sensitive",
    "tumour_cells_resistant",
    "tumour_cells_escape",
    "resistant_fraction",
    "escape_fraction",
    "extinct_day_tumour_cells_sensitive",
    "extinct_day_tumour_cells_resistant",
    "extinct_day_tumour_cells_escape",
)


def stack_parameter_sets(sets: Sequence[ParameterSet], name: str = "stacked") -> ParameterSet:
    """One batched ParameterSet whose sample k holds ``sets[k]`` (values that differ become arrays)."""
    if not sets:
        raise ValueError("sets: need at least one ParameterSet")
    keys = list(sets[0])
    values = {}
    for k in keys:
        col = [np.asarray(s[k], dtype=float) for s in sets]
        if any(c.ndim for c in col):
            raise ValueError(f"parameter {k!r}: stack_parameter_sets takes unbatched sets only")
        vals = np.array([float(c) for c in col])
        values[k] = vals if np.ptp(vals) > 0 else float(vals[0])
    overlays = tuple(dict.fromkeys(o for s in sets for o in s.overlays))
    out = ParameterSet(sets[0].specs, values, name=name, overlays=overlays)
    if not out.is_batched and len(sets) > 1:  # identical sets: still give N samples
        first = keys[0]
        out = out.with_values({first: np.full(len(sets), float(sets[0][first]))})
    return out


def _simulated(variables: Iterable[str] | None) -> list[str]:
    """The names of ``variables`` (default :data:`KEY_VARIABLES`) that ``simulate(keep=...)`` returns
    for the full model; the others (derived ones such as ``cd137_signal_liver``) are left to ``_keep``."""
    known = set(variable_names(full_model()))
    return [v for v in (variables or KEY_VARIABLES) if v in known]


def _keep(ds: xr.Dataset, variables: Iterable[str] | None) -> xr.Dataset:
    keep = [v for v in (variables or KEY_VARIABLES) if v in ds] + ["status", "message"]
    return ds[keep]


def run_arm(
    arm: str,
    settings: Sequence[str],
    duration_days: float,
    *,
    overrides: Mapping | None = None,
    regimen: Regimen | None = None,
    variables: Iterable[str] | None = None,
    solver: str = "auto",
    with_safety: bool = True,
) -> xr.Dataset:
    """One arm in several settings (one batched simulation); dims ``setting``, ``time``."""
    sets, reg = [], None
    for s in settings:
        p, reg = scenario(arm, s, duration_days)
        if overrides:
            p = p.with_values(overrides)
        sets.append(p)
    reg = regimen if regimen is not None else reg
    params = stack_parameter_sets(sets, name=f"{arm}@{','.join(settings)}")
    ds = simulate(
        full_model(), params, reg, duration_days=duration_days, solver=solver, on_failure="record", start="quasi_steady"
    )
    if with_safety:
        ds["cd137_signal_liver"] = liver_signal(ds, params)
    ds = _keep(ds, list(variables or KEY_VARIABLES) + ["cd137_signal_liver"])
    if "sample" not in ds.dims:  # one setting: not batched
        ds = ds.expand_dims("sample")
    ds = ds.rename({"sample": "setting"}).assign_coords(setting=list(settings))
    return ds.drop_vars([c for c in ds.coords if c not in ("setting", "time")])


def run_arms(arms: Sequence[str], settings: Sequence[str], duration_days: float, progress=None, **kwargs) -> xr.Dataset:
    """Several arms, each across the settings; dims ``arm``, ``setting``, ``time``."""
    labels = load_arms()
    parts = []
    for arm in arms:
        parts.append(run_arm(arm, settings, duration_days, **kwargs).expand_dims(arm=[arm]))
        if progress:
            progress(arm)
    ds = concat_runs(parts, dim="arm")
    ds = ds.assign_coords(arm_label=("arm", [labels[a].label for a in arms]))
    # provenance of the whole grid, not of the first arm that xr.concat kept
    overlays = dict.fromkeys(o for part in parts for o in part.attrs.get("overlays", "").split(",") if o)
    ds.attrs.update(
        {
            "parameter_set": f"models/parameters defaults; arms {', '.join(arms)} (models/arms.toml)",
            "overlays": ",".join(overlays),
            "parameter_hash": "+".join(dict.fromkeys(part.attrs.get("parameter_hash", "?") for part in parts)),
            "regimen": "per arm (models/arms.toml)",
        }
    )
    ds.attrs.pop("doses", None)
    ds.attrs.pop("doses_not_given", None)  # per arm too, like "doses"
    return ds


def sweep(
    arm: str,
    setting: str,
    parameter: str,
    values: Sequence[float],
    duration_days: float,
    *,
    overrides: Mapping | None = None,
    variables: Iterable[str] | None = None,
    solver: str = "auto",
    regimen: Regimen | None = None,
) -> xr.Dataset:
    """One parameter swept for one arm in one setting; dim named after the parameter.

    Failed points keep NaN states and their reason in ``status``/``message``.
    """
    params, reg = scenario(arm, setting, duration_days)
    if parameter not in params:
        raise ValueError(f"parameter={parameter!r}: unknown; see models/parameters/")
    params = params.with_values({**(overrides or {}), parameter: np.asarray(values, dtype=float)})
    ds = simulate(
        full_model(),
        params,
        regimen if regimen is not None else reg,
        duration_days=duration_days,
        solver=solver,
        on_failure="record",
        start="quasi_steady",
        keep=_simulated(variables),
    )
    ds = _keep(ds, variables)
    ds = ds.swap_dims({"sample": parameter}).drop_vars("sample")
    ds[parameter].attrs.setdefault("units", params.unit(parameter))  # simulate's coordinate: the model's unit
    return ds


def run_points(
    arm: str,
    setting: str,
    values: Mapping[str, Sequence[float]],
    duration_days: float,
    *,
    overrides: Mapping | None = None,
    variables: Iterable[str] | None = None,
    solver: str | object = "auto",
    regimen: Regimen | None = None,
    dim: str = "point",
) -> xr.Dataset:
    """Any set of parameter points for one arm in one setting, as one batched simulation; dim ``dim``.

    ``values`` maps each varied parameter to an array, all of one length (the points); other
    parameters keep the scenario's values (plus ``overrides``). Several one-parameter sweeps or a
    flattened grid can share one call, which costs about as much as one sweep with the batched
    solver. Each varied parameter is a coordinate along ``dim``; failed points keep NaN states
    and their reason in ``status``/``message``.
    """
    params, reg = scenario(arm, setting, duration_days)
    arrays = {k: np.asarray(v, dtype=float).ravel() for k, v in values.items()}
    for k in arrays:
        if k not in params:
            raise ValueError(f"values: parameter {k!r} is unknown; see models/parameters/")
    lengths = {k: a.size for k, a in arrays.items()}
    if not arrays or len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(
            f"values: need one or more parameters with arrays of one non-zero length, got lengths {lengths}"
        )
    params = params.with_values({**(overrides or {}), **arrays})
    ds = simulate(
        full_model(),
        params,
        regimen if regimen is not None else reg,
        duration_days=duration_days,
        solver=solver,
        on_failure="record",
        start="quasi_steady",
        keep=_simulated(variables),
    )
    ds = _keep(ds, variables)
    if "sample" not in ds.dims:  # one point: not batched
        ds = ds.expand_dims("sample")
    ds = ds.drop_vars([c for c in ds.coords if c != "time"]).rename_dims({"sample": dim})
    return ds.assign_coords({k: (dim, a, {"units": params.unit(k)}) for k, a in arrays.items()})


def run_doses(
    drug: str,
    doses: Sequence[float],
    unit: str,
    interval_days: float,
    setting: str,
    duration_days: float,
    *,
    arm: str,
    extra: Regimen | None = None,
    overrides: Mapping | None = None,
    variables: Iterable[str] | None = None,
) -> xr.Dataset:
    """The arm's parameters with ``drug`` given at each dose (one simulation per dose)."""
    params, _ = scenario(arm, setting, duration_days)
    if overrides:
        params = params.with_values(overrides)
    parts = []
    for dose in doses:
        reg = every(drug, float(dose), unit, interval_days, duration_days)
        if extra is not None:
            reg = reg + extra
        ds = simulate(full_model(), params, reg, duration_days=duration_days, on_failure="record", start="quasi_steady")
        ds["cd137_signal_liver"] = liver_signal(ds, params)
        parts.append(_keep(ds, list(variables or KEY_VARIABLES) + ["cd137_signal_liver"]))
    out = concat_runs(parts, dim="dose", labels=[float(d) for d in doses])
    out.attrs.pop("doses", None)
    out.attrs["regimen"] = f"{drug} every {interval_days:g} day at each dose in {unit}" + (
        f" + {extra.name}" if extra else ""
    )
    return out.assign_coords(dose=("dose", np.asarray(doses, dtype=float), {"units": unit}))
