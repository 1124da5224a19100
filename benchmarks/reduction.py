"""What leaving out the antibodies a regimen never doses buys: ``full_model(drugs=("bsab",))`` against the full model.

Usage::

    python benchmarks/reduction.py --n 64 --out results/benchmarks/reduction     # about 2 minutes on one core

Problem (as ``benchmarks/throughput.py``): ``hot_tnbc`` under ``nabp_bsab_2x2`` (nab-paclitaxel + the 2:2
bispecific, so the anti-PD-L1 and anti-4-1BB states stay exactly zero), one year, daily outputs,
``--n`` parameter sets drawn within bounds (``throughput.draw_parameters``), rtol 1e-6 / atol 1e-9, the
compiled Rodas4 on one core. Reported per model: states, Jacobian entries, sims/s (after an untimed
compile call), accepted steps per set; and the largest relative tumour-volume difference of each against
the full model at rtol 1e-10 / atol 1e-14 on the first ``--n-ref`` sets (floor: the volume of 1e6 cells,
as throughput.py). The two are not equal to the digit: the step-size control's error norm is a mean over
the states, so fewer states take other steps (tests/test_model_reduction.py shows the equations are equal).
Writes ``reduction.json`` into ``--out`` when given.
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

import throughput as tp  # noqa: E402  (pins BLAS to one thread before numpy loads: one core)
import numpy as np  # noqa: E402

import moa  # noqa: E402
from moa.codegen import compile_model  # noqa: E402
from moa.errors import DoseWarning  # noqa: E402
from moa.scenarios import scenario  # noqa: E402
from moa.solvers import RodasSolver  # noqa: E402
from moa.symbolic.named_models import full_model  # noqa: E402

MODELS = {"full": None, "bsab only": ("bsab",)}
RTOL = 1e-6  # as throughput.py's headline rate


def tumour(model, params, regimen, values, times, rtol, atol):
    """(seconds, tumour volume (N, T), accepted steps per set) of one moa.simulate call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseWarning)
        t = time.perf_counter()
        ds = moa.simulate(
            model,
            params.with_values(values),
            regimen,
            times=times,
            solver=RodasSolver(backend="numba"),
            rtol=rtol,
            atol=atol,
            on_failure="record",
        )
        seconds = time.perf_counter() - t
    return seconds, np.asarray(ds["tumour_volume"].values, float), np.asarray(ds["n_steps"].values)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=64, help="parameter sets timed")
    ap.add_argument("--n-ref", type=int, default=8, help="of them, compared with the tight full-model reference")
    ap.add_argument("--days", type=float, default=365.0)
    ap.add_argument("--seed", type=int, default=20241)
    ap.add_argument("--out", default=None, help="folder for reduction.json")
    args = ap.parse_args(argv)
    if args.n < 1 or not 1 <= args.n_ref <= args.n or args.days <= 0:
        raise SystemExit(f"--n {args.n} >= 1, --n-ref {args.n_ref} within 1..--n and --days {args.days} > 0 needed")
    params, regimen = scenario(tp.ARM, tp.SETTING, duration_days=args.days)
    values = tp.draw_parameters(params, args.n, args.seed)
    times = moa.output_times(args.days)
    ref_values = tp.subset(values, slice(0, args.n_ref))
    _, reference, _ = tumour(full_model(), params, regimen, ref_values, times, 1e-10, 1e-14)
    dens = np.broadcast_to(np.asarray(params.with_values(ref_values)["tumour_cell_density"], float), (args.n_ref,))
    floor = 1e6 / dens  # mL: the volume of 1e6 cells
    rows = []
    for label, drugs in MODELS.items():
        model = full_model(drugs)
        compiled = compile_model(model)
        tumour(model, params, regimen, tp.subset(values, slice(0, 2)), times[:3], RTOL, tp.ATOL)  # compile
        seconds, _, steps = tumour(model, params, regimen, values, times, RTOL, tp.ATOL)
        _, ref_run, _ = tumour(model, params, regimen, ref_values, times, RTOL, tp.ATOL)
        error = np.abs(ref_run - reference) / np.maximum(np.abs(reference), floor[:, None])
        rows.append(
            {
                "model": model.name,
                "label": label,
                "states": compiled.n_species,
                "jacobian_entries": int(len(compiled.jac_rows)),
                "seconds": seconds,
                "sims_per_s": args.n / seconds,
                "mean_steps_per_set": float(np.mean(steps)),
                "max_rel_tumour_error_vs_full_reference": float(np.nanmax(error)),
            }
        )
    speedup = rows[1]["sims_per_s"] / rows[0]["sims_per_s"]
    print(f"| model | states | Jacobian entries | sims/s (one core, N = {args.n}) | steps per set | tumour error |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['states']} | {r['jacobian_entries']} | {r['sims_per_s']:.1f} | "
            f"{r['mean_steps_per_set']:,.0f} | {r['max_rel_tumour_error_vs_full_reference']:.2g} |"
        )
    print(
        f"reduced / full: {speedup:.2f}x sims/s (tumour error: against the full model at rtol 1e-10, {args.n_ref} sets)"
    )
    result = {
        "benchmark": "benchmarks/reduction.py",
        "machine": tp.machine_info(),
        "n": args.n,
        "n_ref": args.n_ref,
        "days": args.days,
        "rtol": RTOL,
        "atol": tp.ATOL,
        "rows": rows,
        "speedup": speedup,
    }
    if args.out:
        tp.write_json(args.out, "reduction.json", result)
    return result


if __name__ == "__main__":
    main()
