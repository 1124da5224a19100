"""Bit-identity reference: full-model trajectories of both Rodas4 backends, stored before a refactoring.

``python tests/baselines/trajectory_reference.py --write`` rewrites ``tests/baselines/trajectory_reference.npz``:
the full model (``moa.symbolic.named_models.full_model()``), arm ``nabp_bsab_2x2`` in setting ``hot_tnbc``,
``start="quasi_steady"``, :data:`N_SETS` parameter sets drawn within their sweep bounds with seed :data:`SEED`,
:data:`DAYS` days of daily output, once with the numba Rodas4 and once with ``RodasSolver(backend="numpy")``.
``tests/test_bit_identity.py`` runs the same again and requires every state to be equal bit for bit, so a
change that only moves code (printers, solver layout) is proven not to change a number. Regenerate only
after a deliberate change of the model, the generated code or the method.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

if __package__ in (None, ""):  # run as a script: simulate with the checkout this file sits in
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

__all__ = [
    "REFERENCE_PATH",
    "SEED",
    "N_SETS",
    "DAYS",
    "ARM",
    "SETTING",
    "BACKENDS",
    "drawn_values",
    "trajectories",
    "main",
]

REFERENCE_PATH = pathlib.Path(__file__).resolve().parent / "trajectory_reference.npz"
SEED = 20261130
N_SETS = 3
DAYS = 60.0
ARM, SETTING = "nabp_bsab_2x2", "hot_tnbc"
#: RodasSolver backends compared; "numba" is skipped (not stored) where numba is missing.
BACKENDS = ("numba", "numpy")
#: Parameters drawn (the rest keep the scenario's values): ones that shape the tumour, T-cell and drug dynamics.
DRAWN = (
    "kd_pdl1_bsab",
    "kd_cd137_bsab",
    "cl_bsab",
    "tumour_growth_rate",
    "kill_rate_max",
    "priming_rate_max",
    "exhaustion_rate",
    "nabp_kill_max",
)


def drawn_values(params) -> dict[str, np.ndarray]:
    """:data:`N_SETS` values per parameter of :data:`DRAWN` that ``params`` holds, uniform within its sweep bounds
    (log-uniform for a log-scale parameter), from :data:`SEED`."""
    rng = np.random.default_rng(SEED)
    out = {}
    for name in DRAWN:
        if name not in params.specs:
            continue
        spec = params.specs[name]
        u = rng.uniform(size=N_SETS)
        if spec.scale == "log":
            out[name] = np.exp(np.log(spec.lower) + u * (np.log(spec.upper) - np.log(spec.lower)))
        else:
            out[name] = spec.lower + u * (spec.upper - spec.lower)
    return out


def trajectories(backend: str) -> dict[str, np.ndarray]:
    """States (sample, species, time), status and the output times of one backend's run."""
    import moa
    from moa.symbolic.named_models import full_model
    from moa.scenarios import scenario
    from moa.solvers import RodasSolver

    model = full_model()
    params, regimen = scenario(ARM, SETTING, duration_days=DAYS)
    ds = moa.simulate(
        model,
        params,
        regimen,
        duration_days=DAYS,
        overrides=drawn_values(params),
        solver=RodasSolver(backend=backend),
        on_failure="record",
        start="quasi_steady",
    )
    states = np.stack([ds[name].values for name in model.species_names], axis=1)
    return {"states": states, "status": ds["status"].values, "time": ds["time"].values}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python tests/baselines/trajectory_reference.py", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--write", action="store_true", help=f"rewrite {REFERENCE_PATH.name}")
    args = ap.parse_args(argv)
    arrays = {}
    for backend in BACKENDS:
        for key, value in trajectories(backend).items():
            arrays[f"{backend}_{key}"] = value
    if args.write:
        np.savez_compressed(REFERENCE_PATH, **arrays)
        print(f"wrote {REFERENCE_PATH} ({REFERENCE_PATH.stat().st_size} bytes)")
    else:
        for k, v in arrays.items():
            print(k, v.shape, v.dtype)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
