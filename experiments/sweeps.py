"""Which tumour and drug properties decide whether the 2:2 bispecific beats anti-PD-L1, \
and where does the press-release claim hold?

One-parameter sweeps across each parameter's bounds (models/parameters/; log-spaced where
scale = "log") of the levers that make a tumour hot or cold (priming, antigenicity,
infiltration, Treg and myeloid recruitment, tumour PD-L1) and of drug properties (4-1BB-arm KD, trans-bridging avidity,
4-1BB reinvigoration of exhausted cells), on the cold and the hot TNBC settings; then a
two-parameter map of tumour PD-L1 x infiltration on the cold background.

Outcome: the benefit of the 2:2 bispecific (15 mg/kg Q3W) over anti-PD-L1 (1200 mg Q3W),
log10 of the ratio of their viable tumour cells at day 168 (each floored at one cell, below
which the continuous model has no meaning), and each arm's best change of diameter. All points
of one arm and setting (every sweep and the map) run as one batched simulation; a point the
solver cannot finish is recorded with its reason, marked in the figures and counted.
"""

from __future__ import annotations

import collections
import math
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from moa.report import plots
from moa.analysis import best_percent_change, partial_response_pct
from moa.parameters import ParameterSpec
from moa.report.provenance import combine_simulations, concat_runs
from moa.report.results import save_dataset
from moa.runs import run_points
from moa.scenarios import SETTING_ORDER, load_settings, scenario
from moa.solvers.base import STATUS
from moa.report.summaries import SweepsSummary

#: Swept parameters: hot/cold levers first, then properties of the drug.
SWEPT = (
    "priming_rate_max",
    "antigenicity",
    "infiltration_rate",
    "treg_density",
    "myeloid_density",
    "pdl1_per_tumour_cell",
    "kd_cd137_bsab",
    "cis_efficacy_bsab",
    "cd137_reinvigoration_rate",
)
ARMS = ("apdl1", "bsab_2x2")  # reference first: benefit = log10(reference / bispecific)
SWEEP_SETTINGS = ("cold", "hot_tnbc")
MAP_SETTING = "cold"
MAP_AXES = ("pdl1_per_tumour_cell", "infiltration_rate")
BENEFIT_DAY = 168.0
MARGIN_LOG10 = 0.1  # "beats" means a benefit above this (a 1.26-fold smaller tumour)
VARIABLES = ("tumour_cells", "tumour_diameter")
SETTING_STYLE = {
    "cold": ("#000000", "-", "o"),
    "hot_tnbc": ("#aa4499", "--", "s"),
    "pdl1_negative_tnbc": ("#44aa99", ":", "^"),
}
FAILED_STYLE = dict(marker="x", color="0.45", s=90, linewidths=2.5, zorder=6)


def sweep_values(spec: ParameterSpec, n_points: int) -> np.ndarray:
    """``n_points`` values across the parameter's bounds, log-spaced where ``scale == "log"``."""
    if n_points < 2:
        raise ValueError(f"n_points={n_points}: a sweep needs at least 2 points")
    if spec.scale == "log":
        return np.geomspace(spec.lower, spec.upper, n_points)
    return np.linspace(spec.lower, spec.upper, n_points)


def _design(base: Mapping[str, object], blocks: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate blocks of points; a parameter a block does not vary keeps its base value."""
    names = list(dict.fromkeys(k for block in blocks for k in block))
    columns: dict[str, list] = {k: [] for k in names}
    for block in blocks:
        n = len(next(iter(block.values())))
        for k in names:
            columns[k].append(np.asarray(block[k], dtype=float) if k in block else np.full(n, float(base[k])))
    return {k: np.concatenate(v) for k, v in columns.items()}


def add_outcomes(ds: xr.Dataset, benefit_day: float) -> xr.Dataset:
    """Benefit (log10 fold, NaN where either arm failed), failure flag and best diameter change."""
    cells = ds["tumour_cells"].sel(time=benefit_day)
    floored = np.maximum(cells, 1.0)
    failed = (ds["status"] != 0).any("arm")
    ds["failed"] = failed
    ds["benefit"] = (
        np.log10(floored.sel(arm=ARMS[0]) / floored.sel(arm=ARMS[1]))
        .where(~failed)
        .assign_attrs(
            units="log10 fold",
            day=benefit_day,
            description=f"log10(tumour cells {ARMS[0]} / {ARMS[1]}) at day {benefit_day:g}, each floored at 1 cell",
        )
    )
    ds["best_percent_change"] = best_percent_change(ds["tumour_diameter"])
    return ds


def _as_sweep(block: xr.Dataset, parameter: str, spec: ParameterSpec) -> xr.Dataset:
    values = block[parameter].values
    out = block.drop_vars([c for c in block.coords if c not in ("time", "arm")]).rename({"point": "step"})
    out = out.assign_coords(step=np.arange(values.size)).expand_dims(parameter=[parameter])
    return out.assign_coords(
        value=(("parameter", "step"), values[None]), unit=("parameter", [spec.unit]), scale=("parameter", [spec.scale])
    )


def _unflatten(block: xr.Dataset, axes: Mapping[str, tuple[np.ndarray, str]]) -> xr.Dataset:
    """Points of a row-major meshgrid (dim ``point``) back onto one dim per axis."""
    shape = tuple(len(v) for v, _ in axes.values())
    data = {}
    for name, var in block.data_vars.items():
        dims = [d for dim in var.dims for d in (list(axes) if dim == "point" else [dim])]
        new_shape = [n for dim, n in zip(var.dims, var.shape) for n in (shape if dim == "point" else (n,))]
        data[name] = (dims, var.values.reshape(new_shape), var.attrs)
    coords = {
        "arm": block.arm.values,
        "time": block.time,
        **{a: (a, v, {"units": unit}) for a, (v, unit) in axes.items()},
    }
    return xr.Dataset(data, coords=coords, attrs=block.attrs)


def run_sweeps(
    settings: Sequence[str] = SWEEP_SETTINGS,
    parameters: Sequence[str] = SWEPT,
    n_points: int = 12,
    duration_days: float = 365.0,
    *,
    map_points: int = 0,
    solver: str | object = "auto",
    benefit_day: float = BENEFIT_DAY,
) -> tuple[xr.Dataset, xr.Dataset | None]:
    """One-parameter sweeps (dims setting, arm, parameter, step, time) and, if ``map_points``,
    the ``MAP_AXES`` map on ``MAP_SETTING`` (dims arm, <axis 0>, <axis 1>, time).

    One batched simulation per arm and setting holds every sweep (and the map).
    """
    if benefit_day > duration_days:
        raise ValueError(f"benefit_day={benefit_day}: must be <= duration_days={duration_days}")
    sweeps, grid, attrs, runs = [], None, {}, []
    swept_overlays: dict[str, None] = {}  # the overlays of every swept setting, in order
    run_settings = list(settings) + ([MAP_SETTING] if map_points and MAP_SETTING not in settings else [])
    for setting in run_settings:
        base, _ = scenario(ARMS[-1], setting, duration_days)
        blocks = [{p: sweep_values(base.specs[p], n_points)} for p in parameters] if setting in settings else []
        axes = None
        if map_points and setting == MAP_SETTING:
            axes = [sweep_values(base.specs[a], map_points) for a in MAP_AXES]
            mesh = np.meshgrid(*axes, indexing="ij")
            blocks.append({a: m.ravel() for a, m in zip(MAP_AXES, mesh)})
        design = _design(base, blocks)
        parts = [
            run_points(arm, setting, design, duration_days, variables=VARIABLES, solver=solver).expand_dims(arm=[arm])
            for arm in ARMS
        ]
        points = concat_runs(parts, dim="arm", coords="different", compat="equals", combine_attrs="override")
        if setting in settings:
            runs.append(({"setting": setting}, points.attrs))
        attrs = {
            **points.attrs,
            "parameter_set": f"default + {setting} overlay (bispecific: + bsab_2x2 format)",
            "overlays": ", ".join(dict.fromkeys(o for p in parts for o in p.attrs.get("overlays", "").split(",") if o)),
        }
        if setting in settings:
            swept_overlays.update(dict.fromkeys(attrs["overlays"].split(", ")))
            per_parameter = [
                _as_sweep(points.isel(point=slice(i * n_points, (i + 1) * n_points)), p, base.specs[p])
                for i, p in enumerate(parameters)
            ]
            sweeps.append(
                xr.concat(per_parameter, dim="parameter", coords="different", compat="equals").expand_dims(
                    setting=[setting]
                )
            )
        if axes is not None:
            block = points.isel(point=slice(len(parameters) * n_points if setting in settings else 0, None))
            grid = _unflatten(block, {a: (v, base.unit(a)) for a, v in zip(MAP_AXES, axes)})
            grid = add_outcomes(grid.transpose("arm", *MAP_AXES, "time"), benefit_day)
            grid.attrs = {
                **attrs,
                "parameter_set": f"default + {setting} overlay; {MAP_AXES[0]} x {MAP_AXES[1]} varied",
            }
    ds = None
    if sweeps:
        ds = add_outcomes(
            xr.concat(sweeps, dim="setting", coords="different", compat="equals", combine_attrs="override"), benefit_day
        )
        ds.attrs = {
            **attrs,
            "parameter_set": f"default + setting overlay ({', '.join(settings)}); one parameter varied at a time",
            "overlays": ", ".join(o for o in swept_overlays if o),
            "simulations": combine_simulations(runs),
        }
    return ds, grid


# ----------------------------------------------------------------------------------------------
# numbers for the summary


def sign_changes(x: np.ndarray, y: np.ndarray, log_scale: bool, margin: float = MARGIN_LOG10) -> list[float]:
    """Where the benefit ``y`` changes sign along ``x`` by more than ``margin`` on each side: from a point
    above ``+margin`` to the next point below ``-margin`` (or the reverse), with any points between them
    inside the band; located where ``y`` crosses zero between those two points (linear interpolation, in
    log10 x for log parameters).

    A crossing that stays within +-``margin`` (noise around zero where both arms have eradicated the tumour
    or neither acts, or a benefit of -0.04 log10 after +0.8) is no meaningful change of sign and is not
    reported, as the experiment's "beats" needs more than ``margin``. Failed (NaN) points are skipped.
    """
    keep = np.isfinite(y)
    xs = np.log10(x[keep]) if log_scale else x[keep]
    ys = y[keep]
    side = np.where(ys > margin, 1, np.where(ys < -margin, -1, 0))
    beyond = np.flatnonzero(side)
    out = []
    for a, b in zip(beyond[:-1], beyond[1:]):
        if side[a] == side[b]:
            continue
        i = next(i for i in range(a, b) if (ys[i] > 0) != (ys[i + 1] > 0))  # the first crossing between them
        root = xs[i] + (xs[i + 1] - xs[i]) * ys[i] / (ys[i] - ys[i + 1])
        out.append(float(10**root if log_scale else root))
    return out


def failure_reason(status: int, message: str = "") -> str:
    """Short reason of a failed point for legends (the status name; the full message is in the data)."""
    return STATUS.get(int(status), message or "failed")


def failures(ds: xr.Dataset, point_dims: Sequence[str]) -> tuple[int, dict[str, int], list[str]]:
    """Number of failed points (either arm), counts by reason, and up to 5 example messages."""
    st = ds["status"].transpose("arm", *point_dims).values.reshape(len(ds.arm), -1)
    msg = ds["message"].transpose("arm", *point_dims).values.reshape(len(ds.arm), -1)
    reasons: collections.Counter = collections.Counter()
    examples = []
    for j in range(st.shape[1]):
        bad = np.nonzero(st[:, j] != 0)[0]
        if bad.size:
            k = bad[0]
            reasons[failure_reason(st[k, j], str(msg[k, j]))] += 1
            examples.append(f"{ds.arm.values[k]}: {msg[k, j]}")
    return int(sum(reasons.values())), dict(reasons), list(dict.fromkeys(examples))[:5]


def _point_reason(ds: xr.Dataset, **where) -> str:
    st = ds["status"].sel(**where).values
    msg = ds["message"].sel(**where).values
    k = int(np.nonzero(st != 0)[0][0])
    return failure_reason(st[k], str(msg[k]))


# ----------------------------------------------------------------------------------------------
# figures


def _pretty(name: str) -> str:
    return name.replace("_", " ").replace("cd137", "4-1BB").replace("pdl1", "PD-L1").replace("bsab", "bispecific")


def _mark_failed(ax, ds: xr.Dataset, x: np.ndarray, y_at: np.ndarray, handles: dict, **where) -> None:
    failed = ds["failed"].sel(**where).values
    for i in np.nonzero(failed)[0]:
        reason = _point_reason(ds, **where, step=i) if "step" in ds.dims else _point_reason(ds, **where)
        h = ax.scatter([x[i]], [y_at[i]], **FAILED_STYLE)
        handles.setdefault(f"failed: {reason}", h)


def _sweep_grid(ds: xr.Dataset):
    params = list(ds.parameter.values)
    ncols = min(4, len(params))
    nrows = math.ceil(len(params) / ncols)
    fig, axes = plots.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.2 * nrows + 1.2), sharey=True, squeeze=False)
    for ax in axes.flat[len(params) :]:
        ax.set_visible(False)
    return fig, axes, params


def _setting_values(ds: xr.Dataset, parameter: str) -> dict[str, float]:
    out = {}
    for setting in ds.setting.values:
        params, _ = scenario(ARMS[-1], str(setting))
        out[str(setting)] = float(params[parameter])
    return out


def _x_axis(ax, ds: xr.Dataset, parameter: str) -> None:
    if str(ds.scale.sel(parameter=parameter).values) == "log":
        ax.set_xscale("log")
    ax.set_xlabel(plots.label(_pretty(parameter), str(ds.unit.sel(parameter=parameter).values)))


def plot_sweeps(ds: xr.Dataset, out_dir: pathlib.Path, stem: str = "sweeps_benefit") -> pathlib.Path:
    """Benefit of the bispecific over anti-PD-L1 against each swept parameter, per setting;
    failed points drawn as grey crosses on the zero line with their reason in the legend."""
    settings = load_settings()
    day = float(ds["benefit"].attrs["day"])
    with plots.style():
        fig, axes, params = _sweep_grid(ds)
        handles: dict = {}
        for ax, p in zip(axes.flat, params):
            x = ds.value.sel(parameter=p).values
            ax.axhspan(-MARGIN_LOG10, MARGIN_LOG10, color="0.92", lw=0, zorder=0)
            ax.axhline(0.0, color="0.3", lw=1)
            for setting, at in _setting_values(ds, p).items():
                colour, ls, marker = SETTING_STYLE.get(setting, ("0.2", "-", "o"))
                y = ds["benefit"].sel(setting=setting, parameter=p).values
                (h,) = ax.plot(x, y, color=colour, ls=ls, marker=marker, ms=5)
                handles.setdefault(settings[setting].label, h)
                ax.axvline(at, color=colour, ls=":", lw=1.2)
                _mark_failed(ax, ds, x, np.zeros_like(x), handles, setting=setting, parameter=p)
            _x_axis(ax, ds, p)
        fig.supylabel(plots.label(f"benefit over anti-PD-L1 at day {day:g}", "log10 fold"), fontsize=15)
        plots.panel_letters(axes)
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 4))
        failed = int(ds["failed"].sum())
        caption = (
            f"Benefit of the 2:2 bispecific (15 mg/kg Q3W) over anti-PD-L1 (1200 mg Q3W): log10 of the ratio of viable "
            f"tumour cells (anti-PD-L1 / bispecific) at day {day:g}, each floored at one cell; above 0 the bispecific "
            f"shrinks the tumour more, the grey band is |benefit| < {MARGIN_LOG10} (a < 1.26-fold "
            "difference). Each panel "
            "varies one parameter across its bounds in models/parameters/ (log-spaced where scale = log) and "
            "holds every other parameter at its value in the setting (default parameters plus the setting overlay of "
            "models/settings.toml); dotted vertical lines mark each setting's own value. One typical patient, no "
            "variability. Grey crosses on the zero line are points where the solver failed for either arm "
            f"({failed} here), with the reason in the legend; the curve leaves them out."
        )
        path = plots.save_figure(fig, out_dir, stem, caption, ds.attrs)
    return path["png"]


def plot_sweep_responses(ds: xr.Dataset, out_dir: pathlib.Path, stem: str = "sweeps_best_response") -> pathlib.Path:
    """Best % change of diameter of each arm against each swept parameter, per setting."""
    settings = load_settings()
    duration = float(ds.time[-1])
    names = {"-": "solid", "--": "dashed", ":": "dotted"}
    styles = ", ".join(
        f"{settings[str(st)].label}: {names[SETTING_STYLE.get(str(st), ('', '-', ''))[1]]}" for st in ds.setting.values
    )
    with plots.style():
        fig, axes, params = _sweep_grid(ds)
        handles: dict = {}
        for ax, p in zip(axes.flat, params):
            x = ds.value.sel(parameter=p).values
            ax.axhline(partial_response_pct(), color="0.5", lw=1, ls="--")
            for setting in ds.setting.values:
                colour, ls, marker = SETTING_STYLE.get(str(setting), ("0.2", "-", "o"))
                for arm in ds.arm.values:
                    y = ds["best_percent_change"].sel(setting=setting, parameter=p, arm=arm).values
                    (h,) = ax.plot(x, y, color=plots.arm_colour(str(arm)), ls=ls, marker=marker, ms=4)
                    handles.setdefault(f"{plots.arm_label(str(arm))}, {settings[str(setting)].label}", h)
                _mark_failed(ax, ds, x, np.zeros_like(x), handles, setting=setting, parameter=p)
            _x_axis(ax, ds, p)
        fig.supylabel(plots.label("best change in diameter from baseline", "%"), fontsize=15)
        plots.panel_letters(axes)
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 3))
        caption = (
            f"Best change of tumour diameter from baseline within {duration:g} days for anti-PD-L1 and the "
            f"2:2 bispecific against each swept parameter; line style by setting ({styles}), colour by arm. "
            f"The dashed grey line is the RECIST partial-response threshold ({partial_response_pct():.0f}%). "
            "One parameter varies at a time across "
            "its bounds in models/parameters/; all others keep the setting's values (models/settings.toml). "
            "Grey crosses: failed points (reason in the legend), drawn at 0%."
        )
        path = plots.save_figure(fig, out_dir, stem, caption, ds.attrs)
    return path["png"]


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges of log-spaced centres (geometric midpoints)."""
    logc = np.log10(centres)
    mid = (logc[1:] + logc[:-1]) / 2
    return 10 ** np.concatenate([[2 * logc[0] - mid[0]], mid, [2 * logc[-1] - mid[-1]]])


def plot_map(grid: xr.Dataset, out_dir: pathlib.Path, stem: str = "benefit_map") -> pathlib.Path:
    """Benefit over the two-parameter map, the benefit = 0 contour and the three settings marked."""
    import matplotlib.colors as mcolors
    import matplotlib.ticker as mticker
    from matplotlib.lines import Line2D

    xa, ya = MAP_AXES
    x, y = grid[xa].values, grid[ya].values
    z = grid["benefit"].transpose(xa, ya).values
    day = float(grid["benefit"].attrs["day"])
    settings = load_settings()
    with plots.style():
        fig, ax = plots.subplots(figsize=(10, 7.5))
        finite = z[np.isfinite(z)]
        lim = max(float(np.abs(finite).max()) if finite.size else 0.0, 2 * MARGIN_LOG10)
        mesh = ax.pcolormesh(_edges(x), _edges(y), z.T, cmap="PuOr_r", norm=mcolors.Normalize(-lim, lim))
        fig.colorbar(mesh, ax=ax, label=plots.label(f"benefit over anti-PD-L1 at day {day:g}", "log10 fold"))
        ax.grid(False)
        handles: dict = {}
        if finite.size and np.ptp(finite) > 0 and np.isfinite(z).all():
            # thin labelled iso-lines so values can be read off a slide
            iso = ax.contour(
                x,
                y,
                z.T,
                levels=mticker.MaxNLocator(6).tick_values(finite.min(), finite.max()),
                colors="white",
                linewidths=0.8,
                alpha=0.8,
            )
            for text in ax.clabel(iso, fmt="%.2g", fontsize=10, colors="black"):
                # dark text on a light box: readable on both ends of the colour map and in its pale middle
                text.set_bbox(dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.75))
        for level, ls in ((0.0, "-"), (MARGIN_LOG10, "--")):
            if finite.size and finite.min() < level < finite.max():
                ax.contour(x, y, np.ma.masked_invalid(z).T, levels=[level], colors="k", linestyles=ls, linewidths=2)
                handles[f"benefit = {level:g}"] = Line2D([], [], color="k", ls=ls, lw=2)
        for name in SETTING_ORDER:
            values = settings[name].values
            if xa in values and ya in values:
                colour, _, marker = SETTING_STYLE.get(name, ("0.2", "-", "o"))
                h = ax.scatter(
                    [values[xa]],
                    [values[ya]],
                    marker=marker,
                    s=160,
                    color=colour,
                    edgecolors="white",
                    linewidths=1.5,
                    zorder=7,
                )
                ax.annotate(
                    settings[name].label,
                    (values[xa], values[ya]),
                    xytext=(8, 6),
                    textcoords="offset points",
                    fontsize=12,
                    color=colour,
                    fontweight="bold",
                )
                handles.setdefault(f"setting: {settings[name].label}", h)
        failed = grid["failed"].transpose(xa, ya).values
        for i, j in zip(*np.nonzero(failed)):
            reason = _point_reason(grid, **{xa: x[i], ya: y[j]})
            handles.setdefault(f"failed: {reason}", ax.scatter([x[i]], [y[j]], **FAILED_STYLE))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(plots.label(_pretty(xa), str(grid[xa].attrs.get("units", "1"))))
        ax.set_ylabel(plots.label(_pretty(ya), str(grid[ya].attrs.get("units", "1"))))
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=2, fontsize=11)
        frac = float((finite > MARGIN_LOG10).mean()) if finite.size else float("nan")
        drawn = [k for k in handles if k.startswith("benefit =")]
        styles = {"benefit = 0": "solid", f"benefit = {MARGIN_LOG10:g}": "dashed"}
        contours = (
            f"Black contours: {'; '.join(f'{k} ({styles[k]})' for k in drawn)}."
            if drawn
            else f"The benefit lies between {finite.min():.2f} and {finite.max():.2f} everywhere on the map, so it "
            f"crosses neither 0 nor {MARGIN_LOG10:g} and no such contour is drawn; thin white lines are iso-lines."
            if finite.size
            else "No point finished."
        )
        caption = (
            f"Benefit of the 2:2 bispecific over anti-PD-L1 (log10 of the ratio of viable tumour cells, anti-PD-L1 / "
            f"bispecific, at day {day:g}, each floored at one cell) over tumour PD-L1 per cell x "
            f"infiltration rate, both log-spaced across their bounds ({len(x)} x {len(y)} points). Every other "
            "parameter is held at the "
            f"{settings[MAP_SETTING].label} values (default parameters + the '{MAP_SETTING}' overlay: "
            "antigenicity, initial "
            f"T cells and their exhaustion, Treg and myeloid densities, myeloid PD-L1). {contours} The "
            f"bispecific beats anti-PD-L1 by > {MARGIN_LOG10} log10 (1.26-fold) on {frac:.0%} of the finite points. "
            "The "
            "markers show where each setting's PD-L1 and infiltration lie; the other settings differ in more "
            "than these "
            "two values, so the map at their marker is not their outcome. Grey crosses: failed points "
            "(reason in the legend)."
        )
        path = plots.save_figure(fig, out_dir, stem, caption, grid.attrs)
    return path["png"]


# ----------------------------------------------------------------------------------------------


def summarise(ds: xr.Dataset | None, grid: xr.Dataset | None) -> dict:
    summary: dict = {
        "benefit_day": None,
        "margin_log10": MARGIN_LOG10,
        "sweeps": {},
        "map": {},
        "failed_points": 0,
        "failure_reasons": {},
    }
    reasons: collections.Counter = collections.Counter()
    examples: list[str] = []
    if ds is not None:
        summary["benefit_day"] = float(ds["benefit"].attrs["day"])
        for setting in ds.setting.values:
            for p in ds.parameter.values:
                x = ds.value.sel(parameter=p).values
                b = ds["benefit"].sel(setting=setting, parameter=p).values
                log = str(ds.scale.sel(parameter=p).values) == "log"
                summary["sweeps"].setdefault(str(setting), {})[str(p)] = {
                    "low": {"value": float(x[0]), "benefit_log10": _num(b[0])},
                    "high": {"value": float(x[-1]), "benefit_log10": _num(b[-1])},
                    "max_benefit_log10": _num(np.nanmax(b)) if np.isfinite(b).any() else None,
                    "sign_changes_at": [float(f"{v:.4g}") for v in sign_changes(x, b, log)],
                    "fraction_beats": _num(float((b[np.isfinite(b)] > MARGIN_LOG10).mean()))
                    if np.isfinite(b).any()
                    else None,
                    "unit": str(ds.unit.sel(parameter=p).values),
                }
        n, r, ex = failures(ds, ("setting", "parameter", "step"))
        summary["failed_points"] += n
        reasons.update(r)
        examples += ex
    if grid is not None:
        z = grid["benefit"].values
        finite = z[np.isfinite(z)]
        n, r, ex = failures(grid, MAP_AXES)
        summary["map"] = {
            "setting": MAP_SETTING,
            "axes": list(MAP_AXES),
            "shape": [int(grid.sizes[a]) for a in MAP_AXES],
            "fraction_bsab_beats_apdl1": _num(float((finite > MARGIN_LOG10).mean())) if finite.size else None,
            "fraction_apdl1_beats_bsab": _num(float((finite < -MARGIN_LOG10).mean())) if finite.size else None,
            "margin_log10": MARGIN_LOG10,
            "benefit_range_log10": [_num(finite.min()), _num(finite.max())] if finite.size else None,
            "failed_points": n,
        }
        summary["failed_points"] += n
        reasons.update(r)
        examples += ex
    summary["failure_reasons"] = dict(reasons)
    summary["failure_examples"] = examples[:5]
    return summary


def _num(v) -> float | None:
    v = float(v)
    return round(v, 4) if np.isfinite(v) else None


def main(
    out_dir: pathlib.Path,
    quick: bool = False,
    *,
    n_points: int | None = None,
    map_points: int | None = None,
    duration_days: float | None = None,
    settings: Sequence[str] = SWEEP_SETTINGS,
    solver: str | object = "auto",
) -> dict:
    """Quick: 5 points per sweep, a 5 x 5 map, 168 days; full: 12 points, 10 x 10, 365 days.
    The keyword arguments shrink the work further (tests)."""
    out_dir = pathlib.Path(out_dir)
    n_points = n_points or (5 if quick else 12)
    map_points = map_points or (5 if quick else 10)
    duration = duration_days or (168.0 if quick else 365.0)
    benefit_day = min(BENEFIT_DAY, duration)
    ds, grid = run_sweeps(
        settings, SWEPT, n_points, duration, map_points=map_points, solver=solver, benefit_day=benefit_day
    )
    save_dataset(ds, out_dir, "sweeps", csv_variables=["benefit", "best_percent_change", "status"])
    save_dataset(grid, out_dir, "benefit_map", csv_variables=["benefit", "best_percent_change", "status"])
    plot_sweeps(ds, out_dir)
    plot_sweep_responses(ds, out_dir)
    plot_map(grid, out_dir)
    summary = summarise(ds, grid)
    summary.update(
        {
            "duration_days": duration,
            "n_points": n_points,
            "map_points": map_points,
            "settings": list(settings),
            "figures": ["sweeps_benefit.png", "sweeps_best_response.png", "benefit_map.png"],
        }
    )
    return SweepsSummary.from_summary(summary).as_dict()  # the contract moa.report.claims reads
