"""Analysis of simulated tumours: RECIST 1.1 response, progression, ORR, PFS, Bliss synergy.

RECIST 1.1 (Eisenhauer 2009) on the sum of target-lesion diameters ``d(t)`` (here one lesion),
assessed at scan times:

* CR: the lesion has disappeared (diameter below ``cr_diameter_mm``);
* PR: at least a 30% decrease from baseline;
* PD: at least a 20% increase over the smallest sum so far (nadir, baseline included) *and*
  at least 5 mm absolute increase;
* SD: neither.

The thresholds live in ``models/recist.toml`` (data, with their source).

:func:`recist_lesions` applies the same rules to several target lesions per patient (the sum of
their diameters), with new-lesion progression, confirmation of responses, best overall response
and duration of response, for a virtual trial (docs/trial_statistics.md).

"Best change" has one definition everywhere (figures, baselines, claims, experiments): the
smallest diameter at a scan after baseline, up to and including the first PD scan, as a % change
from baseline (:func:`best_percent_change`, also ``recist(...)["best_percent_change"]``).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import tomllib
import warnings

import numpy as np
import xarray as xr
from scipy import stats

from .parameters import MODELS_DIR, convert_value

__all__ = [
    "RecistRules",
    "load_recist",
    "partial_response_pct",
    "recist",
    "recist_lesions",
    "objective_response_rate",
    "progression_free_survival",
    "bliss_synergy",
    "inhibition",
    "best_percent_change",
]

CATEGORIES = ("CR", "PR", "SD", "PD")


@dataclasses.dataclass(frozen=True)
class RecistRules:
    pr_fraction: float  # decrease from baseline for PR (0.30)
    pd_fraction: float  # increase over nadir for PD (0.20)
    pd_absolute_mm: float  # and at least this absolute increase (5 mm)
    cr_diameter_mm: float  # below this the lesion counts as gone
    scan_interval_days: float  # assessment schedule
    confirm_interval_days: float  # a CR/PR is confirmed by a repeat CR/PR at least this long after (28 days)
    sd_min_days: float  # stable disease counts as best response only at a scan this long after the start (42 days)


#: The unit each RECIST rule is used in; values in recist.toml are converted to it.
RECIST_UNITS = {
    "pr_fraction": "1",
    "pd_fraction": "1",
    "pd_absolute_mm": "mm",
    "cr_diameter_mm": "mm",
    "scan_interval_days": "day",
    "confirm_interval_days": "day",
    "sd_min_days": "day",
}


def load_recist(path: pathlib.Path = MODELS_DIR / "recist.toml") -> RecistRules:
    """Read the RECIST rules, converting each value from its written unit to :data:`RECIST_UNITS`
    (a value in another dimension is refused naming the file, the field, the value and both units)."""
    path = pathlib.Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    if set(data) != set(RECIST_UNITS):
        raise ValueError(f"{path}: expected exactly {sorted(RECIST_UNITS)}, got {sorted(data)}")
    values = {}
    for key, entry in data.items():
        if not isinstance(entry, dict) or not {"value", "unit"} <= set(entry):
            raise ValueError(f"{path}: {key}: must be a table with value, unit and source")
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{path}: {key}: value={value!r}: must be a finite number >= 0")
        values[key] = float(convert_value(float(value), entry["unit"], RECIST_UNITS[key], f"{path}: {key}"))
    return RecistRules(**values)


def partial_response_pct(rules: RecistRules | None = None) -> float:
    """The best % change from baseline at or below which a tumour has a partial response: -100 x
    ``pr_fraction`` of ``models/recist.toml`` (-30 %), the one response threshold of figures and claims.
    Rounded to 1e-9 %, since 100 x 0.30 is 30.000000000000004 in binary and a best change of exactly
    -30 % must count as a response, as it does at the written threshold."""
    rules = rules or load_recist()
    return round(-100.0 * rules.pr_fraction, 9)


def scan_times(time_days: np.ndarray, interval_days: float) -> np.ndarray:
    """Output times nearest to the assessment schedule 0, interval, 2 interval, ..."""
    grid = np.arange(0.0, time_days[-1] + 1e-9, interval_days)
    return np.unique(time_days[np.abs(time_days[:, None] - grid[None]).argmin(axis=0)])


def recist(diameter_mm: xr.DataArray, rules: RecistRules | None = None) -> xr.Dataset:
    """Per-scan RECIST status, best overall response and time to progression.

    ``diameter_mm`` has a ``time`` dimension (days) and any others (sample, arm, ...).
    Returns ``status`` (time: scans), ``best_response`` (CR/PR/SD/PD), ``progression_day``
    (NaN if no PD by the last scan) and ``progressed`` (bool).
    """
    rules = rules or load_recist()
    if "time" not in diameter_mm.dims:
        raise ValueError(f"diameter_mm: needs a 'time' dimension, has {diameter_mm.dims}")
    scans = scan_times(diameter_mm["time"].values, rules.scan_interval_days)
    d = diameter_mm.sel(time=scans).transpose("time", ...)
    values = d.values
    baseline = values[0]
    nadir = np.minimum.accumulate(values, axis=0)
    prev_nadir = np.concatenate([values[:1], nadir[:-1]], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pd = (values >= (1 + rules.pd_fraction) * prev_nadir) & (values - prev_nadir >= rules.pd_absolute_mm)
        cr = values < rules.cr_diameter_mm
        pr = values <= (1 - rules.pr_fraction) * baseline
    status = np.where(pd, "PD", np.where(cr, "CR", np.where(pr, "PR", "SD")))
    status[0] = "SD"  # baseline scan
    # once progressed, later scans do not count towards best response
    progressed_by = np.logical_or.accumulate(pd, axis=0)
    first_pd = np.where(progressed_by.any(axis=0), np.argmax(pd, axis=0), -1)
    counted = np.arange(len(scans)).reshape((-1,) + (1,) * (values.ndim - 1)) <= np.where(
        first_pd >= 0, first_pd, len(scans)
    )
    if len(scans) < 2:  # no scan after baseline yet: no best change
        best_change = np.full(baseline.shape, np.nan)
    else:
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (failed) trajectories give NaN
            best_change = 100 * (np.nanmin(np.where(counted, values, np.nan)[1:], axis=0) - baseline) / baseline
    before = ~np.concatenate([np.zeros_like(pd[:1]), progressed_by[:-1]], axis=0) & ~pd
    any_cr = (cr & before)[1:].any(axis=0)
    any_pr = (pr & before)[1:].any(axis=0)
    best = np.where(any_cr, "CR", np.where(any_pr, "PR", np.where(first_pd == 1, "PD", "SD")))
    prog_day = np.where(first_pd >= 0, scans[np.maximum(first_pd, 0)], np.nan)
    other = [dim for dim in d.dims if dim != "time"]
    coords = {k: v for k, v in d.coords.items() if k != "time" and set(d[k].dims) <= set(other)}
    return xr.Dataset(
        {
            "status": (d.dims, status.astype("U2")),
            "best_response": (other, np.asarray(best).astype("U2")),
            "progression_day": (other, prog_day, {"units": "day"}),
            "progressed": (other, first_pd >= 0),
            "best_percent_change": (
                other,
                best_change,
                {
                    "units": "%",
                    "description": "smallest diameter at a scan after "
                    "baseline, up to the first PD scan, as % change from baseline",
                },
            ),
        },
        coords={"time": scans, **coords},
        attrs={"rules": str(dataclasses.asdict(rules))},
    )


def best_percent_change(diameter_mm: xr.DataArray, rules: RecistRules | None = None) -> xr.DataArray:
    """The one "best change": smallest diameter at a RECIST scan after baseline, up to and including
    the first PD scan, as % change from baseline (negative = shrinkage). Scan-based, as in
    :func:`recist`, whose ``best_percent_change`` it is."""
    return recist(diameter_mm, rules)["best_percent_change"]


#: Per-scan responses of :func:`recist_lesions`: RECIST 1.1 categories and NE (not evaluable).
RESPONSES = ("CR", "PR", "SD", "PD", "NE")

# Thresholds are compared with this slack (mm, or days) so that a change of exactly -30 %, +20 % or
# +5 mm, or a repeat scan exactly 28 days later, meets its rule despite binary rounding (1.2 * 30 != 36).
_SLACK = 1e-9


def recist_lesions(
    sum_or_diameters_mm, scan_days, *, new_lesion_day=None, rules: RecistRules | None = None, confirm: bool = True
) -> xr.Dataset:
    """RECIST 1.1 on several target lesions per patient, vectorised over patients.

    ``sum_or_diameters_mm``: longest diameters (mm) of each patient's target lesions at each scan,
    shape (patient, scan, lesion); NaN in a lesion slot the patient does not have (at every scan),
    and NaN for a lesion not measured at a scan. A (patient, scan) array is one lesion per patient
    (or a sum already taken; then CR means the sum is below ``cr_diameter_mm``).
    ``scan_days``: (scan,) days since the start of treatment, strictly increasing; scan 0 is the
    baseline. ``new_lesion_day``: (patient,) day a new lesion appears (``np.inf`` = never).

    Per scan after baseline, in this order (thresholds from ``models/recist.toml``):

    * PD: the sum rose by >= ``pd_fraction`` over the nadir (smallest sum so far, baseline included)
      *and* by >= ``pd_absolute_mm``; or a new lesion appeared on or before this scan. The lesions
      measured at a scan may show PD even when another target lesion was not measured;
    * CR: every target lesion below ``cr_diameter_mm`` (short axes of nodes are not modelled);
    * PR: the sum fell by >= ``pr_fraction`` from baseline;
    * SD: otherwise, when every target lesion was measured; NE (not evaluable) when one was not.

    The baseline scan, scans at which the patient was not scanned (all lesions NaN) and every scan
    after the first PD (the patient is off study) are NE. A new lesion counts at the first scan at or
    after its day at which the patient is scanned.

    Best overall response, with ``confirm=True``: CR if a CR scan is followed, >=
    ``confirm_interval_days`` later and before progression, by another CR scan; PR if a CR/PR scan is
    followed likewise by another CR/PR scan; otherwise SD if any scan before progression at or after
    ``sd_min_days`` was CR, PR or SD (an unconfirmed response counts as SD); otherwise PD if the patient
    progressed, otherwise NE. With ``confirm=False`` a single CR (PR) scan suffices. Not modelled: a
    CR followed by reappearing disease that RECIST counts as PD even within PR range.

    Returns an ``xr.Dataset`` (dims ``patient``, ``scan``; coordinate ``scan_day``) with ``sum_mm``
    (NaN where a target lesion was not measured), ``change_pct`` (from baseline), ``response``,
    ``best_overall_response``, ``progression_day`` (first PD scan, ``np.inf`` if none),
    ``progressed``, ``last_assessment_day`` (last evaluable scan up to the first PD: the censoring
    day of progression-free survival), ``response_start_day`` (first CR/PR scan of the (confirmed)
    response, NaN if none), ``duration_of_response_days`` (to progression, or to the last assessment
    if the response is ongoing; NaN if no response), ``response_ended`` (True if the response ended
    in progression, False if censored) and ``best_change_pct`` (smallest sum after baseline up to and
    including the first PD scan, % from baseline, as :func:`best_percent_change`).
    """
    rules = rules or load_recist()
    diameters = _lesion_diameters(sum_or_diameters_mm)
    n_patients, n_scans, _ = diameters.shape
    days = _scan_days(scan_days, n_scans)
    new_day = _new_lesion_days(new_lesion_day, n_patients)

    present = np.isfinite(diameters[:, 0, :])  # (patient, lesion): the patient's target lesions
    measured = np.isfinite(diameters) & present[:, None, :]
    complete = (measured | ~present[:, None, :]).all(axis=2)  # (patient, scan): every target lesion measured
    scanned = measured.any(axis=2)
    measured_sum = np.where(measured, diameters, 0.0).sum(axis=2)
    sum_mm = np.where(complete, measured_sum, np.nan)
    gone = complete & np.where(present[:, None, :], diameters < rules.cr_diameter_mm, True).all(axis=2)
    baseline = sum_mm[:, 0]

    response = np.full((n_patients, n_scans), "NE", dtype="U2")
    first_pd = np.full(n_patients, -1)
    nadir = baseline.copy()
    for j in range(1, n_scans):
        on_study = first_pd < 0
        growth = measured_sum[:, j] - nadir
        progression = scanned[:, j] & (
            ((growth >= rules.pd_fraction * nadir - _SLACK) & (growth >= rules.pd_absolute_mm - _SLACK))
            | (new_day <= days[j])
        )
        partial = complete[:, j] & (baseline - sum_mm[:, j] >= rules.pr_fraction * baseline - _SLACK)
        status = np.where(
            progression, "PD", np.where(gone[:, j], "CR", np.where(partial, "PR", np.where(complete[:, j], "SD", "NE")))
        )
        response[:, j] = np.where(on_study, status, "NE")
        first_pd = np.where(on_study & progression, j, first_pd)
        nadir = np.where(on_study & complete[:, j], np.fmin(nadir, sum_mm[:, j]), nadir)

    progressed = first_pd >= 0
    progression_day = np.where(progressed, days[np.maximum(first_pd, 0)], np.inf)
    is_cr = response == "CR"
    is_response = is_cr | (response == "PR")
    if confirm:
        later = days[None, :] - days[:, None] >= rules.confirm_interval_days - _SLACK  # (scan i, scan k): k confirms i
        is_cr = is_cr & ((is_cr.astype(int) @ later.T.astype(int)) > 0)
        is_response = is_response & ((is_response.astype(int) @ later.T.astype(int)) > 0)
    long_enough = days >= rules.sd_min_days - _SLACK
    stable = (np.isin(response, ("CR", "PR", "SD")) & long_enough[None, :]).any(axis=1)
    best = np.where(
        is_cr.any(axis=1),
        "CR",
        np.where(is_response.any(axis=1), "PR", np.where(stable, "SD", np.where(progressed, "PD", "NE"))),
    )

    evaluable = response != "NE"
    last_index = n_scans - 1 - np.argmax(evaluable[:, ::-1], axis=1)
    last_assessment_day = np.where(evaluable.any(axis=1), days[last_index], days[0])
    responded = is_response.any(axis=1)
    response_start_day = np.where(responded, days[np.argmax(is_response, axis=1)], np.nan)
    end_day = np.where(progressed, progression_day, last_assessment_day)
    duration = np.where(responded, end_day - response_start_day, np.nan)

    counted = np.arange(n_scans)[None, :] <= np.where(progressed, first_pd, n_scans)[:, None]
    counted[:, 0] = False
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no evaluable scan after baseline: NaN
        best_sum = np.nanmin(np.where(counted, sum_mm, np.nan), axis=1) if n_scans > 1 else np.full(n_patients, np.nan)
        change_pct = 100.0 * (sum_mm - baseline[:, None]) / baseline[:, None]
        best_change_pct = 100.0 * (best_sum - baseline) / baseline

    per_patient, per_scan = ("patient",), ("patient", "scan")
    return xr.Dataset(
        {
            "sum_mm": (per_scan, sum_mm, {"units": "mm", "description": "sum of target-lesion diameters"}),
            "change_pct": (per_scan, change_pct, {"units": "%", "description": "sum as % change from baseline"}),
            "response": (per_scan, response, {"description": "RECIST 1.1 per scan: CR, PR, SD, PD or NE"}),
            "best_overall_response": (
                per_patient,
                best.astype("U2"),
                {"description": f"RECIST 1.1 best overall response, confirm={confirm}"},
            ),
            "progression_day": (per_patient, progression_day, {"units": "day"}),
            "progressed": (per_patient, progressed),
            "last_assessment_day": (per_patient, last_assessment_day, {"units": "day"}),
            "response_start_day": (per_patient, response_start_day, {"units": "day"}),
            "duration_of_response_days": (per_patient, duration, {"units": "day"}),
            "response_ended": (per_patient, responded & progressed),
            "best_change_pct": (per_patient, best_change_pct, {"units": "%"}),
        },
        coords={"patient": np.arange(n_patients), "scan_day": ("scan", days, {"units": "day"})},
        attrs={"rules": str(dataclasses.asdict(rules)), "confirm": int(confirm)},
    )


def _lesion_diameters(values) -> np.ndarray:
    """The (patient, scan, lesion) diameters of :func:`recist_lesions`, checked."""
    name = "sum_or_diameters_mm"
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be numbers (mm), got {type(values).__name__}") from None
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(
            f"{name}: shape {np.shape(values)}: must be (patient, scan) or (patient, scan, lesion), non-empty"
        )
    bad = np.argwhere(np.isinf(array) | (array < 0))
    if bad.size:
        p, s, lesion = bad[0]
        raise ValueError(
            f"{name}: {float(array[p, s, lesion])!r} at patient {p}, scan {s}, lesion {lesion}: must be a "
            "finite diameter >= 0 mm, or NaN for a missing lesion or scan"
        )
    present = np.isfinite(array[:, 0, :])
    no_lesion = np.nonzero(~present.any(axis=1))[0]
    if no_lesion.size:
        raise ValueError(
            f"{name}: patient {no_lesion[0]} has no target lesion measured at baseline (scan 0); "
            "every patient needs at least one"
        )
    stray = np.argwhere(np.isfinite(array) & ~present[:, None, :])
    if stray.size:
        p, s, lesion = stray[0]
        raise ValueError(
            f"{name}: patient {p}, lesion {lesion} is NaN at baseline but measured at scan {s}: a lesion "
            "slot the patient does not have must be NaN at every scan (new lesions go in new_lesion_day)"
        )
    return array


def _scan_days(scan_days, n_scans: int) -> np.ndarray:
    """Scan days (day since the start of treatment), one per scan, finite and strictly increasing."""
    days = np.asarray(scan_days, dtype=float)
    if days.shape != (n_scans,):
        raise ValueError(
            f"scan_days: shape {days.shape}: must be ({n_scans},), one day per scan of sum_or_diameters_mm (axis 1)"
        )
    if not np.isfinite(days).all() or (np.diff(days) <= 0).any():
        raise ValueError(f"scan_days={days.tolist()}: must be finite and strictly increasing (days)")
    return days


def _new_lesion_days(new_lesion_day, n_patients: int) -> np.ndarray:
    """Day each patient's first new lesion appears (np.inf = never)."""
    if new_lesion_day is None:
        return np.full(n_patients, np.inf)
    days = np.asarray(new_lesion_day, dtype=float)
    if days.shape != (n_patients,):
        raise ValueError(f"new_lesion_day: shape {days.shape}: must be ({n_patients},), one day per patient")
    bad = np.nonzero(np.isnan(days) | (days < 0))[0]
    if bad.size:
        raise ValueError(
            f"new_lesion_day: {float(days[bad[0]])!r} for patient {bad[0]}: must be a day >= 0, or np.inf "
            "for no new lesion"
        )
    return days


def objective_response_rate(best_response: xr.DataArray, dim: str = "sample") -> xr.DataArray:
    """Fraction of CR + PR along ``dim``."""
    return ((best_response == "CR") | (best_response == "PR")).mean(dim).assign_attrs(units="1")


def progression_free_survival(progression_day: np.ndarray, follow_up_days: float):
    """Kaplan-Meier estimate (scipy.stats.ecdf with right censoring at ``follow_up_days``).

    Returns (scipy result, median PFS in days or NaN if not reached).
    """
    t = np.asarray(progression_day, dtype=float)
    event = np.isfinite(t)
    times = np.where(event, t, follow_up_days)
    data = stats.CensoredData(uncensored=times[event], right=times[~event])
    res = stats.ecdf(data)
    sf = res.sf
    below = np.nonzero(sf.probabilities <= 0.5)[0]
    median = float(sf.quantiles[below[0]]) if below.size else float("nan")
    return res, median


def inhibition(volume_treated, volume_untreated):
    """Fractional inhibition of tumour volume vs untreated, 1 - V/V0 (1 = eradicated)."""
    return 1 - np.asarray(volume_treated) / np.asarray(volume_untreated)


def bliss_synergy(inhibition_a, inhibition_b, inhibition_ab):
    """Bliss excess: observed combined inhibition minus the independent-action expectation
    ``Ia + Ib - Ia Ib``; positive = synergy, negative = antagonism."""
    ia, ib, iab = (np.asarray(x, dtype=float) for x in (inhibition_a, inhibition_b, inhibition_ab))
    return iab - (ia + ib - ia * ib)
