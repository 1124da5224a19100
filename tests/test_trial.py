"""Virtual trial (moa.trial): per-sample dose stop, population sampling, scan schedule, calibration."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from moa.assemble import full_model
from moa.scenarios import scenario
from moa.simulate import simulate


def _two_patients(arm: str, duration_days: float):
    params, regimen = scenario(arm, "hot_tnbc", duration_days)
    return params.with_values({"body_weight": np.array([70.0, 70.0])}), regimen


def test_dose_stop_per_sample_in_a_batched_run():
    """Sample 0 stops at day 30 (after the doses of day 0 and 21), sample 1 keeps its Q3W doses: identical
    before day 42, then sample 0's antibody only decays while sample 1's jumps with the day-42 dose."""
    params, regimen = _two_patients("apdl1", 63.0)
    ds = simulate(full_model(), params, regimen, duration_days=63.0, solver="rodas", start="quasi_steady",
                  keep=["apdl1_central"], dose_stop_days=np.array([30.0, np.inf]))
    drug = ds["apdl1_central"]
    before = drug.sel(time=slice(0, 41))
    np.testing.assert_allclose(before.isel(sample=0), before.isel(sample=1), rtol=1e-9)
    stopped, dosed = drug.isel(sample=0), drug.isel(sample=1)
    assert float(dosed.sel(time=42.0)) > 1.5 * float(dosed.sel(time=41.0))  # the day-42 dose given
    assert float(stopped.sel(time=42.0)) < float(stopped.sel(time=41.0))  # not given: only decay
    assert np.all(np.diff(stopped.sel(time=slice(30, 63)).values) < 0)
    assert "30.0" in ds.attrs["dose_stop_days"] and "inf" in ds.attrs["dose_stop_days"]


def test_dose_stop_at_day_zero_means_untreated_and_bad_stops_are_refused():
    params, regimen = _two_patients("apdl1", 21.0)
    ds = simulate(full_model(), params, regimen, duration_days=21.0, solver="rodas", start="quasi_steady",
                  keep=["apdl1_central"], dose_stop_days=[0.0, np.inf])
    assert float(ds["apdl1_central"].isel(sample=0).max()) == 0.0
    assert float(ds["apdl1_central"].isel(sample=1).max()) > 0.0
    with pytest.raises(ValueError, match=r"dose_stop_days\[1\]=nan"):
        simulate(full_model(), params, regimen, duration_days=21.0, dose_stop_days=[1.0, np.nan])
    with pytest.raises(ValueError, match=r"dose_stop_days: shape \(3,\)"):
        simulate(full_model(), params, regimen, duration_days=21.0, dose_stop_days=[1.0, 2.0, 3.0])
