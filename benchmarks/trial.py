"""What a virtual trial costs (issue 17 target: 6 arms x 1,000 patients x 2 years, several lesions each).

Usage::

    python benchmarks/trial.py                 # the target itself (6 arms x 1,000 patients x 730 days, 2 cores),
                                               # one arm of 200 patients on one core, 50 sets for the ratio
    python benchmarks/trial.py --quick         # 6 arms x 100 patients, 30 patients, 20 sets (about a minute)

(a) **Trial throughput on one core**: :func:`moa.trial.simulate_trial` of one arm (default ``nabp_bsab_2x2``, the
    costliest: its patients progress last) on ``--patients`` virtual patients (``moa.trial.sample_population``,
    seed 2018) for ``--days``, in this process: wall time of the whole run (quasi-steady start, treatment until
    progression with patients off study after it, RECIST, readouts), lesion trajectories per second, and the
    wall time of the target extrapolated from it (ideal scaling, six arms as costly as this one: an upper bound).
(b) **The target, measured**: :func:`moa.trial.simulate_trials` of the six arms ``TARGET_ARMS`` on
    ``--target-patients`` patients for ``--days`` with ``--cores`` worker processes (spawned; their start-up
    is inside the wall time). Target: < 60 s for 1,000 patients on 2 cores.
(c) **Per-core ratio to libroadrunner** on the same model and the first ``--n-rr`` lesion parameter sets
    of that population: moa's batched Rodas4 (numba) against libroadrunner CVODE on the SBML export, one
    simulation after another, both from the parameters' initial values (libroadrunner has no quasi-steady
    start), outputs at the trial's scan days; moa at the trial's tolerances and at rtol 1e-6, libroadrunner
    at rtol 1e-6; the largest relative difference of the tumour diameter between the two is reported.

Output: a table on stdout and ``results/benchmarks/trial.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import moa  # noqa: E402
from moa import trial  # noqa: E402
from moa.errors import BoundsWarning, DoseWarning  # noqa: E402
from moa.scenarios import scenario  # noqa: E402
from moa.symbolic.named_models import full_model  # noqa: E402
from moa.report.results import write_json  # noqa: E402
from throughput import load_average, machine_info  # noqa: E402

ARMS_IN_TARGET, PATIENTS_IN_TARGET = 6, 1000
#: The six arms of the target: IMpassion130's two, opatisumimab alone and with nab-paclitaxel, and the two
#: comparisons the brief asks about (PD-L1 blockade alone; the 1:1 format).
TARGET_ARMS = ("nabp", "nabp_apdl1", "bsab_2x2", "nabp_bsab_2x2", "apdl1", "bsab_1x1")


def trial_throughput(arm: str, n_patients: int, days: float, seed: int) -> dict:
    """One arm of the trial in this process: wall time and lesion trajectories per second."""
    population = trial.sample_population(n_patients, seed)
    scans = trial.scan_days(
        days, population.spec.scan_first_year_days, population.spec.scan_later_days, population.spec.first_year_days
    )
    trial.simulate_trial(arm, trial.sample_population(2, seed + 1), scans=scans[:3])  # warm-up: kernels loaded
    started = time.perf_counter()
    ds = trial.simulate_trial(arm, population, scans=scans, follow_up_days=days)
    wall = time.perf_counter() - started
    lesions = int(population.n_lesions.sum())
    return (
        {
            "arm": arm,
            "patients": n_patients,
            "lesion_trajectories": lesions,
            "days": days,
            "scans": int(scans.size),
            "wall_s": round(wall, 2),
            "lesions_per_s": round(lesions / wall, 2),
            "failed_patients": int(np.sum(ds["failed"].values)) if "failed" in ds else None,
            "rtol": trial.TRIAL_RTOL,
            "atol": trial.TRIAL_ATOL,
        },
        population,
        scans,
    )


def extrapolate(row: dict, cores: int) -> dict:
    """Wall time of the target on ``cores`` cores if all six arms cost what this one did (ideal scaling)."""
    per_patient = row["wall_s"] / row["patients"]
    seconds = ARMS_IN_TARGET * PATIENTS_IN_TARGET * per_patient / cores
    return {"cores": cores, "six_arms_like_this_one_wall_s_estimate": round(seconds, 1)}


def target_run(n_patients: int, days: float, cores: int, seed: int) -> dict:
    """The six arms on ``n_patients`` patients with ``cores`` processes, measured (spawn start-up included)."""
    population = trial.sample_population(n_patients, seed)
    started = time.perf_counter()
    trials = trial.simulate_trials(TARGET_ARMS, population, workers=cores, follow_up_days=days)  # its scan grid
    wall = time.perf_counter() - started
    lesions = int(population.n_lesions.sum())
    return {
        "arms": list(TARGET_ARMS),
        "patients": n_patients,
        "lesion_trajectories_per_arm": lesions,
        "days": days,
        "cores": cores,
        "wall_s": round(wall, 2),
        "under_60_s": bool(wall < 60.0) if n_patients >= PATIENTS_IN_TARGET else None,
        "simulated_lesion_days": {a: trials[a].attrs["simulated_lesion_days"] for a in TARGET_ARMS},
        "progressed_patients": {a: int(trials[a]["progressed"].sum()) for a in TARGET_ARMS},
        "failed_patients": {a: int(trials[a]["failed"].sum()) for a in TARGET_ARMS},
    }


def libroadrunner_ratio(arm: str, population, scans: np.ndarray, n_sets: int) -> dict:
    """moa vs libroadrunner per core on the first ``n_sets`` lesion parameter sets."""
    from moa.interop.roadrunner import SBMLSimulator
    from moa.interop.sbml import export

    values, _, _ = trial.trajectory_values(population)
    values = {k: np.asarray(v[:n_sets], dtype=float) for k, v in values.items()}
    model = full_model()
    params, regimen = scenario(arm, "hot_tnbc", float(scans[-1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoundsWarning)
        warnings.simplefilter("ignore", DoseWarning)
        batch = params.with_values(values)
        rows = {}
        for label, rtol, atol in (("moa_trial_tol", trial.TRIAL_RTOL, trial.TRIAL_ATOL), ("moa_rtol_1e-6", 1e-6, 1e-9)):
            started = time.perf_counter()
            ds = moa.simulate(
                model, batch, regimen, times=scans, solver="rodas", rtol=rtol, atol=atol, on_failure="record"
            )
            secs = time.perf_counter() - started
            rows[label] = {"seconds": round(secs, 2), "sims_per_s": round(n_sets / secs, 2), "diameter": ds}
        sim = SBMLSimulator(export(model, params, regimen), rtol=1e-6, atol=1e-9)
        sim.run(scans[:3], {k: float(v[0]) for k, v in values.items()})  # warm-up
        diam = np.full((n_sets, scans.size), np.nan)
        started = time.perf_counter()
        for k in range(n_sets):
            try:
                res = sim.run(scans, {name: float(v[k]) for name, v in values.items()}, selections=["tumour_diameter"])
                diam[k] = res["tumour_diameter"]
            except RuntimeError:
                pass
        rr_secs = time.perf_counter() - started
    out = {"sets": n_sets, "libroadrunner_rtol": 1e-6, "libroadrunner_sims_per_s": round(n_sets / rr_secs, 2)}
    for label, row in rows.items():
        d = row.pop("diameter")["tumour_diameter"].transpose("sample", "time").values  # (set, scan)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.nanmax(np.abs(d - diam) / np.maximum(np.abs(diam), 1e-12))
        out[label] = {**row, "ratio_to_libroadrunner": round(row["sims_per_s"] / out["libroadrunner_sims_per_s"], 2)}
        out[label]["max_rel_diameter_difference"] = float(rel)
    out["libroadrunner_failures"] = int(np.sum(np.isnan(diam[:, -1])))
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 patients, 20 sets for the libroadrunner ratio")
    ap.add_argument("--arm", default="nabp_bsab_2x2", help="arm of models/arms.toml (default nabp_bsab_2x2)")
    ap.add_argument("--patients", type=int, default=None, help="virtual patients (default 200; 30 with --quick)")
    ap.add_argument("--days", type=float, default=730.0, help="trial length in days (default 730: two years)")
    ap.add_argument("--n-rr", type=int, default=None, help="lesion sets for the ratio (default 50; 20 with --quick)")
    ap.add_argument("--cores", type=int, default=2, help="worker processes of the target run (default 2)")
    ap.add_argument(
        "--target-patients", type=int, default=None, help="patients per arm of the target run (default 1000; 100 quick)"
    )
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--out", default="results/benchmarks/trial.json")
    args = ap.parse_args(argv)
    n_patients = args.patients or (30 if args.quick else 200)
    n_rr = args.n_rr or (20 if args.quick else 50)
    load_start = load_average()
    row, population, scans = trial_throughput(args.arm, n_patients, args.days, args.seed)
    print(json.dumps(row, indent=1), flush=True)
    estimate = extrapolate(row, args.cores)
    print(json.dumps(estimate, indent=1), flush=True)
    target = target_run(
        args.target_patients or (100 if args.quick else PATIENTS_IN_TARGET), args.days, args.cores, args.seed
    )
    print(json.dumps(target, indent=1), flush=True)
    ratio = libroadrunner_ratio(args.arm, population, scans, min(n_rr, int(population.n_lesions.sum())))
    print(json.dumps(ratio, indent=1), flush=True)
    record = {
        "benchmark": "benchmarks/trial.py",
        "command": "python benchmarks/trial.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_average_start_end": [load_start, load_average()],
        "machine": machine_info(),
        "trial": row,
        "target_estimate": estimate,
        "target": target,
        "libroadrunner": ratio,
    }
    out = write_json(ROOT / args.out, record)  # an absolute --out replaces ROOT; written atomically
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
