"""A virtual clinical trial in metastatic TNBC: virtual patients with several lesions, RECIST scans, PFS.

Population (``models/population.toml``): a patient is PD-L1-positive with probability 0.41 (IMpassion130)
and then starts from the ``hot_tnbc`` setting, else from ``pdl1_negative_tnbc``; patient-level parameters
(body size, drug clearance, growth, priming, chemotherapy sensitivity, suppression) vary once per patient,
lesion-level ones (size, infiltration, T-cell density, clone mix) once per target lesion (1-5, at most 2 per
organ). Patients are kept by acceptance on their baseline observables (:func:`sample_population`).

Lesions: every lesion is its own trajectory of the full model, with the patient's parameters and its own
lesion parameters. **Lesions do not interact dynamically in this model**: each lesion's T-cell priming is
driven by its own antigen and its own draining compartment, and its blood drug levels are computed for it
alone (the same doses and clearance, so they agree between the lesions of one patient, except that each
lesion's target-mediated binding removes only its own share of drug). There is no systemic pool of primed
T cells shared across lesions, and **new lesions are not modelled** (progression is by the sum of target
lesions only), which makes virtual PFS an upper bound on what new-lesion progression would give.

Trial conduct: scans at day 0 (baseline) and every 8 weeks in the first year, every 12 weeks after
(IMpassion130); RECIST 1.1 on the sum of target-lesion diameters with confirmed responses
(:func:`moa.analysis.recist_lesions`); treatment until progression; every patient is censored at one fixed
follow-up (the trial's median follow-up, 12.9 months); deaths without progression are not modelled.

Treatment until progression: a patient leaves the trial at its first PD scan, as in IMpassion130, so by
default its lesions are not simulated after it (``simulate(stop_when=OffStudyAtProgression(...))``: RECIST is
asked at each scan during the run). Nothing after the first PD scan changes a readout (best response, PFS,
duration of response), so this is exact, and it is the cheapest run: most patients progress long before the
end of follow-up. ``simulate_trial(after_progression="untreated")`` follows the lesions to the end with doses
stopped at progression (a second pass with ``simulate(dose_stop_days=...)``), ``"treated"`` with every dose.

Sampling uses ``numpy.random.default_rng(seed)`` (inverse-CDF truncated lognormals), not the designs of
:mod:`moa.sweep`: a patient's number of draws varies (1-5 lesions, their organs) and acceptance redraws whole
patients, which a fixed-dimension hypercube design (grid, LHS, Sobol) does not fit. The trial's lesion
trajectories run through :func:`moa.simulate` like a sweep's points, in patient chunks over processes
(:func:`simulate_trials`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import pathlib
import re
import sys
import time
import tomllib
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr
from scipy import optimize, stats

from .analysis import recist_lesions
from .symbolic.named_models import full_model
from .errors import BoundsWarning, DoseWarning
from .parameters import MODELS_DIR
from .report.provenance import combine_simulations
from .report.results import write_json
from .scenarios import default_parameters, load_settings, scenario
from .simulate import simulate
from .survival import censor, hazard_ratio, logrank, median_survival, proportion_ci

__all__ = [
    "Variability",
    "PopulationSpec",
    "Population",
    "load_population",
    "sample_population",
    "scan_days",
    "simulate_trial",
    "simulate_trials",
    "OffStudyAtProgression",
    "AFTER_PROGRESSION",
    "trajectory_values",
    "trial_readouts",
    "Target",
    "objective",
    "calibrate",
    "write_calibrated",
    "check_calibration",
    "DAYS_PER_MONTH",
    "MAX_LESIONS",
]

#: Days per month for display and for comparing with trial numbers (365.25 / 12).
DAYS_PER_MONTH = 30.4375
#: RECIST 1.1 counts at most 5 target lesions (Eisenhauer 2009).
MAX_LESIONS = 5
POPULATION_FILE = MODELS_DIR / "population.toml"
SUBGROUPS = ("itt", "pdl1_positive", "pdl1_negative")
#: Solver tolerances of the trial: diameters agree with rtol 1e-6 to 0.01 mm at about a sixth of the cost.
TRIAL_RTOL, TRIAL_ATOL = 1e-4, 1e-6


@dataclasses.dataclass(frozen=True)
class Variability:
    """Between-patient (``level="patient"``) or between-lesion variability of one model parameter.

    Lognormal with median ``median`` (in the parameter's unit) or ``median_factor`` x the patient's setting
    value, log-sd ``sd_log``, truncated to [lower, upper] by inverse CDF."""

    name: str
    level: str
    median: float | None
    median_factor: float | None
    sd_log: float
    lower: float
    upper: float
    source: str

    def draw(self, centre: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """Values for ``uniforms`` in (0, 1) around ``centre`` (the setting value, same shape)."""
        median = np.full_like(uniforms, self.median) if self.median is not None else centre * self.median_factor
        if self.sd_log == 0:
            return np.clip(median, self.lower, self.upper)
        z_lo = (np.log(self.lower) - np.log(median)) / self.sd_log
        z_hi = (np.log(self.upper) - np.log(median)) / self.sd_log
        lo, hi = stats.norm.cdf(z_lo), stats.norm.cdf(z_hi)
        z = stats.norm.ppf(lo + uniforms * (hi - lo))
        return np.clip(median * np.exp(self.sd_log * z), self.lower, self.upper)


@dataclasses.dataclass(frozen=True)
class Target:
    """One trial number the calibration compares with: readout ("orr", "cr", "median_pfs" [month], "hr")
    of ``arm`` in ``subgroup``, with its 95% CI, weight and source."""

    name: str
    readout: str
    arm: str
    subgroup: str
    value: float
    low: float
    high: float
    unit: str
    weight: float
    source: str

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0


@dataclasses.dataclass(frozen=True)
class PopulationSpec:
    """``models/population.toml`` read and checked."""

    pdl1_positive_fraction: float
    pdl1_positive_setting: str
    pdl1_negative_setting: str
    selection: str
    count_probabilities: tuple[float, ...]
    organs: tuple[str, ...]
    organ_weights: tuple[float, ...]
    max_per_organ: int
    sum_of_diameters_mm: dict
    t_cell_density_cell_per_mL: dict
    scan_first_year_days: float
    scan_later_days: float
    first_year_days: float
    follow_up_days: float
    patient: tuple[Variability, ...]
    lesion: tuple[Variability, ...]
    calibration_parameters: tuple[str, ...]
    calibration_lower: tuple[float, ...]
    calibration_upper: tuple[float, ...]
    targets: tuple[Target, ...]
    path: str = ""

    def value_of(self, field: str) -> float:
        """A numeric field named ``patient.<param>.<key>`` or ``lesion.<param>.<key>``."""
        level, name, key = _split_field(field)
        for v in getattr(self, level):
            if v.name == name:
                return getattr(v, key)
        raise ValueError(f"{field}: no such {level} entry; allowed: {[v.name for v in getattr(self, level)]}")

    def with_values(self, values: Mapping[str, float]) -> "PopulationSpec":
        """A copy with numeric fields (``patient.antigenicity.sd_log`` ...) replaced (calibration)."""
        levels = {"patient": list(self.patient), "lesion": list(self.lesion)}
        for field, value in values.items():
            level, name, key = _split_field(field)
            names = [v.name for v in levels[level]]
            if name not in names:
                raise ValueError(f"{field}: no such {level} entry; allowed: {names}")
            i = names.index(name)
            levels[level][i] = dataclasses.replace(levels[level][i], **{key: float(value)})
            _check_variability(levels[level][i], f"{field}={value!r}")
        return dataclasses.replace(self, patient=tuple(levels["patient"]), lesion=tuple(levels["lesion"]))


_NUMERIC_KEYS = ("median", "median_factor", "sd_log", "lower", "upper")
_READOUTS = ("orr", "orr_unconfirmed", "cr", "median_pfs", "hr")


def _split_field(field: str) -> tuple[str, str, str]:
    parts = field.split(".")
    if len(parts) != 3 or parts[0] not in ("patient", "lesion") or parts[2] not in _NUMERIC_KEYS:
        raise ValueError(
            f"field {field!r}: must be patient.<parameter>.<key> or lesion.<parameter>.<key> with key "
            f"one of {_NUMERIC_KEYS}"
        )
    return parts[0], parts[1], parts[2]


def _number(table: Mapping, key: str, where: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    if key not in table:
        raise ValueError(f"{where}.{key}: missing; give a number")
    v = table[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not (low <= v <= high):
        raise ValueError(f"{where}.{key}={v!r}: must be a finite number in [{low}, {high}]")
    return float(v)


def _check_variability(v: Variability, where: str) -> None:
    if v.sd_log < 0:
        raise ValueError(f"{where}: sd_log={v.sd_log!r}: must be >= 0")
    if not (0 < v.lower < v.upper):
        raise ValueError(f"{where}: lower={v.lower!r}, upper={v.upper!r}: need 0 < lower < upper")
    if v.median is not None and not (v.lower <= v.median <= v.upper):
        raise ValueError(f"{where}: median={v.median!r}: must lie in [lower, upper] = [{v.lower}, {v.upper}]")
    if v.median_factor is not None and v.median_factor <= 0:
        raise ValueError(f"{where}: median_factor={v.median_factor!r}: must be > 0")


def _variabilities(tables: Mapping, level: str, path: pathlib.Path, known: set[str]) -> tuple[Variability, ...]:
    out = []
    for name, t in tables.items():
        where = f"{path.name}: {level}.{name}"
        if name not in known:
            raise ValueError(f"{where}: unknown parameter; allowed: the parameters of models/parameters/")
        if t.get("distribution") != "lognormal":
            raise ValueError(f"{where}.distribution={t.get('distribution')!r}: allowed: 'lognormal'")
        if ("median" in t) == ("median_factor" in t):
            raise ValueError(f"{where}: give exactly one of median (in the parameter's unit) and median_factor")
        if not isinstance(t.get("source"), str) or not t["source"].strip():
            raise ValueError(
                f"{where}.source={t.get('source')!r}: give a citation, 'assumed: <why>' or 'calibrated: <what>'"
            )
        v = Variability(
            name,
            level,
            _number(t, "median", where, low=0) if "median" in t else None,
            _number(t, "median_factor", where, low=0) if "median_factor" in t else None,
            _number(t, "sd_log", where, low=0, high=5),
            _number(t, "lower", where, low=0),
            _number(t, "upper", where, low=0),
            t["source"],
        )
        _check_variability(v, where)
        out.append(v)
    return tuple(out)


def _conduct(table: Mapping, key: str, path: pathlib.Path) -> float:
    entry = table.get(key)
    where = f"{path.name}: trial.{key}"
    if not isinstance(entry, dict) or entry.get("unit") != "day" or "source" not in entry:
        raise ValueError(f'{where}={entry!r}: must be {{ value = ..., unit = "day", source = ... }}')
    return _number(entry, "value", where, low=1e-9)


def load_population(path: pathlib.Path | str = POPULATION_FILE) -> PopulationSpec:
    """Read and check ``models/population.toml``; errors name the field, the value and what is allowed."""
    path = pathlib.Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    for section in ("population", "lesions", "targets", "trial", "patient", "lesion", "calibration"):
        if section not in data:
            raise ValueError(f"{path.name}: missing section [{section}]")
    pop, les, tgt, cal = data["population"], data["lesions"], data["targets"], data["calibration"]
    settings = load_settings()
    for key in ("pdl1_positive_setting", "pdl1_negative_setting"):
        if pop.get(key) not in settings:
            raise ValueError(f"{path.name}: population.{key}={pop.get(key)!r}: allowed settings are {sorted(settings)}")
    if pop.get("selection") != "acceptance":
        raise ValueError(f"{path.name}: population.selection={pop.get('selection')!r}: allowed: 'acceptance'")
    fraction = _number(pop, "pdl1_positive_fraction", f"{path.name}: population", low=0, high=1)
    probs = les.get("count_probabilities")
    if (
        not isinstance(probs, list)
        or len(probs) != MAX_LESIONS
        or any(not isinstance(p, (int, float)) or p < 0 for p in probs)
        or not math.isclose(sum(probs), 1.0, abs_tol=1e-9)
    ):
        raise ValueError(
            f"{path.name}: lesions.count_probabilities={probs!r}: must be {MAX_LESIONS} numbers >= 0 "
            "summing to 1 (P(1 lesion) .. P(5 lesions))"
        )
    organs, weights = les.get("organs"), les.get("organ_weights")
    max_per_organ = les.get("max_per_organ")
    if not isinstance(max_per_organ, int) or max_per_organ < 1:
        raise ValueError(f"{path.name}: lesions.max_per_organ={max_per_organ!r}: must be an integer >= 1")
    if (
        not isinstance(organs, list)
        or not isinstance(weights, list)
        or len(organs) != len(weights)
        or any(w <= 0 for w in weights)
        or len(organs) * max_per_organ < MAX_LESIONS
    ):
        raise ValueError(
            f"{path.name}: lesions.organs / organ_weights: need equal-length lists, weights > 0 and "
            f"enough organs for {MAX_LESIONS} lesions at {max_per_organ} per organ; got {organs!r}, {weights!r}"
        )
    sod = tgt.get("sum_of_diameters_mm", {})
    for key in ("lower", "upper", "median_low", "median_high"):
        _number(sod, key, f"{path.name}: targets.sum_of_diameters_mm", low=0)
    if not (sod["lower"] < sod["median_low"] < sod["median_high"] < sod["upper"]):
        raise ValueError(
            f"{path.name}: targets.sum_of_diameters_mm={sod!r}: need lower < median_low < median_high < upper"
        )
    cd8 = tgt.get("t_cell_density_cell_per_mL", {})
    if not (
        _number(cd8, "lower", f"{path.name}: targets.t_cell_density_cell_per_mL", low=0)
        < _number(cd8, "upper", f"{path.name}: targets.t_cell_density_cell_per_mL", low=0)
    ):
        raise ValueError(f"{path.name}: targets.t_cell_density_cell_per_mL={cd8!r}: need lower < upper")
    known = set(default_parameters())
    patient = _variabilities(data["patient"], "patient", path, known)
    lesion = _variabilities(data["lesion"], "lesion", path, known)
    both = {v.name for v in patient} & {v.name for v in lesion}
    if both:
        raise ValueError(f"{path.name}: {sorted(both)} vary both per patient and per lesion; choose one level")
    params, lower, upper = cal.get("parameters", []), cal.get("lower", []), cal.get("upper", [])
    if not (len(params) == len(lower) == len(upper)) or any(not lo < hi for lo, hi in zip(lower, upper)):
        raise ValueError(
            f"{path.name}: calibration.parameters/lower/upper: need lists of one length with lower < upper; "
            f"got {params!r}, {lower!r}, {upper!r}"
        )
    targets = []
    for i, t in enumerate(cal.get("targets", [])):
        where = f"{path.name}: calibration.targets[{i}] ({t.get('name', '?')})"
        if t.get("readout") not in _READOUTS:
            raise ValueError(f"{where}.readout={t.get('readout')!r}: allowed: {_READOUTS}")
        if t.get("subgroup") not in SUBGROUPS:
            raise ValueError(f"{where}.subgroup={t.get('subgroup')!r}: allowed: {SUBGROUPS}")
        values = [_number(t, k, where, low=0) for k in ("value", "low", "high", "weight")]
        if not values[1] <= values[0] <= values[2] or values[1] == values[2]:
            raise ValueError(f"{where}: need low <= value <= high and low < high; got {values[:3]}")
        targets.append(
            Target(
                t["name"],
                t["readout"],
                t["arm"],
                t["subgroup"],
                *values[:3],
                t.get("unit", ""),
                values[3],
                t.get("source", ""),
            )
        )
    spec = PopulationSpec(
        fraction,
        pop["pdl1_positive_setting"],
        pop["pdl1_negative_setting"],
        pop["selection"],
        tuple(map(float, probs)),
        tuple(organs),
        tuple(map(float, weights)),
        max_per_organ,
        dict(sod),
        dict(cd8),
        *(
            _conduct(data["trial"], k, path)
            for k in ("first_year_scan_interval_days", "later_scan_interval_days", "first_year_days", "follow_up_days")
        ),
        patient,
        lesion,
        tuple(params),
        tuple(map(float, lower)),
        tuple(map(float, upper)),
        tuple(targets),
        str(path),
    )
    for field in params:
        spec.value_of(field)  # an unknown field is refused here
    return spec


@dataclasses.dataclass
class Population:
    """Sampled virtual patients: ``patient_values[name]`` (patient,), ``lesion_values[name]`` (patient, lesion)
    with NaN in the slots a patient does not have; values in the parameter's unit (models/parameters/)."""

    pdl1_positive: np.ndarray
    n_lesions: np.ndarray
    organ: np.ndarray
    patient_values: dict[str, np.ndarray]
    lesion_values: dict[str, np.ndarray]
    setting_values: dict[str, np.ndarray]
    seed: int
    acceptance_rate: float
    spec: PopulationSpec

    @property
    def size(self) -> int:
        return int(self.pdl1_positive.size)

    def baseline_sum_mm(self) -> np.ndarray:
        return np.nansum(self.lesion_values["initial_tumour_diameter"], axis=1)

    def subset(self, mask: np.ndarray) -> "Population":
        m = np.asarray(mask, dtype=bool)
        return dataclasses.replace(
            self,
            pdl1_positive=self.pdl1_positive[m],
            n_lesions=self.n_lesions[m],
            organ=self.organ[m],
            patient_values={k: v[m] for k, v in self.patient_values.items()},
            lesion_values={k: v[m] for k, v in self.lesion_values.items()},
            setting_values={k: v[m] for k, v in self.setting_values.items()},
        )


def _setting_centres(spec: PopulationSpec, positive: np.ndarray) -> dict[str, np.ndarray]:
    """Per patient, the value of every parameter either PD-L1 setting sets (the other setting's patients get
    theirs, or the model default when their setting leaves it alone)."""
    settings, base = load_settings(), default_parameters()
    pos, neg = settings[spec.pdl1_positive_setting].values, settings[spec.pdl1_negative_setting].values
    return {
        name: np.where(positive, pos.get(name, base[name]), neg.get(name, base[name])).astype(float)
        for name in sorted(set(pos) | set(neg))
    }


def _organs(rng: np.random.Generator, n_lesions: int, spec: PopulationSpec) -> list[str]:
    """Organs of ``n_lesions`` target lesions, at most ``max_per_organ`` each (weighted draw without overflow)."""
    count = dict.fromkeys(spec.organs, 0)
    out = []
    for _ in range(n_lesions):
        open_ = [o for o in spec.organs if count[o] < spec.max_per_organ]
        w = np.array([spec.organ_weights[spec.organs.index(o)] for o in open_])
        organ = open_[int(rng.choice(len(open_), p=w / w.sum()))]
        count[organ] += 1
        out.append(organ)
    return out


def sample_population(
    n: int, seed: int, spec: PopulationSpec | None = None, *, max_draws_per_patient: int = 100
) -> Population:
    """``n`` virtual patients drawn with ``numpy.random.default_rng(seed)`` (same seed, same patients).

    Draw order per candidate: PD-L1 status (Bernoulli, ``pdl1_positive_fraction``), patient-level values
    around the status's setting, the number of target lesions and their organs (at most ``max_per_organ``
    per organ), lesion-level values. Selection by acceptance: a candidate is kept when its baseline sum
    of diameters and every lesion's T-cell density lie inside the ranges of ``[targets]``; otherwise a new
    candidate is drawn. ``acceptance_rate`` records the kept share.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n={n!r}: must be an integer >= 1 (number of patients)")
    spec = spec or load_population()
    rng = np.random.default_rng(seed)
    kept: list[dict] = []
    drawn = examined = 0
    while len(kept) < n:
        if drawn >= max_draws_per_patient * n:
            raise ValueError(
                f"sample_population: only {len(kept)} of {n} patients accepted after {drawn} draws; the "
                "plausibility ranges of [targets] in models/population.toml reject almost every candidate"
            )
        batch = max(2 * (n - len(kept)), 8)
        drawn += batch
        positive = rng.random(batch) < spec.pdl1_positive_fraction
        centres = _setting_centres(spec, positive)
        base = default_parameters()
        pvals = {}
        for v in spec.patient:
            centre = centres.get(v.name, np.full(batch, float(base[v.name])))
            pvals[v.name] = v.draw(centre, rng.random(batch))
        counts = 1 + rng.choice(MAX_LESIONS, size=batch, p=np.asarray(spec.count_probabilities))
        lvals = {}
        for v in spec.lesion:
            centre = centres.get(v.name, np.full(batch, float(base[v.name])))
            lvals[v.name] = v.draw(np.repeat(centre[:, None], MAX_LESIONS, axis=1), rng.random((batch, MAX_LESIONS)))
        slots = np.arange(MAX_LESIONS)[None, :] < counts[:, None]
        for k in lvals:
            lvals[k] = np.where(slots, lvals[k], np.nan)
        organs = [_organs(rng, int(c), spec) + [""] * (MAX_LESIONS - int(c)) for c in counts]
        total = np.nansum(lvals.get("initial_tumour_diameter", np.full((batch, MAX_LESIONS), np.nan)), axis=1)
        sod, cd8 = spec.sum_of_diameters_mm, spec.t_cell_density_cell_per_mL
        ok = (total >= sod["lower"]) & (total <= sod["upper"])
        if "initial_t_cell_density" in lvals:
            d = lvals["initial_t_cell_density"]
            ok &= np.all(~slots | ((d >= cd8["lower"]) & (d <= cd8["upper"])), axis=1)
        for i in range(batch):
            if len(kept) == n:
                break
            examined += 1
            if not ok[i]:
                continue
            kept.append(
                {
                    "positive": positive[i],
                    "count": counts[i],
                    "organs": organs[i],
                    "p": {k: a[i] for k, a in pvals.items()},
                    "l": {k: a[i] for k, a in lvals.items()},
                    "s": {k: a[i] for k, a in centres.items()},
                }
            )
    return Population(
        pdl1_positive=np.array([k["positive"] for k in kept], dtype=bool),
        n_lesions=np.array([k["count"] for k in kept], dtype=int),
        organ=np.array([k["organs"] for k in kept], dtype=object),
        patient_values={v.name: np.array([k["p"][v.name] for k in kept]) for v in spec.patient},
        lesion_values={v.name: np.array([k["l"][v.name] for k in kept]) for v in spec.lesion},
        setting_values={name: np.array([k["s"][name] for k in kept]) for name in kept[0]["s"]},
        seed=int(seed),
        acceptance_rate=n / examined,
        spec=spec,
    )


def scan_days(
    follow_up_days: float,
    first_year_interval_days: float = 56.0,
    later_interval_days: float = 84.0,
    first_year_days: float = 364.0,
) -> np.ndarray:
    """Scan days from day 0 (baseline): every ``first_year_interval_days`` up to ``first_year_days``, then every
    ``later_interval_days`` from the last first-year scan on, up to ``follow_up_days`` (IMpassion130: 8 weeks,
    then 12 weeks after the first year)."""
    for name, v in (
        ("follow_up_days", follow_up_days),
        ("first_year_interval_days", first_year_interval_days),
        ("later_interval_days", later_interval_days),
        ("first_year_days", first_year_days),
    ):
        if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name}={v!r}: must be a finite number of days > 0")
    first = np.arange(0.0, min(first_year_days, follow_up_days) + 1e-9, first_year_interval_days)
    later = np.arange(first[-1] + later_interval_days, follow_up_days + 1e-9, later_interval_days)
    return np.concatenate([first, later])


def trajectory_values(population: Population) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Parameter arrays of every (patient, lesion) trajectory, and the patient and lesion index of each."""
    patient_idx, lesion_idx = np.nonzero(np.arange(MAX_LESIONS)[None, :] < population.n_lesions[:, None])
    values = {k: v[patient_idx] for k, v in population.setting_values.items()}
    values.update({k: v[patient_idx] for k, v in population.patient_values.items()})
    values.update({k: v[patient_idx, lesion_idx] for k, v in population.lesion_values.items()})
    return values, patient_idx, lesion_idx


def _run(
    arm: str,
    values: Mapping[str, np.ndarray],
    t_scan: np.ndarray,
    stop: np.ndarray | None,
    rtol: float,
    atol: float,
    stop_when=None,
) -> xr.Dataset:
    params, regimen = scenario(arm, "hot_tnbc", float(t_scan[-1]))  # the setting is replaced per trajectory
    with warnings.catch_warnings():
        # population values outside a parameter's sweep bounds are intended (inside the physical domain,
        # which with_values still enforces); doses after follow-up are not given by design
        warnings.simplefilter("ignore", BoundsWarning)
        warnings.simplefilter("ignore", DoseWarning)
        params = params.with_values(dict(values))
        return simulate(
            full_model(),
            params,
            regimen,
            times=t_scan,
            solver="rodas",
            start="quasi_steady",
            on_failure="record",
            keep=["tumour_diameter"],
            rtol=rtol,
            atol=atol,
            dose_stop_days=stop,
            stop_when=stop_when,
            progress=False,  # simulate_trials shows one bar over patient chunks instead
        )


class OffStudyAtProgression:
    """``stop_when`` for :func:`moa.simulate`: each patient's lesions stop at the patient's first RECIST PD
    scan (the sum of its target lesions, :func:`moa.analysis.recist_lesions`), as a patient leaves a trial.

    ``patient`` and ``lesion``: the patient and lesion slot of each trajectory (:func:`trajectory_values`).
    It keeps the diameters seen so far (``diameter_mm``: patient x scan x lesion) and asks RECIST at each scan
    whether the patient progressed there; nothing after a patient's first PD scan changes a RECIST readout.
    """

    description = "each patient's lesions stop at its first RECIST progression scan (off study)"

    def __init__(self, n_patients: int, patient: np.ndarray, lesion: np.ndarray, scan_days: np.ndarray):
        self.patient, self.lesion, self.scan_days = patient, lesion, np.asarray(scan_days, dtype=float)
        self.diameter_mm = np.full((n_patients, self.scan_days.size, MAX_LESIONS), np.nan)

    def __call__(self, i: int, values: Mapping[str, np.ndarray]) -> np.ndarray:
        self.diameter_mm[self.patient, i, self.lesion] = values["tumour_diameter"]
        if i == 0:
            return np.zeros(self.patient.size, dtype=bool)
        rec = recist_lesions(self.diameter_mm[:, : i + 1], self.scan_days[: i + 1], confirm=False)
        progressed_here = np.asarray(rec["progression_day"].values) == self.scan_days[i]
        return progressed_here[self.patient]


def _record_status(
    status: np.ndarray, message: np.ndarray, patient: np.ndarray, lesion: np.ndarray, ds: xr.Dataset
) -> None:
    """Per patient, the first failed lesion's solver status and message (status 0: every lesion ran)."""
    codes = np.atleast_1d(np.asarray(ds["status"].values))
    texts = np.atleast_1d(np.asarray(ds["message"].values))
    for k in np.nonzero(codes != 0)[0]:
        if status[patient[k]] == 0:
            status[patient[k]] = int(codes[k])
            message[patient[k]] = f"lesion {int(lesion[k])}: {texts[k]}"


#: What :func:`simulate_trial` simulates after a patient's progression scan (see its docstring).
AFTER_PROGRESSION = ("off_study", "untreated", "treated")


def simulate_trial(
    arm: str,
    population: Population,
    *,
    follow_up_days: float | None = None,
    scans: Sequence[float] | None = None,
    after_progression: str = "off_study",
    confirm: bool = True,
    rtol: float = TRIAL_RTOL,
    atol: float = TRIAL_ATOL,
) -> xr.Dataset:
    """Run ``arm`` (models/arms.toml) on every patient of ``population``; RECIST at the scans; PFS.

    Each lesion is a separate trajectory with the patient's parameters and its own lesion parameters (they
    do not interact: see the module docstring). ``scans`` default: :func:`scan_days` of the population's
    trial conduct up to ``follow_up_days`` (default: the fixed follow-up of models/population.toml).

    ``after_progression``: what happens after a patient's first PD scan. Every RECIST readout and PFS are
    the same for the three (the test suite checks it); only ``diameter_mm`` after progression differs.

    * ``"off_study"`` (default): the patient leaves the trial, as in IMpassion130: its lesions are not
      simulated further (:class:`OffStudyAtProgression`) and its diameters after that scan are NaN. One pass;
      the cheapest, since most patients progress long before the end of follow-up.
    * ``"untreated"``: doses stop at the progression scan and the lesions are followed to the end (a second
      pass of the progressed patients with ``simulate(dose_stop_days=...)``).
    * ``"treated"``: every patient gets every dose to the end of follow-up (one pass).

    Returns dims ``patient``, ``scan``, ``lesion``: ``diameter_mm``, the outputs of
    :func:`moa.analysis.recist_lesions`, ``pfs_days``/``pfs_event`` censored at follow-up, ``pdl1_positive``,
    ``failed`` (a lesion's solver failed: the patient is left out of readouts), and the run's provenance in
    attrs (``simulated_lesion_days``: the lesion-days integrated, the run's cost).
    """
    if after_progression not in AFTER_PROGRESSION:
        raise ValueError(f"after_progression={after_progression!r}: allowed values are {AFTER_PROGRESSION}")
    spec = population.spec
    follow_up = float(follow_up_days if follow_up_days is not None else spec.follow_up_days)
    t_scan = (
        np.asarray(scans, dtype=float)
        if scans is not None
        else scan_days(follow_up, spec.scan_first_year_days, spec.scan_later_days, spec.first_year_days)
    )
    if t_scan[0] != 0.0 or np.any(np.diff(t_scan) <= 0):
        raise ValueError(f"scans={t_scan.tolist()}: must start at day 0 (baseline) and increase")
    values, pi, li = trajectory_values(population)
    n = population.size
    started = time.perf_counter()
    watch = OffStudyAtProgression(n, pi, li, t_scan) if after_progression == "off_study" else None
    ds = _run(arm, values, t_scan, None, rtol, atol, stop_when=watch)
    ends = np.full(pi.size, t_scan[-1])
    if watch is not None:
        ends = np.where(np.isnan(ds["stop_day"].values), t_scan[-1], ds["stop_day"].values)
    diam = np.full((n, t_scan.size, MAX_LESIONS), np.nan)
    diam[pi, :, li] = ds["tumour_diameter"].values
    status = np.zeros(n, dtype=int)
    message = np.full(n, "", dtype=object)
    _record_status(status, message, pi, li, ds)
    rec = recist_lesions(diam, t_scan, confirm=confirm)
    unconfirmed = recist_lesions(diam, t_scan, confirm=False)["best_overall_response"]
    progression = np.asarray(rec["progression_day"].values, dtype=float)
    n_second = 0
    runs = [({"pass": 1, "after_progression": after_progression}, ds.attrs)]  # rerun: no stop, same up to it
    if after_progression == "untreated":
        again = np.isfinite(progression)[pi]
        if again.any():
            sub = {k: v[again] for k, v in values.items()}
            ds2 = _run(arm, sub, t_scan, progression[pi][again], rtol, atol)
            diam[pi[again], :, li[again]] = ds2["tumour_diameter"].values
            _record_status(status, message, pi[again], li[again], ds2)
            n_second = int(again.sum())
            runs.append(({"pass": 2, "dose_stop_days": ds2.attrs["dose_stop_days"]}, ds2.attrs))
            # RECIST again on what pass 2 gave: identical up to progression (the test suite checks it)
            rec = recist_lesions(diam, t_scan, confirm=confirm)
            unconfirmed = recist_lesions(diam, t_scan, confirm=False)["best_overall_response"]
    pfs_days = np.where(np.isfinite(progression), progression, follow_up)
    pfs_days, pfs_event = censor(pfs_days, np.isfinite(progression), follow_up)
    out = rec.assign(
        diameter_mm=(("patient", "scan", "lesion"), diam),
        best_overall_response_unconfirmed=("patient", np.asarray(unconfirmed.values)),
    )
    out = out.assign(
        pfs_days=("patient", np.asarray(pfs_days, dtype=float)),
        pfs_event=("patient", np.asarray(pfs_event, dtype=bool)),
        pdl1_positive=("patient", population.pdl1_positive),
        n_lesions=("patient", population.n_lesions),
        failed=("patient", status != 0),
        status=("patient", status),
        message=("patient", message.astype(str)),
    )
    out = out.assign_coords(scan_day=("scan", t_scan))
    out["pfs_days"].attrs["units"] = "day"
    out["diameter_mm"].attrs.update(
        units="mm",
        description="longest diameter of each target lesion (sphere of its viable volume)"
        + ("; NaN after the patient's progression scan (off study)" if after_progression == "off_study" else ""),
    )
    out.attrs.update({k: v for k, v in ds.attrs.items() if k in ("moa_version", "git_commit", "model", "solver")})
    out.attrs["simulations"] = combine_simulations(
        runs
    )  # every parameter value of each pass (moa.report.results.rerun)
    out.attrs.update(
        {
            "arm": arm,
            "population_seed": population.seed,
            "population_file": spec.path,
            "follow_up_days": follow_up,
            "rtol": rtol,
            "atol": atol,
            "trajectories": int(pi.size),
            "after_progression": after_progression,
            "second_pass_trajectories": n_second,
            "simulated_lesion_days": float(ends.sum() + n_second * t_scan[-1]),
            "wall_s": round(time.perf_counter() - started, 3),
            "lesions": "independent trajectories sharing the patient's parameters; no new lesions modelled",
            "censoring": f"fixed follow-up of {follow_up:g} days for every patient",
        }
    )
    return out


#: Patients per task of :func:`simulate_trials`: small enough that two workers share six arms evenly, large
#: enough that a task's fixed cost (scenario, unit checks, quasi-steady start set-up) stays a few percent.
TRIAL_CHUNK_PATIENTS = 100


def _gpu_takes(n_trajectories: int) -> bool:
    """Whether the compiled solver ``simulate_trial`` uses would send a batch this large to a GPU."""
    from .solvers import RodasSolver

    return RodasSolver().sends_to_gpu(n_trajectories)


def _chunk_size(population: Population, workers: int, pool) -> int:
    """Patients per task by default: :data:`TRIAL_CHUNK_PATIENTS`, or the whole population when the arms run
    in this process and a GPU would take all its lesions as one batch (chunks of 100 patients, about 280
    lesions, are too small for it: ``RodasSolver.gpu_min_batch``)."""
    if workers == 1 and pool is None and _gpu_takes(int(population.n_lesions.sum())):
        return population.size
    return TRIAL_CHUNK_PATIENTS


def _patient_chunks(n_patients: int, chunk_patients: int) -> list[tuple[int, int]]:
    return [(a, min(a + chunk_patients, n_patients)) for a in range(0, n_patients, chunk_patients)]


def _trial_chunk(arm: str, population: Population, lo: int, hi: int, kwargs: Mapping) -> xr.Dataset:
    keep = np.zeros(population.size, dtype=bool)
    keep[lo:hi] = True
    return simulate_trial(arm, population.subset(keep), **kwargs)


def _merge_chunks(parts: Sequence[xr.Dataset], chunks: Sequence[tuple[int, int]], wall_s: float) -> xr.Dataset:
    """One arm's trial from its patient chunks, as :func:`simulate_trial` of all patients would give it."""
    out = xr.concat(parts, "patient", data_vars="minimal", coords="minimal", compat="override", join="override")
    out = out.assign_coords(patient=np.arange(out.sizes["patient"]))  # each chunk numbers its patients from 0
    out.attrs = dict(parts[0].attrs)
    for key in ("trajectories", "second_pass_trajectories"):
        out.attrs[key] = int(sum(p.attrs[key] for p in parts))
    out.attrs["simulated_lesion_days"] = float(sum(p.attrs["simulated_lesion_days"] for p in parts))
    out.attrs["wall_s"] = round(wall_s, 3)
    out.attrs["simulations"] = combine_simulations(
        [({"patients": f"{lo}..{hi - 1}"}, p.attrs) for (lo, hi), p in zip(chunks, parts)]
    )
    return out


def simulate_trials(
    arms: Sequence[str],
    population: Population,
    *,
    workers: int = 1,
    pool: concurrent.futures.Executor | None = None,
    chunk_patients: int | None = None,
    progress: bool | None = None,
    **kwargs,
) -> dict[str, xr.Dataset]:
    """:func:`simulate_trial` of each arm on the same patients, ``{arm: dataset}``, with the work split into
    chunks of ``chunk_patients`` patients run by ``workers`` processes (spawned; 1: in this process), or by
    an executor ``pool`` that the caller keeps (a calibration reuses one for all its evaluations).

    The result equals :func:`simulate_trial` of each arm on the whole population (every lesion trajectory and
    its quasi-steady start are integrated on their own, and a patient's lesions stay in one chunk), except
    ``attrs["wall_s"]``: the wall time of all arms together. ``kwargs`` go to :func:`simulate_trial`.
    ``progress``: a tqdm bar over the chunks (needs the ``progress`` extra); None (the default): only when the
    ``MOA_PROGRESS`` environment variable is set (``moa run --progress``), as :func:`moa.simulate`.
    ``chunk_patients`` None (the default): :data:`TRIAL_CHUNK_PATIENTS`, or with ``workers=1`` and a GPU that
    takes a batch of all the population's lesions, the whole population in one task per arm."""
    arms = list(arms)
    if progress is None:
        progress = bool(os.environ.get("MOA_PROGRESS"))
    if not arms:
        raise ValueError("arms=[]: give at least one arm of models/arms.toml")
    if chunk_patients is None:
        chunk_patients = _chunk_size(population, workers, pool)
    if not (isinstance(chunk_patients, int) and chunk_patients >= 1):
        raise ValueError(f"chunk_patients={chunk_patients!r}: must be an integer >= 1")
    chunks = _patient_chunks(population.size, chunk_patients)
    tasks = [(arm, lo, hi) for arm in arms for lo, hi in chunks]
    started = time.perf_counter()
    if pool is not None:
        done = _run_chunks(tasks, population, kwargs, pool, progress)
    else:
        with _process_pool(workers) as own:
            done = _run_chunks(tasks, population, kwargs, own, progress)
    wall = time.perf_counter() - started
    return {arm: _merge_chunks([done[arm, lo] for lo, _ in chunks], chunks, wall) for arm in arms}


def _run_chunks(tasks, population: Population, kwargs: Mapping, pool, progress: bool) -> dict:
    """``{(arm, first patient): dataset}`` of each task ``(arm, lo, hi)``, in ``pool`` (None: here)."""
    bar = None
    if progress:
        from tqdm.auto import tqdm  # optional extra

        bar = tqdm(total=len(tasks), desc="virtual trial", unit="chunk")
    done = {}
    if pool is None:
        for arm, lo, hi in tasks:
            done[arm, lo] = _trial_chunk(arm, population, lo, hi, kwargs)
            if bar is not None:
                bar.update()
    else:
        futures = {pool.submit(_trial_chunk, arm, population, lo, hi, kwargs): (arm, lo) for arm, lo, hi in tasks}
        for f in concurrent.futures.as_completed(futures):
            done[futures[f]] = f.result()
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    return done


def _mask(trial: xr.Dataset, subgroup: str) -> np.ndarray:
    ok = ~np.asarray(trial["failed"].values, dtype=bool)
    pos = np.asarray(trial["pdl1_positive"].values, dtype=bool)
    return ok & {"itt": np.ones_like(pos), "pdl1_positive": pos, "pdl1_negative": ~pos}[subgroup]


def trial_readouts(trial: xr.Dataset, subgroup: str = "itt", control: xr.Dataset | None = None) -> dict:
    """ORR (confirmed; ``orr_unconfirmed``: a single CR/PR scan suffices), CR, DCR (with Clopper-Pearson 95%
    CIs, %), median PFS and DOR (months, 95% CI) of one arm in one subgroup; with ``control`` (another arm on
    the same patients), the PFS hazard ratio vs it and log-rank p."""
    if subgroup not in SUBGROUPS:
        raise ValueError(f"subgroup={subgroup!r}: allowed: {SUBGROUPS}")
    m = _mask(trial, subgroup)
    bor = np.asarray(trial["best_overall_response"].values)[m]
    k = int(m.sum())
    out: dict = {"n": k}
    if k == 0:
        return out
    unconfirmed = np.asarray(trial["best_overall_response_unconfirmed"].values)[m]
    for name, cats, responses in (
        ("orr", ("CR", "PR"), bor),
        ("cr", ("CR",), bor),
        ("dcr", ("CR", "PR", "SD"), bor),
        ("orr_unconfirmed", ("CR", "PR"), unconfirmed),
    ):
        p, lo, hi = proportion_ci(int(np.isin(responses, cats).sum()), k)
        out[name] = [100 * p, 100 * lo, 100 * hi]
    t = np.asarray(trial["pfs_days"].values)[m]
    e = np.asarray(trial["pfs_event"].values)[m]
    out["median_pfs"] = [x / DAYS_PER_MONTH for x in median_survival(t, e)]
    dor = np.asarray(trial["duration_of_response_days"].values)[m]
    responders = np.isfinite(dor)
    if responders.any():
        prog = np.isfinite(np.asarray(trial["progression_day"].values)[m])[responders]
        out["median_dor"] = [x / DAYS_PER_MONTH for x in median_survival(dor[responders], prog)]
    if control is not None:
        mc = _mask(control, subgroup)
        tc, ec = np.asarray(control["pfs_days"].values)[mc], np.asarray(control["pfs_event"].values)[mc]
        if not (e.any() and ec.any()):  # no progression in one arm: the hazard ratio is not estimable
            return {key: ([float(x) for x in v] if isinstance(v, (list, tuple)) else v) for key, v in out.items()}
        group = np.concatenate([np.ones(t.size, bool), np.zeros(tc.size, bool)])
        try:
            out["hr"] = list(hazard_ratio(np.concatenate([t, tc]), np.concatenate([e, ec]), group))
        except (RuntimeError, ZeroDivisionError):  # separated arms (tiny samples): no finite Cox estimate
            out["hr"] = [float("nan")] * 3
        out["logrank_p"] = float(logrank(t, e, tc, ec)[1])
    return {key: ([float(x) for x in v] if isinstance(v, (list, tuple)) else v) for key, v in out.items()}


# ------------------------------------------------------------------------------------------ calibration
def _model_value(target: Target, trials: Mapping[str, xr.Dataset], control_arm: str) -> float:
    r = trial_readouts(trials[target.arm], target.subgroup, trials[control_arm] if target.readout == "hr" else None)
    v = r.get(target.readout)
    return float(v[0]) if v is not None else float("nan")


def objective(
    spec: PopulationSpec,
    values: Sequence[float],
    *,
    n_patients: int,
    seed: int,
    control_arm: str = "nabp",
    pool: concurrent.futures.Executor | None = None,
) -> tuple[float, list[dict], dict]:
    """The calibration objective at ``values`` of ``spec.calibration_parameters``: the weighted sum of squared
    residuals in units of each trial 95% CI half-width, over the targets with weight > 0. The same patients
    (``seed``) serve every evaluation and both arms (common random numbers). A NaN readout (e.g. median PFS
    not reached) counts as 10 half-widths. ``pool``: an executor running the arms' patient chunks side by side
    (same result). Returns (objective, rows, trials)."""
    trial_spec = spec.with_values(dict(zip(spec.calibration_parameters, values)))
    population = sample_population(n_patients, seed, trial_spec)
    arms = sorted({t.arm for t in spec.targets} | {control_arm})
    trials = simulate_trials(arms, population, pool=pool)
    rows, total = [], 0.0
    for t in spec.targets:
        model = _model_value(t, trials, control_arm)
        z = (model - t.value) / t.half_width if math.isfinite(model) else 10.0
        total += t.weight * z * z
        rows.append(
            {
                "name": t.name,
                "model": model,
                "trial": t.value,
                "trial_low": t.low,
                "trial_high": t.high,
                "unit": t.unit,
                "weight": t.weight,
                "residual_half_widths": z,
                "inside_trial_ci": bool(math.isfinite(model) and t.low <= model <= t.high),
            }
        )
    return total, rows, trials


def calibrate(
    *,
    n_patients: int,
    seed: int,
    max_evaluations: int,
    spec: PopulationSpec | None = None,
    profile_points: int = 0,
    workers: int = 1,
    progress: bool = False,
) -> dict:
    """Fit ``spec.calibration_parameters`` to the IMpassion130 targets by Nelder-Mead (scipy.optimize) from the
    values in models/population.toml, within the bounds of ``[calibration]`` (a point outside them costs 1e6),
    at most ``max_evaluations`` objective evaluations on ``n_patients`` patients per arm drawn with ``seed``.
    Deterministic: same inputs, same fitted values. ``profile_points`` > 0 adds a one-at-a-time profile of
    the objective for each parameter around the fit (which the data pin down and which they do not).
    ``workers`` > 1 runs each evaluation's arms, in chunks of patients, in that many processes (the fitted values
    do not change). ``progress``: one line per evaluation on stderr (objective, best so far, elapsed time)."""
    with _process_pool(workers) as pool:
        return _calibrate(n_patients, seed, max_evaluations, spec or load_population(), profile_points, pool, progress)


@contextlib.contextmanager
def _process_pool(workers: int):
    """A spawn process pool of ``workers`` processes (arms or patient chunks side by side), or None for one."""
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers={workers!r}: must be an integer >= 1")
    if workers == 1:
        yield None
        return
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def _calibrate(
    n_patients: int,
    seed: int,
    max_evaluations: int,
    spec: PopulationSpec,
    profile_points: int,
    pool,
    progress: bool = False,
):
    names = list(spec.calibration_parameters)
    lower, upper = np.array(spec.calibration_lower), np.array(spec.calibration_upper)
    start = np.array([spec.value_of(f) for f in names])
    history: list[dict] = []
    started = time.perf_counter()
    total = max_evaluations + len(names) * profile_points

    def evaluate(x, what: str) -> float:
        value = float(objective(spec, x, n_patients=n_patients, seed=seed, pool=pool)[0])
        if progress:
            best = min([h["objective"] for h in history] + [value])
            print(
                f"calibrate: {what} objective {value:.4g} (best {best:.4g}), {time.perf_counter() - started:.0f} s; "
                f"at most {total} evaluations",
                file=sys.stderr,
                flush=True,
            )
        return value

    def f(x):
        if np.any(x < lower) or np.any(x > upper):
            return 1e6
        value = evaluate(x, f"evaluation {len(history) + 1}:")
        history.append({"values": [float(v) for v in x], "objective": value})
        return value

    res = optimize.minimize(
        f,
        np.clip(start, lower, upper),
        method="Nelder-Mead",
        options={
            "maxfev": max_evaluations,
            "xatol": 1e-3,
            "fatol": 1e-3,
            "initial_simplex": _simplex(np.clip(start, lower, upper), lower, upper),
        },
    )
    best = min(history, key=lambda h: h["objective"]) if history else {"values": list(start), "objective": float("nan")}
    value, rows, _ = objective(spec, best["values"], n_patients=n_patients, seed=seed, pool=pool)
    profile = {}
    for i, name in enumerate(names if profile_points else ()):
        grid = np.linspace(lower[i], upper[i], profile_points)
        pts = []
        for g in grid:
            x = np.array(best["values"], dtype=float)
            x[i] = g
            pts.append([float(g), evaluate(x, f"profile {name} = {g:.4g}:")])
        profile[name] = pts
    return {
        "parameters": names,
        "start": [float(v) for v in start],
        "lower": lower.tolist(),
        "upper": upper.tolist(),
        "fitted": dict(zip(names, [float(v) for v in best["values"]])),
        "objective": float(value),
        "objective_definition": "sum over targets of weight x ((model - trial) / (95% CI half-width))^2",
        "optimiser": "scipy.optimize.minimize(method='Nelder-Mead'), initial simplex 10% of each bound range",
        "evaluations": len(history),
        "simulated_patients_per_evaluation": 2 * n_patients,
        "seed": seed,
        "n_patients_per_arm": n_patients,
        "residuals": rows,
        "history": history,
        "profile": profile,
        **_fit_counts(rows),
        "wall_s": round(time.perf_counter() - started, 1),
        "message": str(res.message),
    }


def _simplex(x0: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Nelder-Mead start: x0 and one vertex per parameter moved by 10% of its range (towards the far bound)."""
    out = [x0.copy()]
    for i in range(x0.size):
        v = x0.copy()
        step = 0.1 * (upper[i] - lower[i])
        v[i] = v[i] + step if v[i] + step <= upper[i] else v[i] - step
        out.append(v)
    return np.array(out)


#: Separates the calibration note from the entry's own source in models/population.toml.
CALIBRATED_SEPARATOR = " || "


def _calibrated_source(source: str, key: str, value: float, note: str) -> str:
    """``calibrated: <key> = <value> (<note>) || <the entry's own source>``; a previous calibration note of
    the same key is replaced, the entry's own source (a citation of its other fields) kept."""
    notes = source.split(CALIBRATED_SEPARATOR)
    own = [n for n in notes if not n.startswith(f"calibrated: {key} = ")]
    return CALIBRATED_SEPARATOR.join([f"calibrated: {key} = {value:.4g} ({note})", *own])


def write_calibrated(fitted: Mapping[str, float], note: str, path: pathlib.Path | str = POPULATION_FILE) -> None:
    """Write fitted values into models/population.toml in place (comments kept), putting
    ``calibrated: <key> = <value> (<note>)`` in front of each entry's source; the file is re-read and checked
    before it replaces the old one."""
    path = pathlib.Path(path)
    text = path.read_text(encoding="utf-8")
    for field, value in fitted.items():
        level, name, key = _split_field(field)
        header = f"[{level}.{name}]"
        start = text.index(header)
        end = text.find("\n[", start + len(header))
        end = len(text) if end < 0 else end
        block = text[start:end]
        block, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value:.6g}", block)
        if n != 1:
            raise ValueError(f"{path.name}: {header} has no line '{key} = ...' to write the fitted value into")
        block = re.sub(
            r'(?m)^source = "(.*)"$',
            lambda m, k=key, v=value: f'source = "{_calibrated_source(m[1], k, v, note)}"',
            block,
        )
        text = text[:start] + block + text[end:]
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        load_population(tmp)
    except ValueError:
        tmp.unlink()
        raise
    tmp.replace(path)


def check_calibration(*, n_patients: int, seed: int, workers: int = 1, spec: PopulationSpec | None = None) -> dict:
    """The calibration targets at the values in models/population.toml on ``n_patients`` per arm drawn with
    ``seed``: with another seed than the fit's, an out-of-sample check of the calibration. Returns the objective,
    each target's row (:func:`objective`) and how many fitted targets lie inside their trial CI."""
    spec = spec or load_population()
    values = [spec.value_of(f) for f in spec.calibration_parameters]
    started = time.perf_counter()
    with _process_pool(workers) as pool:
        value, rows, _ = objective(spec, values, n_patients=n_patients, seed=seed, pool=pool)
    return {
        "values": dict(zip(spec.calibration_parameters, [float(v) for v in values])),
        "seed": seed,
        "n_patients_per_arm": n_patients,
        "objective": float(value),
        "residuals": rows,
        **_fit_counts(rows),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _fit_counts(rows: Sequence[dict]) -> dict:
    """How many of the fitted targets (weight > 0) of :func:`objective`'s rows lie inside their trial CI."""
    fitted = [r for r in rows if r["weight"] > 0]
    return {"inside_trial_ci": sum(r["inside_trial_ci"] for r in fitted), "fitted_targets": len(fitted)}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m moa.trial calibrate [--patients N] [--evaluations K] [--seed S] [--profile P] [--write]`` and
    ``python -m moa.trial check [--patients N] [--seed S]`` (the calibrated values on another population; exit
    status 1 when a fitted target falls outside its trial 95% CI, so that a script or CI job can fail on it)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m moa.trial", description="virtual-trial calibration to IMpassion130")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser(
        "calibrate",
        help="fit models/population.toml [calibration] parameters; writes results/virtual_trial/calibration.json",
    )
    c.add_argument("--patients", type=int, default=300, help="virtual patients per arm (default 300)")
    c.add_argument("--evaluations", type=int, default=40, help="objective evaluations (default 40)")
    c.add_argument("--seed", type=int, default=2018)
    c.add_argument("--profile", type=int, default=5, help="points per one-at-a-time profile (0: none)")
    c.add_argument(
        "--workers", type=int, default=1, help="processes running the arms' patient chunks side by side (default 1)"
    )
    c.add_argument("--out", default="results/virtual_trial/calibration.json")
    c.add_argument("--write", action="store_true", help="write the fitted values into models/population.toml")
    k = sub.add_parser(
        "check",
        help="the calibration targets at the values in models/population.toml on another population (out of sample)",
    )
    k.add_argument("--patients", type=int, default=1000, help="virtual patients per arm (default 1000)")
    k.add_argument("--seed", type=int, default=2019, help="population seed (default 2019; the fit used 2018)")
    k.add_argument(
        "--workers", type=int, default=1, help="processes running the arms' patient chunks side by side (default 1)"
    )
    k.add_argument("--out", default=None, help="default results/virtual_trial/calibration_check_seed<SEED>.json")
    args = ap.parse_args(argv)
    if args.command == "check":
        result = check_calibration(n_patients=args.patients, seed=args.seed, workers=args.workers)
        write_json(pathlib.Path(args.out or f"results/virtual_trial/calibration_check_seed{args.seed}.json"), result)
        for r in result["residuals"]:
            mark = "inside" if r["inside_trial_ci"] else "OUTSIDE"
            fitted = "" if r["weight"] > 0 else "  (not fitted)"
            print(
                f"{r['name']:<45} model {r['model']:7.2f}  trial {r['trial']:6.2f} "
                f"({r['trial_low']:.1f}-{r['trial_high']:.1f})  {mark}{fitted}"
            )
        print(
            f"{result['inside_trial_ci']} of {result['fitted_targets']} fitted targets inside their trial CI; "
            f"objective {result['objective']:.3g}; seed {args.seed}, {args.patients} patients per arm; "
            f"{result['wall_s']} s"
        )
        return 0 if result["inside_trial_ci"] == result["fitted_targets"] else 1
    result = calibrate(
        n_patients=args.patients,
        seed=args.seed,
        max_evaluations=args.evaluations,
        profile_points=args.profile,
        workers=args.workers,
        progress=True,
    )
    write_json(pathlib.Path(args.out), result)
    if args.write:
        write_calibrated(
            result["fitted"],
            f"IMpassion130 ITT and PD-L1+ ORR, median PFS, HR (models/population.toml "
            f"[calibration.targets]); {args.patients} patients per arm, seed {args.seed}, Nelder-Mead "
            f"{result['evaluations']} evaluations, objective {result['objective']:.3g}, {result['inside_trial_ci']} "
            f"of {result['fitted_targets']} inside the trial CI; python -m moa.trial calibrate --patients "
            f"{args.patients} --evaluations {args.evaluations} --profile {args.profile} --seed {args.seed} --write",
        )
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("fitted", "objective", "inside_trial_ci", "fitted_targets", "evaluations", "wall_s")
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
