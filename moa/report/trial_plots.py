"""Figures of a virtual trial: waterfall, spider, Kaplan-Meier with numbers at risk, forest, calibration.

Each function draws on an axes it is given (so a caller composes panels and saves them with
:func:`moa.report.plots.save_figure`), labels its axes with units and returns the axes. Times come in
days (as everywhere in moa) and are shown in ``unit`` ("months" by default, as trial reports do:
1 month = :data:`moa.survival.DAYS_PER_MONTH` days).

Usage::

    from moa.report import plots, trial_plots
    from moa.survival import kaplan_meier

    with plots.style():
        fig, ax = plots.subplots()
        trial_plots.plot_km(ax, {"nab-paclitaxel": kaplan_meier(days_a, event_a),
                                 "nab-paclitaxel + anti-PD-L1": kaplan_meier(days_b, event_b)})
        plots.save_figure(fig, out_dir, "pfs_km", caption)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.patches as mpatches
import matplotlib.ticker as mticker
import numpy as np

from . import plots
from ..analysis import load_recist, partial_response_pct
from ..survival import DAYS_PER_MONTH, KaplanMeier

__all__ = ["RESPONSE_COLOURS", "plot_calibration", "plot_forest", "plot_km", "plot_spider", "plot_waterfall"]

#: One colour per RECIST best overall response (Tol's colour-blind-safe muted scheme), the same in every figure.
RESPONSE_COLOURS: dict[str, str] = {"CR": "#117733", "PR": "#44aa99", "SD": "#ddcc77", "PD": "#cc6677", "NE": "#bbbbbb"}

#: Days per display unit of time.
_DAYS_PER_UNIT = {"days": 1.0, "weeks": 7.0, "months": DAYS_PER_MONTH}

#: Default spacing of the numbers-at-risk columns, in days, per display unit (3 months, 12 weeks, 90 days).
_AT_RISK_STEP_DAYS = {"days": 90.0, "weeks": 84.0, "months": 3 * DAYS_PER_MONTH}

#: Prefix of the ``gid`` of each numbers-at-risk entry, ``at-risk:<curve label>:<day>``, so a test can find them.
AT_RISK_GID = "at-risk:"


def plot_waterfall(ax, best_change_pct, best_overall_response):
    """One bar per patient, its best % change in the sum of diameters, ranked from most growth to most
    shrinkage and coloured by best overall response; dashed lines at the PD (+20 %) and PR (-30 %) thresholds.
    Patients without a best change (no evaluable scan) are left out; the x label gives how many are shown."""
    change = _float_1d(best_change_pct, "best_change_pct")
    response = np.asarray(best_overall_response).astype(str)
    if response.shape != change.shape:
        raise ValueError(f"best_overall_response: shape {response.shape}: must match best_change_pct, {change.shape}")
    unknown = sorted(set(response.tolist()) - set(RESPONSE_COLOURS))
    if unknown:
        raise ValueError(f"best_overall_response: {unknown}: allowed {list(RESPONSE_COLOURS)}")
    shown = np.isfinite(change)
    order = np.argsort(-change[shown], kind="stable")
    values, categories = change[shown][order], response[shown][order]
    ax.bar(np.arange(values.size), values, width=0.9, color=[RESPONSE_COLOURS[c] for c in categories], linewidth=0)
    _threshold_lines(ax)
    handles = [
        mpatches.Patch(color=RESPONSE_COLOURS[c], label=f"{c} (n={int(np.sum(categories == c))})")
        for c in RESPONSE_COLOURS
        if np.any(categories == c)
    ]
    # ranked from most growth to most shrinkage, the upper right is where no bar reaches
    ax.legend(handles=handles, loc="upper right", title="best overall response", fontsize="small", frameon=True)
    ax.set_xticks([])
    ax.set_xlim(-0.6, max(values.size, 1) - 0.4)
    ax.set_xlabel(
        f"patients, ranked by best change (n = {values.size}"
        + (f"; {int(np.sum(~shown))} without a scan after baseline)" if not shown.all() else ")")
    )
    ax.set_ylabel(plots.label("best change in sum of diameters", "%"))
    return ax


def plot_spider(ax, scan_days, change_pct, best_overall_response=None, *, progression_day=None, unit: str = "months"):
    """One line per patient: % change of the sum of diameters from baseline at each scan, against time.

    ``scan_days``: (scan,) or (patient, scan) days; ``change_pct``: (patient, scan), NaN where not
    scanned (the point is skipped). Coloured by ``best_overall_response`` when given. With
    ``progression_day`` (patient,), each line ends at its progression scan, marked with a cross, as the
    patient then leaves the study.
    """
    change = np.asarray(change_pct, dtype=float)
    if change.ndim != 2:
        raise ValueError(f"change_pct: shape {change.shape}: must be (patient, scan)")
    days = np.asarray(scan_days, dtype=float)
    if days.shape not in (change.shape[1:], change.shape):
        raise ValueError(
            f"scan_days: shape {days.shape}: must be ({change.shape[1]},) or {change.shape}, as change_pct"
        )
    days = np.broadcast_to(days, change.shape)
    if best_overall_response is None:
        colours = ["0.35"] * change.shape[0]
    else:
        response = np.asarray(best_overall_response).astype(str)
        if response.shape != change.shape[:1]:
            raise ValueError(f"best_overall_response: shape {response.shape}: must be ({change.shape[0]},)")
        colours = [RESPONSE_COLOURS.get(c, "0.35") for c in response]
    if progression_day is None:
        last_day = np.full(change.shape[0], np.inf)
    else:
        last_day = np.asarray(progression_day, dtype=float)
        if last_day.shape != change.shape[:1]:
            raise ValueError(f"progression_day: shape {last_day.shape}: must be ({change.shape[0]},), one per patient")
    scale = _days_per(unit)
    alpha = 0.8 if change.shape[0] <= 30 else max(0.15, 0.8 * math.sqrt(30 / change.shape[0]))
    for x, y, colour, end in zip(days, change, colours, last_day, strict=True):
        kept = np.isfinite(y) & (x <= end)
        ax.plot(x[kept] / scale, y[kept], color=colour, lw=1.0, alpha=alpha, marker="o", ms=2.5)
        if np.isfinite(end) and kept.any():
            ax.plot(x[kept][-1] / scale, y[kept][-1], "x", color=colour, ms=6, mew=1.5)
    _threshold_lines(ax)
    if best_overall_response is not None:
        present = [c for c in RESPONSE_COLOURS if c in set(response.tolist())]
        ax.legend(
            handles=[mpatches.Patch(color=RESPONSE_COLOURS[c], label=c) for c in present],
            loc="best",
            title="best overall response",
        )
    ax.set_xlim(left=0)
    ax.set_xlabel(plots.label("time since start of treatment", unit))
    ax.set_ylabel(plots.label("change in sum of diameters", "%"))  # from baseline: say so in the caption
    return ax


def plot_km(
    ax,
    curves: Mapping[str, KaplanMeier],
    *,
    at_risk_days=None,
    unit: str = "months",
    ylabel: str = "progression-free survival",
    colours: Mapping[str, str] | None = None,
    show_ci: bool = True,
):
    """Kaplan-Meier curves (in %) with their pointwise CI, censoring ticks, the median in the legend, and
    a numbers-at-risk table under the axis at ``at_risk_days`` (days; default every 3 months, 12 weeks
    or 90 days to the longest follow-up), one row per curve, aligned with the x ticks.

    ``colours``: per curve label; otherwise an arm's colour (:func:`moa.report.plots.arm_colour`) of the label.
    A label that is an arm name (``"nabp_apdl1"``) is shown by its readable name (:func:`moa.report.plots.arm_label`).
    """
    if not curves:
        raise ValueError("curves: empty; give at least one {label: KaplanMeier}")
    for label, km in curves.items():
        if not isinstance(km, KaplanMeier):
            raise ValueError(f"curves[{label!r}]: {type(km).__name__}: must be a moa.survival.KaplanMeier")
    scale = _days_per(unit)
    longest = max(float(km.times[-1]) for km in curves.values())
    if at_risk_days is None:
        step = _AT_RISK_STEP_DAYS[unit]
        at_risk_days = np.arange(0.0, longest + 1e-9, step)
    at_risk_days = _float_1d(at_risk_days, "at_risk_days")
    if not np.isfinite(at_risk_days).all() or (at_risk_days < 0).any():
        raise ValueError(f"at_risk_days: {at_risk_days.tolist()}: must be finite days >= 0")
    for label, km in curves.items():
        colour = (colours or {}).get(label, plots.arm_colour(label))
        x = np.concatenate([[0.0], km.times]) / scale
        median = km.median()[0]
        median_text = f"{median / scale:.1f} {unit}" if math.isfinite(median) else "not reached"
        ax.step(
            x,
            100 * np.concatenate([[1.0], km.survival]),
            where="post",
            color=colour,
            label=f"{plots.arm_label(label)} (n={int(km.n_at_risk[0])}; median {median_text})",
        )
        if show_ci:
            ax.fill_between(
                x,
                100 * np.concatenate([[1.0], km.low]),
                100 * np.concatenate([[1.0], km.high]),
                step="post",
                color=colour,
                alpha=0.15,
                linewidth=0,
            )
        censored = km.censored > 0
        ax.plot(km.times[censored] / scale, 100 * km.survival[censored], "|", color=colour, ms=7, mew=1.2)
    ax.axhline(50, color="0.5", lw=0.8, ls=":")
    # headroom above 100 % for the legend, so that it covers no curve (all curves start at 100 %)
    ax.set_ylim(0, 106 + 6 * len(curves))
    ax.set_yticks(np.arange(0, 101, 20))
    ax.set_xlim(0, max(longest, float(at_risk_days.max())) / scale * 1.02)
    ax.set_xticks(at_risk_days / scale)
    ax.set_xticklabels([f"{d / scale:g}" if unit != "months" else f"{d / scale:.0f}" for d in at_risk_days])
    ax.set_xlabel(plots.label("time since start of treatment", unit))
    ax.set_ylabel(plots.label(ylabel, "%"))
    # one legend per panel (its medians are the panel's), small and framed, in the headroom above the curves
    ax.legend(loc="upper right", fontsize=9, framealpha=0.9)
    _at_risk_table(ax, curves, at_risk_days, scale, colours)
    return ax


def plot_forest(ax, rows: Sequence[tuple], *, xlabel: str = "hazard ratio"):
    """Hazard ratios with CIs, one row per subgroup ``(label, hr, low, high, n)``, top to bottom, on a log
    axis with the line of no effect at 1; the estimate and CI are written at the right. A row whose ratio
    is NaN (no events in one group) is listed as not estimable."""
    rows = [_row(r, 5, "rows") for r in rows]
    if not rows:
        raise ValueError("rows: empty; give (label, hr, low, high, n) per subgroup")
    y = np.arange(len(rows))[::-1]
    largest = max(float(r[4]) for r in rows)
    for position, (_, hr, low, high, n) in zip(y, rows, strict=True):
        if not math.isfinite(hr):
            continue
        ax.plot([low, high], [position, position], color="0.2", lw=1.5)
        ax.plot(hr, position, "s", color="0.2", ms=4 + 8 * math.sqrt(float(n) / largest))
    ax.axvline(1.0, color="0.4", lw=1.0, ls="--")
    _plain_log_x(ax)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r[0]} (n={int(r[4])})" for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    for position, (_, hr, low, high, _n) in zip(y, rows, strict=True):
        text = f"{hr:.2f} [{low:.2f}, {high:.2f}]" if math.isfinite(hr) else "not estimable"
        ax.annotate(
            text,
            xy=(1.0, position),
            xycoords=("axes fraction", "data"),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=11,
        )
    ax.set_xlabel(plots.label(xlabel, "1"))
    ax.grid(axis="y", visible=False)
    return ax


def plot_calibration(ax, rows: Sequence[tuple], *, relative: bool = True, unit: str | None = None):
    """Model against trial, one row per readout ``(label, model, model_low, model_high, trial, trial_low,
    trial_high)``: the trial's estimate (black diamond) and 95 % CI (grey bar), the model's estimate and
    its uncertainty (coloured circle and line, hollow where outside the trial CI).

    Readouts in different units (ORR, median PFS, HR) share one axis with ``relative=True``: every value is
    divided by the trial's estimate (log axis, 1 = the trial). With ``relative=False`` values are drawn as
    they are and ``unit`` names their common unit. Model bounds may be NaN (no uncertainty computed).
    """
    rows = [_row(r, 7, "rows") for r in rows]
    if not rows:
        raise ValueError("rows: empty; give (label, model, model_low, model_high, trial, trial_low, trial_high)")
    if relative:
        bad = [r[0] for r in rows if not r[4] > 0]
        if bad:
            raise ValueError(f"rows {bad}: a trial estimate <= 0 cannot be a reference; use relative=False")
    elif unit is None:
        raise ValueError("unit=None with relative=False: name the unit shared by the rows ('%', 'months', '1')")
    y = np.arange(len(rows))[::-1]
    for position, (_, model, model_low, model_high, trial, trial_low, trial_high) in zip(y, rows, strict=True):
        reference = trial if relative else 1.0
        ax.plot(
            [trial_low / reference, trial_high / reference],
            [position + 0.12] * 2,
            color="0.6",
            lw=6,
            solid_capstyle="butt",
        )
        ax.plot(trial / reference, position + 0.12, "D", color="black", ms=6)
        inside = trial_low <= model <= trial_high
        if math.isfinite(model_low) and math.isfinite(model_high):
            ax.plot([model_low / reference, model_high / reference], [position - 0.12] * 2, color="#d55e00", lw=2)
        ax.plot(
            model / reference,
            position - 0.12,
            "o",
            ms=7,
            color="#d55e00",
            markerfacecolor="#d55e00" if inside else "white",
            gid="calibration-inside" if inside else "calibration-outside",
        )
    if relative:
        ax.axvline(1.0, color="0.4", lw=1.0, ls="--")
        _plain_log_x(ax)
        ax.set_xlabel(plots.label("value relative to the trial estimate", "1"))
    else:
        ax.set_xlabel(plots.label("value", unit))
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    for position, (_, model, model_low, model_high, trial, trial_low, trial_high) in zip(y, rows, strict=True):
        ax.annotate(
            f"model {_interval(model, model_low, model_high)}\ntrial {_interval(trial, trial_low, trial_high)}",
            xy=(1.0, position),
            xycoords=("axes fraction", "data"),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=10,
        )
    ax.legend(
        handles=[
            ax.plot([], [], "D", color="black", label="trial (95 % CI: grey bar)")[0],
            ax.plot([], [], "o", color="#d55e00", label="model, inside the trial CI")[0],
            ax.plot([], [], "o", color="#d55e00", markerfacecolor="white", label="model, outside the trial CI")[0],
        ],
        loc="best",
        fontsize=10,
    )
    ax.grid(axis="y", visible=False)
    return ax


def _at_risk_table(
    ax, curves: Mapping[str, KaplanMeier], at_risk_days: np.ndarray, scale: float, colours: Mapping[str, str] | None
) -> None:
    """Numbers at risk under the x axis label, one row per curve, one column per day in ``at_risk_days``."""
    first_row_pt, row_pt = 62.0, 16.0
    ax.annotate(
        "number at risk",
        xy=(0.0, 0.0),
        xycoords="axes fraction",
        xytext=(-24, -first_row_pt + row_pt),
        textcoords="offset points",
        ha="right",
        va="center",
        fontsize=11,
        fontweight="bold",
    )
    for i, (label, km) in enumerate(curves.items()):
        offset = -first_row_pt - row_pt * i
        colour = (colours or {}).get(label, plots.arm_colour(label))
        ax.annotate(
            plots.arm_label(label),
            xy=(0.0, 0.0),
            xycoords="axes fraction",
            xytext=(-24, offset),
            textcoords="offset points",
            ha="right",
            va="center",
            fontsize=11,
            color=colour,
        )
        for day, count in zip(at_risk_days, km.at_risk(at_risk_days), strict=True):
            ax.annotate(
                str(int(count)),
                xy=(day / scale, 0.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, offset),
                textcoords="offset points",
                ha="center",
                va="center",
                fontsize=11,
                gid=f"{AT_RISK_GID}{label}:{day:g}",
            )


def _plain_log_x(ax) -> None:
    """Log x axis with ticks at round ratios labelled 0.5, 0.7, 1, 1.5 (not 5 x 10^-1): ratios near 1 span
    less than a decade, where a log axis has no labelled major tick of its own. The wider the range, the
    sparser the ticks (labels of neighbouring ticks must not run into each other)."""
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    decades = math.log10(high / low) if low > 0 and high > low else 0.0
    tick_sets = (
        [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],  # wide: one or two per decade
        [0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0],
        [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.7, 2.0],  # narrow: ratios near 1
    )
    start = 0 if decades > 2.0 else (1 if decades > 0.5 else 2)
    for round_ratios in tick_sets[start:]:
        ticks = np.array(round_ratios)[(np.array(round_ratios) >= low) & (np.array(round_ratios) <= high)]
        if ticks.size >= 3:
            break
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlim(low, high)


def _threshold_lines(ax) -> None:
    """Dashed lines at the RECIST PD (+20 %) and PR (-30 %) changes of models/recist.toml."""
    pd_pct = 100.0 * load_recist().pd_fraction
    ax.axhline(pd_pct, color="0.3", lw=0.9, ls="--")
    ax.axhline(partial_response_pct(), color="0.3", lw=0.9, ls="--")
    ax.axhline(0.0, color="0.3", lw=0.6)


def _days_per(unit: str) -> float:
    if unit not in _DAYS_PER_UNIT:
        raise ValueError(f"unit={unit!r}: allowed {sorted(_DAYS_PER_UNIT)}")
    return _DAYS_PER_UNIT[unit]


def _float_1d(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name}: shape {array.shape}: must be 1-D")
    return array


def _row(row, length: int, name: str) -> tuple:
    """A figure row: a label, then ``length - 1`` numbers."""
    if len(row) != length:
        raise ValueError(f"{name}: {row!r}: needs {length} entries")
    try:
        return (str(row[0]), *(float(v) for v in row[1:]))
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {row!r}: entries after the label must be numbers") from None


def _interval(value: float, low: float, high: float) -> str:
    if math.isfinite(low) and math.isfinite(high):
        return f"{value:.3g} [{low:.3g}, {high:.3g}]"
    return f"{value:.3g}"
