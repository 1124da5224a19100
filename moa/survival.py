"""Trial readouts on times to an event: Kaplan-Meier, median with CI, log-rank, Cox hazard ratio, ORR CI.

Times are in days throughout (months = days / :data:`DAYS_PER_MONTH` only for display and for
comparing with published trial numbers). ``event`` is a bool array: True where the event (e.g.
progression) was seen at that time, False where the patient was censored then.

* :func:`kaplan_meier`: product-limit estimate from ``scipy.stats.ecdf`` on ``CensoredData``, with a
  pointwise 95 % CI (Greenwood variance on the log(-log) scale, as lifelines and most trial reports);
* :func:`median_survival`: the first time the estimate is <= 0.5, and its CI as the times whose
  pointwise band contains 0.5 (Brookmeyer & Crowley 1982, Biometrics 38:29, with the band above);
* :func:`logrank`: ``scipy.stats.logrank``;
* :func:`hazard_ratio`: Cox (1972, J R Stat Soc B 34:187) proportional hazards with one binary
  covariate, Breslow's partial likelihood for tied times, fitted by Newton's method; Wald CI;
* :func:`proportion_ci`: Clopper-Pearson (exact) interval of a response rate (``scipy.stats.binomtest``);
* :func:`censor`: administrative censoring at the end of follow-up.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from scipy import stats

__all__ = [
    "DAYS_PER_MONTH",
    "KaplanMeier",
    "censor",
    "hazard_ratio",
    "kaplan_meier",
    "logrank",
    "median_survival",
    "proportion_ci",
]

#: Days in a month (365.25 / 12), for display in months as trial reports do.
DAYS_PER_MONTH = 30.4375


@dataclasses.dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan-Meier curve on every distinct observed time (events and censorings), in days.

    ``survival``, ``low``, ``high``: the estimate and its pointwise CI just after each time;
    ``n_at_risk``: patients still followed just before each time; ``events``, ``censored``: counts
    at each time.
    """

    times: np.ndarray
    survival: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_at_risk: np.ndarray
    events: np.ndarray
    censored: np.ndarray
    confidence: float = 0.95

    def at(self, days) -> np.ndarray:
        """Survival at ``days`` (right-continuous step function; 1 before the first time)."""
        index = np.searchsorted(self.times, np.asarray(days, dtype=float), side="right") - 1
        return np.where(index >= 0, self.survival[np.maximum(index, 0)], 1.0)

    def at_risk(self, days) -> np.ndarray:
        """Number of patients at risk (followed, event-free) at ``days``: those whose time is >= the day."""
        index = np.searchsorted(self.times, np.asarray(days, dtype=float), side="left")
        counts = np.append(self.n_at_risk, 0)
        return counts[index]

    def median(self) -> tuple[float, float, float]:
        """(median, low, high) in days; NaN where not reached (see :func:`median_survival`)."""
        return (
            _first_at_or_below_half(self.times, self.survival),
            _first_at_or_below_half(self.times, self.low),
            _first_at_or_below_half(self.times, self.high),
        )


def kaplan_meier(time_days, event, confidence: float = 0.95) -> KaplanMeier:
    """Kaplan-Meier estimate of the survival function of ``time_days`` (finite, >= 0) with ``event`` (bool).

    The CI is ``scipy.stats.ecdf(...).sf.confidence_interval(confidence, method="log-log")``; where the
    estimate is 1 (before any event) or 0 (after the last patient's event) that interval is undefined
    and the band is taken as the estimate itself.
    """
    time, observed = _survival_data(time_days, event)
    _check_confidence(confidence)
    times = np.unique(time)
    order = np.sort(time)
    n_at_risk = len(time) - np.searchsorted(order, times, side="left")
    events = _counts_at(times, time[observed])
    censored = _counts_at(times, time[~observed])
    if not observed.any():
        ones = np.ones(len(times))
        return KaplanMeier(times, ones, ones.copy(), ones.copy(), n_at_risk, events, censored, confidence)
    result = stats.ecdf(stats.CensoredData(uncensored=time[observed], right=time[~observed])).sf
    survival = result.evaluate(times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined at S = 0 or 1: handled below
        band = result.confidence_interval(confidence_level=confidence, method="log-log")
        low, high = band.low.evaluate(times), band.high.evaluate(times)
    flat = (survival >= 1.0) | (survival <= 0.0) | ~np.isfinite(low) | ~np.isfinite(high)
    low = np.where(flat, survival, low)
    high = np.where(flat, survival, high)
    return KaplanMeier(times, survival, low, high, n_at_risk, events, censored, confidence)


def median_survival(time_days, event, confidence: float = 0.95) -> tuple[float, float, float]:
    """Median time to event (days) with its CI: (median, low, high).

    The median is the first time the Kaplan-Meier estimate is <= 0.5; the CI runs from the first
    time the lower band is <= 0.5 to the first time the upper band is <= 0.5 (the times at which
    0.5 is inside the pointwise band: Brookmeyer & Crowley 1982). NaN where not reached, as trial
    reports write "not reached" (NR); an upper limit is often not reached when the median is.
    """
    return kaplan_meier(time_days, event, confidence).median()


def logrank(time_a, event_a, time_b, event_b) -> tuple[float, float]:
    """Two-sided log-rank test of group a against group b: (statistic, p_value) of ``scipy.stats.logrank``.

    The statistic is scipy's signed z (its square is the usual chi-squared with 1 degree of freedom);
    positive when group a has more events than expected under equal hazards.
    """
    a = _survival_data(time_a, event_a, ("time_a", "event_a"))
    b = _survival_data(time_b, event_b, ("time_b", "event_b"))
    result = stats.logrank(_censored(*a), _censored(*b))
    return float(result.statistic), float(result.pvalue)


def hazard_ratio(time_days, event, group, confidence: float = 0.95) -> tuple[float, float, float]:
    """Hazard ratio of ``group`` True against False, with its Wald CI: (hr, low, high).

    Cox proportional hazards with the one covariate ``group``; tied event times by Breslow's partial
    likelihood; maximised by Newton's method on log HR (steps capped at 1). The CI is
    ``exp(beta +- z SE)`` with SE from the observed information. Where one group has no event the
    estimate does not exist (the likelihood is monotone): NaN for all three.
    """
    time, observed = _survival_data(time_days, event)
    _check_confidence(confidence)
    in_group = _bool_array(group, "group", time.shape)
    if in_group.all() or not in_group.any():
        raise ValueError(f"group: all {bool(in_group[0])}: needs patients in both groups (True and False)")
    if not (observed & in_group).any() or not (observed & ~in_group).any():
        return math.nan, math.nan, math.nan
    event_times = np.unique(time[observed])
    deaths = _counts_at(event_times, time[observed])
    deaths_in_group = _counts_at(event_times, time[observed & in_group])
    at_risk_in_group = _n_at_risk(event_times, time[in_group])
    at_risk_other = _n_at_risk(event_times, time[~in_group])
    beta = 0.0
    for _ in range(100):
        score, information = _breslow_score(beta, deaths, deaths_in_group, at_risk_in_group, at_risk_other)
        step = float(np.clip(score / information, -1.0, 1.0))
        beta += step
        if abs(step) < 1e-12:
            break
    else:
        raise RuntimeError(f"hazard_ratio: Newton's method did not converge (beta={beta}, last step {step})")
    _, information = _breslow_score(beta, deaths, deaths_in_group, at_risk_in_group, at_risk_other)
    z = stats.norm.ppf(0.5 + confidence / 2)
    se = 1.0 / math.sqrt(information)
    return math.exp(beta), math.exp(beta - z * se), math.exp(beta + z * se)


def proportion_ci(k, n, confidence: float = 0.95) -> tuple[float, float, float]:
    """Response rate ``k / n`` with its Clopper-Pearson (exact) CI: (p, low, high), fractions."""
    for name, value in (("k", k), ("n", n)):
        count = np.asarray(value)
        if count.ndim != 0 or count.dtype.kind not in "iu":
            raise ValueError(f"{name}={value!r}: must be an integer count")
    k, n = int(k), int(n)
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"k={k}, n={n}: need n >= 1 and 0 <= k <= n")
    _check_confidence(confidence)
    interval = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return k / n, float(interval.low), float(interval.high)


def censor(time_days, event, follow_up_days) -> tuple[np.ndarray, np.ndarray]:
    """Administrative censoring at the end of follow-up: (time, event) with times capped at
    ``follow_up_days`` (a number, or one per patient) and ``event`` False for a time beyond it.

    ``time_days`` may be ``np.inf`` (no event ever); an event exactly at the end of follow-up counts.
    """
    time = np.asarray(time_days, dtype=float)
    if time.ndim != 1 or time.size == 0:
        raise ValueError(f"time_days: shape {time.shape}: must be a non-empty 1-D array (days)")
    if np.isnan(time).any() or (time < 0).any():
        bad = time[np.isnan(time) | (time < 0)][0]
        raise ValueError(f"time_days: {float(bad)!r}: must be >= 0 days (np.inf for no event)")
    observed = _bool_array(event, "event", time.shape)
    follow_up = (
        np.broadcast_to(np.asarray(follow_up_days, dtype=float), time.shape)
        if np.ndim(follow_up_days) == 0 or np.shape(follow_up_days) == time.shape
        else None
    )
    if follow_up is None:
        raise ValueError(f"follow_up_days: shape {np.shape(follow_up_days)}: must be a number or shape {time.shape}")
    if not np.isfinite(follow_up).all() or (follow_up < 0).any():
        raise ValueError(f"follow_up_days: must be finite and >= 0 days, got {np.unique(follow_up)[:3].tolist()}")
    within = time <= follow_up
    return np.where(within, time, follow_up), observed & within


def _survival_data(time_days, event, names: tuple[str, str] = ("time_days", "event")) -> tuple[np.ndarray, np.ndarray]:
    """Checked (time, event): 1-D finite times >= 0 and a bool array of the same shape."""
    time_name, event_name = names
    try:
        time = np.asarray(time_days, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{time_name}: must be numbers (days), got {type(time_days).__name__}") from None
    if time.ndim != 1 or time.size == 0:
        raise ValueError(f"{time_name}: shape {time.shape}: must be a non-empty 1-D array (days)")
    bad = ~np.isfinite(time) | (time < 0)
    if bad.any():
        raise ValueError(
            f"{time_name}: {float(time[bad][0])!r} at index {int(np.argmax(bad))}: times must be finite "
            "and >= 0 days (censor() caps never-progressing patients at the end of follow-up)"
        )
    return time, _bool_array(event, event_name, time.shape)


def _bool_array(values, name: str, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype != np.bool_:
        raise ValueError(
            f"{name}: dtype {array.dtype}: must be a bool array (True = event seen, False = censored)"
            if name.startswith("event")
            else f"{name}: dtype {array.dtype}: must be a bool array"
        )
    if array.shape != shape:
        raise ValueError(f"{name}: shape {array.shape}: must match the times, {shape}")
    return array


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r}: must be between 0 and 1 (0.95 for a 95 % CI)")


def _censored(time: np.ndarray, observed: np.ndarray) -> stats.CensoredData:
    return stats.CensoredData(uncensored=time[observed], right=time[~observed])


def _counts_at(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """How many of ``values`` equal each of the sorted distinct ``times``."""
    ordered = np.sort(values)
    return np.searchsorted(ordered, times, side="right") - np.searchsorted(ordered, times, side="left")


def _n_at_risk(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """How many of ``values`` are >= each of ``times`` (still at risk just before it)."""
    return len(values) - np.searchsorted(np.sort(values), times, side="left")


def _breslow_score(beta: float, deaths, deaths_in_group, at_risk_in_group, at_risk_other) -> tuple[float, float]:
    """Score and information of Breslow's log partial likelihood
    ``sum_t d1(t) beta - d(t) log(r0(t) + r1(t) e^beta)`` at ``beta`` (log hazard ratio)."""
    weighted = at_risk_in_group * math.exp(beta)
    total = at_risk_other + weighted
    share = np.divide(weighted, total, out=np.zeros_like(total, dtype=float), where=total > 0)
    score = float(np.sum(deaths_in_group - deaths * share))
    information = float(np.sum(deaths * share * (1.0 - share)))
    return score, information


def _first_at_or_below_half(times: np.ndarray, curve: np.ndarray) -> float:
    below = np.nonzero(curve <= 0.5)[0]
    return float(times[below[0]]) if below.size else math.nan
