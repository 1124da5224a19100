"""Does nab-paclitaxel help or hurt the 2:2 bispecific, and does the schedule matter?

Arms in hot TNBC, a cold tumour and PD-L1-negative TNBC, one year (quick: 24 weeks), default
parameters: untreated; nab-paclitaxel 100 mg/m2 d1,8,15 q28d; the 2:2 bispecific 15 mg/kg Q3W;
both together from day 1 (concurrent); a chemotherapy lead-in, where the bispecific starts after
one 28-day cycle (its doses shifted by 28 days, chemotherapy unchanged) together with the same
delayed bispecific alone as its Bliss reference; and, for reference, anti-PD-L1 alone and with
nab-paclitaxel (IMpassion130 schedule). Synergy is the Bliss excess of fractional volume
inhibition against untreated. The mechanism is a balance: chemotherapy kills tumour cells and
releases antigen (priming), but also kills proliferating T cells; the T-cell and antigen panels
show which side wins.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
import xarray as xr

from moa.report import plots
from moa.analysis import bliss_synergy, inhibition
from moa.parameters import load_parameters
from moa.regimen import Regimen
from moa.report.provenance import concat_runs
from moa.report.results import save_dataset
from moa.runs import run_arm
from moa.scenarios import SETTING_ORDER, load_arms, load_settings
from moa.report.summaries import ChemoCombinationSummary

LEAD_IN_DAYS = 28.0  # one nab-paclitaxel cycle

#: Arms of this experiment; the two with "d29" in their names are built here (not in models/arms.toml).
ARMS = (
    "untreated",
    "nabp",
    "bsab_2x2",
    "bsab_2x2_from_d29",
    "nabp_bsab_2x2",
    "nabp_leadin_bsab_2x2",
    "apdl1",
    "nabp_apdl1",
)
LABELS = {
    "bsab_2x2_from_d29": "bispecific 2:2 from day 29",
    "nabp_leadin_bsab_2x2": "nab-paclitaxel, bispecific 2:2 from day 29 (lead-in)",
}
#: Bliss triples: (chemotherapy alone, antibody alone, combination).
COMBINATIONS = {
    "bsab_2x2_concurrent": ("nabp", "bsab_2x2", "nabp_bsab_2x2"),
    "bsab_2x2_lead_in": ("nabp", "bsab_2x2_from_d29", "nabp_leadin_bsab_2x2"),
    "apdl1_concurrent": ("nabp", "apdl1", "nabp_apdl1"),
}
COMBINATION_LABELS = {
    "bsab_2x2_concurrent": "bispecific 2:2, concurrent",
    "bsab_2x2_lead_in": "bispecific 2:2, chemo lead-in",
    "apdl1_concurrent": "anti-PD-L1, concurrent (reference)",
}
BLISS_DAYS = (84.0, 168.0, 365.0)
MARGIN_LOG10 = 0.1  # schedules closer than 1.26-fold in tumour cells count as equal
VARIABLES = (
    "tumour_diameter",
    "tumour_volume",
    "tumour_cells",
    "t_eff",
    "t_pex",
    "t_ex",
    "antigen",
    "nabp_effect",
    "chemo_kill_rate",
    "immune_kill_rate",
    "cd137_signal",
)
FIGURES = ("chemo_diameter", "chemo_bliss", "chemo_mechanism")

#: Diameter (mm) of a one-cell tumour at the default cell density: figures floor their axes there.
ONE_CELL_MM = plots.one_cell_diameter_mm(float(load_parameters()["tumour_cell_density"]))


def _label(arm: str) -> str:
    return LABELS.get(arm, plots.arm_label(arm))


def _style(arm: str) -> dict:
    """Delayed-bispecific arms share the colour of their day-1 counterpart, dashed."""
    if arm == "bsab_2x2_from_d29":
        return dict(color=plots.arm_colour("bsab_2x2"), ls="--")
    if arm == "nabp_leadin_bsab_2x2":
        return dict(color=plots.arm_colour("nabp_bsab_2x2"), ls="--")
    return dict(color=plots.arm_colour(arm), ls="-")


def lead_in_regimens(duration_days: float) -> dict[str, tuple[str, Regimen]]:
    """The arms built here: (arm whose parameters and format they use, regimen)."""
    arms = load_arms()
    if duration_days <= LEAD_IN_DAYS:
        raise ValueError(f"duration_days={duration_days}: must exceed the {LEAD_IN_DAYS:g}-day lead-in")
    chemo = arms["nabp"].regimen(duration_days)
    late = arms["bsab_2x2"].regimen(duration_days - LEAD_IN_DAYS).shifted(LEAD_IN_DAYS)
    return {
        "bsab_2x2_from_d29": ("bsab_2x2", Regimen(LABELS["bsab_2x2_from_d29"], late.doses)),
        "nabp_leadin_bsab_2x2": ("bsab_2x2", Regimen(LABELS["nabp_leadin_bsab_2x2"], chemo.doses + late.doses)),
    }


def run(settings: Sequence[str], duration_days: float) -> xr.Dataset:
    """Every arm of ``ARMS`` in ``settings``; dims arm, setting, time."""
    built = lead_in_regimens(duration_days)
    parts = []
    for arm in ARMS:
        base, regimen = built.get(arm, (arm, None))
        ds = run_arm(base, settings, duration_days, regimen=regimen, variables=VARIABLES, with_safety=False)
        parts.append(ds.expand_dims(arm=[arm]))
    ds = concat_runs(parts, dim="arm", coords="different", compat="equals", combine_attrs="override")  # keeps units
    ds = ds.assign_coords(arm_label=("arm", [_label(a) for a in ARMS]))
    ds.attrs = {
        **{k: v for k, v in parts[0].attrs.items() if k != "simulation"},
        **ds.attrs,
        "parameter_set": "default + setting overlay (bispecific arms: + bsab_2x2 format)",
        "overlays": ", ".join(settings) + ", bsab_2x2",
        "regimen": "per arm; see arm_label",
        "doses": "models/arms.toml (nabp, bsab_2x2, apdl1, nabp_apdl1, nabp_bsab_2x2); lead-in: bispecific doses "
        f"shifted by {LEAD_IN_DAYS:g} days",
    }
    return ds


def add_synergy(ds: xr.Dataset, days: Sequence[float]) -> xr.Dataset:
    """Fractional inhibition per arm and Bliss excess per combination at ``days``."""
    volume = ds["tumour_volume"].sel(time=list(days)).rename(time="day")
    inh = xr.apply_ufunc(inhibition, volume, volume.sel(arm="untreated"))
    ds["inhibition"] = inh.assign_attrs(units="1", description="1 - V_arm / V_untreated (tumour volume)")
    excess = [
        xr.apply_ufunc(bliss_synergy, inh.sel(arm=a), inh.sel(arm=b), inh.sel(arm=ab)).drop_vars(
            ["arm", "arm_label"], errors="ignore"
        )
        for a, b, ab in COMBINATIONS.values()
    ]
    ds["bliss_excess"] = (
        xr.concat(excess, dim="combination")
        .assign_coords(combination=list(COMBINATIONS))
        .assign_attrs(units="1", description="I_AB - (I_A + I_B - I_A I_B); > 0 synergy, < 0 antagonism")
    )
    # The same independence model on a log scale, which does not saturate when I is close to 1:
    # Bliss predicts surviving fractions multiply, S_AB = S_A S_B with S = 1 - I.
    # Below one cell the model has no meaning, so cells are floored there: a combination at the
    # floor makes the excess a lower bound; a monotherapy at the floor leaves it undetermined.
    raw = ds["tumour_cells"].sel(time=list(days)).rename(time="day")
    at_floor = raw <= 1.0
    log_surv = np.log10(np.maximum(raw, 1.0) / np.maximum(raw.sel(arm="untreated"), 1.0))
    drop = dict(names=["arm", "arm_label"], errors="ignore")
    log_excess, lower_bound = [], []
    for a, b, ab in COMBINATIONS.values():
        value = log_surv.sel(arm=a) + log_surv.sel(arm=b) - log_surv.sel(arm=ab)
        known = ~(at_floor.sel(arm=a) | at_floor.sel(arm=b))
        log_excess.append(value.where(known).drop_vars(**drop))
        lower_bound.append((known & at_floor.sel(arm=ab)).drop_vars(**drop))
    combo = dict(dim="combination")
    ds["bliss_log10_excess"] = (
        xr.concat(log_excess, **combo)
        .assign_coords(combination=list(COMBINATIONS))
        .assign_attrs(
            units="log10 fold",
            description="log10(S_A S_B / S_AB), S = cells_arm / cells_untreated, cells floored at 1; "
            "> 0 synergy; NaN where a monotherapy is below one cell",
        )
    )
    ds["bliss_log10_lower_bound"] = (
        xr.concat(lower_bound, **combo)
        .assign_coords(combination=list(COMBINATIONS))
        .assign_attrs(description="the combination is below one cell: the log excess is a lower bound")
    )
    return ds


def schedule_verdict(ds: xr.Dataset, setting: str, day: float) -> dict:
    """Which schedule leaves fewer tumour cells at ``day`` (each floored at one cell)."""
    cells = np.maximum(ds["tumour_cells"].sel(setting=setting, time=day), 1.0)
    concurrent = float(cells.sel(arm="nabp_bsab_2x2"))
    lead_in = float(cells.sel(arm="nabp_leadin_bsab_2x2"))
    advantage = np.log10(lead_in / concurrent)  # > 0: concurrent leaves fewer cells
    if concurrent <= 1.0 and lead_in <= 1.0:
        better = "both below one tumour cell"
    elif abs(advantage) <= MARGIN_LOG10:
        better = f"no material difference (< {10**MARGIN_LOG10:.2f}-fold)"
    else:
        better = "concurrent" if advantage > 0 else "lead-in"
    return {
        "day": day,
        "better": better,
        "log10_cells_lead_in_over_concurrent": round(float(advantage), 3),
        "tumour_cells_concurrent": float(f"{concurrent:.4g}"),
        "tumour_cells_lead_in": float(f"{lead_in:.4g}"),
    }


def _log_excess(ds: xr.Dataset, combination: str, setting: str, day: float) -> str | float | None:
    """The log-scale Bliss excess for the summary: a number, '>= x' (lower bound) or None (undetermined)."""
    where = dict(combination=combination, setting=setting, day=day)
    v = float(ds["bliss_log10_excess"].sel(**where))
    if not np.isfinite(v):
        return None
    return f">= {v:.3f}" if bool(ds["bliss_log10_lower_bound"].sel(**where)) else round(v, 3)


def plot_diameter(ds: xr.Dataset, out_dir: pathlib.Path) -> None:
    settings = load_settings()
    duration = float(ds.time[-1])
    with plots.style():
        n = ds.sizes["setting"]
        fig, axes = plots.subplots(1, n, figsize=(5.6 * n + 3, 5.4), sharey=True, squeeze=False)
        for ax, setting in zip(axes[0], ds.setting.values):
            for arm, width in zip(
                ds.arm.values, plots.stacked_widths(ds.sizes["arm"], step=0.6)
            ):  # coinciding arms show
                d = np.maximum(ds["tumour_diameter"].sel(arm=arm, setting=setting), ONE_CELL_MM)
                ax.plot(ds.time, d, label=_label(str(arm)), lw=width, **_style(str(arm)))
            ax.axvline(LEAD_IN_DAYS, color="0.5", ls=":", lw=1)
            ax.set_title(settings[str(setting)].label)
            ax.set_xlabel(plots.label("time since first dose", "day"))
            # the panels share their axis: floored at one cell only if some arm comes near it
            plots.log_axis_for_cells(ax, float(ds["tumour_diameter"].min()), ONE_CELL_MM, "below one cell")
        axes[0, 0].set_ylabel(plots.label("tumour diameter", "mm"))
        axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=11)
        plots.panel_letters(axes)
        caption = (
            "Tumour diameter (sphere of the viable tumour volume; log axis, floored at the diameter of one "
            f"cell when a tumour nears it) over {duration:g} days "
            "for nab-paclitaxel 100 mg/m2 d1,8,15 q28d, the 2:2 bispecific 15 mg/kg Q3W, both from day 1 "
            f"(concurrent), a chemotherapy lead-in (bispecific doses shifted by {LEAD_IN_DAYS:g} days, dashed wine), "
            "the delayed "
            "bispecific alone (dashed vermillion) and anti-PD-L1 with and without nab-paclitaxel, in each setting "
            "(default parameters + the setting overlay of models/settings.toml; doses from "
            f"models/arms.toml). The dotted line marks day {LEAD_IN_DAYS:g}, when the lead-in bispecific starts. One "
            "typical patient, no variability."
        )
        plots.save_figure(fig, out_dir, "chemo_diameter", caption, ds.attrs)


def plot_bliss(ds: xr.Dataset, out_dir: pathlib.Path) -> None:
    settings = load_settings()
    days = [float(d) for d in ds.day.values]
    colours = {
        "bsab_2x2_concurrent": dict(color=plots.arm_colour("nabp_bsab_2x2")),
        "bsab_2x2_lead_in": dict(color="white", edgecolor=plots.arm_colour("nabp_bsab_2x2"), hatch="//"),
        "apdl1_concurrent": dict(color=plots.arm_colour("nabp_apdl1")),
    }
    rows = (
        ("bliss_excess", plots.label("Bliss excess of inhibition", "1"), "{:+.3f}"),
        ("bliss_log10_excess", plots.label("Bliss excess, log scale", "log10 fold"), "{:+.1f}"),
    )
    with plots.style():
        fig, axes = plots.subplots(2, len(days), figsize=(6.2 * len(days), 10.5), sharey="row", squeeze=False)
        width = 0.8 / len(COMBINATIONS)
        x = np.arange(ds.sizes["setting"])
        for i, (var, ylabel, fmt) in enumerate(rows):
            for ax, day in zip(axes[i], days):
                for k, combo in enumerate(COMBINATIONS):
                    v = ds[var].sel(combination=combo, day=day).values
                    bound = (
                        ds["bliss_log10_lower_bound"].sel(combination=combo, day=day).values
                        if var == "bliss_log10_excess"
                        else np.zeros(v.shape, bool)
                    )
                    xs = x + (k - (len(COMBINATIONS) - 1) / 2) * width
                    bars = ax.bar(
                        xs, np.nan_to_num(v), width, label=COMBINATION_LABELS[combo], linewidth=1.5, **colours[combo]
                    )
                    for patch, lb in zip(bars.patches, bound):
                        if lb:  # a lower bound only: drawn faint
                            patch.set_alpha(0.35)
                    ax.bar_label(
                        bars,
                        labels=[
                            "n/a" if not np.isfinite(b) else ("≥" if lb else "") + fmt.format(b)
                            for b, lb in zip(v, bound)
                        ],
                        fontsize=9,
                        padding=2,
                    )
                ax.axhline(0.0, color="0.3", lw=1)
                ax.set_xticks(x, [settings[str(s)].label for s in ds.setting.values], rotation=12)
                ax.set_title(f"day {day:g}")
            axes[i, 0].set_ylabel(ylabel)
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=len(COMBINATIONS))
        plots.panel_letters(axes)
        caption = (
            "Bliss excess of tumour-volume inhibition for nab-paclitaxel (A) with an antibody (B), per "
            "setting and day. Inhibition of an arm is I = 1 - V_arm / V_untreated (V: viable tumour volume at that "
            "day); Bliss excess = "
            "I_AB - (I_A + I_B - I_A I_B): > 0 the combination does better than independent action "
            "(synergy), < 0 worse (antagonism). For the concurrent schedules B is the antibody from day 1; for the "
            "lead-in B is the same "
            f"bispecific started on day {LEAD_IN_DAYS + 1:g}, so the bar measures the interaction, not the cost of the "
            "delay (compare tumour sizes in chemo_diameter for that). When a monotherapy already removes "
            "nearly all of the tumour (I close to 1) the Bliss excess is squeezed towards 0 whatever the interaction; "
            "the bottom row "
            "therefore shows the same independence model on a log scale: Bliss predicts that surviving fractions "
            "S = V_arm / V_untreated multiply, and the bar is log10(S_A S_B / S_AB) (> 0: the combination leaves fewer "
            "cells than independent action predicts), with tumour cells floored at one cell. Where the combination is "
            "below one cell the bar is a lower bound (faint, label '≥'); where a monotherapy is, the log "
            "excess is undetermined ('n/a'). Default parameters + the "
            "setting overlay of models/settings.toml; one typical patient."
        )
        plots.save_figure(fig, out_dir, "chemo_bliss", caption, ds.attrs)


def plot_mechanism(ds: xr.Dataset, out_dir: pathlib.Path) -> None:
    settings = load_settings()
    arms = ("untreated", "nabp", "bsab_2x2", "nabp_bsab_2x2", "nabp_leadin_bsab_2x2")
    rows = (
        ("t_eff", "effector CD8 T cells in tumour", "cell"),
        ("t_pex", "progenitor-exhausted T cells", "cell"),
        ("antigen", "antigen reaching the node", "cell"),
    )
    with plots.style():
        n = ds.sizes["setting"]
        fig, axes = plots.subplots(len(rows), n, figsize=(5.4 * n + 3, 4.0 * len(rows)), sharex=True, squeeze=False)
        for j, setting in enumerate(ds.setting.values):
            axes[0, j].set_title(settings[str(setting)].label)
            for i, (var, name, unit) in enumerate(rows):
                ax = axes[i, j]
                for arm, width in zip(arms, plots.stacked_widths(len(arms))):  # coinciding arms show as edges
                    y = np.maximum(ds[var].sel(arm=arm, setting=setting), 1.0)
                    ax.plot(ds.time, y, label=_label(arm), lw=width, **_style(arm))
                plots.log_axis_for_cells(ax, float(ds[var].sel(arm=list(arms), setting=setting).min()))
                ax.axvline(LEAD_IN_DAYS, color="0.5", ls=":", lw=1)
                if j == 0:
                    ax.set_ylabel(plots.label(name, unit))
                if i == len(rows) - 1:
                    ax.set_xlabel(plots.label("time since first dose", "day"))
        axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=11)
        plots.panel_letters(axes)
        caption = (
            "What nab-paclitaxel does to the immune side: effector and progenitor-exhausted (TCF1+) CD8 T cells in the "
            "tumour and tumour antigen reaching the draining node (dead-cell equivalents; it drives priming) "
            "over time, for untreated, nab-paclitaxel, the 2:2 bispecific, both from day 1 and the chemotherapy "
            "lead-in (dashed; "
            f"bispecific from day {LEAD_IN_DAYS + 1:g}). Chemotherapy kills proliferating T cells "
            "(nabp_tcell_tox_max) and "
            "releases antigen from the cells it kills (nabp_icd_boost); fewer T cells with more antigen is "
            "the trade-off. T-cell numbers also fall when the tumour shrinks (less antigen to sustain them), so these "
            "panels show the "
            "balance, not toxicity alone. Log axes, floored at one cell where a population nears extinction; "
            "where arms "
            "coincide the earlier-listed one shows as a wider coloured edge. Default parameters + the "
            "setting overlay of models/settings.toml."
        )
        plots.save_figure(fig, out_dir, "chemo_mechanism", caption, ds.attrs)


def main(
    out_dir: pathlib.Path,
    quick: bool = False,
    *,
    duration_days: float | None = None,
    settings: Sequence[str] = SETTING_ORDER,
) -> dict:
    """Quick: 168 days; full: one year. ``duration_days`` and ``settings`` shrink the work (tests)."""
    out_dir = pathlib.Path(out_dir)
    duration = duration_days or (168.0 if quick else 365.0)
    days = [d for d in BLISS_DAYS if d <= duration] or [duration]
    ds = add_synergy(run(settings, duration), days)
    save_dataset(ds, out_dir, "chemo_combination", csv_variables=["tumour_diameter", "t_eff", "t_pex", "antigen"])
    plot_diameter(ds, out_dir)
    plot_bliss(ds, out_dir)
    plot_mechanism(ds, out_dir)

    summary: dict = {
        "duration_days": duration,
        "bliss_days": days,
        "bliss_excess": {},
        "bliss_log10_excess": {},
        "inhibition": {},
        "schedule": {},
        "t_cells_vs_bispecific_alone": {},
    }
    for s in ds.setting.values:
        s = str(s)
        summary["bliss_excess"][s] = {
            c: {f"day_{d:g}": round(float(ds["bliss_excess"].sel(combination=c, setting=s, day=d)), 4) for d in days}
            for c in COMBINATIONS
        }
        summary["bliss_log10_excess"][s] = {
            c: {f"day_{d:g}": _log_excess(ds, c, s, d) for d in days} for c in COMBINATIONS
        }
        summary["inhibition"][s] = {
            a: {f"day_{d:g}": round(float(ds["inhibition"].sel(arm=a, setting=s, day=d)), 4) for d in days}
            for a in ARMS
            if a != "untreated"
        }
        summary["schedule"][s] = [schedule_verdict(ds, s, d) for d in days]
        # chemotherapy's net effect on T cells and antigen: combination / bispecific alone, after
        # one cycle (day 28: mostly toxicity and antigen release) and at the Bliss days
        ratio_days = [LEAD_IN_DAYS] + days
        summary["t_cells_vs_bispecific_alone"][s] = {
            var: {
                f"day_{d:g}": float(
                    f"""{
                        float(
                            ds[var].sel(arm="nabp_bsab_2x2", setting=s, time=d)
                            / ds[var].sel(arm="bsab_2x2", setting=s, time=d)
                        ):.3g}"""
                )
                for d in ratio_days
            }
            for var in ("t_eff", "t_pex", "antigen")
        }
    summary["failed_runs"] = int((ds["status"] != 0).sum())
    summary["figures"] = [f"{f}.png" for f in FIGURES]
    return ChemoCombinationSummary.from_summary(summary).as_dict()  # the contract moa.report.claims reads
