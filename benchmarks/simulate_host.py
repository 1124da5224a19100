"""``moa.simulate``'s own work per parameter set, around the solver: the ceiling it puts on any backend's rate.

Usage::

    python benchmarks/simulate_host.py --n 1000 10000 --out results/benchmarks/simulate_host   # about 1 minute
    python benchmarks/simulate_host.py --n 1000 --trial 10000      # and the virtual trial's own work

The throughput problem (full model, ``hot_tnbc``, nab-paclitaxel + 2:2, one year, as
``benchmarks/throughput.py``) through ``moa.simulate`` with a stand-in solver that returns at once (it
holds the state constant: no biology, only the host's work is timed): dose segments, dosing, outputs,
the negative-state check, observables, the dataset and its provenance. Two output grids: daily (as the
throughput benchmark) and the virtual trial's scan days (``moa.trial.scan_days`` and the last day).

Reported per grid and N: seconds, milliseconds per set, and the rate no backend can pass through
``moa.simulate`` on this core (1000 / ms per set), the number to hold against a GPU's solver rate
(``benchmarks/gpu.py``).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import throughput as tp  # noqa: E402
import numpy as np  # noqa: E402

import moa  # noqa: E402
from moa import trial  # noqa: E402
from moa.errors import DoseWarning  # noqa: E402
from moa.scenarios import scenario  # noqa: E402
from moa.solvers.base import SegmentDriver, SegmentResult  # noqa: E402
from moa.solvers.rodas4.numba_kernels import checked_batch  # noqa: E402
from moa.symbolic.named_models import full_model  # noqa: E402


class HeldState(SegmentDriver):
    """A solver that returns at once: every output is the segment's starting state. It first does what
    the compiled backends (numba, CUDA) do with their inputs on the host before any kernel runs
    (``numba_kernels.checked_batch``: checks, and C-ordered float copies where the input is not one)."""

    name = "stand-in (state held constant; times moa.simulate's own work only)"

    def integrate_segment(self, compiled, t0, t1, Y0, P, t_out, rtol, atol) -> SegmentResult:
        _, _, Y0, P, *_ = checked_batch(compiled.n_species, t0, t1, Y0, P, t_out, atol)
        n, N = Y0.shape
        y = np.empty((len(t_out), n, N))
        y[:] = Y0
        zeros = np.zeros(N, int)
        return SegmentResult(y, Y0.copy(), zeros, [""] * N, zeros, n_rejected=zeros)


def trial_host_work(n_patients: int, seed: int) -> dict:
    """``moa.trial``'s own work per patient: drawing the population, and ``simulate_trial`` (RECIST at the
    scans, PFS, off-study stops, the dataset) with the stand-in solver and the parameter-derived start in
    place of the quasi-steady one (whose cost is a solver's: ``benchmarks/gpu_start.py``)."""
    import moa.trial as trial_module

    def with_stand_in(*args, **kwargs):
        return moa.simulate(*args, **{**kwargs, "solver": HeldState(), "start": "parameters"})

    t = time.perf_counter()
    population = trial.sample_population(n_patients, seed)
    sample_s = time.perf_counter() - t
    original = trial_module.simulate
    trial_module.simulate = with_stand_in
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial.simulate_trial(tp.ARM, trial.sample_population(8, seed + 1))  # warm-up
            t = time.perf_counter()
            trial.simulate_trial(tp.ARM, population)
            trial_s = time.perf_counter() - t
    finally:
        trial_module.simulate = original
    return {
        "patients": n_patients,
        "lesions": int(population.n_lesions.sum()),
        "sample_ms_per_patient": 1e3 * sample_s / n_patients,
        "trial_ms_per_patient": 1e3 * trial_s / n_patients,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1_000, 10_000], help="parameter sets per call")
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--seed", type=int, default=20241)
    ap.add_argument(
        "--trial", type=int, default=0, help="also time moa.trial.simulate_trial's own work on this many patients"
    )
    ap.add_argument("--out", default=None, help="folder for simulate_host.json")
    args = ap.parse_args(argv)
    if min(args.n) < 1 or args.days <= 0 or args.trial < 0:
        raise SystemExit(f"--n {args.n} must be >= 1, --days {args.days} > 0 and --trial {args.trial} >= 0")
    model = full_model()
    params, regimen = scenario(tp.ARM, tp.SETTING, duration_days=args.days)
    values = tp.draw_parameters(params, max(args.n), args.seed)
    grids = {
        "daily": moa.output_times(args.days),
        "scan days": np.union1d(trial.scan_days(args.days), [args.days]),
    }
    solver = HeldState()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseWarning)
        moa.simulate(model, params, regimen, times=grids["daily"][:3], solver=solver)  # warm-up: model compiled
        rows = []
        for grid, times in grids.items():
            for n in args.n:
                batch = params.with_values(tp.subset(values, slice(0, n)))
                t = time.perf_counter()
                moa.simulate(model, batch, regimen, times=times, solver=solver, on_failure="record")
                seconds = time.perf_counter() - t
                rows.append(
                    {
                        "outputs": grid,
                        "output_times": int(times.size),
                        "n": n,
                        "seconds": seconds,
                        "ms_per_set": 1e3 * seconds / n,
                        "ceiling_sims_per_s": n / seconds,
                    }
                )
    print("| outputs | N | seconds | ms per set | ceiling (sims/s through moa.simulate, one core) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['outputs']} ({r['output_times']}) | {r['n']:,} | {r['seconds']:.2f} | {r['ms_per_set']:.3f} | "
            f"{r['ceiling_sims_per_s']:,.0f} |"
        )
    result = {"benchmark": "benchmarks/simulate_host.py", "machine": tp.machine_info(), "rows": rows}
    if args.trial:
        result["trial"] = trial_host_work(args.trial, args.seed)
        t = result["trial"]
        print(
            f"virtual trial, {t['patients']:,} patients ({t['lesions']:,} lesions), nabp_bsab_2x2: sample_population "
            f"{t['sample_ms_per_patient']:.3f} ms/patient; simulate_trial around the solver "
            f"{t['trial_ms_per_patient']:.3f} ms/patient"
        )
    if args.out:
        tp.write_json(args.out, "simulate_host.json", result)
    return result


if __name__ == "__main__":
    main()
