"""Helpers shared by tests/test_sweep.py, tests/test_sweep_dask.py and tests/test_sweep_failures.py: a tiny
sweep spec, a bit-for-bit comparison of two sweep results, and a solver that starves chosen points."""

from __future__ import annotations

import dataclasses

import numpy as np

from moa.solvers import RodasSolver
from moa.solvers.base import SegmentResult
from moa.solvers.rodas4 import integrate_batch
from moa.symbolic.named_models import full_model
from moa.sweep import SweepSpec
from moa.sweep.spec import default_distribution

DAYS = 60.0


def tiny_spec(**changes) -> SweepSpec:
    """16 points of one arm in one setting, 60 days, chunks of 4: a second or two."""
    base = SweepSpec(
        name="tiny",
        arms=("bsab_2x2",),
        settings=("cold",),
        parameters=(default_distribution("tumour_growth_rate"), default_distribution("kill_rate_max")),
        sampling="lhs",
        n=16,
        seed=3,
        duration_days=DAYS,
        observables=("tumour_diameter",),
        days=(30.0, 60.0),
        summaries=("best_change_pct", "final_diameter_mm"),
        chunk_size=4,
        solver="rodas",
    )
    return dataclasses.replace(base, **changes)


def same(a, b) -> bool:
    """Bit-identical outputs of two sweep results (NaN where NaN)."""
    for name in ("best_change_pct", "final_diameter_mm", "tumour_diameter", "status", "tumour_growth_rate"):
        if not np.array_equal(a[name].values, b[name].values, equal_nan=True):
            return False
    return bool(np.array_equal(a["message"].values.astype(str), b["message"].values.astype(str)))


@dataclasses.dataclass
class StarvedPoints:
    """Batched Rodas4, except that trajectories whose ``parameter`` equals one of ``values`` (to 1e-12
    relative) get only ``max_steps`` step attempts per segment, so they honestly run out of steps."""

    parameter: str
    values: tuple
    max_steps: int = 3
    inner: RodasSolver = dataclasses.field(default_factory=RodasSolver)
    name = "moa-rodas4 (some points starved of steps)"

    def integrate(self, compiled, t0, t1, Y0, P, t_out, rtol, atol) -> SegmentResult:
        res = self.inner.integrate(compiled, t0, t1, Y0, P, t_out, rtol, atol)
        row = full_model().parameter_names.index(self.parameter)
        hit = np.isclose(P[row][:, None], np.asarray(self.values, dtype=float)[None, :], rtol=1e-12, atol=0.0)
        starved = np.nonzero(hit.any(axis=1))[0]
        if starved.size and t1 > t0:
            bad = integrate_batch(
                compiled.rhs_T,
                compiled.jac_values_T,
                compiled.jac_rows,
                compiled.jac_cols,
                t0,
                t1,
                Y0[:, starved],
                P[:, starved],
                np.asarray(t_out, dtype=float),
                rtol=rtol,
                atol=atol,
                max_steps=self.max_steps,
            )
            res.y[:, :, starved], res.y_final[:, starved] = bad.y, bad.y_final
            res.status[starved] = bad.status
            for j, k in enumerate(starved):
                res.message[k] = bad.message[j]
        return res
