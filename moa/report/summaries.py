"""The contract between the experiments and the claims: the summary each experiment returns.

An experiment's ``main`` returns a small JSON-able summary (stored as ``summary`` in its
``run.json``); :mod:`moa.report.claims` turns those numbers into verdicts. Each summary that the claims
read is declared here once, as a frozen dataclass whose fields are the summary's top-level keys
and whose nested parts are ``TypedDict`` s. The experiment builds its summary through the
contract (``ColdLeversSummary(...).as_dict()``) and the claims read it through the contract
(``ColdLeversSummary.from_summary(summary)``), so a key renamed on one side fails on the other
with a :class:`~moa.errors.SummaryError` naming the experiment, the key and the keys present,
instead of silently changing a verdict.

Keys are required when the claims need them to give a verdict and optional (default ``None``)
otherwise. Mappings keyed by arm, setting, lever or parameter names hold data, not contract keys.
"""

# No `from __future__ import annotations`: TypedDict sees NotRequired[...] only in evaluated annotations.
import collections.abc
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NotRequired, TypedDict

from ..errors import SummaryError

__all__ = [
    "ExperimentSummary",
    "ArmsSettingsSummary",
    "ColdLeversSummary",
    "ExhaustionDynamicsSummary",
    "SweepsSummary",
    "FormatBellSummary",
    "ChemoCombinationSummary",
    "MabsVsBispecificSummary",
    "ClaimsRobustnessSummary",
    "CONTRACTS",
    "contract_for",
    "declared_keys",
    "LeverInfo",
    "LeverPoint",
    "GainBlock",
    "ReinvigorationOutcome",
    "ExhaustionArm",
    "SweepEnd",
    "SweepParameter",
    "SweepMap",
    "InVivoBell",
    "ScheduleVerdict",
    "DoseCurve",
    "RobustClaim",
    "VirtualTrialSummary",
    "TrialReadout",
    "CalibrationRow",
    "BASELINE_POINT",
    "ALL_LEVERS_POINT",
    "ALL_BUT_PREFIX",
]

#: Point labels of ``cold_levers``: the cold setting as it is, every lever at its hot value, and
#: every lever hot but one (``all_but:<lever>``).
BASELINE_POINT = "baseline"
ALL_LEVERS_POINT = "all_levers"
ALL_BUT_PREFIX = "all_but:"


# ----- nested parts ------------------------------------------------------------------------
class LeverInfo(TypedDict):
    """A lever of the cold setting: its cold value and its value in the reference (hot) setting."""

    value: float
    reference_value: float
    unit: str


class LeverPoint(TypedDict):
    """One point of ``cold_levers``: best % change per arm, peak effectors per arm vs untreated, any failure."""

    best_percent_change: Mapping[str, float | None]
    peak_t_eff_fold_vs_untreated: Mapping[str, float | None]
    failed: NotRequired[bool]


class GainBlock(TypedDict):
    """The costimulation gains at the ends of their bounds in one setting: values and outcomes per point label."""

    values: Mapping[str, Mapping[str, float]]
    outcomes: Mapping[str, LeverPoint]


class ReinvigorationOutcome(TypedDict):
    """One arm of ``exhaustion_dynamics`` with or without reinvigoration (folds are vs untreated)."""

    peak_t_eff_fold_vs_untreated: float
    peak_t_pex_fold_vs_untreated: float
    diameter_day84: float
    t_eff: NotRequired[float]
    t_pex: NotRequired[float]
    t_ex: NotRequired[float]
    tumour_diameter: NotRequired[float]
    mean_cd137_signal: NotRequired[float]
    mean_cd137_costimulation: NotRequired[float]
    peak_t_eff: NotRequired[float]
    peak_t_pex: NotRequired[float]
    t_eff_fold_vs_untreated: NotRequired[float]
    t_pex_fold_vs_untreated: NotRequired[float]


class ExhaustionArm(TypedDict):
    """One arm of ``exhaustion_dynamics``: its outcome with and without reinvigoration of exhausted cells."""

    with_reinvigoration: ReinvigorationOutcome
    without_reinvigoration: ReinvigorationOutcome


class SweepEnd(TypedDict):
    """One end of a one-parameter sweep: the parameter's value and the benefit there (log10 cells)."""

    value: float
    benefit_log10: float | None


class SweepParameter(TypedDict):
    """One swept parameter of ``sweeps``: the benefit at both ends of its bounds and where its sign changes."""

    low: SweepEnd
    high: SweepEnd
    sign_changes_at: Sequence[float]
    max_benefit_log10: NotRequired[float | None]
    fraction_beats: NotRequired[float | None]
    unit: NotRequired[str]


class SweepMap(TypedDict, total=False):
    """The two-lever benefit map (empty when it was not run)."""

    setting: str
    axes: Sequence[str]
    shape: Sequence[int]
    fraction_bsab_beats_apdl1: float | None
    fraction_apdl1_beats_bsab: float | None
    margin_log10: float
    benefit_range_log10: Sequence[float | None] | None
    failed_points: int


class RobustSubset(TypedDict):
    """A claim's fraction over a subset of the sampled points (e.g. where the untreated tumour does not respond)."""

    points: int
    fraction_holds: float | None
    ci_low: float | None
    ci_high: float | None


class RobustClaim(TypedDict):
    """One claim in one setting of ``claims_robustness``: how often its verdict holds over the sampled points."""

    section: int
    title: str
    setting: str
    rule: str
    points: int
    failed_points: int
    fraction_holds: float | None
    ci_low: float | None
    ci_high: float | None
    drivers: Sequence[str]
    by_construction: NotRequired[str | None]
    margin: NotRequired[str]
    undecided_points: NotRequired[int]
    no_untreated_response: NotRequired[RobustSubset]  # the same over the points whose untreated tumour does not respond


class InVivoBell(TypedDict):
    """One format in one setting of ``format_bell``'s in vivo dose scan."""

    dose_at_peak_ternary_mg_per_kg: float
    peak_is_interior: bool
    ternary_at_rp2d_over_peak: float
    best_percent_change_at_rp2d: float
    cd137_signal_cycle2_at_rp2d: NotRequired[float]


class ScheduleVerdict(TypedDict):
    """Concurrent against lead-in nab-paclitaxel at one day."""

    day: float
    better: str
    log10_cells_lead_in_over_concurrent: NotRequired[float]
    tumour_cells_concurrent: NotRequired[float]
    tumour_cells_lead_in: NotRequired[float]


class DoseCurve(TypedDict):
    """One arm in one setting of ``mabs_vs_bispecific``: outcomes against dose."""

    dose_mg_per_kg: Sequence[float]
    best_percent_change: Sequence[float]
    liver_readout_day: Sequence[float]


# ----- the contract ------------------------------------------------------------------------
class TrialReadout(TypedDict):
    """One arm in one subgroup of ``virtual_trial``: percentages and months as [value, 95% low, 95% high]."""

    n: int
    orr: NotRequired[Sequence[float]]
    orr_unconfirmed: NotRequired[Sequence[float]]
    cr: NotRequired[Sequence[float]]
    dcr: NotRequired[Sequence[float]]
    median_pfs: NotRequired[Sequence[float]]
    median_dor: NotRequired[Sequence[float]]
    hr_vs_nabp: NotRequired[Sequence[float]]
    hr_vs_nabp_apdl1: NotRequired[Sequence[float]]
    logrank_p_vs_nabp: NotRequired[float]
    logrank_p_vs_nabp_apdl1: NotRequired[float]


class CalibrationRow(TypedDict):
    """One IMpassion130 number beside the model (``virtual_trial``)."""

    name: str
    model: float
    trial: float
    trial_low: float
    trial_high: float
    unit: str
    weight: float
    residual_half_widths: float
    inside_trial_ci: bool


def _key(field: dataclasses.Field) -> str:
    """The summary key of a field (its name unless the key is not an identifier)."""
    return field.metadata.get("key", field.name)


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _key_field(key: str, default: Any = dataclasses.MISSING) -> Any:
    """A field stored under ``key`` in the summary (for keys such as ``best_change_two_mabs_agonist0.1_hot``)."""
    return dataclasses.field(default=default, metadata={"key": key})


def _check(value: Any, hint: Any, where: str, fail) -> None:
    """Check the keys of ``value`` against the type ``hint`` (TypedDicts, mappings, sequences, optionals)."""
    if value is None:
        return  # an optional value, or a number that was not finite (written as null)
    origin = typing.get_origin(hint)
    if typing.is_typeddict(hint):
        if not isinstance(value, Mapping):
            fail(f"{where} is {type(value).__name__}, expected a mapping with keys {sorted(hint.__annotations__)}")
        missing = sorted(hint.__required_keys__ - set(value))
        unknown = sorted(set(value) - set(hint.__annotations__))
        if missing or unknown:
            fail(
                f"{where}: "
                + (f"missing key(s) {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unknown key(s) {unknown}" if unknown else "")
                + f"; keys present {sorted(value)}"
            )
        hints = typing.get_type_hints(hint)
        for k, v in value.items():
            _check(v, hints[k], f"{where}[{k!r}]", fail)
    elif origin in (Mapping, collections.abc.Mapping, dict):
        if not isinstance(value, Mapping):
            fail(f"{where} is {type(value).__name__}, expected a mapping")
        for k, v in value.items():
            _check(v, typing.get_args(hint)[1], f"{where}[{k!r}]", fail)
    elif origin in (Sequence, collections.abc.Sequence, list):
        if isinstance(value, (str, Mapping)) or not isinstance(value, collections.abc.Iterable):
            fail(f"{where} is {type(value).__name__}, expected a list")
        for i, v in enumerate(value):
            _check(v, typing.get_args(hint)[0], f"{where}[{i}]", fail)
    elif origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(inner) == 1:
            _check(value, inner[0], where, fail)


@dataclasses.dataclass(frozen=True)
class ExperimentSummary:
    """Base of the contracts: build from and turn into the summary dict of a ``run.json``."""

    #: The experiment (``experiments/<name>.py``) whose ``main`` returns this summary.
    EXPERIMENT: ClassVar[str] = ""
    #: Name of a field that collects the top-level keys containing ``|`` (``<arm>|<setting>``), or ``None``.
    PER_ARM_SETTING: ClassVar[str | None] = None

    @classmethod
    def keys(cls) -> dict[str, bool]:
        """``{summary key: required}`` of the top level."""
        return {_key(f): _required(f) for f in dataclasses.fields(cls) if f.name != cls.PER_ARM_SETTING}

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], experiment: str | None = None):
        """The contract read from a summary dict; :class:`SummaryError` names a missing or unknown key."""
        name = experiment or cls.EXPERIMENT

        def fail(what: str):
            raise SummaryError(
                f"experiment {name!r}: the summary does not match moa.report.summaries.{cls.__name__}: {what}"
            )

        if not isinstance(summary, Mapping):
            fail(f"the summary is {type(summary).__name__}, expected a mapping")
        keys = cls.keys()
        extra = {k: v for k, v in summary.items() if cls.PER_ARM_SETTING and "|" in k}
        missing = [k for k, required in keys.items() if required and k not in summary]
        if missing:
            fail(f"missing key(s) {missing}; keys present {sorted(summary)}")
        unknown = sorted(set(summary) - set(keys) - set(extra))
        if unknown:
            fail(f"unknown key(s) {unknown} (renamed? declare them in the contract); declared keys {sorted(keys)}")
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name == cls.PER_ARM_SETTING:
                values[f.name] = extra
            elif _key(f) in summary:
                values[f.name] = summary[_key(f)]
            else:
                continue
            _check(values[f.name], hints[f.name], _key(f) if f.name != cls.PER_ARM_SETTING else f.name, fail)
        return cls(**values)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]):
        """The contract read from a whole ``run.json`` record (its ``summary``)."""
        name = record.get("experiment", cls.EXPERIMENT)
        if "summary" not in record:
            raise SummaryError(f"experiment {name!r}: the run record has no 'summary'; keys present {sorted(record)}")
        return cls.from_summary(record["summary"], experiment=name)

    def as_dict(self) -> dict[str, Any]:
        """The summary dict that ``main`` returns (what ``run.json`` stores)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == self.PER_ARM_SETTING:
                out.update(value)
            else:
                out[_key(f)] = value
        return out


@dataclasses.dataclass(frozen=True)
class ArmsSettingsSummary(ExperimentSummary):
    """``arms_settings``: every arm in every setting; the mappings are ``{arm: {setting: value}}``."""

    EXPERIMENT: ClassVar[str] = "arms_settings"
    best_percent_change: Mapping[str, Mapping[str, float]]
    final_diameter_mm: Mapping[str, Mapping[str, float]]
    duration_days: float | None = None
    best_response: Mapping[str, Mapping[str, str]] | None = None
    diameter_mm_day84: Mapping[str, Mapping[str, float]] | None = None
    failed_runs: int | None = None
    figures: Sequence[str] | None = None


@dataclasses.dataclass(frozen=True)
class ColdLeversSummary(ExperimentSummary):
    """``cold_levers``: the cold setting with its levers at hot values, and the costimulation gains."""

    EXPERIMENT: ClassVar[str] = "cold_levers"
    setting: str
    reference_setting: str
    duration_days: float
    levers: Mapping[str, LeverInfo]
    lever_outcomes: Mapping[str, LeverPoint]
    gains: Mapping[str, GainBlock] | None = None
    figures: Sequence[str] | None = None


@dataclasses.dataclass(frozen=True)
class ExhaustionDynamicsSummary(ExperimentSummary):
    """``exhaustion_dynamics``: each arm with and without reinvigoration of exhausted cells."""

    EXPERIMENT: ClassVar[str] = "exhaustion_dynamics"
    default_reinvigoration_per_day: float
    arms: Mapping[str, ExhaustionArm]
    day: float | None = None
    figures: Sequence[str] | None = None


@dataclasses.dataclass(frozen=True)
class SweepsSummary(ExperimentSummary):
    """``sweeps``: one-parameter sweeps ``{setting: {parameter: ...}}`` and the two-lever map."""

    EXPERIMENT: ClassVar[str] = "sweeps"
    benefit_day: float | None = None
    #: the benefit that counts as "beats" [log10 cells]; a sign change must pass it on both sides
    margin_log10: float | None = None
    sweeps: Mapping[str, Mapping[str, SweepParameter]] | None = None
    map: SweepMap | None = None
    failed_points: int | None = None
    failure_reasons: Mapping[str, int] | None = None
    failure_examples: Sequence[str] | None = None
    duration_days: float | None = None
    n_points: int | None = None
    map_points: int | None = None
    settings: Sequence[str] | None = None
    figures: Sequence[str] | None = None


@dataclasses.dataclass(frozen=True)
class FormatBellSummary(ExperimentSummary):
    """``format_bell``: 2:2 against 1:1 in vitro (bells), in vivo (dose scans, keyed ``<format>|<setting>``)."""

    EXPERIMENT: ClassVar[str] = "format_bell"
    format_gain_peak_ternary: float
    in_vitro: Mapping[str, Mapping[str, Any]] | None = None
    in_vivo: Mapping[str, InVivoBell] | None = None
    pdl1_threshold_per_cell: Mapping[str, float] | None = None
    figures: Sequence[str] | None = None


@dataclasses.dataclass(frozen=True)
class ChemoCombinationSummary(ExperimentSummary):
    """``chemo_combination``: Bliss excess ``{setting: {combination: {"day_<d>": value}}}`` and schedules."""

    EXPERIMENT: ClassVar[str] = "chemo_combination"
    duration_days: float | None = None
    bliss_days: Sequence[float] | None = None
    bliss_excess: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None
    bliss_log10_excess: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None
    inhibition: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None
    schedule: Mapping[str, Sequence[ScheduleVerdict]] | None = None
    t_cells_vs_bispecific_alone: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None
    failed_runs: int | None = None
    figures: Sequence[str] | None = None


@dataclasses.dataclass(frozen=True)
class MabsVsBispecificSummary(ExperimentSummary):
    """``mabs_vs_bispecific``: the peripheral (liver) 4-1BB signal of the agonist against the bispecific;
    ``dose_curves`` are the top-level ``<arm>|<setting>`` keys."""

    EXPERIMENT: ClassVar[str] = "mabs_vs_bispecific"
    PER_ARM_SETTING: ClassVar[str | None] = "dose_curves"
    peripheral_ratio_agonist0p1_over_bsab15: float = _key_field("peripheral_ratio_agonist0.1_over_bsab15")
    best_change_bsab15_hot: float = _key_field("best_change_bsab15_hot")
    best_change_two_mabs_agonist0p1_hot: float = _key_field("best_change_two_mabs_agonist0.1_hot")
    duration_days: float | None = None
    liver_threshold_day: float | None = None
    agonist_readout_0p1_and_1_mg_per_kg: Sequence[float] | None = _key_field(
        "agonist_readout_0.1_and_1_mg_per_kg", None
    )
    bsab_liver_readout_by_cis_efficacy: Mapping[str, Sequence[float]] | None = None
    figures: Sequence[str] | None = None
    dose_curves: Mapping[str, DoseCurve] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ClaimsRobustnessSummary(ExperimentSummary):
    """``claims_robustness``: per claim and setting (``"<claim>|<setting>"``), the fraction of sampled points
    where it holds."""

    EXPERIMENT: ClassVar[str] = "claims_robustness"
    sampling: str
    n_points: int
    parameters: Sequence[str]
    duration_days: float
    driver_method: str
    claims: Mapping[str, RobustClaim]
    figures: Sequence[str] | None = None
    #: per setting, the fraction of points that ran where the untreated tumour reaches a partial response [1]
    untreated_partial_response: Mapping[str, float] | None = None
    #: per setting, the parameters most rank-correlated with the untreated tumour's best change ("name (+0.53)")
    untreated_response_drivers: Mapping[str, Sequence[str]] | None = None


@dataclasses.dataclass(frozen=True)
class VirtualTrialSummary(ExperimentSummary):
    """``virtual_trial``: ``readouts`` is ``{arm: {subgroup: TrialReadout}}`` with subgroups ``itt``,
    ``pdl1_positive``, ``pdl1_negative``; ``calibration`` the IMpassion130 numbers beside the model."""

    EXPERIMENT: ClassVar[str] = "virtual_trial"
    n_patients_per_arm: int
    readouts: Mapping[str, Mapping[str, TrialReadout]]
    calibration: Sequence[CalibrationRow]
    seed: int | None = None
    follow_up_days: float | None = None
    pdl1_positive_fraction: float | None = None
    acceptance_rate: float | None = None
    failed_patients: Mapping[str, int] | None = None
    prediction_spread: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]] | None = None
    fit_spread: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]] | None = None
    wall_s: Mapping[str, float] | None = None
    figures: Sequence[str] | None = None


#: The contract of each experiment whose summary the claims read.
CONTRACTS: dict[str, type[ExperimentSummary]] = {
    c.EXPERIMENT: c
    for c in (
        ArmsSettingsSummary,
        ColdLeversSummary,
        ExhaustionDynamicsSummary,
        SweepsSummary,
        FormatBellSummary,
        ChemoCombinationSummary,
        MabsVsBispecificSummary,
        ClaimsRobustnessSummary,
        VirtualTrialSummary,
    )
}


def contract_for(experiment: str) -> type[ExperimentSummary]:
    """The contract of ``experiment``; a clear error for one without a contract."""
    try:
        return CONTRACTS[experiment]
    except KeyError:
        raise SummaryError(
            f"experiment {experiment!r} has no summary contract; contracts exist for {sorted(CONTRACTS)}"
        ) from None


def _nested_keys(hint: Any, seen: set) -> set[str]:
    keys: set[str] = set()
    if typing.is_typeddict(hint):
        if hint in seen:
            return keys
        seen.add(hint)
        keys |= set(hint.__annotations__)
        for h in typing.get_type_hints(hint).values():
            keys |= _nested_keys(h, seen)
    for arg in typing.get_args(hint):
        keys |= _nested_keys(arg, seen)
    return keys


def declared_keys(top_level: bool = True) -> set[str]:
    """Every key any contract declares, nested and (unless ``top_level`` is false) top level: what
    :mod:`moa.report.claims` may read."""
    keys: set[str] = set()
    for contract in CONTRACTS.values():
        if top_level:
            keys |= set(contract.keys())
        for h in typing.get_type_hints(contract).values():
            keys |= _nested_keys(h, set())
    return keys
