"""How do plasma concentration and systemic PD-L1 occupancy of the bispecific depend on dose (0.2, 3, 15 mg/kg Q3W)?

Two-compartment antibody PK with target-mediated disposition to a systemic PD-L1 pool
(``moa.symbolic.named_models.pk_model("bsab")``), default parameter set. Writes ``pk_occupancy.png/.svg``
with its caption, the data as ``pk_occupancy.nc/.csv`` with dims ``dose_mg_per_kg`` x ``time``,
and provenance.
"""

from __future__ import annotations

import pathlib

import numpy as np
import xarray as xr

import moa
from moa.report import plots
from moa.symbolic.named_models import pk_model
from moa.report.provenance import concat_runs
from moa.report.results import save_dataset
from moa.symbolic.units import registry

DRUG = "bsab"
DOSES_MG_PER_KG = (0.2, 3.0, 15.0)
INTERVAL_DAYS = 21.0  # Q3W
DURATION_DAYS = {False: 126.0, True: 63.0}  # six cycles; quick: three
STEP_DAYS = 0.25


def simulate_doses(duration_days: float) -> xr.Dataset:
    """One simulation per dose level, combined along ``dose_mg_per_kg``."""
    model, parameters = pk_model(DRUG), moa.load_parameters()
    times = moa.output_times(duration_days, STEP_DAYS)
    runs = []
    for dose in DOSES_MG_PER_KG:
        regimen = moa.every(DRUG, dose, "mg/kg", INTERVAL_DAYS, duration_days, name=f"{DRUG} {dose:g} mg/kg Q3W")
        runs.append(moa.simulate(model, parameters, regimen, times=times, solver="LSODA", rtol=1e-8, atol=1e-12))
    ds = concat_runs(runs, dim="dose_mg_per_kg", labels=DOSES_MG_PER_KG, combine_attrs="drop_conflicts")
    ds = ds.assign_coords(
        dose_mg_per_kg=(
            "dose_mg_per_kg",
            np.array(DOSES_MG_PER_KG),
            {"units": "mg/kg", "long_name": "dose every 3 weeks"},
        )
    )
    ds.attrs["regimen"] = f"{DRUG} Q3W IV bolus at " + ", ".join(f"{d:g}" for d in DOSES_MG_PER_KG) + " mg/kg"
    ds.attrs["experiment"] = "pk_occupancy"

    ug_per_mL_per_nM = (
        (registry().Quantity(1.0, "nM") * registry().Quantity(parameters[f"mw_{DRUG}"], "g/mol")).to("ug/mL").magnitude
    )
    conc = ds[f"{DRUG}_central"]
    ds[f"{DRUG}_central_ug_per_mL"] = (conc * ug_per_mL_per_nM).assign_attrs(
        units="ug/mL", description=f"free {DRUG} in plasma, mass concentration (MW {parameters[f'mw_{DRUG}']:g} g/mol)"
    )
    ds.attrs["ug_per_mL_per_nM"] = float(ug_per_mL_per_nM)
    return ds


def trough_summary(ds: xr.Dataset) -> dict[str, dict[str, float]]:
    """Per dose: trough concentration and occupancy just before the last dose given, and at the end."""
    occ = ds[f"pdl1_systemic_occupancy_{DRUG}"]
    conc = ds[f"{DRUG}_central"]
    t = ds["time"].values
    last_dose = INTERVAL_DAYS * np.floor((t[-1] - 1e-9) / INTERVAL_DAYS)
    before = t[t < last_dose][-1] if last_dose > 0 else t[-1]
    out = {}
    for dose in DOSES_MG_PER_KG:
        sel = dict(dose_mg_per_kg=dose)
        out[f"{dose:g} mg/kg"] = {
            "trough_time_day": float(before),
            "trough_conc_nM": float(conc.sel(sel).sel(time=before)),
            "trough_occupancy": float(occ.sel(sel).sel(time=before)),
            "end_occupancy": float(occ.sel(sel).isel(time=-1)),
            "cmax_nM": float(conc.sel(sel).max()),
        }
    return out


def figure(ds: xr.Dataset, summary: dict, out_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    factor = ds.attrs["ug_per_mL_per_nM"]
    t = ds["time"].values
    colours = plots.dose_colours(len(DOSES_MG_PER_KG))
    with plots.style():
        fig, (ax_c, ax_o) = plots.subplots(2, 1, sharex=True, figsize=(10, 8), height_ratios=(3, 2))
        for dose, colour in zip(DOSES_MG_PER_KG, colours):
            sel = ds.sel(dose_mg_per_kg=dose)
            ax_c.plot(t, sel[f"{DRUG}_central"].values, color=colour, label=f"{dose:g} mg/kg Q3W")
            ax_o.plot(t, 100 * sel[f"pdl1_systemic_occupancy_{DRUG}"].values, color=colour)
        for ax in (ax_c, ax_o):
            for dose_time in np.arange(0.0, t[-1], INTERVAL_DAYS):
                ax.axvline(dose_time, color="0.6", lw=0.8, ls=":", zorder=0)
        ax_c.set_yscale("log")
        positive = ds[f"{DRUG}_central"].values[ds[f"{DRUG}_central"].values > 0]
        ax_c.set_ylim(max(positive.min(), 1e-4) / 2, positive.max() * 2)
        ax_c.set_ylabel(plots.label("free drug in plasma", "nM"))
        secondary = ax_c.secondary_yaxis("right", functions=(lambda c: c * factor, lambda m: m / factor))
        secondary.set_ylabel(plots.label("free drug in plasma", "ug/mL"))
        # the occupancy panel's lower right is empty (troughs stay high); the concentration panel has no free corner
        ax_o.legend(*ax_c.get_legend_handles_labels(), loc="lower right")
        ax_c.set_title("Bispecific PK and systemic PD-L1 occupancy (dotted: doses)")
        ax_o.set_ylim(-2, 102)
        ax_o.set_ylabel(plots.label("systemic PD-L1 occupancy", "%"))
        ax_o.set_xlabel(plots.label("time since first dose", "day"))
        ax_o.set_xlim(0, t[-1])
        plots.panel_letters((ax_c, ax_o))

    troughs = "; ".join(
        f"{dose}: {100 * s['trough_occupancy']:.1f}% at {s['trough_conc_nM']:.3g} nM" for dose, s in summary.items()
    )
    day = next(iter(summary.values()))["trough_time_day"]
    caption = (
        "Free plasma concentration of the PD-L1 x 4-1BB bispecific (a, log axis, nM on the left and µg/mL on "
        "the right) and the fraction of the systemic PD-L1 pool bound by it (b) for IV doses of "
        + ", ".join(f"{d:g}" for d in DOSES_MG_PER_KG)
        + f" mg/kg every 3 weeks over {t[-1]:g} days. Model: two-compartment antibody PK with target-mediated "
        "disposition to systemic PD-L1 (pk_tmdd_bsab). Trough before the last dose "
        f"(day {day:g}): {troughs}.\n\n"
        "Caveats: the PK of the bispecific is not public; clearance and volumes are atezolizumab class values "
        "(assumed). Occupancy is of the systemic (plasma-accessible) PD-L1 pool, not of PD-L1 in the tumour, and the "
        "second arm (4-1BB) is not in this model."
    )
    return plots.save_figure(fig, out_dir, "pk_occupancy", caption, provenance=ds.attrs)


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    out_dir = pathlib.Path(out_dir)
    ds = simulate_doses(DURATION_DAYS[quick])
    if np.any(ds["status"].values != 0):
        raise RuntimeError(f"simulation failed: {ds['message'].values}")
    summary = trough_summary(ds)
    figure_paths = figure(ds, summary, out_dir)
    data_paths = save_dataset(
        ds,
        out_dir,
        "pk_occupancy",
        csv_variables=[f"{DRUG}_central", f"{DRUG}_central_ug_per_mL", f"pdl1_systemic_occupancy_{DRUG}"],
    )
    return {"duration_days": DURATION_DAYS[quick], "troughs": summary, "files": {**figure_paths, **data_paths}}
