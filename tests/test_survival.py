"""Trial statistics (moa.survival) against hand-computed tables, closed forms, scipy and lifelines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from moa import survival

# A small data set with ties and censoring; the Kaplan-Meier table worked by hand:
#   day  at risk  events  censored  S(t)
#    1      8       1        0      7/8             = 0.875
#    2      7       1        1      0.875 * 6/7     = 0.75
#    3      5       1        0      0.75 * 4/5      = 0.6
#    4      4       0        1      0.6
#    5      3       1        0      0.6 * 2/3       = 0.4
#    6      2       0        1      0.4
#    7      1       1        0      0
DAYS = np.array([1, 2, 2, 3, 4, 5, 6, 7], float)
EVENT = np.array([1, 1, 0, 1, 0, 1, 0, 1], bool)


def exponential_trial(n: int, hazard_ratio: float, seed: int):
    """Two arms with exponential times (control median ~ 100 days x ln 2), uniform censoring."""
    rng = np.random.default_rng(seed)
    group = rng.random(n) < 0.5
    event_day = rng.exponential(100.0 / np.where(group, hazard_ratio, 1.0))
    censor_day = rng.uniform(50.0, 300.0, n)
    return np.minimum(event_day, censor_day), event_day <= censor_day, group


def test_kaplan_meier_matches_the_hand_computed_table():
    km = survival.kaplan_meier(DAYS, EVENT)
    np.testing.assert_array_equal(km.times, [1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_allclose(km.survival, [0.875, 0.75, 0.6, 0.6, 0.4, 0.4, 0.0], rtol=1e-12)
    np.testing.assert_array_equal(km.n_at_risk, [8, 7, 5, 4, 3, 2, 1])
    np.testing.assert_array_equal(km.events, [1, 1, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(km.censored, [0, 1, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(km.at([0, 1, 1.5, 4.9, 5, 10]), [1, 0.875, 0.875, 0.6, 0.4, 0], rtol=1e-12)
    np.testing.assert_array_equal(km.at_risk([0, 1, 2.5, 7, 8]), [8, 8, 5, 1, 0])
    assert np.all(km.low <= km.survival) and np.all(km.survival <= km.high)
    median, low, high = survival.median_survival(DAYS, EVENT)
    assert median == 5.0  # first day S <= 0.5
    assert low <= median and (math.isnan(high) or high >= median)


def test_kaplan_meier_ci_is_greenwood_on_the_log_minus_log_scale():
    """Day 3 by hand: Greenwood sum 1/(8*7) + 1/(7*6) + 1/(5*4); var of log(-log S) = sum / log(S)^2."""
    km = survival.kaplan_meier(DAYS, EVENT)
    s = 0.6
    greenwood = 1 / (8 * 7) + 1 / (7 * 6) + 1 / (5 * 4)
    half_width = stats.norm.ppf(0.975) * math.sqrt(greenwood) / abs(math.log(s))
    low, high = s ** math.exp(half_width), s ** math.exp(-half_width)
    assert km.low[2] == pytest.approx(low, rel=1e-9) and km.high[2] == pytest.approx(high, rel=1e-9)


def test_kaplan_meier_and_median_match_lifelines_on_the_waltons_data():
    lifelines = pytest.importorskip("lifelines")
    from lifelines.datasets import load_waltons
    from lifelines.utils import median_survival_times

    data = load_waltons()
    days, event = data["T"].to_numpy(float), data["E"].to_numpy().astype(bool)
    km = survival.kaplan_meier(days, event)
    fitter = lifelines.KaplanMeierFitter().fit(days, event)
    np.testing.assert_allclose(km.survival, fitter.survival_function_.loc[km.times].to_numpy()[:, 0], atol=1e-12)
    band = fitter.confidence_interval_.loc[km.times].to_numpy()
    np.testing.assert_allclose(km.low, band[:, 0], atol=1e-9)
    np.testing.assert_allclose(km.high, band[:, 1], atol=1e-9)
    np.testing.assert_array_equal(km.n_at_risk, fitter.event_table.loc[km.times, "at_risk"].to_numpy())
    median, low, high = survival.median_survival(days, event)
    assert median == fitter.median_survival_time_ == 56.0
    assert (low, high) == tuple(median_survival_times(fitter.confidence_interval_).to_numpy()[0]) == (53.0, 58.0)


def test_median_not_reached_is_nan():
    median, _, high = survival.median_survival(np.array([10.0, 20.0, 30.0, 40.0]), np.array([1, 0, 0, 0], bool))
    assert math.isnan(median) and math.isnan(high)
    none = survival.kaplan_meier(np.array([5.0, 9.0]), np.zeros(2, bool))
    np.testing.assert_array_equal(none.survival, [1.0, 1.0])


def test_censoring_at_the_end_of_follow_up():
    day, event = survival.censor(
        np.array([100.0, 400.0, np.inf, 365.0, 30.0]), np.array([True, True, False, True, False]), 365.0
    )
    np.testing.assert_array_equal(day, [100.0, 365.0, 365.0, 365.0, 30.0])
    np.testing.assert_array_equal(event, [True, False, False, True, False])  # an event on the last day counts
    per_patient, _ = survival.censor(np.array([100.0, 100.0]), np.array([True, True]), np.array([50.0, 200.0]))
    np.testing.assert_array_equal(per_patient, [50.0, 100.0])
    # censoring at follow-up changes the curve only after it
    days, events, _ = exponential_trial(300, 1.0, seed=3)
    cut_day, cut_event = survival.censor(days, events, 120.0)
    np.testing.assert_allclose(
        survival.kaplan_meier(cut_day, cut_event).at([30, 60, 119.9]),
        survival.kaplan_meier(days, events).at([30, 60, 119.9]),
        rtol=1e-12,
    )


def breslow_log_likelihood(beta, day, event, group):
    """Cox partial log-likelihood with Breslow ties, written out directly (one loop per event time)."""
    total = 0.0
    for t in np.unique(day[event]):
        dying = event & (day == t)
        at_risk = day >= t
        total += beta * np.sum(group[dying]) - np.sum(dying) * math.log(np.sum(np.exp(beta * group[at_risk])))
    return total


def test_hazard_ratio_maximises_the_breslow_likelihood_with_ties():
    rng = np.random.default_rng(7)
    group = rng.random(120) < 0.5
    day = np.ceil(rng.exponential(np.where(group, 60.0, 40.0)) / 14.0) * 14.0  # two-weekly: many ties
    event = rng.random(120) < 0.8
    hr, low, high = survival.hazard_ratio(day, event, group)
    best = optimize.minimize_scalar(
        lambda b: -breslow_log_likelihood(b, day, event, group.astype(float)),
        bounds=(-3, 3),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert math.log(hr) == pytest.approx(best.x, abs=1e-6)
    # Wald CI from the curvature of the same likelihood (numerical second derivative)
    h = 1e-4
    curvature = (
        -(
            breslow_log_likelihood(best.x + h, day, event, group.astype(float))
            - 2 * breslow_log_likelihood(best.x, day, event, group.astype(float))
            + breslow_log_likelihood(best.x - h, day, event, group.astype(float))
        )
        / h**2
    )
    assert math.log(high) - math.log(hr) == pytest.approx(1.959963985 / math.sqrt(curvature), rel=1e-4)
    assert low < hr < high


def test_hazard_ratio_recovers_a_known_ratio_and_matches_lifelines():
    day, event, group = exponential_trial(2000, 0.6, seed=11)
    hr, low, high = survival.hazard_ratio(day, event, group)
    assert low < 0.6 < high and high / low < 1.5
    lifelines = pytest.importorskip("lifelines")
    import pandas as pd

    frame = pd.DataFrame({"day": day, "event": event, "group": group.astype(float)})
    cox = lifelines.CoxPHFitter().fit(frame, "day", "event")  # Efron ties = Breslow here: no tied times
    assert hr == pytest.approx(math.exp(cox.params_["group"]), rel=1e-6)
    np.testing.assert_allclose([low, high], np.exp(cox.confidence_intervals_.to_numpy()[0]), rtol=1e-5)


def test_hazard_ratio_direction_and_the_non_estimable_case():
    day, event, group = exponential_trial(600, 2.0, seed=5)
    assert survival.hazard_ratio(day, event, group)[0] > 1.0
    assert survival.hazard_ratio(day, event, ~group)[0] < 1.0
    no_events_in_group = event & ~group
    assert all(math.isnan(x) for x in survival.hazard_ratio(day, no_events_in_group, group))


def test_logrank_matches_the_hand_formula_and_scipy():
    day, event, group = exponential_trial(400, 0.6, seed=2)
    statistic, p_value = survival.logrank(day[group], event[group], day[~group], event[~group])
    # (O - E) / sqrt(V) summed over event times, for the first group
    observed = expected = variance = 0.0
    for t in np.unique(day[event]):
        at_risk, at_risk_a = np.sum(day >= t), np.sum((day >= t) & group)
        deaths, deaths_a = np.sum(event & (day == t)), np.sum(event & (day == t) & group)
        observed += deaths_a
        expected += deaths * at_risk_a / at_risk
        if at_risk > 1:
            variance += deaths * (at_risk_a / at_risk) * (1 - at_risk_a / at_risk) * (at_risk - deaths) / (at_risk - 1)
    z = (observed - expected) / math.sqrt(variance)
    assert statistic == pytest.approx(z, rel=1e-9)
    assert p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert statistic < 0 and p_value < 0.01  # the group with HR 0.6 has fewer events than expected
    reference = stats.logrank(
        stats.CensoredData(uncensored=day[group & event], right=day[group & ~event]),
        stats.CensoredData(uncensored=day[~group & event], right=day[~group & ~event]),
    )
    assert p_value == pytest.approx(reference.pvalue, rel=1e-12)


def test_proportion_ci_is_clopper_pearson():
    p, low, high = survival.proportion_ci(53, 100)
    assert p == 0.53
    # closed form: beta quantiles
    assert low == pytest.approx(stats.beta.ppf(0.025, 53, 48), rel=1e-9)
    assert high == pytest.approx(stats.beta.ppf(0.975, 54, 47), rel=1e-9)
    import xarray as xr

    responders = (xr.DataArray(np.array(["PR"] * 53 + ["SD"] * 47)) == "PR").sum()  # a count as xarray gives it
    assert survival.proportion_ci(responders, 100) == (p, low, high)
    assert survival.proportion_ci(0, 20)[1] == 0.0 and survival.proportion_ci(20, 20)[2] == 1.0
    ninety = survival.proportion_ci(53, 100, confidence=0.90)
    assert low < ninety[1] < ninety[2] < high


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: survival.kaplan_meier(DAYS, EVENT[:-1]), r"event: shape \(7,\): must match"),
        (lambda: survival.kaplan_meier(-DAYS, EVENT), r"time_days: -1.0 at index 0"),
        (lambda: survival.kaplan_meier(np.append(DAYS[:-1], np.inf), EVENT), "time_days: inf"),
        (lambda: survival.kaplan_meier(DAYS, EVENT.astype(int)), "event: dtype int64: must be a bool array"),
        (lambda: survival.kaplan_meier(DAYS.reshape(2, 4), EVENT.reshape(2, 4)), r"time_days: shape \(2, 4\)"),
        (lambda: survival.median_survival(DAYS, EVENT, confidence=95), "confidence=95"),
        (lambda: survival.logrank(DAYS, EVENT, DAYS, EVENT.astype(float)), "event_b: dtype float64"),
        (lambda: survival.logrank(DAYS[:3], EVENT, DAYS, EVENT), r"event_a: shape \(8,\)"),
        (lambda: survival.hazard_ratio(DAYS, EVENT, np.ones(8)), "group: dtype float64"),
        (lambda: survival.hazard_ratio(DAYS, EVENT, np.ones(8, bool)), "group: all True"),
        (lambda: survival.proportion_ci(5, 3), "k=5, n=3"),
        (lambda: survival.proportion_ci(0.5, 3), "k=0.5: must be an integer"),
        (lambda: survival.proportion_ci(True, 3), "k=True: must be an integer"),
        (lambda: survival.censor(np.array([1.0, np.nan]), np.array([True, True]), 10.0), "time_days: nan"),
        (lambda: survival.censor(DAYS, EVENT, np.ones(3)), r"follow_up_days: shape \(3,\)"),
        (lambda: survival.censor(DAYS, EVENT, -1.0), "follow_up_days: must be finite and >= 0"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
