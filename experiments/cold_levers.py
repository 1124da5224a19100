"""Which lever makes the cold tumour resist, and which costimulation assumption decides each 4-1BB verdict?

Levers: the cold setting with one of its levers (models/settings.toml ``levers``: priming and
antigen recognition, exclusion, Treg and myeloid recruitment, PD-L1) set to its hot-TNBC
value at a time, with all of them at once, and with all but one (which levers the hot
response needs); the cold state at the first dose (initial T cells and their exhaustion) is
kept. Gains: the 4-1BB costimulation parameters (proliferation
gain, survival effect, signal EC50, expression lag, reinvigoration, Treg loss factor) at the
low and the high end of their bounds, one at a time, in the cold and the hot TNBC settings.

Arms untreated, anti-PD-L1, anti-4-1BB and the 2:2 bispecific; numbers: best % change of
diameter (RECIST scans, models/recist.toml, as in arms_settings) and the peak of tumour
effectors relative to untreated. moa.report.claims turns them into
verdicts. All points of one arm and setting run as one batched simulation.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from moa.report import plots
from moa.analysis import partial_response_pct, recist
from moa.report.provenance import concat_runs
from moa.report.results import save_dataset
from moa.runs import run_points
from moa.scenarios import load_settings, scenario
from moa.report.summaries import ALL_BUT_PREFIX, ALL_LEVERS_POINT, BASELINE_POINT, ColdLeversSummary

ARMS = ("untreated", "apdl1", "a41bb", "bsab_2x2")
SETTING, REFERENCE = "cold", "hot_tnbc"
GAINS = (
    "cd137_prolif_gain",
    "cd137_survival",
    "cd137_cluster_k",
    "cd137_expression_lag",
    "cd137_reinvigoration_rate",
    "cd137_treg_loss_factor",
)
GAIN_SETTINGS = ("cold", "hot_tnbc")
VARIABLES = ("tumour_diameter", "t_eff")


def lever_points(setting: str = SETTING, reference: str = REFERENCE) -> tuple[list[str], dict[str, np.ndarray]]:
    """Point labels and parameter columns: the setting, each lever at the reference value, all levers
    at the reference values, and all but one (``all_but:<lever>``, that one kept at the setting's value)."""
    settings = load_settings()
    levers = list(settings[setting].levers)
    base, _ = scenario("untreated", setting)
    ref, _ = scenario("untreated", reference)
    labels = [BASELINE_POINT] + levers + [ALL_LEVERS_POINT] + [f"{ALL_BUT_PREFIX}{k}" for k in levers]
    columns = {k: np.full(len(labels), float(base[k])) for k in levers}
    for i, k in enumerate(levers, start=1):
        columns[k][i] = float(ref[k])
    for k in levers:
        columns[k][len(levers) + 1 :] = float(ref[k])
    for i, k in enumerate(levers, start=len(levers) + 2):
        columns[k][i] = float(base[k])
    return labels, columns


def gain_points(setting: str, gains: Sequence[str] = GAINS) -> tuple[list[str], dict[str, np.ndarray]]:
    """Point labels ``baseline``, ``<gain>:low``, ``<gain>:high`` and their parameter columns."""
    base, _ = scenario("untreated", setting)
    labels = [BASELINE_POINT] + [f"{g}:{end}" for g in gains for end in ("low", "high")]
    columns = {g: np.full(len(labels), float(base[g])) for g in gains}
    for i, g in enumerate(gains):
        spec = base.specs[g]
        columns[g][1 + 2 * i], columns[g][2 + 2 * i] = spec.lower, spec.upper
    return labels, columns


def _run(setting: str, labels: list[str], columns: Mapping[str, np.ndarray], duration: float, solver) -> xr.Dataset:
    parts = [
        run_points(arm, setting, columns, duration, variables=VARIABLES, solver=solver).expand_dims(arm=[arm])
        for arm in ARMS
    ]
    ds = concat_runs(parts, dim="arm", coords="different", compat="equals", combine_attrs="override")
    return ds.assign_coords(point=labels)


def outcomes(ds: xr.Dataset) -> dict[str, dict]:
    """Per point: best % change per arm (RECIST scans, as in arms_settings), peak effectors per arm
    relative to untreated, status."""
    best = recist(ds["tumour_diameter"])["best_percent_change"]
    fold = (ds["t_eff"] / ds["t_eff"].sel(arm="untreated")).max("time")
    out = {}
    for label in ds.point.values:
        out[str(label)] = {
            "best_percent_change": {a: _num(best.sel(arm=a, point=label)) for a in ARMS},
            "peak_t_eff_fold_vs_untreated": {a: _num(fold.sel(arm=a, point=label)) for a in ARMS if a != "untreated"},
            "failed": bool((ds["status"].sel(point=label) != 0).any()),
        }
    return out


def _num(v) -> float | None:
    v = float(v)
    return round(v, 4) if np.isfinite(v) else None


def plot_levers(ds: xr.Dataset, out_dir: pathlib.Path) -> pathlib.Path:
    best = recist(ds["tumour_diameter"])["best_percent_change"]
    labels = [str(p) for p in ds.point.values]
    with plots.style():
        fig, ax = plots.subplots(figsize=(12, 6.5))
        width = 0.8 / len(ARMS)
        x = np.arange(len(labels))
        for i, arm in enumerate(ARMS):
            ax.bar(
                x + (i - (len(ARMS) - 1) / 2) * width,
                best.sel(arm=arm).values,
                width,
                color=plots.arm_colour(arm),
                label=plots.arm_label(arm),
            )
        ax.axhline(
            partial_response_pct(), color="k", ls="--", lw=1, label=f"partial response ({partial_response_pct():.0f}%)"
        )
        display = [
            lab.replace("_", " ").replace("pdl1", "PD-L1").replace("treg", "Treg").replace("all but:", "all but ")
            for lab in labels
        ]
        ax.set_xticks(x, display, rotation=30, ha="right")
        ax.set_ylabel(plots.label("best change of diameter", "%"))
        ax.legend(fontsize=11)
        caption = (
            f"Best change of tumour diameter (RECIST scans) in the {SETTING} setting with one lever at a "
            f"time set to its {REFERENCE} value (levers from models/settings.toml), with all of them, and with all but "
            "one (the named "
            "lever kept cold); the cold state at the "
            "first dose (initial T cells, their exhaustion) is kept. Dashed: partial response "
            f"({partial_response_pct():.0f}%). Default parameters otherwise."
        )
        path = plots.save_figure(fig, out_dir, "cold_levers", caption, ds.attrs)
    return path["png"]


def main(
    out_dir: pathlib.Path, quick: bool = False, *, duration_days: float | None = None, solver: str | object = "auto"
) -> dict:
    """Quick: 168 days; full: 365 days."""
    out_dir = pathlib.Path(out_dir)
    duration = duration_days or (168.0 if quick else 365.0)
    labels, columns = lever_points()
    levers_ds = _run(SETTING, labels, columns, duration, solver)
    save_dataset(levers_ds, out_dir, "cold_levers", csv_variables=["tumour_diameter"])
    plot_levers(levers_ds, out_dir)
    settings = load_settings()
    summary: dict = {
        "setting": SETTING,
        "reference_setting": REFERENCE,
        "duration_days": duration,
        "levers": {
            k: {
                "value": float(columns[k][0]),
                "reference_value": float(columns[k][labels.index(ALL_LEVERS_POINT)]),
                "unit": scenario("untreated", SETTING)[0].unit(k),
            }
            for k in settings[SETTING].levers
        },
        "lever_outcomes": outcomes(levers_ds),
        "gains": {},
        "figures": ["cold_levers.png"],
    }
    for setting in GAIN_SETTINGS:
        g_labels, g_columns = gain_points(setting)
        gains_ds = _run(setting, g_labels, g_columns, duration, solver)
        save_dataset(gains_ds, out_dir, f"costim_gains_{setting}", csv_variables=["tumour_diameter"])
        summary["gains"][setting] = {
            "values": {lab: {g: float(g_columns[g][i]) for g in GAINS} for i, lab in enumerate(g_labels)},
            "outcomes": outcomes(gains_ds),
        }
    return ColdLeversSummary.from_summary(summary).as_dict()  # the contract moa.report.claims reads
