"""Compile, in side processes, what the later steps of ``benchmarks/gpu_device.sh`` need, while its first step runs.

Usage (what ``gpu_device.sh`` does; each prints one line with its seconds)::

    python benchmarks/gpu_warm.py generate [--drugs bsab] [--start]  # sympy: kernel modules written, nothing compiled
    python benchmarks/gpu_warm.py cuda [--drugs bsab]    # the model's CUDA kernel (MOA_CUDA_MAX_REGISTERS applies)
    python benchmarks/gpu_warm.py cpu [--drugs bsab]     # the model's numba CPU kernels
    python benchmarks/gpu_warm.py start                  # the quasi-steady start's held system, CUDA and numba

Why: a device machine is lent for minutes, and on its first (2026-11-30) run one compile of the full model's
CUDA kernel took 161 s; the device script then compiles the numba CPU kernels, the held system of the
quasi-steady start twice (CUDA and numba: about 2 minutes of numba on this 2-core machine) and any
register-cap or reduced-model variant, one after another on one core of a 16-core machine. Each compile is
single-threaded CPU work that numba and numba-cuda keep in their on-disk caches (``MOA_CACHE_DIR``), so side
processes can do them at the same time and the steps that follow load them.

``generate`` runs first and alone: it writes the generated kernel modules (sympy's part) so that the side
processes find the same files and none is written twice (numba keys its cache on the file's time stamp).
``cuda`` and ``start`` compile by a first launch on two parameter sets over one day, as the steps' own
untimed warm-ups do; nothing they compute is kept.
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

import throughput as tp  # noqa: E402  (pins BLAS to one thread before numpy loads)
import numpy as np  # noqa: E402

import moa  # noqa: E402
from moa.codegen import compile_model  # noqa: E402
from moa.errors import DoseWarning  # noqa: E402
from moa.scenarios import scenario  # noqa: E402
from moa.solvers import RodasSolver  # noqa: E402
from moa.solvers.rodas4 import numba_kernels  # noqa: E402
from moa.steady_state import held_species, quasi_steady_state  # noqa: E402
from moa.symbolic.named_models import full_model  # noqa: E402

WHAT = ("generate", "cuda", "cpu", "start")


def held_rows(compiled) -> tuple[int, ...]:
    """The states the quasi-steady start holds, as it chooses them (``steady_state.held_species``)."""
    return tuple(compiled.species_names.index(s) for s in held_species(compiled))


def two_sets(model):
    """The throughput problem's first two parameter sets (``throughput.draw_parameters``) and its regimen."""
    params, regimen = scenario(tp.ARM, tp.SETTING, duration_days=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseWarning)
        return params.with_values(tp.draw_parameters(params, 2, 20241)), regimen


def generate(model, start: bool) -> None:
    """Write the kernel modules of ``model`` (and of its held system with ``start``): sympy's work only."""
    from moa.solvers.rodas4 import cuda

    compiled = compile_model(model)
    numba_kernels.kernels_for_model(compiled)
    cuda.kernels_for_model(compiled)
    if start:
        numba_kernels.kernels_for_model(compiled, held=held_rows(compiled))
        cuda.kernels_for_model(compiled, held=held_rows(compiled))


def first_launch(model, backend: str) -> None:
    """One day of two sets through ``moa.simulate`` on ``backend`` (compiles its kernel at the first call)."""
    params, regimen = two_sets(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseWarning)
        moa.simulate(
            model,
            params,
            regimen,
            times=np.array([0.0, 1.0]),
            solver=RodasSolver(backend=backend),
            start="parameters",
            on_failure="record",
        )


def start_kernels(model) -> None:
    """The quasi-steady start of two sets on the GPU and with numba (compiles the held system for both)."""
    params, _ = two_sets(model)
    P = np.vstack([params.matrix(model.parameter_names), np.zeros((len(model.inputs), 2))])
    with np.errstate(all="ignore"):
        for backend in ("cuda", "numba"):
            quasi_steady_state(model, P, backend=backend)


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=WHAT)
    ap.add_argument("--drugs", nargs="+", default=None, help="full_model(drugs=...) (e.g. bsab: the reduced model)")
    ap.add_argument("--start", action="store_true", help="generate: also the held system of the quasi-steady start")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    model = full_model(tuple(args.drugs) if args.drugs else None)
    if args.what == "generate":
        generate(model, args.start)
    elif args.what == "cuda":
        first_launch(model, "cuda")
    elif args.what == "cpu":
        first_launch(model, "numba")
    else:
        start_kernels(model)
    seconds = time.perf_counter() - t
    print(f"gpu_warm {args.what} ({model.name}): {seconds:.1f} s", flush=True)
    return seconds


if __name__ == "__main__":
    main()
