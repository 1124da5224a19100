"""Does 4-1BB costimulation rescue exhausted T cells in a cold tumour where PD-L1 blockade alone fails?

Cold setting, arms untreated, anti-PD-L1, anti-4-1BB, the two together and the 2:2
bispecific; effectors, progenitor-exhausted (Tpex), terminally exhausted (Tex) cells and the
4-1BB costimulation acting on CD8 cells (the signal times the antigen-induced 4-1BB) over
time. Each arm is run twice: with the default reinvigoration rate (4-1BB returns Tex to
Tpex) and with it set to zero, which separates what 4-1BB does through proliferation and
survival from what it does by reversing terminal exhaustion.
"""

from __future__ import annotations

import pathlib

import numpy as np

from moa.report import plots
from moa.parameters import load_parameters
from moa.report.provenance import concat_runs
from moa.report.results import save_dataset
from moa.runs import run_arm
from moa.report.summaries import ExhaustionDynamicsSummary

ARMS = ("untreated", "apdl1", "a41bb", "apdl1_a41bb", "bsab_2x2")
PANELS = (
    ("t_eff", "effector CD8"),
    ("t_pex", "progenitor-exhausted CD8 (Tpex)"),
    ("t_ex", "terminally exhausted CD8 (Tex)"),
    ("cd137_costimulation", "4-1BB costimulation on CD8 (signal x induced 4-1BB)"),
)


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    duration = 126.0 if quick else 365.0
    default_reinvigoration = float(load_parameters()["cd137_reinvigoration_rate"])
    parts = []
    for rate in (default_reinvigoration, 0.0):
        runs = [
            run_arm(arm, ["cold"], duration, overrides={"cd137_reinvigoration_rate": rate}).expand_dims(arm=[arm])
            for arm in ARMS
        ]
        parts.append(concat_runs(runs, dim="arm").expand_dims(reinvigoration_per_day=[rate]))
    ds = concat_runs(parts, dim="reinvigoration_per_day").sel(setting="cold", drop=True)
    save_dataset(
        ds,
        out_dir,
        "exhaustion_dynamics",
        csv_variables=["t_eff", "t_pex", "t_ex", "cd137_signal", "cd137_costimulation", "tumour_diameter"],
    )

    with plots.style():
        fig, axes = plots.subplots(2, 2, figsize=(14, 10), sharex=True)
        widths = plots.stacked_widths(len(ARMS))  # arms that coincide stay visible as coloured edges
        for ax, (var, title) in zip(axes.flat, PANELS):
            for arm, width in zip(ARMS, widths):
                for rate, style in ((default_reinvigoration, "-"), (0.0, ":")):
                    y = ds[var].sel(arm=arm, reinvigoration_per_day=rate)
                    if ds[var].attrs.get("units") == "cell":
                        y = np.maximum(y, 1.0)  # below one cell is extinction, not biology
                    ax.plot(
                        ds.time,
                        y,
                        style,
                        color=plots.arm_colour(arm),
                        lw=width,
                        label=plots.arm_label(arm) if rate else None,
                    )
            unit = ds[var].attrs.get("units", "1")
            # the title names the quantity; the axis gives its unit
            ax.set_ylabel(
                plots.label("cells in tumour", "cells") if unit == "cell" else plots.label("costimulation", unit)
            )
            if unit == "cell":
                plots.log_axis_for_cells(ax, float(ds[var].min()))
            elif var != "cd137_costimulation":
                ax.set_yscale("log")
            ax.set_title(title, fontsize=14)
        for ax in axes[1]:
            ax.set_xlabel(plots.label("time since first dose", "day"))
        axes[0, 0].legend(fontsize=11)
        plots.panel_letters(axes)
        plots.save_figure(
            fig,
            out_dir,
            "exhaustion_cold",
            "Tumour CD8 T-cell states (a-c, log axes; floored at one cell where a population nears extinction) "
            "and 4-1BB costimulation (d) in the cold setting. Where arms coincide the earlier-listed one shows "
            "as a wider coloured edge. Solid: default 4-1BB "
            f"reinvigoration of Tex ({default_reinvigoration} /day at full signal); dotted: reinvigoration set to "
            "0, so 4-1BB acts only through proliferation and survival. Reinvigoration is an assumed, swept "
            "parameter (no public value).",
            ds.attrs,
        )

    day = float(ds.time[-1])
    end = ds.sel(time=day)
    summary: dict = {"day": day, "default_reinvigoration_per_day": default_reinvigoration, "arms": {}}
    for arm in ARMS:
        entry = {}
        for rate, key in ((default_reinvigoration, "with_reinvigoration"), (0.0, "without_reinvigoration")):
            e = end.sel(arm=arm, reinvigoration_per_day=rate)
            entry[key] = {v: float(e[v]) for v in ("t_eff", "t_pex", "t_ex", "tumour_diameter")}
            run = ds.sel(arm=arm, reinvigoration_per_day=rate)
            entry[key]["mean_cd137_signal"] = float(run["cd137_signal"].mean())
            entry[key]["mean_cd137_costimulation"] = float(run["cd137_costimulation"].mean())
            entry[key]["peak_t_eff"] = float(run["t_eff"].max())
            entry[key]["peak_t_pex"] = float(run["t_pex"].max())
            entry[key]["diameter_day84"] = float(run["tumour_diameter"].sel(time=84.0))
        summary["arms"][arm] = entry
    base = summary["arms"]["untreated"]["with_reinvigoration"]
    for arm in ARMS:
        for key in ("with_reinvigoration", "without_reinvigoration"):
            e = summary["arms"][arm][key]
            e["t_eff_fold_vs_untreated"] = e["t_eff"] / base["t_eff"] if base["t_eff"] > 0 else np.nan
            e["t_pex_fold_vs_untreated"] = e["t_pex"] / base["t_pex"] if base["t_pex"] > 0 else np.nan
            e["peak_t_eff_fold_vs_untreated"] = e["peak_t_eff"] / base["peak_t_eff"]
            e["peak_t_pex_fold_vs_untreated"] = e["peak_t_pex"] / base["peak_t_pex"]
    summary["figures"] = ["exhaustion_cold.png"]
    return ExhaustionDynamicsSummary.from_summary(summary).as_dict()  # the contract moa.report.claims reads
