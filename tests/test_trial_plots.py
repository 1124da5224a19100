"""Trial figures (moa.report.trial_plots) render with units on their axes and a numbers-at-risk table that is right."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from moa.report import plots, trial_plots  # noqa: E402
from moa.analysis import recist_lesions  # noqa: E402
from moa.survival import DAYS_PER_MONTH, censor, kaplan_meier  # noqa: E402


def small_trial(n: int = 40, seed: int = 0):
    """Lesion diameters on an 8-weekly schedule, RECIST on them, and PFS censored at one year."""
    rng = np.random.default_rng(seed)
    scan_days = np.arange(0, 7) * 56.0
    slopes = rng.normal(-0.002, 0.004, (n, 1, 3))
    diameters = rng.uniform(10, 40, (n, 1, 3)) * np.exp(slopes * scan_days[None, :, None])
    diameters[:, :, 2][rng.random(n) < 0.5] = np.nan  # half the patients have two lesions
    ds = recist_lesions(diameters, scan_days)
    pfs_day, pfs_event = censor(
        np.where(ds["progressed"], ds["progression_day"], np.inf),
        ds["progressed"].values,
        ds["last_assessment_day"].values,
    )
    return scan_days, ds, pfs_day, pfs_event


def save(fig, tmp_path, stem):
    paths = plots.save_figure(fig, tmp_path, stem, f"test figure {stem}")
    assert all(p.stat().st_size > 0 for p in paths.values())


def test_waterfall_and_spider_render_with_percent_and_month_axes(tmp_path):
    scan_days, ds, _, _ = small_trial()
    with plots.style():
        fig, ax = plots.subplots()
        trial_plots.plot_waterfall(ax, ds["best_change_pct"].values, ds["best_overall_response"].values)
        assert "(%)" in ax.get_ylabel()
        heights = [bar.get_height() for bar in ax.patches]
        assert heights == sorted(heights, reverse=True) and len(heights) == 40  # ranked, one bar per patient
        save(fig, tmp_path, "waterfall")
        fig, ax = plots.subplots()
        trial_plots.plot_spider(ax, scan_days, ds["change_pct"].values, ds["best_overall_response"].values)
        assert "(months)" in ax.get_xlabel() and "(%)" in ax.get_ylabel()
        assert max(np.max(line.get_xdata()) for line in ax.lines if len(line.get_xdata()) > 1) == pytest.approx(
            scan_days[-1] / DAYS_PER_MONTH
        )
        plt.close(fig)
        fig, ax = plots.subplots()  # lines end at progression
        trial_plots.plot_spider(
            ax,
            scan_days,
            ds["change_pct"].values,
            ds["best_overall_response"].values,
            progression_day=ds["progression_day"].values,
        )
        progressed = np.isfinite(ds["progression_day"].values)
        assert progressed.any()
        ends = [np.max(line.get_xdata()) for line in ax.lines if line.get_marker() == "o"]
        np.testing.assert_allclose(
            np.array(ends)[progressed], ds["progression_day"].values[progressed] / DAYS_PER_MONTH
        )
        save(fig, tmp_path, "spider")


def test_km_plot_has_a_numbers_at_risk_table_that_matches_the_curves(tmp_path):
    _, _, pfs_day, pfs_event = small_trial()
    rng = np.random.default_rng(4)
    other_day = rng.exponential(200.0, 30)
    other_day, other_event = censor(other_day, np.ones(30, bool), 300.0)
    curves = {"nabp": kaplan_meier(pfs_day, pfs_event), "nabp_apdl1": kaplan_meier(other_day, other_event)}
    days = np.array([0.0, 91.3125, 182.625, 273.9375])
    with plots.style():
        fig, ax = plots.subplots()
        trial_plots.plot_km(ax, curves, at_risk_days=days)
        assert "(months)" in ax.get_xlabel() and "(%)" in ax.get_ylabel()
        np.testing.assert_allclose(ax.get_xticks(), [0, 3, 6, 9])
        table = {t.get_gid(): t.get_text() for t in ax.texts if (t.get_gid() or "").startswith(trial_plots.AT_RISK_GID)}
        assert len(table) == 2 * len(days)
        for label, km in curves.items():
            expected = [str(n) for n in km.at_risk(days)]
            assert [table[f"{trial_plots.AT_RISK_GID}{label}:{d:g}"] for d in days] == expected
        assert table[f"{trial_plots.AT_RISK_GID}nabp_apdl1:0"] == "30"
        save(fig, tmp_path, "km")
        # the table lies below the axes in the saved figure
        fig.canvas.draw()
        axes_bottom = ax.get_window_extent().y0
        assert all(
            t.get_window_extent().y1 < axes_bottom for t in ax.texts if (t.get_gid() or "").startswith("at-risk")
        )
        plt.close(fig)


def test_forest_and_calibration_render(tmp_path):
    with plots.style():
        fig, ax = plots.subplots()
        trial_plots.plot_forest(
            ax,
            [
                ("ITT", 0.80, 0.69, 0.92, 902),
                ("PD-L1+", 0.62, 0.49, 0.78, 369),
                ("PD-L1-", float("nan"), float("nan"), float("nan"), 12),
            ],
        )
        assert ax.get_xscale() == "log" and "hazard ratio" in ax.get_xlabel()
        assert [t.get_text() for t in ax.get_yticklabels()] == ["ITT (n=902)", "PD-L1+ (n=369)", "PD-L1- (n=12)"]
        assert any(t.get_text() == "not estimable" for t in ax.texts)
        save(fig, tmp_path, "forest")
        fig, ax = plots.subplots()
        trial_plots.plot_calibration(
            ax,
            [
                ("ORR PD-L1+ (%)", 50.0, 44.0, 56.0, 53.0, 45.0, 61.0),  # inside
                ("median PFS ITT (months)", 9.0, 8.0, 10.0, 7.2, 5.6, 7.5),  # outside
                ("HR PD-L1+", 0.65, float("nan"), float("nan"), 0.62, 0.49, 0.78),
            ],
        )
        gids = [line.get_gid() for line in ax.lines if (line.get_gid() or "").startswith("calibration")]
        assert gids == ["calibration-inside", "calibration-outside", "calibration-inside"]
        assert "dimensionless" in ax.get_xlabel()
        save(fig, tmp_path, "calibration")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda ax: trial_plots.plot_waterfall(ax, [1.0, 2.0], ["PR"]), r"best_overall_response: shape \(1,\)"),
        (lambda ax: trial_plots.plot_waterfall(ax, [1.0], ["XX"]), r"best_overall_response: \['XX'\]"),
        (lambda ax: trial_plots.plot_spider(ax, [0.0, 56.0], np.zeros((2, 3))), r"scan_days: shape \(2,\)"),
        (
            lambda ax: trial_plots.plot_km(ax, {"a": kaplan_meier([1.0], np.array([True]))}, unit="years"),
            "unit='years'",
        ),
        (lambda ax: trial_plots.plot_km(ax, {"a": [1, 2]}), r"curves\['a'\]: list"),
        (lambda ax: trial_plots.plot_forest(ax, [("ITT", 0.8, 0.7)]), "needs 5 entries"),
        (lambda ax: trial_plots.plot_calibration(ax, [("CR", 1, 0, 2, 0.0, 0, 1)]), "trial estimate <= 0"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, match):
    fig, ax = plt.subplots()
    try:
        with pytest.raises(ValueError, match=match):
            call(ax)
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("xlim", "expected"),
    [
        ((0.005, 8.0), [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]),  # a CR rate 50x below the trial's: one or two per decade
        ((0.25, 6.0), [0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0]),
        ((0.6, 1.6), [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5]),  # hazard ratios near 1
    ],
)
def test_log_ratio_axis_ticks_get_sparser_as_the_range_widens(xlim, expected):
    """Neighbouring tick labels must not run into each other: wide ranges get ticks a factor of about 3 apart."""
    fig, ax = plt.subplots()
    ax.set_xlim(*xlim)
    trial_plots._plain_log_x(ax)
    np.testing.assert_allclose(ax.get_xticks(), expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{t:g}" for t in expected]
    plt.close(fig)
