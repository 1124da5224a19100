"""Throughput at a stated accuracy: moa's batched Rodas4 vs libroadrunner vs scipy, one core.

Usage::

    python benchmarks/throughput.py                      # N = 2000 one-year simulations
    python benchmarks/throughput.py --quick              # N = 64, 120 days, LSODA reference (CI)
    python benchmarks/throughput.py --n 500 --out results/benchmarks/throughput.json

What is simulated: the full model (``moa.symbolic.named_models.full_model``, 54 states) in the ``hot_tnbc``
setting under the full ``nabp_bsab_2x2`` regimen (nab-paclitaxel 100 mg/m^2 d1,8,15 q28d + the
2:2 bispecific 15 mg/kg Q3W; 58 bolus doses in a year), daily output, for N parameter sets drawn
by Latin hypercube within the bounds in ``models/`` (log-uniform where the parameter's
``scale == "log"``). Only the parameters that differ between *patients* are varied (see
``VARIED``): PK and body size, target/receptor numbers, tumour growth, killing, T-cell rates.
Drug-design constants (affinities, valencies, molecular weights), the setting's own values,
parameters of drugs not given in this arm, and numerical floors keep their scenario values; so
do the initial T-cell fractions (kept as measured; with the old upper bounds of 0.6 their sum could
exceed 1 and start with negative effectors; each is now bounded at 0.5 in models/).

Measured, all in this one process with BLAS pinned to one thread (one core), one after another:

(a) moa ``simulate(solver=RodasSolver(backend="numba"))`` on the whole batch: the compiled Rodas4
    (work-precision over rtol 1e-3..1e-7), and the same method in pure numpy
    (``backend="numpy"``) at ``--numpy-rtols``;
(b) libroadrunner (CVODE) on the SBML exported by ``moa.interop.sbml.export``, one simulation after
    another, every parameter set before each run (``moa.interop.roadrunner.SBMLSimulator``), rtol
    1e-5..1e-8, on the first ``--n-rr`` sets;
(c) scipy ``solve_ivp`` LSODA per trajectory through ``moa.simulate(solver="LSODA")`` on the
    first ``--n-lsoda`` sets (default tolerances).

Accuracy: against a reference for the first ``--n-ref`` sets, scipy Radau at rtol 1e-10 /
atol 1e-14 (``--reference lsoda``: LSODA at rtol 1e-11 / atol 1e-14, ~8x cheaper; the two agree
to ~4e-10 on the default set), computed once (two processes, ``moa.parallel``; not timed) and
cached under ``results/benchmarks/``. Error of a trajectory = max over time of
|x - ref| / max(|ref|, floor); reported as max and median over the reference sets. Floors:
tumour volume 1e-3 x (volume of 1e9 cells) = volume of 1e6 cells; other observables 1e-3 x the
trajectory's own peak |ref|.

atol is 1e-9 in each species' own unit for every solver (libroadrunner gets it as a vector).
Targets (issue 6): moa >= 2x libroadrunner sims/s at equal or better accuracy (max tumour
error <= 1e-5), 4x stretch; moa.simulate defaults (rtol 1e-6, atol 1e-9) within 1e-5.
"""

from __future__ import annotations

import os

for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ[_var] = "1"  # before numpy is imported: one core

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.stats import qmc  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moa.codegen import compile_model  # noqa: E402
import moa  # noqa: E402
from moa.symbolic.named_models import full_model  # noqa: E402
from moa.scenarios import scenario  # noqa: E402
from moa.errors import DoseWarning  # noqa: E402

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # pragma: no cover - optional; the environment variables above still apply
    threadpool_info = threadpool_limits = None

ARM, SETTING = "nabp_bsab_2x2", "hot_tnbc"
ATOL = 1e-9
TUMOUR_FLOOR_CELLS = 1e6  # 1e-3 x 1e9 cells
OBS_FLOOR_FRACTION = 1e-3
KEY = ("tumour_volume", "bsab_central", "t_eff", "cd137_signal", "pdl1_drug_occupancy", "nabp_central")
TUMOUR_TARGET = 1e-5
RODAS_RTOLS = (1e-3, 1e-4, 3e-5, 1e-5, 5e-6, 3e-6, 2e-6, 1e-6, 1e-7)
NUMPY_RTOLS = (1e-5, 1e-6)
RR_RTOLS = (1e-5, 1e-6, 5e-7, 3e-7, 2e-7, 1e-7, 1e-8)

#: Parameters varied between virtual patients, by group (bounds and scale from models/).
VARIED = {
    "pharmacokinetics": [
        "cl_bsab",
        "v1_bsab",
        "v2_bsab",
        "q_bsab",
        "pdl1_systemic_baseline",
        "kdeg_pdl1",
        "kint_pdl1_complex",
        "k_tumour_exchange",
        "tumour_partition",
        "body_weight",
        "body_surface_area",
        "v1_nabp",
        "v2_nabp",
        "v3_nabp",
        "q3_nabp",
        "vmax_transport_nabp",
        "km_transport_nabp",
        "vmax_elimination_nabp",
        "km_elimination_nabp",
        "ke0_nabp",
    ],
    "receptor_numbers": ["pdl1_ifng_fold", "cd137_per_t_cell", "pd1_per_t_cell", "kdeg_cd137"],
    "tumour_growth": [
        "tumour_growth_rate",
        "tumour_capacity",
        "initial_tumour_diameter",
        "tumour_cell_density",
        "tumour_interstitial_fraction",
        "initial_resistant_fraction",
        "initial_escape_fraction",
    ],
    "killing": [
        "kill_rate_max",
        "kill_ratio_half",
        "kill_ratio_exponent",
        "pex_kill_fraction",
        "pd1_kill_inhibition",
        "nabp_kill_max",
        "nabp_ec50",
        "nabp_tcell_tox_max",
        "escape_recognition",
    ],
    "t_cell_rates": [
        "priming_rate_max",
        "antigen_half_priming",
        "death_rate_primed",
        "prolif_rate_eff",
        "prolif_rate_pex",
        "t_cell_ratio_max",
        "death_rate_eff",
        "death_rate_pex",
        "death_rate_ex",
        "exhaustion_rate",
        "terminal_exhaustion_rate",
        "pex_differentiation_rate",
        "ifng_secretion",
        "ifng_degradation",
    ],
}


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------


def varied_names() -> list[str]:
    return [n for group in VARIED.values() for n in group]


def draw_parameters(base, n: int, seed: int) -> dict[str, np.ndarray]:
    """n sets of the VARIED parameters: Latin hypercube in [lower, upper] (log where scale == "log")."""
    names = varied_names()
    u = qmc.LatinHypercube(d=len(names), rng=np.random.default_rng(seed)).random(n)
    out = {}
    for j, name in enumerate(names):
        spec = base.specs[name]
        if spec.scale == "log":
            out[name] = np.exp(np.log(spec.lower) + u[:, j] * (np.log(spec.upper) - np.log(spec.lower)))
        else:
            out[name] = spec.lower + u[:, j] * (spec.upper - spec.lower)
        out[name] = np.clip(out[name], spec.lower, spec.upper)
    return out


def subset(values: dict[str, np.ndarray], idx) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in values.items()}


def write_json(folder, name: str, result: dict) -> pathlib.Path:
    """``result`` as indented JSON in ``folder/name`` (folder made if missing), written whole or not at all."""
    from moa.codegen.cache import atomic_write

    out = pathlib.Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / name, json.dumps(result, indent=2))
    return out / name


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "moa_git_commit": moa.report.provenance.git_commit(),
        "blas_threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        "threadpoolctl": threadpool_info()
        if threadpool_info
        else "not installed (BLAS pinned by environment variables)",
    }
    try:
        import roadrunner

        info["libroadrunner"] = roadrunner.__version__
    except ImportError:
        info["libroadrunner"] = None
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ------------------------------------------------------------------------------------------------
# runs
# ------------------------------------------------------------------------------------------------


def run_moa(model, params, regimen, values, times, solver, rtol, atol=ATOL):
    """One moa.simulate call on the batch; (seconds, dataset)."""
    batch = params.with_values(values)
    t = time.perf_counter()
    ds = moa.simulate(model, batch, regimen, times=times, solver=solver, rtol=rtol, atol=atol, on_failure="record")
    return time.perf_counter() - t, ds


def moa_arrays(ds, names=KEY) -> dict[str, np.ndarray]:
    return {v: np.asarray(ds[v].values, dtype=float) for v in names} | {"status": np.asarray(ds["status"].values)}


def run_roadrunner(sim, values, times, n):
    """libroadrunner on sets 0..n-1, one after another; (seconds, {var: (n, T)}, failures)."""
    out = {v: np.full((n, len(times)), np.nan) for v in KEY}
    failures = 0
    sel = list(KEY)
    t = time.perf_counter()
    for k in range(n):
        try:
            res = sim.run(times, {name: float(v[k]) for name, v in values.items()}, selections=sel)
        except RuntimeError:
            failures += 1
            continue
        for v in KEY:
            out[v][k] = res[v]
    return time.perf_counter() - t, out, failures


def reference(params, regimen, values, times, n_ref: int, kind: str, cache_dir: pathlib.Path) -> dict[str, np.ndarray]:
    """Tight reference for the first n_ref sets, cached by content hash; computed on 2 processes."""
    method, rtol, atol = {"radau": ("Radau", 1e-10, 1e-14), "lsoda": ("LSODA", 1e-11, 1e-14)}[kind]
    ref_values = subset(values, slice(0, n_ref))
    key = hashlib.sha256(
        json.dumps(
            {
                "params": params.with_values(ref_values).digest(),
                "regimen": [[d.drug, d.amount, d.unit, d.time_days] for d in regimen.doses],
                "times": np.asarray(times).tolist(),
                "method": method,
                "rtol": rtol,
                "atol": atol,
                "model": hashlib.sha256(compile_model(full_model()).rhs_T.source.encode()).hexdigest(),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    path = cache_dir / f"reference_{kind}_{n_ref}_{key}.npz"
    if path.exists():
        data = np.load(path)
        print(f"reference: cached {path}")
        return {k: data[k] for k in data.files}
    from moa.parallel import simulate_parallel

    print(
        f"reference: {method} rtol {rtol:g} atol {atol:g} for {n_ref} sets on 2 processes (not timed) ...", flush=True
    )
    t = time.perf_counter()
    ds = simulate_parallel(
        "full_model",
        params.with_values(ref_values),
        regimen,
        times=times,
        solver=method,
        rtol=rtol,
        atol=atol,
        workers=2,
        chunks=n_ref,
        progress=True,
    )
    print(f"reference: {time.perf_counter() - t:.0f} s", flush=True)
    arrays = moa_arrays(ds)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def errors(result: dict[str, np.ndarray], ref: dict[str, np.ndarray], density: np.ndarray) -> dict[str, dict]:
    """Per variable: max and median over the reference sets of max_t |x - ref| / max(|ref|, floor)."""
    n = min(ref["tumour_volume"].shape[0], result["tumour_volume"].shape[0])  # a solver may run fewer sets
    out = {}
    for v in KEY:
        x, r = result[v][:n], ref[v][:n]
        if v == "tumour_volume":
            floor = (TUMOUR_FLOOR_CELLS / density[:n])[:, None]
        else:
            floor = np.maximum(OBS_FLOOR_FRACTION * np.max(np.abs(r), axis=1, keepdims=True), 1e-300)
        with np.errstate(invalid="ignore"):
            e = np.max(np.abs(x - r) / np.maximum(np.abs(r), floor), axis=1)
        e = np.where(np.isfinite(e), e, np.inf)
        out[v] = {"max": float(np.max(e)), "median": float(np.median(e))}
    return out


def fmt_err(e: dict) -> str:
    return f"{e['max']:.1e} / {e['median']:.1e}"


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=2000, help="parameter sets for moa's batched solver (default 2000)")
    ap.add_argument("--quick", action="store_true", help="small run for CI: n=64, 120 days, LSODA reference on 4 sets")
    ap.add_argument("--days", type=float, default=None, help="simulated days (default 365; 120 with --quick)")
    ap.add_argument(
        "--n-rr", type=int, default=None, help="sets run by libroadrunner per tolerance (default min(n, 200))"
    )
    ap.add_argument("--n-lsoda", type=int, default=None, help="sets run by scipy LSODA (default 20; 4 with --quick)")
    ap.add_argument(
        "--n-ref", type=int, default=None, help="sets with a reference solution (default 20; 4 with --quick)"
    )
    ap.add_argument(
        "--reference",
        choices=("radau", "lsoda"),
        default=None,
        help="reference solver: Radau rtol 1e-10 (default) or LSODA rtol 1e-11 (default with --quick)",
    )
    ap.add_argument("--rodas-rtols", type=float, nargs="+", default=None, help=f"default {RODAS_RTOLS}")
    ap.add_argument(
        "--numpy-rtols",
        type=float,
        nargs="*",
        default=None,
        help=f"rtols for moa's numpy backend (default {NUMPY_RTOLS}; 1e-6 with --quick)",
    )
    ap.add_argument("--rr-rtols", type=float, nargs="+", default=None, help=f"default {RR_RTOLS}")
    ap.add_argument("--seed", type=int, default=20241)
    ap.add_argument("--out", default="results/benchmarks/throughput.json")
    args = ap.parse_args(argv)

    quick = args.quick
    n = 64 if quick and args.n == 2000 else args.n
    days = args.days if args.days is not None else (120.0 if quick else 365.0)
    n_ref = min(n, args.n_ref if args.n_ref is not None else (4 if quick else 20))
    n_rr = min(n, args.n_rr if args.n_rr is not None else 200)
    n_lsoda = min(n, args.n_lsoda if args.n_lsoda is not None else (4 if quick else 20))
    ref_kind = args.reference or ("lsoda" if quick else "radau")
    rodas_rtols = tuple(args.rodas_rtols or ((1e-3, 1e-4, 1e-5, 1e-6) if quick else RODAS_RTOLS))
    rr_rtols = tuple(args.rr_rtols or ((1e-6, 1e-7) if quick else RR_RTOLS))
    numpy_rtols = tuple(args.numpy_rtols if args.numpy_rtols is not None else ((1e-6,) if quick else NUMPY_RTOLS))
    if 1e-6 not in rodas_rtols:
        rodas_rtols = tuple(sorted(set(rodas_rtols) | {1e-6}, reverse=True))
    out_path = ROOT / args.out if not pathlib.Path(args.out).is_absolute() else pathlib.Path(args.out)

    if threadpool_limits is not None:
        threadpool_limits(1)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_start = load_average()

    model = full_model()
    params, regimen = scenario(ARM, SETTING, duration_days=days)
    times = moa.output_times(days)
    values = draw_parameters(params, n, args.seed)
    batch = params.with_values(values)
    density = np.broadcast_to(np.asarray(batch["tumour_cell_density"], dtype=float), (n,))
    print(
        f"full model: {compile_model(model).n_species} states; {ARM} in {SETTING}: {len(regimen.doses)} doses in "
        f"{days:g} days; {n} parameter sets varying {len(values)} parameters (LHS seed {args.seed})",
        flush=True,
    )

    ref = reference(params, regimen, values, times, n_ref, ref_kind, out_path.parent)

    from moa.solvers.rodas4 import numba_kernels as jit
    from moa.solvers import RodasSolver

    backends = (["numba"] if jit.available() else []) + (["numpy"] if numpy_rtols else [])
    if not jit.available():
        print("numba not installed: only the numpy backend is measured (pip install 'moa[fast]')")
    # warm-up (compilation, caches) outside the timings
    for backend in backends:
        with warnings.catch_warnings():  # the short warm-up leaves the later doses out (DoseWarning): expected
            warnings.simplefilter("ignore", DoseWarning)
            run_moa(model, params, regimen, subset(values, slice(0, 8)), times[:8], RodasSolver(backend=backend), 1e-6)

    rows_moa = []
    for backend in backends:
        solver = RodasSolver(backend=backend)
        for rtol in rodas_rtols if backend == "numba" else numpy_rtols:
            secs, ds = run_moa(model, params, regimen, values, times, solver, rtol)
            res = moa_arrays(ds)
            row = {
                "solver": solver.name,
                "rtol": rtol,
                "atol": ATOL,
                "n": n,
                "seconds": secs,
                "sims_per_s": n / secs,
                "failed": int(np.sum(res["status"] != 0)),
                "errors": errors(res, ref, density),
                "load_average": load_average(),
            }
            rows_moa.append(row)
            print(
                f"{solver.name:<17}rtol {rtol:7.0e}: {n:5d} sims {secs:7.1f} s {row['sims_per_s']:8.1f} sims/s  "
                f"tumour err max/median {fmt_err(row['errors']['tumour_volume'])}  failed {row['failed']}",
                flush=True,
            )

    rows_rr = []
    try:
        from moa.interop.roadrunner import SBMLSimulator
        from moa.interop.sbml import export

        sbml = export(model, params, regimen)
        sims = {rtol: SBMLSimulator(sbml, rtol=rtol, atol=ATOL) for rtol in rr_rtols}
        sims[rr_rtols[0]].run(times[:5], {k: float(v[0]) for k, v in values.items()})  # warm-up
        for rtol in rr_rtols:
            secs, res, failures = run_roadrunner(sims[rtol], values, times, n_rr)
            row = {
                "solver": "libroadrunner-cvode",
                "rtol": rtol,
                "atol": ATOL,
                "n": n_rr,
                "seconds": secs,
                "sims_per_s": n_rr / secs,
                "failed": failures,
                "errors": errors(res, ref, density),
                "load_average": load_average(),
            }
            rows_rr.append(row)
            print(
                f"roadrunner  rtol {rtol:7.0e}: {n_rr:5d} sims {secs:7.1f} s {row['sims_per_s']:8.1f} sims/s  "
                f"tumour err max/median {fmt_err(row['errors']['tumour_volume'])}  failed {failures}",
                flush=True,
            )
    except ImportError as exc:
        print(f"libroadrunner skipped: {exc}")

    secs, ds = run_moa(model, params, regimen, subset(values, slice(0, n_lsoda)), times, "LSODA", 1e-6)
    res = moa_arrays(ds)
    row_lsoda = {
        "solver": "scipy-LSODA (solve_ivp per trajectory)",
        "rtol": 1e-6,
        "atol": ATOL,
        "n": n_lsoda,
        "seconds": secs,
        "sims_per_s": n_lsoda / secs,
        "failed": int(np.sum(res["status"] != 0)),
        "errors": errors(res, ref, density),
    }
    print(
        f"scipy LSODA rtol   1e-06: {n_lsoda:5d} sims {secs:7.1f} s {row_lsoda['sims_per_s']:8.1f} sims/s  "
        f"tumour err max/median {fmt_err(row_lsoda['errors']['tumour_volume'])}",
        flush=True,
    )

    def best(rows, stat="max"):
        ok = [
            r
            for r in rows
            if r["errors"]["tumour_volume"][stat] <= TUMOUR_TARGET and (stat == "median" or r["failed"] == 0)
        ]
        return max(ok, key=lambda r: r["sims_per_s"]) if ok else None

    main_name = rows_moa[0]["solver"]  # the compiled backend when numba is installed
    main_rows = [r for r in rows_moa if r["solver"] == main_name]
    numpy_rows = [r for r in rows_moa if r["solver"] == "moa-rodas4"]
    default_moa = next(r for r in main_rows if r["rtol"] == 1e-6)
    default_rr = next((r for r in rows_rr if r["rtol"] == 1e-6), None)
    best_moa, best_rr = best(main_rows), best(rows_rr)
    default_numpy = next((r for r in numpy_rows if r["rtol"] == 1e-6), None)
    summary = {
        "moa_solver": main_name,
        "at_default_tolerances": {
            "moa_sims_per_s": default_moa["sims_per_s"],
            "moa_numpy_backend_sims_per_s": default_numpy["sims_per_s"] if default_numpy else None,
            "libroadrunner_sims_per_s": default_rr["sims_per_s"] if default_rr else None,
            "ratio_moa_to_libroadrunner": default_moa["sims_per_s"] / default_rr["sims_per_s"] if default_rr else None,
            "scipy_lsoda_sims_per_s": row_lsoda["sims_per_s"],
        },
        "at_equal_accuracy": {
            "criterion": (
                f"fastest tolerance with max relative tumour-volume error <= {TUMOUR_TARGET:g} over the reference sets"
            ),
            "moa": {k: best_moa[k] for k in ("rtol", "sims_per_s")}
            | {"tumour_error": best_moa["errors"]["tumour_volume"]}
            if best_moa
            else None,
            "libroadrunner": {k: best_rr[k] for k in ("rtol", "sims_per_s")}
            | {"tumour_error": best_rr["errors"]["tumour_volume"]}
            if best_rr
            else None,
            "ratio_moa_to_libroadrunner": best_moa["sims_per_s"] / best_rr["sims_per_s"]
            if best_moa and best_rr
            else None,
        },
        "at_equal_median_accuracy": {
            "criterion": f"fastest tolerance with median relative tumour-volume error <= {TUMOUR_TARGET:g} (failed "
            "sets allowed; for when one solver never meets the max criterion)",
            "moa": {k: best(main_rows, "median")[k] for k in ("rtol", "sims_per_s")}
            if best(main_rows, "median")
            else None,
            "libroadrunner": {k: best(rows_rr, "median")[k] for k in ("rtol", "sims_per_s", "failed")}
            if best(rows_rr, "median")
            else None,
            "ratio_moa_to_libroadrunner": best(main_rows, "median")["sims_per_s"]
            / best(rows_rr, "median")["sims_per_s"]
            if best(main_rows, "median") and best(rows_rr, "median")
            else None,
        },
        "moa_defaults_within_target": default_moa["errors"]["tumour_volume"]["max"] <= TUMOUR_TARGET,
    }
    result = {
        "benchmark": "benchmarks/throughput.py",
        "command": "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started_utc": started,
        "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_start_end": [load_start, load_average()],
        "problem": {
            "model": "full_model",
            "states": compile_model(model).n_species,
            "arm": ARM,
            "setting": SETTING,
            "days": days,
            "doses": len(regimen.doses),
            "output": "daily",
            "n": n,
            "seed": args.seed,
            "varied_parameters": VARIED,
            "sampling": "Latin hypercube (scipy.stats.qmc), log-uniform where scale == 'log'",
        },
        "reference": {
            "solver": {"radau": "scipy Radau rtol 1e-10 atol 1e-14", "lsoda": "scipy LSODA rtol 1e-11 atol 1e-14"}[
                ref_kind
            ],
            "sets": n_ref,
            "error": "max over time of |x - ref| / max(|ref|, floor), then max and median over sets",
            "floors": {
                "tumour_volume": "volume of 1e6 cells (1e-3 x 1e9 cells)",
                "others": f"{OBS_FLOOR_FRACTION:g} x the trajectory's peak |ref|",
            },
        },
        "machine": machine_info(),
        "one_core": (
            "one process; BLAS threads pinned to 1 (threadpoolctl and OMP/OPENBLAS/MKL env vars); "
            "reference runs excluded"
        ),
        "moa_rodas": rows_moa,
        "libroadrunner": rows_rr,
        "scipy_lsoda": row_lsoda,
        "summary": summary,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))
    print("\nwork-precision (tumour-volume error max / median over the reference sets)")
    print(
        f"{'solver':<22}{'rtol':>8}{'sims/s':>10}   tumour             bsab_central       t_eff              "
        "cd137_signal"
    )
    for r in rows_moa + rows_rr + [row_lsoda]:
        e = r["errors"]
        print(
            f"{r['solver'][:21]:<22}{r['rtol']:>8.0e}{r['sims_per_s']:>10.1f}   {fmt_err(e['tumour_volume'])}  "
            f"{fmt_err(e['bsab_central'])}  {fmt_err(e['t_eff'])}  {fmt_err(e['cd137_signal'])}"
        )
    print("\nsummary:", json.dumps(summary, indent=2))
    print(f"wrote {out_path}")
    return result


if __name__ == "__main__":
    main()
