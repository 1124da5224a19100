"""How busy a GPU's lanes are under two ways of handing out trajectories, from step counts measured on the CPU.

Usage::

    python benchmarks/gpu_schedule.py --sets 1024 --out results/benchmarks/gpu_schedule   # about 1 minute

Why: ``moa.simulate`` cuts a run at every dose and launches one kernel per segment, and a launch lasts
as long as its slowest trajectory. A lane that has finished its trajectory idles unless it is given
another. How much that costs depends only on how many steps each trajectory needs in each segment,
which the numba CPU backend measures exactly (the GPU takes the very same steps: ``tests/test_cuda.py``).

What it does: the throughput problem (full model, ``hot_tnbc``, nab-paclitaxel + 2:2, one year, rtol
1e-6, Latin-hypercube parameter sets as ``benchmarks/throughput.py``) on ``--sets`` sets with the numba
backend, keeping the accepted + rejected steps of every set in every segment. Then, per segment, launches
of N trajectories drawn from those sets (with replacement, ``--seed``; each keeps its counts through the
segments) on a card that runs ``T`` threads at once are scheduled step by step:

* one thread per trajectory: blocks of ``--block`` threads, each lasting as long as its slowest thread,
  are started by the hardware as earlier blocks finish;
* work refill (``cuda_template.integrate_kernel``): ``T`` threads, each taking the next trajectory when
  its own is done; the launch lasts as long as its busiest thread; in column order, and longest first
  by the steps each trajectory took in the segments before (what ``moa.simulate`` hands the GPU backend
  as ``expected_work``; ``cuda.work_order``).

Reported: lane utilisation (steps taken / (threads x launch length in steps), summed over segments) of
each, and the speed-ups of the refill over one thread each if a step costs the same in all. Not modelled: memory
effects of scattered trajectories after refills, the cost of a step itself, transfers.
"""

from __future__ import annotations

import argparse
import heapq
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
from moa.errors import DoseWarning  # noqa: E402
from moa.scenarios import scenario  # noqa: E402
from moa.solvers import RodasSolver  # noqa: E402
from moa.solvers.rodas4 import numba_kernels as jit  # noqa: E402
from moa.symbolic.named_models import full_model  # noqa: E402

#: (launch size N, resident threads T): T = 33,792 is the full model's kernel on an H200 at 255 registers
#: (132 SMs x 256 threads); 67,584 at a 128-register cap.
CASES = ((32_768, 33_792), (65_536, 33_792), (131_072, 33_792), (262_144, 33_792), (262_144, 67_584))


def segment_steps(n_sets: int, seed: int, rtol: float) -> np.ndarray:
    """(segments, sets): accepted + rejected steps of each set in each dose segment of the one-year run."""
    model = full_model()
    params, regimen = scenario(tp.ARM, tp.SETTING, duration_days=365.0)
    values = tp.draw_parameters(params, n_sets, seed)
    calls = []
    original = jit.integrate_batch_jit

    def recording(*args, **kwargs):
        res = original(*args, **kwargs)
        if res.n_steps.size == n_sets:
            calls.append(np.asarray(res.n_steps) + np.asarray(res.n_rejected))
        return res

    jit.integrate_batch_jit = recording
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DoseWarning)
            _, ds = tp.run_moa(
                model, params, regimen, values, moa.output_times(365.0), RodasSolver(backend="numba"), rtol
            )
    finally:
        jit.integrate_batch_jit = original
    if np.any(ds["status"].values != 0):
        raise SystemExit(f"{int(np.sum(ds['status'].values != 0))} sets failed: segments would not line up")
    return np.array(calls, dtype=float)


def one_thread_each(steps: np.ndarray, threads: int, block: int) -> float:
    """Length in steps of a launch of one thread per trajectory: blocks in order, each as long as its
    slowest thread, started on ``threads // block`` block slots as earlier ones finish."""
    pad = (-steps.size) % block
    blocks = np.concatenate([steps, np.zeros(pad)]).reshape(-1, block).max(axis=1)
    slots = [0.0] * max(1, threads // block)
    for length in blocks:
        heapq.heappush(slots, heapq.heappop(slots) + length)
    return max(slots)


def refill(steps: np.ndarray, threads: int) -> float:
    """Length in steps of a launch of ``threads`` threads that each take the next trajectory when done."""
    lanes = [0.0] * min(threads, steps.size)
    for length in steps:
        heapq.heappush(lanes, heapq.heappop(lanes) + length)
    return max(lanes)


def utilisation(per_segment: np.ndarray, n: int, threads: int, block: int, rng) -> dict:
    """Lane utilisation of the three schemes for launches of ``n`` trajectories (sets drawn with
    replacement, each keeping its own step counts through the segments)."""
    steps_of = per_segment[:, rng.integers(0, per_segment.shape[1], n)]  # (segments, n)
    so_far = np.zeros(n)
    work = one = fill = longest = 0.0
    for steps in steps_of:
        work += steps.sum()
        one += one_thread_each(steps, threads, block)
        fill += refill(steps, threads)
        longest += refill(steps[np.argsort(-so_far, kind="stable")], threads)  # as cuda.work_order
        so_far += steps
    lanes = min(threads, n)
    return {
        "n": n,
        "resident_threads": threads,
        "utilisation_one_thread_each": work / (lanes * one),
        "utilisation_refill": work / (lanes * fill),
        "utilisation_refill_longest_first": work / (lanes * longest),
        "refill_speedup": one / fill,
        "refill_longest_first_speedup": one / longest,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", type=int, default=1024, help="parameter sets run on the CPU (the step counts)")
    ap.add_argument("--block", type=int, default=64, help="threads per block")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--seed", type=int, default=20241)
    ap.add_argument("--out", default=None, help="folder for gpu_schedule.json")
    args = ap.parse_args(argv)
    if args.sets < 2 or args.block < 1:
        raise SystemExit(f"--sets {args.sets} must be >= 2 and --block {args.block} >= 1")
    t = time.perf_counter()
    per_segment = segment_steps(args.sets, args.seed, args.rtol)
    seconds = time.perf_counter() - t
    totals = per_segment.sum(axis=0)
    means = per_segment.mean(axis=1)
    slowest = per_segment.max(axis=1) / means
    print(
        f"{per_segment.shape[1]} sets, {per_segment.shape[0]} segments ({seconds:.0f} s on one core): steps per set "
        f"{totals.mean():.0f} (min {totals.min():.0f}, max {totals.max():.0f}); per segment, mean "
        f"{means.min():.0f}-{means.max():.0f} steps, slowest set {slowest.min():.1f}-{slowest.max():.1f}x the mean"
    )
    rng = np.random.default_rng(args.seed)
    rows = [utilisation(per_segment, n, threads, args.block, rng) for n, threads in CASES]
    print(
        "| N per launch | resident threads | lanes busy: one thread each | refill | refill, longest first "
        "| speed-up: refill | refill, longest first |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['resident_threads']:,} | {r['utilisation_one_thread_each']:.2f} | "
            f"{r['utilisation_refill']:.2f} | {r['utilisation_refill_longest_first']:.2f} | "
            f"{r['refill_speedup']:.2f} | {r['refill_longest_first_speedup']:.2f} |"
        )
    result = {
        "benchmark": "benchmarks/gpu_schedule.py",
        "sets": int(per_segment.shape[1]),
        "segments": int(per_segment.shape[0]),
        "block": args.block,
        "rtol": args.rtol,
        "steps_per_set": {"mean": float(totals.mean()), "min": float(totals.min()), "max": float(totals.max())},
        "segment_mean_steps": means.tolist(),
        "segment_slowest_over_mean": slowest.tolist(),
        "rows": rows,
    }
    if args.out:
        tp.write_json(args.out, "gpu_schedule.json", result)
    return result


if __name__ == "__main__":
    main()
