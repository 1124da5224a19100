"""What would a trial in metastatic TNBC show for opatisumimab, alone and with nab-paclitaxel, \
in a virtual population calibrated to IMpassion130?

Virtual patients (models/population.toml: 41% PD-L1-positive, 1-5 target lesions each, between-patient and
between-lesion variability) receive nab-paclitaxel (nabp), nab-paclitaxel + anti-PD-L1 (nabp_apdl1, the
IMpassion130 arms), the 2:2 bispecific at 15 mg/kg Q3W (bsab_2x2) and nab-paclitaxel + bispecific
(nabp_bsab_2x2); every arm treats the same patients (common random numbers). Scans every 8 weeks in year 1,
RECIST 1.1 on the sum of target lesions with confirmation, treatment until progression, censoring at a fixed
12.9-month follow-up (moa.trial); a patient is off study after its progression scan and not simulated
further. Quick: 200 patients per arm in one process; full: 1,000 per arm, the arms' patient chunks run on
every core (moa.trial.simulate_trials; the same results).
Calibration itself is a separate command: ``python -m moa.trial calibrate --write`` (docs/validation.md).
"""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import xarray as xr
from moa.survival import hazard_ratio, kaplan_meier

from moa.parallel import available_cores
from moa.report import plots, trial_plots
from moa.report.provenance import combine_simulations
from moa.report.results import save_dataset, write_json, write_text
from moa.report.summaries import VirtualTrialSummary
from moa.trial import (
    SUBGROUPS,
    load_population,
    sample_population,
    simulate_trials,
    trial_readouts,
)

ARMS = ("nabp", "nabp_apdl1", "bsab_2x2", "nabp_bsab_2x2")
COMPARATORS = ("nabp", "nabp_apdl1")
SUBGROUP_LABELS = {"itt": "ITT", "pdl1_positive": "PD-L1+", "pdl1_negative": "PD-L1-"}
SEED = 2018
#: Virtual patients per arm (every arm treats the same patients).
QUICK_PATIENTS, FULL_PATIENTS = 200, 1000
#: Full mode: patients per arm for each of the best calibrated parameter sets (spread across fits).
FIT_PATIENTS, N_FITS = 300, 3
#: Bootstrap resamples of patients for the spread of the predictions (HR and ORR).
N_BOOTSTRAP = 200


def _readouts(trials: dict[str, xr.Dataset]) -> dict:
    out: dict = {}
    for arm in ARMS:
        for sg in SUBGROUPS:
            r = trial_readouts(trials[arm], sg)
            for comp in COMPARATORS:
                if comp != arm:
                    c = trial_readouts(trials[arm], sg, trials[comp])
                    r[f"hr_vs_{comp}"] = c.get("hr")
                    r[f"logrank_p_vs_{comp}"] = c.get("logrank_p")
            out.setdefault(arm, {})[sg] = {k: v for k, v in r.items() if v is not None}
    return out


def _bootstrap(trials: dict[str, xr.Dataset], rng: np.random.Generator, n_boot: int) -> dict:
    """2.5/97.5 percentiles over patient resamples (the same resample in every arm) of each arm's ORR and
    its HR vs each comparator, per subgroup: the sampling spread of a trial of this size."""
    n = trials[ARMS[0]].sizes["patient"]
    ok = np.all([~trials[a]["failed"].values for a in ARMS], axis=0)
    pos = trials[ARMS[0]]["pdl1_positive"].values
    masks = {"itt": ok, "pdl1_positive": ok & pos, "pdl1_negative": ok & ~pos}
    out: dict = {}
    samples = [rng.integers(0, n, n) for _ in range(n_boot)]
    for arm in ARMS:
        bor = np.isin(trials[arm]["best_overall_response"].values, ("CR", "PR"))
        t, e = trials[arm]["pfs_days"].values, trials[arm]["pfs_event"].values
        for sg, m in masks.items():
            rows: dict = {"orr": []}
            for idx in samples:
                idx = idx[m[idx]]
                if idx.size < 5:
                    continue
                rows["orr"].append(100 * bor[idx].mean())
                for comp in COMPARATORS:
                    if comp == arm:
                        continue
                    tc, ec = trials[comp]["pfs_days"].values[idx], trials[comp]["pfs_event"].values[idx]
                    group = np.r_[np.ones(idx.size, bool), np.zeros(idx.size, bool)]
                    if not (e[idx].any() and ec.any()):
                        continue  # no events in one arm of this resample: no finite HR
                    try:
                        hr = hazard_ratio(np.r_[t[idx], tc], np.r_[e[idx], ec], group)[0]
                    except (ZeroDivisionError, RuntimeError):  # degenerate resample (zero information)
                        continue
                    rows.setdefault(f"hr_vs_{comp}", []).append(hr)
            out.setdefault(arm, {})[sg] = {
                k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in rows.items() if v
            }
    return out


def _previous_calibration(out_dir: pathlib.Path) -> dict | None:
    """The calibration record of ``python -m moa.trial calibrate`` in the folder this run replaces (carried over)."""
    final = out_dir.parent / "virtual_trial"
    path = final / "calibration.json"
    if not path.is_file():
        return None
    shutil.copy2(path, out_dir / "calibration.json")
    return json.loads(path.read_text())


def _across_fits(record: dict, spec, n: int, workers: int) -> dict:
    """ORR and HRs of each arm under the ``N_FITS`` best distinct parameter sets the calibration evaluated:
    ``{arm: {subgroup: {readout: [min, max]}}}`` (the uncertainty the calibration leaves)."""
    seen, best = set(), []
    for h in sorted(record.get("history", []), key=lambda h: h["objective"]):
        key = tuple(round(v, 6) for v in h["values"])
        if key not in seen:
            seen.add(key)
            best.append(h["values"])
        if len(best) == N_FITS:
            break
    values: dict = {}
    for x in best:
        fit = spec.with_values(dict(zip(record["parameters"], x)))
        population = sample_population(n, SEED, fit)
        trials = simulate_trials(ARMS, population, workers=workers)
        for arm, by_sg in _readouts(trials).items():
            for sg, r in by_sg.items():
                for k in ("orr", "median_pfs", "hr_vs_nabp", "hr_vs_nabp_apdl1"):
                    if r.get(k) and np.isfinite(r[k][0]):
                        values.setdefault(arm, {}).setdefault(sg, {}).setdefault(k, []).append(r[k][0])
    return {
        arm: {sg: {k: [float(min(v)), float(max(v))] for k, v in d.items()} for sg, d in by_sg.items()}
        for arm, by_sg in values.items()
    }


def _calibration_rows(trials: dict[str, xr.Dataset], spec) -> list[dict]:
    rows = []
    for t in spec.targets:
        r = trial_readouts(trials[t.arm], t.subgroup, trials["nabp"] if t.readout == "hr" else None)
        model = r.get(t.readout, [np.nan] * 3)
        rows.append(
            {
                "name": t.name,
                "model": float(model[0]),
                "model_low": float(model[1]),
                "model_high": float(model[2]),
                "trial": t.value,
                "trial_low": t.low,
                "trial_high": t.high,
                "unit": t.unit,
                "weight": t.weight,
                "residual_half_widths": float((model[0] - t.value) / t.half_width),
                "inside_trial_ci": bool(t.low <= model[0] <= t.high),
            }
        )
    return rows


def _dataset(trials: dict[str, xr.Dataset]) -> xr.Dataset:
    keep = [
        "diameter_mm",
        "sum_mm",
        "best_overall_response",
        "best_overall_response_unconfirmed",
        "progression_day",
        "pfs_days",
        "pfs_event",
        "best_change_pct",
        "duration_of_response_days",
        "pdl1_positive",
        "n_lesions",
        "failed",
        "status",
        "message",
    ]
    parts = [trials[a][keep].expand_dims(arm=[a]) for a in ARMS]
    ds = xr.concat(parts, dim="arm")
    for k in ("best_overall_response", "best_overall_response_unconfirmed"):
        ds[k] = ds[k].astype(str)
    ds.attrs = {
        k: v
        for k, v in trials[ARMS[0]].attrs.items()
        if k not in ("arm", "wall_s", "trajectories", "second_pass_trajectories", "simulations")
    }
    ds.attrs["arms"] = ",".join(ARMS)
    ds.attrs["simulations"] = combine_simulations([({"arm": a}, trials[a].attrs) for a in ARMS])
    return ds


def _figures(
    out_dir: pathlib.Path, trials: dict, readouts: dict, calibration: list[dict], n: int, prov: dict
) -> list[str]:
    names = []
    with plots.style():
        fig, axes = plots.subplots(2, 2, figsize=(14, 9), sharey=True)
        for ax, arm in zip(axes.ravel(), ARMS):
            trial_plots.plot_waterfall(
                ax, trials[arm]["best_change_pct"].values, trials[arm]["best_overall_response"].values
            )
            ax.set_title(plots.arm_label(arm))
        for ax in axes[:, 1]:
            ax.set_ylabel("")  # shared y: labelled once per row, so long labels cannot run into the next panel
        plots.panel_letters(axes)
        plots.save_figure(
            fig,
            out_dir,
            "waterfall",
            f"Best change of the sum of target-lesion diameters from baseline per virtual patient "
            f"(n={n} per arm, ITT), coloured by confirmed RECIST 1.1 best overall response.",
            prov,
        )
        names.append("waterfall.png")

        fig, axes = plots.subplots(2, 2, figsize=(14, 9), sharey=True)
        for ax, arm in zip(axes.ravel(), ARMS):
            s = trials[arm]["sum_mm"].values[:40]
            change = 100 * (s / s[:, :1] - 1)
            trial_plots.plot_spider(
                ax,
                trials[arm]["scan_day"].values,
                change,
                trials[arm]["best_overall_response"].values[:40],
                progression_day=trials[arm]["progression_day"].values[:40],
            )
            ax.set_title(plots.arm_label(arm))
        for ax in axes[:, 1]:
            ax.set_ylabel("")
        plots.panel_letters(axes)
        plots.save_figure(
            fig,
            out_dir,
            "spider",
            "Change of the sum of target-lesion diameters from baseline at each scan for the first 40 "
            "virtual patients of each arm, up to progression (off study after it).",
            prov,
        )
        names.append("spider.png")

        fig, axes = plots.subplots(1, 3, figsize=(27, 8.5))
        for ax, sg in zip(axes, SUBGROUPS):
            curves = {}
            for arm in ARMS:
                m = ~trials[arm]["failed"].values
                if sg != "itt":
                    pos = trials[arm]["pdl1_positive"].values
                    m &= pos if sg == "pdl1_positive" else ~pos
                curves[arm] = kaplan_meier(  # keyed by arm: plot_km gives each arm its colour and its name
                    trials[arm]["pfs_days"].values[m], trials[arm]["pfs_event"].values[m]
                )
            trial_plots.plot_km(ax, curves)
            ax.set_title(SUBGROUP_LABELS[sg])
        plots.panel_letters(axes)
        plots.save_figure(
            fig,
            out_dir,
            "pfs_km",
            "Kaplan-Meier progression-free survival per arm and PD-L1 subgroup, with numbers at risk; "
            "every patient censored at the fixed follow-up (models/population.toml [trial]).",
            prov,
        )
        names.append("pfs_km.png")

        fig, ax = plots.subplots(figsize=(10, 7))
        rows = []
        for arm in ("nabp_apdl1", "bsab_2x2", "nabp_bsab_2x2"):
            for sg in SUBGROUPS:
                hr = readouts[arm][sg].get("hr_vs_nabp")
                if hr and all(np.isfinite(hr)):
                    rows.append((f"{plots.arm_label(arm)}: {SUBGROUP_LABELS[sg]}", *hr, readouts[arm][sg]["n"]))
        trial_plots.plot_forest(ax, rows)
        plots.save_figure(
            fig,
            out_dir,
            "forest",
            "PFS hazard ratio vs nab-paclitaxel (Cox, 95% CI) by arm and PD-L1 status, same virtual "
            "patients in every arm.",
            prov,
        )
        names.append("forest.png")

        fig, ax = plots.subplots(figsize=(10, 8))
        trial_plots.plot_calibration(
            ax,
            [
                (r["name"], r["model"], r["model_low"], r["model_high"], r["trial"], r["trial_low"], r["trial_high"])
                for r in calibration
            ],
        )
        plots.save_figure(
            fig,
            out_dir,
            "calibration",
            "IMpassion130 (Schmid 2018; FDA review) against the virtual trial of the same arms: trial "
            "estimate and 95% CI, model estimate and its 95% CI for this number of virtual patients. "
            "Targets with weight 0 (complete responses) are compared, not fitted.",
            prov,
        )
        names.append("calibration.png")
    return names


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    n = QUICK_PATIENTS if quick else FULL_PATIENTS
    spec = load_population()
    population = sample_population(n, SEED, spec)
    # quick mode (make run) stays in one process; a full run uses every core (the same results)
    workers = 1 if quick else available_cores()
    trials = simulate_trials(ARMS, population, workers=workers)
    readouts = _readouts(trials)
    calibration = _calibration_rows(trials, spec)
    spread = _bootstrap(trials, np.random.default_rng(SEED), N_BOOTSTRAP if not quick else 50)
    record = _previous_calibration(out_dir)
    fit_spread = _across_fits(record, spec, FIT_PATIENTS, workers) if (record and not quick) else None
    ds = _dataset(trials)
    save_dataset(ds, out_dir, "virtual_trial", csv_variables=["pfs_days", "pfs_event", "best_change_pct"])
    prov = {
        **ds.attrs,  # the figures' parameters are the drawn population's, not the defaults
        "parameter_set": f"virtual population, models/population.toml, {n} patients per arm, seed {SEED}",
        "overlays": f"{spec.pdl1_positive_setting} (PD-L1+) or {spec.pdl1_negative_setting} (PD-L1-) per patient",
    }
    figures = _figures(out_dir, trials, readouts, calibration, n, prov)
    write_json(out_dir / "calibration_check.json", calibration)

    lines = [
        "| arm | subgroup | n | ORR % (95% CI) | CR % | median PFS, months (95% CI) | HR vs nab-P | HR vs "
        "nab-P + anti-PD-L1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        for sg in SUBGROUPS:
            r = readouts[arm][sg]

            def ci(v, fmt="{:.0f}"):
                if not v:
                    return "-"
                if not np.isfinite(v[0]):  # a median PFS that the follow-up does not reach
                    return "not reached"
                low, high = (fmt.format(x) if np.isfinite(x) else "NR" for x in v[1:3])
                return f"{fmt.format(v[0])} ({low}-{high})"

            lines.append(
                f"| {plots.arm_label(arm)} | {SUBGROUP_LABELS[sg]} | {r['n']} | {ci(r.get('orr'))} | "
                f"{r['cr'][0]:.1f} | {ci(r.get('median_pfs'), '{:.1f}')} | {ci(r.get('hr_vs_nabp'), '{:.2f}')} | "
                f"{ci(r.get('hr_vs_nabp_apdl1'), '{:.2f}')} |"
            )
    lines += ["", "| IMpassion130 | model (95% CI) | trial (95% CI) | inside |", "|---|---|---|---|"]
    for r in calibration:
        lines.append(
            f"| {r['name']} | {r['model']:.2f} ({r['model_low']:.2f}-{r['model_high']:.2f}) | {r['trial']:.2f} "
            f"({r['trial_low']:.2f}-{r['trial_high']:.2f}) | {'yes' if r['inside_trial_ci'] else 'no'} |"
        )
    write_text(out_dir / "summary_table.md", "\n".join(lines) + "\n")

    summary = {
        "n_patients_per_arm": n,
        "readouts": readouts,
        "calibration": [{k: v for k, v in r.items() if k not in ("model_low", "model_high")} for r in calibration],
        "seed": SEED,
        "follow_up_days": spec.follow_up_days,
        "pdl1_positive_fraction": float(population.pdl1_positive.mean()),
        "acceptance_rate": population.acceptance_rate,
        "failed_patients": {a: int(trials[a]["failed"].sum()) for a in ARMS},
        "prediction_spread": spread,
        "fit_spread": fit_spread,
        "wall_s": {a: float(trials[a].attrs["wall_s"]) for a in ARMS},
        "figures": figures,
    }
    summary = _finite(summary)
    return VirtualTrialSummary.from_summary(summary).as_dict()  # the contract moa.report.claims reads


def _finite(value):
    """NaN/inf as None (JSON null), recursively (e.g. a median PFS not reached)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
