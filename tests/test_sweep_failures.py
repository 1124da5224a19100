"""A sweep with a point that fails finishes, marks that point as failed with its reason, and still
draws the rest; the sweeps and chemotherapy experiments write figures, data and captions."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from moa import experiment_runner  # noqa: E402
from sweep_helpers import StarvedPoints  # noqa: E402
from moa.solvers.base import STATUS  # noqa: E402


def _experiment(name: str):
    return experiment_runner.load(experiment_runner.find([name])[0])


sweeps = _experiment("sweeps")
chemo = _experiment("chemo_combination")

PARAMETER = "infiltration_rate"
N_POINTS = 8
DAYS = 56.0


@pytest.fixture(scope="module")
def sweep_pair():
    """The same 8-point sweep (cold setting, both arms, 56 days) with and without one starved point."""
    spec = sweeps.scenario("bsab_2x2", "cold")[0].specs[PARAMETER]
    values = sweeps.sweep_values(spec, N_POINTS)
    bad_index = 3
    kwargs = dict(settings=("cold",), parameters=(PARAMETER,), n_points=N_POINTS, duration_days=DAYS, benefit_day=DAYS)
    clean, _ = sweeps.run_sweeps(solver="rodas", **kwargs)
    broken, _ = sweeps.run_sweeps(solver=StarvedPoints(PARAMETER, (float(values[bad_index]),)), **kwargs)
    return clean, broken, bad_index


def test_failed_point_is_recorded_with_its_reason(sweep_pair):
    _, broken, bad = sweep_pair
    where = dict(setting="cold", parameter=PARAMETER)
    status = broken["status"].sel(**where).transpose("arm", "step").values
    message = broken["message"].sel(**where).transpose("arm", "step").values
    assert np.all(status[:, bad] == 3), status
    assert all("max_steps=3" in str(m) for m in message[:, bad])
    assert bool(broken["failed"].sel(**where, step=bad))
    assert np.isnan(float(broken["benefit"].sel(**where, step=bad)))
    others = np.delete(np.arange(N_POINTS), bad)
    assert np.all(status[:, others] == 0) and all(str(m) == "" for m in message[:, others].ravel())


def test_other_points_are_finite_and_equal_to_an_unperturbed_run(sweep_pair):
    clean, broken, bad = sweep_pair
    others = [i for i in range(N_POINTS) if i != bad]
    for name in ("tumour_cells", "tumour_diameter", "benefit", "best_percent_change"):
        a, b = clean[name].sel(step=others).values, broken[name].sel(step=others).values
        assert np.all(np.isfinite(b)), name
        np.testing.assert_allclose(b, a, rtol=1e-12, err_msg=name)
    assert np.all(np.isfinite(clean["benefit"].values))


def test_summary_counts_the_failure_and_its_reason(sweep_pair):
    _, broken, _ = sweep_pair
    summary = sweeps.summarise(broken, None)
    assert summary["failed_points"] == 1
    assert summary["failure_reasons"] == {STATUS[3]: 1}
    assert "max_steps=3" in summary["failure_examples"][0]
    entry = summary["sweeps"]["cold"][PARAMETER]
    assert entry["low"]["benefit_log10"] is not None and entry["high"]["benefit_log10"] is not None


def test_figure_draws_the_rest_and_marks_the_failed_point(sweep_pair, tmp_path):
    _, broken, bad = sweep_pair
    png = sweeps.plot_sweeps(broken, tmp_path)
    assert png.stat().st_size > 10_000
    svg = (tmp_path / "sweeps_benefit.svg").read_text()
    assert f"failed: {STATUS[3]}" in svg  # the legend entry of the grey cross
    caption = (tmp_path / "sweeps_benefit.caption.md").read_text()
    assert "1 here" in caption and "settings.toml" in caption


def test_sign_changes_interpolate_in_log_space():
    x = np.array([1.0, 10.0, 100.0, 1000.0])
    assert sweeps.sign_changes(x, np.array([-1.0, 1.0, 2.0, np.nan]), log_scale=True) == pytest.approx([10**0.5])
    assert sweeps.sign_changes(x, np.array([1.0, 2.0, 3.0, 4.0]), log_scale=True) == []
    assert sweeps.sign_changes(np.array([0.0, 1.0]), np.array([1.0, -3.0]), log_scale=False) == pytest.approx([0.25])


def test_a_sign_change_must_pass_the_margin_on_both_sides():
    """Noise around zero (both arms gone, or neither acting) and a dip to -0.04 log10 after +0.8 are no change
    of sign: each side must pass the experiment's 0.1 log10; a real change is located at its zero crossing."""
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    assert sweeps.MARGIN_LOG10 == 0.1
    # the full run's antigenicity sweep: -0.0 (about -1e-5) at 0, then a benefit: reported at 1.7e-10 before
    assert sweeps.sign_changes(x, np.array([-1e-5, 0.2, 0.3, 0.33, 0.33]), log_scale=False) == []
    assert sweeps.sign_changes(x, np.array([0.84, 1.4, 0.6, 0.05, -0.04]), log_scale=False) == []
    # through the band: located where it crosses zero (between 0.05 at 0.5 and -0.05 at 0.75), not at its edges
    assert sweeps.sign_changes(x, np.array([0.5, 0.3, 0.05, -0.05, -0.3]), log_scale=False) == pytest.approx([0.625])
    assert sweeps.sign_changes(x, np.array([-0.5, 0.3, -0.5, np.nan, 0.3]), log_scale=False) == pytest.approx(
        [0.15625, 0.34375, 0.8125]  # NaN skipped: the last crossing is between 0.5 and 1.0
    )


def test_sweeps_main_writes_figures_data_and_captions(tmp_path):
    summary = sweeps.main(tmp_path, quick=True, n_points=3, map_points=3, duration_days=28.0, settings=("cold",))
    json.dumps(summary)
    for stem in ("sweeps_benefit", "sweeps_best_response", "benefit_map"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 10_000
        assert "Provenance" in (tmp_path / f"{stem}.caption.md").read_text()
    import xarray as xr

    with xr.open_dataset(tmp_path / "sweeps.nc") as ds:
        assert dict(ds["benefit"].sizes) == {"setting": 1, "parameter": len(sweeps.SWEPT), "step": 3}
        assert ds.sizes["time"] == 29
    with xr.open_dataset(tmp_path / "benefit_map.nc") as grid:
        assert dict(grid["benefit"].sizes) == {a: 3 for a in sweeps.MAP_AXES}
    assert summary["map"]["shape"] == [3, 3] and summary["failed_points"] == 0
    assert set(summary["sweeps"]["cold"]) == set(sweeps.SWEPT)


def test_chemo_main_writes_figures_data_and_captions(tmp_path):
    summary = chemo.main(tmp_path, quick=True, duration_days=35.0, settings=("cold",))
    json.dumps(summary)
    for stem in chemo.FIGURES:
        assert (tmp_path / f"{stem}.png").stat().st_size > 10_000
        assert "Bliss" in (tmp_path / f"{stem}.caption.md").read_text() or stem != "chemo_bliss"
    import xarray as xr

    with xr.open_dataset(tmp_path / "chemo_combination.nc") as ds:
        assert dict(ds["tumour_diameter"].sizes) == {"arm": len(chemo.ARMS), "setting": 1, "time": 36}
        assert set(ds["bliss_excess"].dims) == {"combination", "setting", "day"}
    assert set(summary["bliss_excess"]["cold"]) == set(chemo.COMBINATIONS)
