"""Analysis of simulated tumours: RECIST 1.1 response, progression, ORR, PFS, Bliss synergy.

RECIST 1.1 (Eisenhauer 2009) on the sum of target-lesion diameters ``d(t)`` (here one lesion),
assessed at scan times:

* CR: the lesion has disappeared (diameter below ``cr_diameter_mm``);
* PR: at least a 30% decrease from baseline;
* PD: at least a 20% increase over the smallest sum so far (nadir, baseline included) *and*
  at least 5 mm absolute increase;
* SD: neither.

The thresholds live in ``models/recist.toml`` (data, with their source).

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

__all__ = ["RecistRules", "load_recist", "partial_response_pct", "recist", "objective_response_rate",
           "progression_free_survival", "bliss_synergy", "inhibition", "best_percent_change"]

CATEGORIES = ("CR", "PR", "SD", "PD")


@dataclasses.dataclass(frozen=True)
class RecistRules:
    pr_fraction: float  # decrease from baseline for PR (0.30)
    pd_fraction: float  # increase over nadir for PD (0.20)
    pd_absolute_mm: float  # and at least this absolute increase (5 mm)
    cr_diameter_mm: float  # below this the lesion counts as gone
    scan_interval_days: float  # assessment schedule


#: The unit each RECIST rule is used in; values in recist.toml are converted to it.
RECIST_UNITS = {"pr_fraction": "1", "pd_fraction": "1", "pd_absolute_mm": "mm", "cr_diameter_mm": "mm",
                "scan_interval_days": "day"}


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
    counted = np.arange(len(scans)).reshape((-1,) + (1,) * (values.ndim - 1)) <= np.where(first_pd >= 0, first_pd, len(scans))
    if len(scans) < 2:   # no scan after baseline yet: no best change
        best_change = np.full(baseline.shape, np.nan)
    else:
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN (failed) trajectories give NaN
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
            "best_percent_change": (other, best_change, {"units": "%", "description": "smallest diameter at a scan after "
                                    "baseline, up to the first PD scan, as % change from baseline"}),
        },
        coords={"time": scans, **coords},
        attrs={"rules": str(dataclasses.asdict(rules))},
    )


def best_percent_change(diameter_mm: xr.DataArray, rules: RecistRules | None = None) -> xr.DataArray:
    """The one "best change": smallest diameter at a RECIST scan after baseline, up to and including
    the first PD scan, as % change from baseline (negative = shrinkage). Scan-based, as in
    :func:`recist`, whose ``best_percent_change`` it is."""
    return recist(diameter_mm, rules)["best_percent_change"]


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
