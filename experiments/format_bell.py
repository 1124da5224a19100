"""What does the 2:2 format buy over 1:1, and where is the top of the bell-shaped dose curve?

In vitro: bridged (ternary) 4-1BB against drug concentration for the 2:2 and 1:1 formats
(same KDs, valency only) across 4-1BB-arm affinities and PD-L1 densities (moa.binding_equilibrium, exact
equilibrium). In vivo: tumour ternary 4-1BB, 4-1BB signal and tumour response against dose
from 0.2 to 25 mg/kg Q3W (the phase I dose levels), with 15 mg/kg (RP2D) marked.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import xarray as xr

from moa.report import plots
from moa.analysis import best_percent_change
from moa.binding_equilibrium import clustering, contact_geometry, drug_binding, in_vitro, pdl1_threshold
from moa.parameters import load_parameters
from moa.report.provenance import concat_runs, parameter_values
from moa.report.results import save_dataset, with_status
from moa.runs import run_doses
from moa.scenarios import load_formats, load_settings
from moa.report.summaries import FormatBellSummary

DOSES_MG_PER_KG = (0.2, 0.8, 3.2, 6.0, 10.0, 15.0, 25.0)  # ASCO 2024 abstract 4010 dose levels
RP2D = 15.0
FORMAT_STYLE = {"bsab_2x2": "-", "bsab_1x1": "--"}


def bell_curve_shape(conc_nM: np.ndarray, ternary: np.ndarray) -> dict:
    """Peak, concentration at peak and width (decades above half the peak) of a bell curve."""
    k = int(np.nanargmax(ternary))
    peak = float(ternary[k])
    above = np.nonzero(ternary >= peak / 2)[0]
    logc = np.log10(conc_nM)
    width = float(logc[above[-1]] - logc[above[0]]) if above.size else 0.0
    return {
        "peak": peak,
        "conc_at_peak_nM": float(conc_nM[k]),
        "width_decades": width,
        "interior_peak": bool(0 < k < len(conc_nM) - 1),
    }


def in_vitro_grid(quick: bool) -> xr.Dataset:
    params = load_parameters()
    formats = load_formats()
    conc = np.logspace(-4, 4, 33 if quick else 81)
    kds = (10.0, 100.0, 1000.0)
    pdl1 = (1e3, 1e4, 1e5)
    out = np.zeros((2, len(kds), len(pdl1), conc.size))
    signal = np.zeros_like(out)
    for i, fmt in enumerate(FORMAT_STYLE):
        p = params.with_values(formats[fmt].values)
        for j, kd in enumerate(kds):
            drug = drug_binding(p.with_values({"kd_cd137_bsab": kd}), "bsab")
            for k, density in enumerate(pdl1):
                # co-culture: 1e6 PD-L1 cells/mL, 1e6 T cells/mL with the default 4-1BB per cell
                eq = in_vitro(
                    drug, conc, density, 1e6, float(p["cd137_per_t_cell"]), 1e6, contact_geometry(p), clustering(p)
                )
                out[i, j, k] = eq["ternary_per_cd137_cell"].values
                signal[i, j, k] = eq["cd137_signal"].values
    return with_status(
        xr.Dataset(
            {
                "ternary_per_t_cell": (
                    ("format", "kd_cd137_nM", "pdl1_per_cell", "drug_nM"),
                    out,
                    {"units": "molecule/cell", "description": "4-1BB bridged to PD-L1 per T cell"},
                ),
                "cd137_signal": (
                    ("format", "kd_cd137_nM", "pdl1_per_cell", "drug_nM"),
                    signal,
                    {"units": "1", "description": "4-1BB signal of the T cells (clustering of cross-linked 4-1BB)"},
                ),
            },
            coords={
                "format": list(FORMAT_STYLE),
                "kd_cd137_nM": ("kd_cd137_nM", list(kds), {"units": "nM"}),
                "pdl1_per_cell": ("pdl1_per_cell", list(pdl1), {"units": "molecule/cell"}),
                "drug_nM": ("drug_nM", conc, {"units": "nM"}),
            },
            attrs={
                "description": "in-vitro co-culture, 1e6 PD-L1+ cells/mL and 1e6 T cells/mL, exact equilibrium",
                "parameters": json.dumps(parameter_values(params)),
                "overlays": "per format: models/formats.toml "
                + ", ".join(FORMAT_STYLE)
                + "; kd_cd137_bsab per kd_cd137_nM",
            },
        )
    )


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    summary: dict = {"in_vitro": {}, "in_vivo": {}}
    vitro = in_vitro_grid(quick)
    save_dataset(vitro, out_dir, "in_vitro_bell", csv_variables=["ternary_per_t_cell"])
    conc = vitro.drug_nM.values
    for fmt in FORMAT_STYLE:
        for kd in vitro.kd_cd137_nM.values:
            for dens in vitro.pdl1_per_cell.values:
                key = f"{fmt}|kd={kd:g}|pdl1={dens:g}"
                summary["in_vitro"][key] = bell_curve_shape(
                    conc, vitro["ternary_per_t_cell"].sel(format=fmt, kd_cd137_nM=kd, pdl1_per_cell=dens).values
                )

    with plots.style():
        fig, axes = plots.subplots(1, 3, figsize=(16, 5), sharey=True)
        colours = plots.dose_colours(len(vitro.pdl1_per_cell))
        bridged = vitro["ternary_per_t_cell"].values
        smallest = float(bridged[bridged > 0].min()) if (bridged > 0).any() else 1e-3
        for ax, kd in zip(axes, vitro.kd_cd137_nM.values):
            for colour, dens in zip(colours, vitro.pdl1_per_cell.values):
                for fmt, ls in FORMAT_STYLE.items():
                    ax.plot(
                        conc,
                        vitro["ternary_per_t_cell"].sel(format=fmt, kd_cd137_nM=kd, pdl1_per_cell=dens),
                        ls,
                        color=colour,
                        lw=2,
                        label=f"{plots.arm_label(fmt)}, PD-L1 {dens:,.0f}/cell",
                    )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_ylim(max(1e-3, smallest / 2), None)  # fitted to the data (shared by the three panels)
            ax.set_title(f"4-1BB arm KD {kd:g} nM")
            ax.set_xlabel(plots.label("bispecific concentration", "nM"))
        axes[0].set_ylabel(plots.label("bridged 4-1BB per T cell", "molecule/cell"))
        axes[-1].legend(fontsize=10, loc="upper left", bbox_to_anchor=(1.02, 1))
        plots.panel_letters(axes)
        plots.save_figure(
            fig,
            out_dir,
            "bell_in_vitro",
            "In-vitro ternary complex (4-1BB bridged to PD-L1 by the bispecific, per T cell) against drug "
            "concentration; solid 2:2, dashed 1:1 (same KDs and avidity factors, valency only). Exact "
            "equilibrium (moa.binding_equilibrium) for a co-culture of 1e6 PD-L1+ cells/mL and 1e6 T cells/mL with "
            "the default 4-1BB per cell; PD-L1 arm KD 1 nM (assumed class value).",
            {"parameter_set": "default (models/parameters) + format overlays"},
        )

    duration = 126.0 if quick else 252.0
    doses = (0.2, 3.2, 15.0, 25.0) if quick else DOSES_MG_PER_KG
    settings = ("hot_tnbc",) if quick else ("hot_tnbc", "cold")
    vivo = []
    for fmt in FORMAT_STYLE:
        per_setting = [
            run_doses("bsab", doses, "mg/kg", 21.0, s, duration, arm=fmt).expand_dims(setting=[s]) for s in settings
        ]
        vivo.append(concat_runs(per_setting, dim="setting").expand_dims(format=[fmt]))
    vivo = concat_runs(vivo, dim="format")
    cycle2 = vivo.sel(time=slice(21, 42))
    vivo["mean_ternary_cycle2"] = cycle2["ternary_bsab"].mean("time").assign_attrs(units="nM")
    vivo["mean_cd137_signal_cycle2"] = cycle2["cd137_signal"].mean("time").assign_attrs(units="1")
    d = vivo["tumour_diameter"]
    vivo["best_percent_change"] = best_percent_change(d)
    save_dataset(
        vivo,
        out_dir,
        "in_vivo_dose",
        csv_variables=["mean_ternary_cycle2", "mean_cd137_signal_cycle2", "best_percent_change"],
    )

    setting_labels = {name: s.label for name, s in load_settings().items()}
    with plots.style():
        fig, axes = plots.subplots(1, 3, figsize=(16, 5))
        panels = (
            ("mean_ternary_cycle2", plots.label("tumour bridged 4-1BB, mean of cycle 2", "nM")),
            ("mean_cd137_signal_cycle2", plots.label("4-1BB costimulation, mean of cycle 2", "1")),
            ("best_percent_change", plots.label(f"best diameter change over {duration:.0f} d", "%")),
        )
        for ax, (var, ylabel) in zip(axes, panels):
            for s, colour in zip(settings, ("#b2182b", "#2166ac")):
                for fmt, ls in FORMAT_STYLE.items():
                    ax.plot(
                        doses,
                        vivo[var].sel(format=fmt, setting=s),
                        ls,
                        marker="o",
                        color=colour,
                        lw=2,
                        label=f"{plots.arm_label(fmt)}, {setting_labels[s]}",
                    )
            ax.axvline(RP2D, color="grey", ls=":", lw=1.5)
            ax.set_xscale("log")
            ax.set_xlabel(plots.label("dose Q3W", "mg/kg"))
            ax.set_ylabel(ylabel)
            if var != "best_percent_change":
                ax.set_ylim(bottom=0.0)  # non-negative: from 0, so a flat top does not look like a bell
        # outside the panels: in (a) the plateaus reach the top left of where a legend would sit
        axes[-1].legend(fontsize=10, loc="upper left", bbox_to_anchor=(1.02, 1))
        plots.panel_letters(axes)
        axes[0].annotate(
            "RP2D 15 mg/kg",
            (RP2D, 0.5),
            xycoords=("data", "axes fraction"),
            xytext=(4, 0),
            textcoords="offset points",
            rotation=90,
            va="center",
            fontsize=11,
            color="grey",
        )
        plots.save_figure(
            fig,
            out_dir,
            "dose_in_vivo",
            "In the tumour, against dose Q3W: mean bridged (ternary) 4-1BB (a) and 4-1BB costimulation (b) "
            f"over cycle 2 (days 21-42), and best diameter change (c) over {duration:.0f} days; solid 2:2, dashed 1:1; "
            "dotted "
            "line at the recommended phase 2 dose. Default parameters with the named setting overlay.",
            vivo.attrs,
        )

    for fmt in FORMAT_STYLE:
        for s in settings:
            tern = vivo["mean_ternary_cycle2"].sel(format=fmt, setting=s).values
            k = int(np.nanargmax(tern))
            summary["in_vivo"][f"{fmt}|{s}"] = {
                "dose_at_peak_ternary_mg_per_kg": float(doses[k]),
                "peak_is_interior": bool(0 < k < len(doses) - 1),
                "ternary_at_rp2d_over_peak": float(tern[list(doses).index(RP2D)] / tern[k])
                if tern[k] > 0
                else float("nan"),
                "best_percent_change_at_rp2d": float(
                    vivo["best_percent_change"].sel(format=fmt, setting=s).values[list(doses).index(RP2D)]
                ),
                "cd137_signal_cycle2_at_rp2d": float(
                    vivo["mean_cd137_signal_cycle2"].sel(format=fmt, setting=s).values[list(doses).index(RP2D)]
                ),
            }
    for fmt in FORMAT_STYLE:
        thr = pdl1_threshold(load_parameters().with_values(load_formats()[fmt].values))
        summary.setdefault("pdl1_threshold_per_cell", {})[fmt] = thr["threshold_pdl1_per_cell"]
        for dens in vitro.pdl1_per_cell.values:
            summary["in_vitro"][f"{fmt}|kd=100|pdl1={dens:g}"]["peak_signal"] = float(
                vitro["cd137_signal"].sel(format=fmt, kd_cd137_nM=100.0, pdl1_per_cell=dens).max()
            )
    ref = summary["in_vitro"]["bsab_2x2|kd=100|pdl1=100000"]
    one = summary["in_vitro"]["bsab_1x1|kd=100|pdl1=100000"]
    summary["format_gain_peak_ternary"] = ref["peak"] / one["peak"] if one["peak"] > 0 else float("inf")
    summary["figures"] = ["bell_in_vitro.png", "dose_in_vivo.png"]
    return FormatBellSummary.from_summary(summary).as_dict()  # the contract moa.report.claims reads
