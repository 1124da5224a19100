"""The quasi-steady start (``moa.steady_state.quasi_steady_state``) on the GPU against one CPU core.

Usage::

    python benchmarks/gpu_start.py --n 10000 --out $OUT          # on a GPU (a few seconds after the compile)
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu_start.py --n 2 --n-cpu 2 --out /tmp/s   # dry run, no GPU

Why: a virtual trial starts every lesion from its quasi-steady state (``moa.simulate(start="quasi_steady")``:
the untreated model relaxed with the tumour held). On one CPU core that costs about 0.7 ms per set
(906 lesions of ``moa.trial.sample_population(300)``), several times what a GPU at the issue's 10,000
sims/s spends on a whole one-year run (0.1 ms), so ``moa.simulate`` relaxes a batch it sends to the GPU
there too. This measures that start on both.

Problem: the throughput benchmark's parameter sets (``throughput.draw_parameters``, within the bounds
in ``models/``), ``hot_tnbc`` and ``nabp_bsab_2x2`` (no dose enters the start), the start's default
tolerances. Reported: sets per second on the GPU at ``--n`` (the held system's kernel is compiled at a
first, untimed call on two sets) and on one core with numba on the first ``--n-cpu`` sets; the largest
relative difference of the starts on those sets (floor 1e-20); the relaxation days and how many
converged. Writes ``gpu_start.json`` into ``--out``; ``--check`` exits 1 when the starts differ by more
than ``--rtol`` (1e-9, the issue's agreement with the CPU backend).
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
sys.path.insert(0, str(ROOT / "tests"))

import throughput as tp  # noqa: E402  (pins BLAS to one thread before numpy loads)
import numpy as np  # noqa: E402

from cuda_check import rel_diff  # noqa: E402
from moa.errors import DoseWarning  # noqa: E402
from moa.scenarios import scenario  # noqa: E402
from moa.solvers.rodas4 import cuda  # noqa: E402
from moa.steady_state import quasi_steady_state  # noqa: E402
from moa.symbolic.named_models import full_model  # noqa: E402


def parameter_matrix(model, n: int, seed: int) -> np.ndarray:
    """(m, n) parameters in the compiled model's order, infusion inputs zero."""
    params, _ = scenario(tp.ARM, tp.SETTING, duration_days=365.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseWarning)
        batch = params.with_values(tp.draw_parameters(params, n, seed))
    return np.vstack([batch.matrix(model.parameter_names), np.zeros((len(model.inputs), n))])


def timed_start(model, P: np.ndarray, backend: str):
    t = time.perf_counter()
    with np.errstate(all="ignore"):
        qss = quasi_steady_state(model, P, backend=backend)
    return time.perf_counter() - t, qss


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="parameter sets started on the GPU")
    ap.add_argument("--n-cpu", type=int, default=200, help="of them, started on one core with numba too")
    ap.add_argument("--seed", type=int, default=20241)
    ap.add_argument("--out", required=True, help="output folder (gpu_start.json)")
    ap.add_argument("--check", action="store_true", help="exit 1 when the starts differ by more than --rtol")
    ap.add_argument("--rtol", type=float, default=1e-9, help="agreement of GPU and CPU starts for --check")
    args = ap.parse_args(argv)
    if args.n < 1 or not 1 <= args.n_cpu <= args.n:
        raise SystemExit(f"--n {args.n} must be >= 1 and --n-cpu {args.n_cpu} within 1..--n")
    cuda.require()
    model = full_model()
    P = parameter_matrix(model, args.n, args.seed)
    compile_s, _ = timed_start(model, P[:, :2], "cuda")  # generates and compiles the held system's kernel
    gpu_s, gpu = timed_start(model, P, "cuda")
    timed_start(model, P[:, :2], "numba")  # compile
    cpu_s, cpu = timed_start(model, P[:, : args.n_cpu], "numba")
    result = {
        "benchmark": "benchmarks/gpu_start.py",
        "device": "numba CUDA simulator (no GPU)" if cuda.simulator() else "GPU",
        "machine": tp.machine_info(),
        "n": args.n,
        "n_cpu": args.n_cpu,
        "first_call_seconds": compile_s,
        "gpu_seconds": gpu_s,
        "gpu_sets_per_s": args.n / gpu_s,
        "cpu_seconds": cpu_s,
        "cpu_sets_per_s": args.n_cpu / cpu_s,
        "cpu_ms_per_set": 1e3 * cpu_s / args.n_cpu,
        "max_rel_diff_gpu_vs_cpu": rel_diff(gpu.y[:, : args.n_cpu], cpu.y, 1e-20),
        "days_gpu": gpu.days,
        "converged_gpu": int(gpu.converged.sum()),
        "converged_cpu": int(cpu.converged.sum()),
        "backend_gpu": gpu.backend,
    }
    print(
        f"quasi-steady start: GPU {result['gpu_sets_per_s']:,.0f} sets/s on {args.n:,} sets "
        f"({gpu_s:.2f} s; first call {compile_s:.1f} s); one core (numba) {result['cpu_sets_per_s']:,.0f} "
        f"sets/s ({result['cpu_ms_per_set']:.2f} ms/set, {args.n_cpu} sets); max relative difference "
        f"{result['max_rel_diff_gpu_vs_cpu']:.2g}; relaxed up to {gpu.days:g} days; converged "
        f"{result['converged_gpu']}/{args.n} (GPU), {result['converged_cpu']}/{args.n_cpu} (CPU)"
    )
    tp.write_json(args.out, "gpu_start.json", result)
    if args.check and not result["max_rel_diff_gpu_vs_cpu"] <= args.rtol:
        raise SystemExit(f"GPU and CPU starts differ by {result['max_rel_diff_gpu_vs_cpu']:.3g} > {args.rtol:g}")
    return result


if __name__ == "__main__":
    main()
