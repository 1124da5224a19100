"""Helpers shared by tests/test_sweep.py and tests/test_sweep_dask.py: a tiny sweep spec and a
bit-for-bit comparison of two sweep results."""

from __future__ import annotations

import dataclasses

import numpy as np

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
