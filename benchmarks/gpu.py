"""Throughput of the CUDA Rodas4 (``RodasSolver(backend="cuda")``) on the throughput benchmark's problem.

Usage::

    python benchmarks/gpu.py --out results/benchmarks/gpu    # N = 1e3, 1e4, 1e5 daily; 1e5, 1e6 at scan days
    python benchmarks/gpu.py --quick --out $OUT               # N = 1e3, 1e4 daily; 1e5 at scan days (< 5 min, H200)
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu.py --n 2 --n-scans 3 --days 10 --out /tmp/g   # dry run, no GPU

Problem (as ``benchmarks/throughput.py``): the full model in ``hot_tnbc`` under ``nabp_bsab_2x2``
(nab-paclitaxel + the 2:2 bispecific), one year, parameter sets drawn by Latin hypercube within the
bounds in ``models/`` (``throughput.draw_parameters``; one draw of the largest N, each N takes the
first N), rtol 1e-6 and atol 1e-9 (``--rtol``), through ``moa.simulate``.

Outputs: ``--n`` batches have daily outputs (as ``throughput.py``), in calls of ``--per-call`` sets
(host memory: 54 states and 47 observables at 366 times are about 0.3 MB per set). ``--n-scans``
batches have outputs at the virtual trial's scan days only (``moa.trial.scan_days``: every 56 days in
the first year; and the last day), as a trial does, in calls of ``--per-call-scans`` sets. Why: with
daily outputs ``moa.simulate``'s own host work (writing those 0.3 MB per set into fresh memory,
observables, checks) is 0.3-1 ms per set on one core (page faults: ``benchmarks/simulate_host.py``),
which alone caps the end-to-end rate near 1,000-3,000 sims/s whatever the GPU does; and the larger calls
give each launch several times the threads the card runs at once, so the work refill has trajectories
to hand out.

Reported per N: wall seconds and sims/s end to end (``moa.simulate``: dose segments, host-side outputs
and observables included), of the GPU solver alone (kernel launches with their transfers), and the
host's milliseconds per set in between; the first launch (numba compiles the kernel there) is timed
separately as ``compile_seconds`` and excluded. Accuracy: max relative tumour-volume error over the
first ``--n-ref`` sets against the numba Rodas4 at rtol 1e-10 / atol 1e-14 (not timed), with the
throughput benchmark's floor (volume of 1e6 cells), at daily outputs and at the scan days. Ratios: to
the one-core numba backend measured in this process on the first ``--n-cpu`` sets (same tolerances),
and to libroadrunner if importable (same sets, same tolerances), else to the libroadrunner rate in
benchmarks/README.md, labelled so. Registers per thread, local memory, occupancy, the threads a launch
holds (work refill) and the launches per row are reported too.

Writes ``gpu.json`` and ``gpu.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import pathlib
import platform
import re
import sys
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import throughput as tp  # noqa: E402  (pins BLAS to one thread before numpy loads: the CPU rows are one core)
import numpy as np  # noqa: E402

from moa.codegen import compile_model  # noqa: E402
import moa  # noqa: E402
from moa.symbolic.named_models import full_model  # noqa: E402
from moa.errors import DoseWarning  # noqa: E402
from moa.scenarios import scenario  # noqa: E402
from moa import trial  # noqa: E402

README = ROOT / "benchmarks" / "README.md"
REF_RTOL, REF_ATOL = 1e-10, 1e-14


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(model, params, regimen, values, times, solver, rtol, atol):
    """moa.simulate on one batch; (seconds, tumour volume (N, T), status (N,))."""
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseWarning)
        ds = moa.simulate(
            model,
            params.with_values(values),
            regimen,
            times=times,
            solver=solver,
            rtol=rtol,
            atol=atol,
            on_failure="record",
        )
    seconds = time.perf_counter() - t
    tumour = np.asarray(ds["tumour_volume"].values, float).reshape(-1, len(times))  # (sample, time)
    return seconds, tumour, np.asarray(ds["status"].values).reshape(-1)


def tumour_error(x: np.ndarray, ref: np.ndarray, density: np.ndarray) -> float:
    """max over sets and time of |x - ref| / max(|ref|, volume of 1e6 cells) (inf where x is not finite),
    over the sets whose reference run finished (the number that did not is logged beside it)."""
    floor = (tp.TUMOUR_FLOOR_CELLS / density)[:, None]
    compared = np.isfinite(ref).all(axis=1)  # sets the reference itself failed are not compared
    with np.errstate(invalid="ignore"):
        e = np.abs(x - ref) / np.maximum(np.abs(ref), floor)
    e = e[compared]
    return float(np.max(np.where(np.isfinite(e), e, np.inf))) if e.size else float("nan")


def readme_roadrunner() -> float | None:
    """libroadrunner's one-core sims/s at rtol 1e-6 from the first table of benchmarks/README.md."""
    for line in README.read_text().splitlines():
        m = re.match(r"\|\s*libroadrunner CVODE\s*\|\s*1e-6\s*\|\s*([0-9.]+)", line)
        if m:
            return float(m.group(1))
    return None


def roadrunner_rate(model, params, regimen, values, times, n, rtol, atol):
    """libroadrunner sims/s on the first n sets, or None when it cannot be imported."""
    try:
        from moa.interop.roadrunner import SBMLSimulator
        from moa.interop.sbml import export
    except ImportError as exc:
        log(f"libroadrunner not importable ({exc})")
        return None
    try:
        sim = SBMLSimulator(export(model, params, regimen), rtol=rtol, atol=atol)
        sim.run(times[:5], {k: float(v[0]) for k, v in values.items()})
        secs, _, failures = tp.run_roadrunner(sim, tp.subset(values, slice(0, n)), times, n)
    except ImportError as exc:
        log(f"libroadrunner not importable ({exc})")
        return None
    return {"sims_per_s": n / secs, "n": n, "failed": failures, "source": "measured in this process"}


@contextlib.contextmanager
def threads_per_launch(threads: int | None):
    """``MOA_CUDA_THREADS`` set to ``threads`` inside (left as it is for None)."""
    if threads is None:
        yield
        return
    before = os.environ.get("MOA_CUDA_THREADS")
    os.environ["MOA_CUDA_THREADS"] = str(threads)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MOA_CUDA_THREADS")
        else:
            os.environ["MOA_CUDA_THREADS"] = before


def device_info() -> dict:
    from moa.solvers.rodas4 import cuda as _moa_cuda  # noqa: F401 -- its numpy/numba-cuda compatibility shim first
    from numba import cuda

    from moa.solvers.rodas4 import cuda as moa_cuda

    if moa_cuda.simulator():
        return {"name": "numba CUDA simulator (no GPU)"}
    dev = cuda.get_current_device()
    return {
        "name": dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name),
        "compute_capability": list(dev.compute_capability),
        "multiprocessors": dev.MULTIPROCESSOR_COUNT,
    }


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [
        f"# benchmarks/gpu.py ({result['finished_utc']})",
        "",
        f"Device: {result['device']}. Problem: {result['problem']['model']} ({result['problem']['states']} states), "
        f"{result['problem']['arm']} in {result['problem']['setting']}, {result['problem']['days']:g} days, "
        f"rtol {result['rtol']:g}, atol {result['atol']:g}. Kernel compile: {result['compile_seconds']:.1f} s "
        "(first launch, excluded). " + (f"Kernel: {result['kernel']}." if result["kernel"] else ""),
        "",
        "| N | outputs | threads per launch | wall s (simulate) | sims/s (simulate) | GPU solver s | "
        "sims/s (GPU solver) | host ms/set | launches | failed |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['n']:,} | {r['outputs']} ({r['output_times']}) | {r['threads']} | {r['seconds']:.1f} | "
            f"{r['sims_per_s']:,.1f} | "
            f"{r['solver_seconds']:.1f} | {r['solver_sims_per_s'] or 0:,.1f} | {r['host_ms_per_set']:.3f} | "
            f"{r['launches']} | {r['failed']} |"
        )
    lines += [
        "",
        f"* Max relative tumour error vs numba Rodas4 rtol {REF_RTOL:g} on {result['reference']['sets']} sets: "
        f"{s['max_tumour_error']:.2e} (GPU) / {result['cpu']['max_tumour_error']:.2e} (one-core numba, same "
        f"tolerances); at the scan days {s['max_tumour_error_scan_days']:.2e}; max relative difference GPU vs "
        f"one-core numba: {s['gpu_vs_cpu_tumour_rel_diff']:.2e}.",
        "* host ms/set: wall seconds of `moa.simulate` outside the GPU solver, per set (dosing, outputs, "
        "observables, checks, the dataset).",
        f"* One-core numba backend: {result['cpu']['sims_per_s']:.1f} sims/s on {result['cpu']['n']} sets; "
        f"ratio at the largest N: {s['ratio_to_one_core']:,.3g}x (simulate), "
        f"{s['solver_ratio_to_one_core']:,.3g}x (GPU solver).",
        f"* libroadrunner ({result['libroadrunner']['source'] if result['libroadrunner'] else 'n/a'}): "
        + (
            f"{result['libroadrunner']['sims_per_s']:.1f} sims/s; ratio {s['ratio_to_libroadrunner']:,.3g}x (simulate)."
            if result["libroadrunner"]
            else "not available."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="N = 1e3, 1e4 daily, 1e5 at scan days (< 5 min on an H200)")
    ap.add_argument("--n", type=int, nargs="*", default=None, help="batch sizes, daily outputs (default 1e3 1e4 1e5)")
    ap.add_argument(
        "--n-scans",
        type=int,
        nargs="*",
        default=None,
        help="batch sizes, outputs at the trial's scan days (default 1e5 1e6)",
    )
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument(
        "--per-call", type=int, default=32_768, help="sets per moa.simulate call, daily outputs (host memory)"
    )
    ap.add_argument("--per-call-scans", type=int, default=262_144, help="sets per moa.simulate call at scan days")
    ap.add_argument(
        "--threads",
        type=int,
        nargs="*",
        default=[],
        help="rerun the largest --n-scans batch with these threads per launch (MOA_CUDA_THREADS; default none)",
    )
    ap.add_argument("--n-ref", type=int, default=None, help="sets with a reference (default 16; 8 with --quick)")
    ap.add_argument("--n-cpu", type=int, default=None, help="sets timed on one core (default 32; 16 with --quick)")
    ap.add_argument("--n-rr", type=int, default=20, help="sets run by libroadrunner when importable (0: none)")
    ap.add_argument("--seed", type=int, default=20241)
    ap.add_argument(
        "--drugs",
        nargs="+",
        default=None,
        help="only these antibodies in the model (full_model(drugs=...); the regimen gives bsab only): "
        "--drugs bsab measures the 39-state exact reduction against itself",
    )
    ap.add_argument("--out", required=True, help="output folder (gpu.json, gpu.md)")
    args = ap.parse_args(argv)
    drugs = tuple(args.drugs) if args.drugs else None
    sizes = args.n if args.n is not None else ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    scan_sizes = args.n_scans if args.n_scans is not None else ([100_000] if args.quick else [100_000, 1_000_000])
    if not sizes and not scan_sizes:
        raise SystemExit("--n and --n-scans are both empty: nothing to measure")
    if any(n < 1 for n in sizes + scan_sizes) or min(args.per_call, args.per_call_scans) < 1:
        raise SystemExit(f"--n {sizes}, --n-scans {scan_sizes}, --per-call and --per-call-scans: must be >= 1")
    n_max = max(sizes + scan_sizes)
    n_ref = min(n_max, args.n_ref if args.n_ref is not None else (8 if args.quick else 16))
    n_cpu = min(n_max, args.n_cpu if args.n_cpu is not None else (16 if args.quick else 32))
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    from moa.solvers.rodas4 import cuda
    from moa.solvers import RodasSolver

    cuda.require()
    log(f"device: {device_info()}")
    model = full_model(drugs)
    params, regimen = scenario(tp.ARM, tp.SETTING, duration_days=args.days)
    times = moa.output_times(args.days)
    # the virtual trial's scan days (every 56 days in the first year) and the last day, so the run is a year long
    scans = np.union1d(trial.scan_days(args.days), [args.days])
    scan_rows = np.searchsorted(times, scans)
    assert np.array_equal(times[scan_rows], scans), "scan days must be output days"
    values = tp.draw_parameters(params, n_max, args.seed)
    dens_all = np.broadcast_to(np.asarray(params.with_values(values)["tumour_cell_density"], float), (n_max,))
    log(
        f"{model.name}: {compile_model(model).n_species} states; {len(regimen.doses)} doses in {args.days:g} days; "
        f"N = {sizes} daily, {scan_sizes} at scan days; threads per launch {args.threads or 'resident'}"
    )

    cpu_solver = RodasSolver(backend="numba")
    run(model, params, regimen, tp.subset(values, slice(0, 2)), times[:3], cpu_solver, args.rtol, tp.ATOL)  # compile
    t = time.perf_counter()
    _, ref, ref_status = run(
        model, params, regimen, tp.subset(values, slice(0, n_ref)), times, cpu_solver, REF_RTOL, REF_ATOL
    )
    log(
        f"reference: numba Rodas4 rtol {REF_RTOL:g} atol {REF_ATOL:g} on {n_ref} sets in "
        f"{time.perf_counter() - t:.1f} s (failed {int(np.sum(ref_status != 0))})"
    )
    cpu_secs, cpu_tumour, cpu_status = run(
        model, params, regimen, tp.subset(values, slice(0, n_cpu)), times, cpu_solver, args.rtol, tp.ATOL
    )
    cpu = {
        "n": n_cpu,
        "seconds": cpu_secs,
        "sims_per_s": n_cpu / cpu_secs,
        "failed": int(np.sum(cpu_status != 0)),
        "max_tumour_error": tumour_error(cpu_tumour[:n_ref], ref, dens_all[:n_ref]),
    }
    log(f"one-core numba: {cpu['sims_per_s']:.1f} sims/s on {n_cpu} sets; tumour error {cpu['max_tumour_error']:.2e}")

    gpu_solver = RodasSolver(backend="cuda")
    t = time.perf_counter()
    run(model, params, regimen, tp.subset(values, slice(0, 2)), times[:3], gpu_solver, args.rtol, tp.ATOL)
    kernels = cuda.kernels_for_model(compile_model(model))
    compile_seconds = time.perf_counter() - t
    log(
        f"GPU warm-up (kernel generation + numba-cuda compile at first launch): {compile_seconds:.1f} s "
        f"(first launch {kernels.compile_seconds:.1f} s); kernel {kernels.resources()}"
    )

    rows, gpu_first, scan_first = [], None, None
    plan = [("daily", n, times, args.per_call, None) for n in sizes]
    plan += [("scan days", n, scans, args.per_call_scans, None) for n in scan_sizes]
    if scan_sizes:  # the largest scan-day batch again with fewer threads per launch (MOA_CUDA_THREADS)
        plan += [("scan days", max(scan_sizes), scans, args.per_call_scans, t) for t in args.threads]
    for outputs, n, at, per_call, threads in plan:
        with threads_per_launch(threads):
            secs, solver_secs, failed, launches = 0.0, 0.0, 0, kernels.launches
            for lo in range(0, n, per_call):
                hi = min(n, lo + per_call)
                before = kernels.kernel_seconds
                s, tumour, status = run(
                    model, params, regimen, tp.subset(values, slice(lo, hi)), at, gpu_solver, args.rtol, tp.ATOL
                )
                secs += s
                solver_secs += kernels.kernel_seconds - before
                failed += int(np.sum(status != 0))
                if lo == 0 and outputs == "daily" and (gpu_first is None or tumour.shape[0] > gpu_first.shape[0]):
                    gpu_first = tumour  # the first sets, for the accuracy checks
                if lo == 0 and outputs != "daily" and (scan_first is None or tumour.shape[0] > scan_first.shape[0]):
                    scan_first = tumour
            row = {
                "n": n,
                "threads": threads or "resident",
                "outputs": outputs,
                "output_times": int(at.size),
                "per_call": per_call,
                "seconds": secs,
                "sims_per_s": n / secs,
                "solver_seconds": solver_secs,
                "solver_sims_per_s": n / solver_secs if solver_secs > 0 else None,
                "host_ms_per_set": 1e3 * (secs - solver_secs) / n,
                "launches": kernels.launches - launches,
                "failed": failed,
            }
            rows.append(row)
            log(
                f"N = {n:>9,} ({outputs}, threads {threads or 'resident'}): {secs:8.2f} s  "
                f"{row['sims_per_s']:10,.0f} sims/s (simulate)  GPU solver "
                f"{solver_secs:8.2f} s  {row['solver_sims_per_s'] or 0:10,.0f} sims/s  host "
                f"{row['host_ms_per_set']:.3f} ms/set  failed {failed}"
            )

    first = gpu_first if gpu_first is not None else scan_first
    ref_at, cpu_at = (ref, cpu_tumour) if gpu_first is not None else (ref[:, scan_rows], cpu_tumour[:, scan_rows])
    k = min(n_ref, first.shape[0])
    gpu_err = tumour_error(first[:k], ref_at[:k], dens_all[:k])
    scan_err = (
        tumour_error(scan_first[:k], ref[:k, scan_rows], dens_all[:k]) if scan_first is not None else float("nan")
    )
    m = min(n_cpu, first.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = float(np.nanmax(np.abs(first[:m] - cpu_at[:m]) / np.abs(cpu_at[:m])))
    rr = (
        roadrunner_rate(model, params, regimen, values, times, min(args.n_rr, n_max), args.rtol, tp.ATOL)
        if args.n_rr > 0
        else None
    )
    if rr is None and readme_roadrunner() is not None:
        rr = {
            "sims_per_s": readme_roadrunner(),
            "source": "benchmarks/README.md (54-state model, rtol 1e-6, one AMD EPYC core; not measured here)",
        }
    big = max((r for r in rows if r["threads"] == "resident"), key=lambda r: r["n"])
    summary = {
        "max_tumour_error": gpu_err,
        "max_tumour_error_scan_days": scan_err,
        "gpu_vs_cpu_tumour_rel_diff": diff,
        "largest_n": big["n"],
        "sims_per_s": big["sims_per_s"],
        "solver_sims_per_s": big["solver_sims_per_s"],
        "ratio_to_one_core": big["sims_per_s"] / cpu["sims_per_s"],
        "solver_ratio_to_one_core": (big["solver_sims_per_s"] or 0) / cpu["sims_per_s"],
        "ratio_to_libroadrunner": big["sims_per_s"] / rr["sims_per_s"] if rr else None,
        "target_10k_per_s_at_1e-5": bool(big["sims_per_s"] >= 1e4 and max(gpu_err, np.nan_to_num(scan_err)) <= 1e-5),
        "target_10k_per_s_at_1e-5_gpu_solver": bool(
            (big["solver_sims_per_s"] or 0) >= 1e4 and max(gpu_err, np.nan_to_num(scan_err)) <= 1e-5
        ),
    }
    result = {
        "benchmark": "benchmarks/gpu.py",
        "command": "python benchmarks/gpu.py " + " ".join(argv or sys.argv[1:]),
        "started_utc": started,
        "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device_info(),
        "machine": {"cpu": tp.machine_info().get("cpu"), "python": platform.python_version(), "numpy": np.__version__},
        "problem": {
            "model": model.name,
            "states": compile_model(model).n_species,
            "arm": tp.ARM,
            "setting": tp.SETTING,
            "days": args.days,
            "doses": len(regimen.doses),
            "seed": args.seed,
            "varied": tp.varied_names(),
            "scan_days": scans.tolist(),
        },
        "rtol": args.rtol,
        "atol": tp.ATOL,
        "per_call": args.per_call,
        "chunk_size": cuda.CHUNK_SIZE,
        "compile_seconds": compile_seconds,
        "first_launch_seconds": kernels.compile_seconds,
        "kernel": kernels.resources()
        | {
            "max_registers": cuda.max_registers(),
            "refill": cuda.refill(),
            "resident_threads": kernels.resident_threads(cuda.THREADS_PER_BLOCK),
        },
        "reference": {"solver": f"numba Rodas4 rtol {REF_RTOL:g} atol {REF_ATOL:g}", "sets": n_ref},
        "cpu": cpu,
        "libroadrunner": rr,
        "rows": rows,
        "summary": summary,
    }
    from moa.codegen.cache import atomic_write

    tp.write_json(out_dir, "gpu.json", result)
    atomic_write(out_dir / "gpu.md", markdown(result))
    print(markdown(result), flush=True)
    log(f"wrote {out_dir / 'gpu.json'} and {out_dir / 'gpu.md'}")
    return result


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
