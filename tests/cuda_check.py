"""The CUDA Rodas4 against the numba CPU backend, in one process (run by tests/test_cuda.py in a
subprocess with numba's CUDA simulator, and by benchmarks/gpu_device.sh on a real GPU).

Usage::

    NUMBA_ENABLE_CUDASIM=1 python tests/cuda_check.py            # simulator: JSON on stdout
    python tests/cuda_check.py --device --check                   # a real GPU; exit 1 on a failed check

Cases:

* ``robertson``: Robertson's kinetics (sympy, 4 randomised trajectories to 4e5 s; on the GPU in two
  chunks of 3 and 1 and blocks of 2 threads), both backends'
  ``integrate_batch``: accepted/rejected steps per trajectory and outputs. ``robertson_refill`` (and
  ``failures_refill``): the same batch in one GPU thread that takes the trajectories one after another
  (work refill), in the order of their expected work, which must give the very same numbers.
* ``failures``: the same batch with a NaN rate constant in column 1 and k1 = -1e10 (an exploding
  trajectory: step-size underflow) in column 2; columns 0 and 3 must finish as on the CPU.
* ``full_model``: ``moa.simulate`` of the full model, hot TNBC, nab-paclitaxel + 2:2 bispecific,
  30 days, ``--n-full`` parameter sets, with ``RodasSolver(backend="cuda")`` and ``"numba"``;
  accepted/rejected steps are recorded per segment from the backends' batch results. In the simulator
  each launch runs in one thread (work refill); on a GPU as ``RodasSolver`` launches it.
* ``quasi_steady``: ``moa.simulate(start="quasi_steady")`` of ``--n-qss`` sets (tumour size, growth and kill
  drawn) over one day with the two solvers: the CUDA run relaxes its start on the GPU, with the same
  accepted/rejected steps per call as numba's and starts equal to ``--rtol``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import pathlib
import sys
import time
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def rel_diff(a, b, floor=1e-300) -> float:
    """max |a - b| / max(|b|, floor) over entries where both are finite (NaN where they differ in
    finiteness counts as inf)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), floor)))


def robertson(out: dict) -> None:
    import sympy as sp

    from moa.solvers.rodas4 import cuda, numba_kernels as jit
    from robertson_problem import ROB_ATOL, ROB_Y0, rob_output_times, rob_params

    y1, y2, y3 = sp.symbols("y1 y2 y3")
    k1, k2, k3 = sp.symbols("k1 k2 k3")
    rhs = [-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2**2 - k3 * y2 * y3, k2 * y2**2]
    kc, kj = cuda.kernels(rhs, [y1, y2, y3], [k1, k2, k3]), jit.kernels(rhs, [y1, y2, y3], [k1, k2, k3])
    N, t1 = 4, 4e5
    P = rob_params(N, seed=3)
    Y0 = np.tile(ROB_Y0, (1, N))
    t_out = rob_output_times(t1)
    kw = dict(rtol=1e-6, atol=ROB_ATOL)
    for case, Pc in (("robertson", P), ("failures", _broken(P))):
        t = time.perf_counter()
        with np.errstate(all="ignore"):
            a = cuda.integrate_batch_cuda(
                kc, 0.0, t1, Y0, Pc, t_out, threads_per_block=2, chunk_size=3, **kw
            )  # 2 chunks
            seconds = time.perf_counter() - t
            b = jit.integrate_batch_jit(kj, 0.0, t1, Y0, Pc, t_out, **kw)
            # work refill: one thread takes the four trajectories one after another, the one with the most
            # expected work first (the order 1, 3, 2, 0)
            r = cuda.integrate_batch_cuda(
                kc, 0.0, t1, Y0, Pc, t_out, threads_per_block=1, threads=1, expected_work=[1.0, 4.0, 2.0, 3.0], **kw
            )
        out[case + "_refill"] = {
            "status": r.status.tolist(),
            "n_steps": r.n_steps.tolist(),
            "n_rejected": r.n_rejected.tolist(),
            "message": r.message,
            "same_as_one_thread_each": bool(
                np.array_equal(r.y, a.y, equal_nan=True)
                and np.array_equal(r.y_final, a.y_final, equal_nan=True)
                and np.array_equal(r.t_reached, a.t_reached)
                and np.array_equal(r.h_last, a.h_last, equal_nan=True)
            ),
        }
        out[case] = {
            "seconds": seconds,
            "status_cuda": a.status.tolist(),
            "status_cpu": b.status.tolist(),
            "message_cuda": a.message,
            "message_cpu": b.message,
            "n_steps_cuda": a.n_steps.tolist(),
            "n_steps_cpu": b.n_steps.tolist(),
            "n_rejected_cuda": a.n_rejected.tolist(),
            "n_rejected_cpu": b.n_rejected.tolist(),
            "y_rel_diff": rel_diff(a.y, b.y, 1e-22),
            "y_final_rel_diff": rel_diff(a.y_final, b.y_final, 1e-22),
        }
    if cuda.simulator():
        # the simulator reads module globals at run time: a growth limit of 0 makes every sparse LU
        # "unstable", the case the CPU backends solve with a dense LU; the GPU hands those
        # trajectories to the CPU (cpu_kernels), or reports them (status 4) without it
        saved = kc.module.GROWTH_LIMIT
        kc.module.GROWTH_LIMIT = 0.0
        try:
            with np.errstate(all="ignore"):
                a = cuda.integrate_batch_cuda(kc, 0.0, t1, Y0, P, t_out, cpu_kernels=lambda: kj, **kw)
                c = cuda.integrate_batch_cuda(kc, 0.0, t1, Y0, P, t_out, **kw)
        finally:
            kc.module.GROWTH_LIMIT = saved
        out["dense_fallback"] = {
            "cpu_reruns": kc.cpu_reruns,
            "status_rerun": a.status.tolist(),
            "n_steps_rerun": a.n_steps.tolist(),
            "n_steps_cpu": out["robertson"]["n_steps_cpu"],
            "y_rel_diff_rerun": rel_diff(a.y, jit.integrate_batch_jit(kj, 0.0, t1, Y0, P, t_out, **kw).y, 1e-22),
            "status_no_cpu": c.status.tolist(),
            "message_no_cpu": c.message[0],
        }


def _broken(P: np.ndarray) -> np.ndarray:
    """Column 1: a NaN rate constant; column 2: k1 = -1e10 (y1 grows as exp(1e10 t): underflow)."""
    Pb = P.copy()
    Pb[1, 1] = np.nan
    Pb[0, 2] = -1e10
    return Pb


class _Recorder:
    """Wraps a module's batch integrator to keep each call's step counts."""

    def __init__(self, module, name, n_trajectories):
        self.module, self.name, self.n, self.calls = module, name, n_trajectories, []
        self.original = getattr(module, name)

    def __enter__(self):
        def wrapped(*args, **kwargs):
            res = self.original(*args, **kwargs)
            if res.n_steps.size == self.n and not kwargs.get("fixed_step"):  # not numba's compile call
                self.calls.append((res.n_steps.copy(), res.n_rejected.copy()))
            return res

        setattr(self.module, self.name, wrapped)
        return self

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.original)

    def steps(self):
        acc = np.stack([c[0] for c in self.calls]) if self.calls else np.zeros((0, 0), int)
        rej = np.stack([c[1] for c in self.calls]) if self.calls else np.zeros((0, 0), int)
        return acc, rej


@contextlib.contextmanager
def _one_thread_in_the_simulator(cuda):
    """In the simulator, every launch of the full model runs in one thread, which takes the trajectories
    one after another (work refill); on a GPU, launches are left as ``RodasSolver`` makes them."""
    original = cuda.integrate_batch_cuda
    if cuda.simulator():
        cuda.integrate_batch_cuda = functools.partial(original, threads_per_block=1, threads=1)
    try:
        yield
    finally:
        cuda.integrate_batch_cuda = original


def _both_backends(model, batch, regimen, n_sets: int, **simulate_kwargs) -> dict:
    """``moa.simulate`` of ``batch`` with ``RodasSolver(backend="numba")`` and ``"cuda"``, each batch call's
    accepted/rejected steps recorded: ``{backend: (dataset, (accepted, rejected), seconds, solver name)}``."""
    import moa
    from moa.errors import DoseWarning
    from moa.solvers import RodasSolver
    from moa.solvers.rodas4 import cuda, numba_kernels as jit

    runs = {}
    for backend, module, fname in (("numba", jit, "integrate_batch_jit"), ("cuda", cuda, "integrate_batch_cuda")):
        solver = RodasSolver(backend=backend)
        t = time.perf_counter()
        with (
            _Recorder(module, fname, n_sets) as rec,
            _one_thread_in_the_simulator(cuda),
            warnings.catch_warnings(),
            np.errstate(all="ignore"),
        ):
            warnings.simplefilter("ignore", DoseWarning)
            ds = moa.simulate(model, batch, regimen, solver=solver, on_failure="record", **simulate_kwargs)
        runs[backend] = (ds, rec.steps(), time.perf_counter() - t, solver.name)
    return runs


def full_model(out: dict, n_sets: int, days: float) -> None:
    from moa.codegen import compile_model
    from moa.symbolic.named_models import full_model as build
    from moa.scenarios import scenario

    model = build()
    params, regimen = scenario("nabp_bsab_2x2", "hot_tnbc", duration_days=days)
    rng = np.random.default_rng(7)
    names = ["tumour_growth_rate", "kill_rate_max", "cl_bsab"]
    values = {}
    for name in names:
        spec = params.specs[name]
        lo, hi = float(spec.lower), float(spec.upper)
        values[name] = np.exp(rng.uniform(np.log(lo), np.log(hi), n_sets)) if lo > 0 else rng.uniform(lo, hi, n_sets)
    batch = params.with_values(values)
    runs = _both_backends(model, batch, regimen, n_sets, duration_days=days)
    (a, (acc_a, rej_a), sec_a, name_a), (b, (acc_b, rej_b), sec_b, name_b) = runs["cuda"], runs["numba"]
    species = list(compile_model(model).species_names)
    ya = np.stack([a[s].values for s in species])
    yb = np.stack([b[s].values for s in species])
    out["full_model"] = {
        "sets": n_sets,
        "days": days,
        "segments": int(acc_a.shape[0]),
        "seconds_cuda": sec_a,
        "seconds_cpu": sec_b,
        "solver_cuda": name_a,
        "solver_cpu": name_b,
        "status_cuda": np.asarray(a["status"].values).tolist(),
        "status_cpu": np.asarray(b["status"].values).tolist(),
        "steps_equal": bool(acc_a.shape == acc_b.shape and np.array_equal(acc_a, acc_b)),
        "rejected_equal": bool(rej_a.shape == rej_b.shape and np.array_equal(rej_a, rej_b)),
        "n_steps_cuda": acc_a.sum(axis=0).tolist(),
        "n_steps_cpu": acc_b.sum(axis=0).tolist(),
        "n_rejected_cuda": rej_a.sum(axis=0).tolist(),
        "n_rejected_cpu": rej_b.sum(axis=0).tolist(),
        "y_rel_diff": rel_diff(ya, yb, 1e-20),
        "tumour_rel_diff": rel_diff(a["tumour_volume"].values, b["tumour_volume"].values),
    }


def quasi_steady(out: dict, n_sets: int) -> None:
    """``moa.simulate(start="quasi_steady")`` over one day with the CUDA and the numba solver: a batch that goes
    to the GPU relaxes its start there (the held system's kernels), with the same steps as on the CPU."""
    from moa.codegen import compile_model
    from moa.symbolic.named_models import full_model as build
    from moa.scenarios import scenario

    model = build()
    params, regimen = scenario("nabp_bsab_2x2", "hot_tnbc", duration_days=1.0)
    rng = np.random.default_rng(11)
    values = {}
    for name in ("initial_tumour_diameter", "tumour_growth_rate", "kill_rate_max"):
        spec = params.specs[name]
        values[name] = np.exp(rng.uniform(np.log(spec.lower), np.log(spec.upper), n_sets))
    batch = params.with_values(values)
    runs = _both_backends(model, batch, regimen, n_sets, times=[0.0, 1.0], start="quasi_steady")
    (a, (acc_a, rej_a), sec_a, _), (b, (acc_b, rej_b), sec_b, _) = runs["cuda"], runs["numba"]
    species = list(compile_model(model).species_names)
    ya = np.stack([a[s].values[0] for s in species])  # the start itself (day 0)
    yb = np.stack([b[s].values[0] for s in species])
    out["quasi_steady"] = {
        "sets": n_sets,
        "start_cuda": a.attrs.get("start", ""),
        "start_cpu": b.attrs.get("start", ""),
        "seconds_cuda": sec_a,
        "seconds_cpu": sec_b,
        "calls": int(acc_a.shape[0]),
        "steps_equal": bool(acc_a.shape == acc_b.shape and np.array_equal(acc_a, acc_b)),
        "rejected_equal": bool(rej_a.shape == rej_b.shape and np.array_equal(rej_a, rej_b)),
        "n_steps_cuda": acc_a.sum(axis=0).tolist(),
        "n_steps_cpu": acc_b.sum(axis=0).tolist(),
        "status_cuda": np.asarray(a["status"].values).tolist(),
        "status_cpu": np.asarray(b["status"].values).tolist(),
        "start_rel_diff": rel_diff(ya, yb, 1e-20),
    }


def check(out: dict, rtol: float) -> list[str]:
    """The failed checks (empty when all pass)."""
    bad = []
    r = out["robertson"]
    for key in ("status", "n_steps", "n_rejected"):
        if r[f"{key}_cuda"] != r[f"{key}_cpu"]:
            bad.append(f"robertson {key}: cuda {r[f'{key}_cuda']} != cpu {r[f'{key}_cpu']}")
    if r["y_rel_diff"] > rtol:
        bad.append(f"robertson outputs differ by {r['y_rel_diff']:.3g} > {rtol:g}")
    for case in ("robertson", "failures"):
        rf = out[case + "_refill"]
        if not rf["same_as_one_thread_each"] or rf["n_steps"] != out[case]["n_steps_cuda"]:
            bad.append(f"{case}: one thread taking every trajectory (work refill) differs from one thread each")
    f = out["failures"]
    if f["status_cuda"][0] != 0 or f["status_cuda"][3] != 0:
        bad.append(f"failures: healthy trajectories did not finish: {f['status_cuda']}")
    if f["status_cuda"][1] != 1 or "non-finite" not in f["message_cuda"][1]:
        bad.append(f"failures: NaN parameter not reported at index 1: {f['status_cuda'][1]} {f['message_cuda'][1]!r}")
    if f["status_cuda"][2] != 2 or "underflow" not in f["message_cuda"][2]:
        bad.append(f"failures: underflow not reported at index 2: {f['status_cuda'][2]} {f['message_cuda'][2]!r}")
    if f["status_cuda"] != f["status_cpu"] or f["n_steps_cuda"] != f["n_steps_cpu"]:
        bad.append(f"failures: cuda {f['status_cuda']} {f['n_steps_cuda']} != cpu {f['status_cpu']} {f['n_steps_cpu']}")
    if f["y_rel_diff"] > rtol:
        bad.append(f"failures: outputs differ by {f['y_rel_diff']:.3g} > {rtol:g}")
    m = out.get("full_model")
    if m is not None:
        if not (m["steps_equal"] and m["rejected_equal"]):
            bad.append(
                f"full model steps: cuda {m['n_steps_cuda']}/{m['n_rejected_cuda']} != cpu "
                f"{m['n_steps_cpu']}/{m['n_rejected_cpu']}"
            )
        if m["status_cuda"] != [0] * m["sets"] or m["status_cpu"] != [0] * m["sets"]:
            bad.append(f"full model status: cuda {m['status_cuda']} cpu {m['status_cpu']}")
        if m["y_rel_diff"] > rtol:
            bad.append(f"full model outputs differ by {m['y_rel_diff']:.3g} > {rtol:g}")
        if m["solver_cuda"] != "moa-rodas4-cuda":
            bad.append(f"full model: the cuda run reports solver {m['solver_cuda']!r}")
    q = out.get("quasi_steady")
    if q is not None:
        if "(cuda)" not in q["start_cuda"]:
            bad.append(f"quasi-steady start did not relax on the GPU: {q['start_cuda']!r}")
        if not (q["steps_equal"] and q["rejected_equal"]):
            bad.append(f"quasi-steady start steps: cuda {q['n_steps_cuda']} != cpu {q['n_steps_cpu']}")
        if q["status_cuda"] != [0] * q["sets"] or q["status_cpu"] != [0] * q["sets"]:
            bad.append(f"quasi-steady start status: cuda {q['status_cuda']} cpu {q['status_cpu']}")
        if q["start_rel_diff"] > rtol:
            bad.append(f"quasi-steady starts differ by {q['start_rel_diff']:.3g} > {rtol:g}")
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", action="store_true", help="on a real GPU (default: numba's CUDA simulator is required)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a check fails (after printing the JSON)")
    ap.add_argument("--rtol", type=float, default=None, help="output agreement (default 1e-10 simulator, 1e-9 device)")
    ap.add_argument("--n-full", type=int, default=2, help="full-model parameter sets (0: skip the full model)")
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--n-qss", type=int, default=2, help="parameter sets of the quasi-steady start case (0: skip)")
    args = ap.parse_args(argv)
    from moa.solvers.rodas4 import cuda

    if cuda.simulator() == args.device:
        print("--device needs NUMBA_ENABLE_CUDASIM unset; without --device it must be 1", file=sys.stderr)
        return 2
    cuda.require()
    from moa.solvers import RodasSolver

    out: dict = {
        "mode": "device" if args.device else "simulator",
        "auto_picks_cuda": RodasSolver(backend="auto", gpu_min_batch=1)._gpu_for(10**6),
    }
    t = time.perf_counter()
    robertson(out)
    if args.n_full > 0:
        full_model(out, args.n_full, args.days)
    if args.n_qss > 0:
        quasi_steady(out, args.n_qss)
    out["seconds"] = time.perf_counter() - t
    rtol = args.rtol if args.rtol is not None else (1e-9 if args.device else 1e-10)
    out["failed_checks"] = check(out, rtol)
    print(json.dumps(out))
    return 1 if args.check and out["failed_checks"] else 0


if __name__ == "__main__":
    sys.exit(main())
