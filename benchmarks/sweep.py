"""Sweeps at scale (issue 16 targets): Saltelli throughput, Dask scaling, memory of a large sweep.

Usage::

    python benchmarks/sweep.py                  # the targets: N = 1,024 x 40 parameters, 1 year; 10,000-point memory
    python benchmarks/sweep.py --quick          # small versions of all three (a few minutes)
    python benchmarks/sweep.py --only saltelli --n-base 256 --params 20 --workers 2

What is measured, each in one run (wall times on this machine, with its load average reported):

(a) **Saltelli throughput**: a ``moa.sweep`` spec with ``sampling = "saltelli"``, ``--n-base`` base
    samples over the first ``--params`` of the patient-level parameters of ``benchmarks/throughput.py``
    (``VARIED``; bounds and log scale from ``models/``), the ``nabp_bsab_2x2`` arm in ``hot_tnbc`` for
    ``--days``, summaries best change, time to progression and final diameter, on ``--workers`` local
    processes: points per second and the wall time. Target: N = 1,024 and 40 parameters (43,008 one-year
    simulations) in under 10 minutes on 2 cores.
(b) **Dask scaling**: the same kind of sweep (``--dask-points`` points, Latin hypercube) on a
    ``LocalCluster`` with 1 and then 2 worker processes (one thread each), after a warm-up task on every
    worker (model build and kernel load are not counted); scaling efficiency = T1 / (2 T2) (target >= 80%).
    Per-chunk overhead: (T1 - T_local) / chunks, T_local the same sweep run in this process.
(c) **Memory**: a ``--memory-points`` one-year sweep keeping the daily tumour diameter and three
    summaries, run alone in a fresh process (one worker); its peak resident set size
    (``resource.getrusage``, ``ru_maxrss``). Target: under 2 GB for 10,000 points.

Output: a table on stdout and ``results/benchmarks/sweep.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from moa.codegen import compile_model  # noqa: E402
from moa.sweep import SweepSpec, run_sweep  # noqa: E402
from moa.sweep.spec import default_distribution  # noqa: E402
from moa.report.results import write_json  # noqa: E402
from throughput import load_average, machine_info, varied_names  # noqa: E402

ARM, SETTING = "nabp_bsab_2x2", "hot_tnbc"
SUMMARIES = ("best_change_pct", "time_to_progression_days", "final_diameter_mm")


def spec(
    name: str,
    n_params: int,
    sampling: str,
    n: int,
    days: float,
    chunk_size: int,
    observables=(),
    seed: int = 1,
    rtol: float = 1e-6,
):
    names = varied_names()
    if not 1 <= n_params <= len(names):
        raise SystemExit(
            f"--params={n_params}: must be 1..{len(names)} (the patient-level parameters of throughput.py)"
        )
    return SweepSpec(
        name=name,
        arms=(ARM,),
        settings=(SETTING,),
        parameters=tuple(default_distribution(p) for p in names[:n_params]),
        sampling=sampling,
        n=n,
        seed=seed,
        duration_days=days,
        observables=tuple(observables),
        days="all",
        summaries=SUMMARIES,
        chunk_size=chunk_size,
        solver="rodas",
        rtol=rtol,
    ).validate()


def saltelli(args) -> dict:
    s = spec("bench_saltelli", args.params, "saltelli", args.n_base, args.days, args.chunk_size, rtol=args.rtol)
    run_sweep(dataclasses.replace(s, n=2, sampling="lhs"))  # warm-up: model build and kernel load in this process
    started = time.perf_counter()
    ds = run_sweep(s, workers=args.workers)
    wall = time.perf_counter() - started
    points = int(ds.sizes["point"])
    return {
        **accuracy(s, ds, args.accuracy_points, args.reference_rtol),
        **top_sobol(ds, args.n_base, args.params),
        "n_base": args.n_base,
        "parameters": args.params,
        "points": points,
        "days": args.days,
        "workers": args.workers,
        "rtol": args.rtol,
        "chunk_size": args.chunk_size,
        "wall_s": round(wall, 2),
        "points_per_s": round(points / wall, 2),
        "failed_points": int(ds.attrs["failed_points"]),
        "failures": failures(ds),
        "under_10_minutes": wall < 600,
    }


def accuracy(s, ds, k: int, reference_rtol: float) -> dict:
    """The first ``k`` points again at ``reference_rtol`` (one batch, not timed): the largest absolute
    difference of each summary between the timed run and that reference."""
    from moa.sweep.execute import simulate_chunk
    from moa.sweep.sampling import parameter_values, unit_design

    if k <= 0:
        return {}
    ref_spec = dataclasses.replace(s, rtol=reference_rtol)
    values = parameter_values(ref_spec, unit_design(ref_spec)[:k])
    ref = simulate_chunk(ref_spec, ARM, SETTING, values)
    out = {"accuracy_points": k, "reference_rtol": reference_rtol}
    for name in SUMMARIES:
        got = ds[name].values.reshape(-1)[:k]
        both = np.isfinite(got) & np.isfinite(ref[name])
        out[f"max_abs_error_{name}"] = float(np.max(np.abs(got[both] - ref[name][both]), initial=0.0))
        out[f"finite_mismatch_{name}"] = int(np.sum(np.isfinite(got) != np.isfinite(ref[name])))
    return out


def failures(ds, at_most: int = 5) -> list[str]:
    """Index and message of the first ``at_most`` failed points."""
    status = ds["status"].values.reshape(-1)
    message = ds["message"].values.reshape(-1)
    return [f"point {i}: {message[i]}" for i in np.nonzero(status != 0)[0][:at_most]]


def top_sobol(ds, n_base: int, n_params: int, top: int = 5) -> dict:
    """Total-order Sobol indices of best change from the timed run: the ``top`` largest, with 95% CIs."""
    from moa.sensitivity import sobol_indices

    names = varied_names()[:n_params]
    y = ds["best_change_pct"].values.reshape(-1)
    idx = sobol_indices(y, n_base, n_params, names=names, n_bootstrap=200)
    order = np.argsort(-idx["ST"].values)[:top]
    return {
        "sobol_ST_best_change_top": {
            names[i]: [round(float(idx[v].values[i]), 4) for v in ("ST", "ST_low", "ST_high")] for i in order
        }
    }


def dask_scaling(args) -> dict:
    from dask.distributed import Client, LocalCluster

    s = spec("bench_dask", args.params, "lhs", args.dask_points, args.days, args.dask_chunk)
    warm = dataclasses.replace(s, n=2)
    run_sweep(warm)
    started = time.perf_counter()
    local = run_sweep(s)
    t_local = time.perf_counter() - started
    times = {}
    for n_workers in (1, 2):
        with (
            LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            client.run(_warm_worker)  # build the model and load the kernels on every worker, untimed
            started = time.perf_counter()
            ds = run_sweep(s, executor="dask", client=client)
            times[n_workers] = time.perf_counter() - started
            identical = bool(
                np.array_equal(ds["best_change_pct"].values, local["best_change_pct"].values, equal_nan=True)
            )
    chunks = int(local.attrs["chunks"])
    return {
        "points": args.dask_points,
        "chunk_size": args.dask_chunk,
        "chunks": chunks,
        "days": args.days,
        "t_local_s": round(t_local, 2),
        "t_1_worker_s": round(times[1], 2),
        "t_2_workers_s": round(times[2], 2),
        "scaling_efficiency": round(times[1] / (2 * times[2]), 3),
        "overhead_per_chunk_s": round((times[1] - t_local) / chunks, 4),
        "dask_equals_local": identical,
    }


def _warm_worker() -> bool:
    from moa.symbolic.named_models import full_model

    compile_model(full_model())
    return True


def memory(args) -> dict:
    """The memory run in a fresh process (this script with --memory-child), so nothing else counts."""
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        "--memory-points",
        str(args.memory_points),
        "--params",
        str(args.params),
        "--memory-days",
        str(args.memory_days),
        "--chunk-size",
        str(args.chunk_size),
    ]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    child = json.loads(out.stdout.strip().splitlines()[-1])
    child["wall_s"] = round(time.perf_counter() - started, 2)
    child["under_2_GB"] = child["peak_rss_MB"] < 2048
    return child


def memory_child(args) -> None:
    s = spec(
        "bench_memory",
        args.params,
        "lhs",
        args.memory_points,
        args.memory_days,
        args.chunk_size,
        observables=("tumour_diameter",),
    )
    ds = run_sweep(s)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    print(
        json.dumps(
            {
                "points": int(ds.sizes["point"]),
                "days": args.memory_days,
                "kept": "daily tumour_diameter + " + ", ".join(SUMMARIES),
                "result_MB": round(ds.nbytes / 2**20, 1),
                "peak_rss_MB": round(peak_kb / 1024, 1),
                "failed_points": int(ds.attrs["failed_points"]),
            }
        )
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small versions: N=8 x 6 parameters, 60 days; 64-point Dask; 500-point memory",
    )
    ap.add_argument("--only", choices=("saltelli", "dask", "memory"), default=None, help="run one part only")
    ap.add_argument("--n-base", type=int, default=None, help="Saltelli base samples N (a power of 2; default 1024)")
    ap.add_argument("--params", type=int, default=None, help="varied parameters (default 40)")
    ap.add_argument("--days", type=float, default=None, help="days per simulation (default 365)")
    ap.add_argument("--workers", type=int, default=None, help="local processes for the Saltelli run (default: CPUs)")
    ap.add_argument("--chunk-size", type=int, default=None, help="points per chunk (default 512; 32 with --quick)")
    ap.add_argument("--dask-points", type=int, default=None, help="points of the Dask scaling sweep (default 2048)")
    ap.add_argument("--dask-chunk", type=int, default=None, help="points per chunk of the Dask sweep (default 128)")
    ap.add_argument("--memory-points", type=int, default=None, help="points of the memory run (default 10000)")
    ap.add_argument("--memory-days", type=float, default=None, help="days of the memory run (default 365)")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--rtol",
        type=float,
        default=1e-6,
        help="solver rtol of the Saltelli run (default 1e-6, moa.simulate's; throughput.py measures the accuracy "
        "of each: tumour volume error 2.8e-6 at 1e-5, 1.9e-7 at 1e-6)",
    )
    ap.add_argument(
        "--accuracy-points",
        type=int,
        default=256,
        help="points of the Saltelli run simulated again at --reference-rtol for the accuracy beside the speed "
        "(0: none)",
    )
    ap.add_argument("--reference-rtol", type=float, default=1e-7, help="rtol of that reference (default 1e-7)")
    ap.add_argument("--out", default="results/benchmarks/sweep.json")
    args = ap.parse_args(argv)
    q = args.quick
    defaults = {
        "n_base": 8 if q else 1024,
        "params": 6 if q else 40,
        "days": 60.0 if q else 365.0,
        "workers": len(os.sched_getaffinity(0)),
        "chunk_size": 32 if q else 512,
        "dask_points": 64 if q else 2048,
        "dask_chunk": 16 if q else 128,
        "memory_points": 500 if q else 10_000,
        "memory_days": 365.0,
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.memory_child:
        memory_child(args)
        return {}
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_start = load_average()
    parts = {"saltelli": saltelli, "dask": dask_scaling, "memory": memory}
    results = {}
    for name, fn in parts.items():
        if args.only in (None, name):
            print(f"running {name} ...", flush=True)
            results[name] = fn(args)
            print(json.dumps(results[name], indent=1), flush=True)
    record = {
        "benchmark": "benchmarks/sweep.py",
        "command": "python benchmarks/sweep.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started_utc": started,
        "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_start_end": [load_start, load_average()],
        "machine": machine_info(),
        "problem": {
            "arm": ARM,
            "setting": SETTING,
            "summaries": SUMMARIES,
            "solver": "rodas (numba)",
            "parameters": varied_names()[: args.params],
        },
        **results,
    }
    out = write_json(ROOT / args.out, record)  # an absolute --out replaces ROOT; written atomically
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
