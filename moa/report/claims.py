"""The press release's claims, checked against the experiments' numbers.

:func:`claims_markdown` is a pure function of the experiments' summaries (the ``summary`` in
each ``results/<name>/run.json``); :func:`write_claims` reads them and writes
``results/claims.md``. Each verdict is computed from the numbers with the thresholds below;
nothing here knows what the press release hopes for. Every summary is read through its
experiment's contract in :mod:`moa.report.summaries` (attributes, not string keys), so a key an
experiment renames fails with a :class:`~moa.errors.SummaryError` instead of changing a verdict.

The margins that decide a verdict are data: ``models/decisions.toml`` (value, unit, bounds, source),
read by :func:`load_decisions` through the parameter-file validator; the response threshold is
RECIST's, from ``models/recist.toml``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Callable, Mapping

import numpy as np

from ..analysis import partial_response_pct
from ..parameters import MODELS_DIR, convert_value, load_parameter_file
from ..scenarios import load_arms, load_formats
from .provenance import base_provenance
from .results import write_text
from .summaries import (
    ALL_BUT_PREFIX,
    ALL_LEVERS_POINT,
    BASELINE_POINT,
    ArmsSettingsSummary,
    ColdLeversSummary,
    ExperimentSummary,
    contract_for,
)

__all__ = [
    "claims_markdown",
    "write_claims",
    "load_summaries",
    "cold_verdict",
    "proliferation_verdict",
    "DecisionThresholds",
    "load_decisions",
    "DECISIONS_PATH",
    "DECISION_UNITS",
    "PointClaim",
    "ArmOutcome",
    "point_claims",
    "pdl1_negative_verdict",
    "percent_interval",
    "volume_inhibition",
    "bliss_excess",
]

#: The decision thresholds of the claims (documented in every claims file). The response threshold, a
#: partial response on best % change, is RECIST's and is read from models/recist.toml
#: (moa.analysis.partial_response_pct).
DECISIONS_PATH = MODELS_DIR / "decisions.toml"
#: The unit each decision threshold is used in here; decisions.toml may write it in any unit of the same dimension.
DECISION_UNITS = {
    "bliss_synergy_margin": "1",
    "meaningful_difference_pct_points": "percent",
    "proliferation_fold": "1",
    "reinvigoration_diameter_change": "1",
    "format_diameter_ratio": "1",
    "safety_window_fold": "1",
}


@dataclasses.dataclass(frozen=True)
class DecisionThresholds:
    """The margins that turn the experiments' numbers into verdicts (``models/decisions.toml``)."""

    bliss_synergy_margin: float  # Bliss excess on volume inhibition (fraction) beyond which: synergy / antagonism
    meaningful_difference_pct_points: float  # difference in best % change (percentage points) that counts
    proliferation_fold: float  # peak effectors over untreated above which proliferation holds
    reinvigoration_diameter_change: float  # relative day-84 diameter change above which reactivation matters
    format_diameter_ratio: float  # diameter of one format over the other's below which it counts as better
    safety_window_fold: float  # liver 4-1BB signal of the agonist over the bispecific's above which safety holds


def load_decisions(path: str | pathlib.Path = DECISIONS_PATH) -> DecisionThresholds:
    """Read the decision thresholds, validated as parameter files are (value, unit, bounds, domain and
    source; :func:`moa.parameters.load_parameter_file`) and converted to :data:`DECISION_UNITS`. A
    missing or unknown threshold, or one in another dimension, is refused naming the file and field."""
    path = pathlib.Path(path)
    specs = load_parameter_file(path)
    if set(specs) != set(DECISION_UNITS):
        missing, unknown = sorted(set(DECISION_UNITS) - set(specs)), sorted(set(specs) - set(DECISION_UNITS))
        raise ValueError(
            f"{path}: decision thresholds: missing {missing}, unknown {unknown}; "
            f"expected exactly {sorted(DECISION_UNITS)}"
        )
    return DecisionThresholds(
        **{
            name: float(convert_value(specs[name].value, specs[name].unit, unit, f"{path}: {name}"))
            for name, unit in DECISION_UNITS.items()
        }
    )


SETTING_LABELS = {"hot_tnbc": "hot TNBC (PD-L1+)", "cold": "cold tumour", "pdl1_negative_tnbc": "PD-L1-negative TNBC"}


def load_summaries(results_dir: str | pathlib.Path) -> dict[str, dict]:
    """``{experiment: summary}`` from every ``results_dir/*/run.json``."""
    out = {}
    for path in sorted(pathlib.Path(results_dir).glob("*/run.json")):
        if path.parent.name.startswith("."):
            continue  # a hidden version or staging folder; its experiment is read through the link
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out[record.get("experiment", path.parent.name)] = record.get("summary", {})
    return out


def _read(summaries: Mapping[str, Mapping | ExperimentSummary], experiment: str):
    """``experiment``'s summary read through its contract, or ``None`` when it was not run (absent or empty)."""
    summary = summaries.get(experiment)
    if not summary:
        return None
    contract = contract_for(experiment)
    return summary if isinstance(summary, contract) else contract.from_summary(summary, experiment=experiment)


def _volume_inhibition(d_arm: float, d_ref: float) -> float:
    """1 - V_arm/V_ref from diameters (V ~ d^3)."""
    return 1.0 - (d_arm / d_ref) ** 3 if d_ref > 0 else float("nan")


def _bliss(a: float, b: float, ab: float) -> float:
    return ab - (a + b - a * b)


def volume_inhibition(d_arm, d_ref) -> np.ndarray:
    """:func:`_volume_inhibition` per point: 1 - V_arm/V_ref from diameters [mm] (V ~ d^3); NaN where d_ref <= 0."""
    d_arm, d_ref = np.asarray(d_arm, dtype=float), np.asarray(d_ref, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d_ref > 0, 1.0 - (d_arm / d_ref) ** 3, np.nan)


def bliss_excess(a, b, ab) -> np.ndarray:
    """:func:`_bliss` per point: observed inhibition ``ab`` minus independent action ``a + b - a b``."""
    return _bliss(np.asarray(a, dtype=float), np.asarray(b, dtype=float), np.asarray(ab, dtype=float))


def _fmt(x: float, unit: str = "") -> str:
    return f"{x:+.0f}{unit}" if unit == "%" else f"{x:.3g}{unit}"


def cold_verdict(best_apdl1_pct: float, best_bsab_pct: float) -> str:
    """Claim 3 in one setting: anti-PD-L1 resists (no partial response) and the bispecific responds."""
    thr = partial_response_pct()
    resists, helps = best_apdl1_pct > thr, best_bsab_pct <= thr
    return (
        "HOLDS"
        if resists and helps
        else "DOES NOT HOLD"
        if resists
        else "NOT TESTED HERE (anti-PD-L1 already responds in this setting)"
    )


def pdl1_negative_verdict(best_untreated_pct: float, best_bsab_pct: float) -> str:
    """Claim 7 in one setting: the bispecific alone reaches a partial response that the untreated tumour does
    not. Where the untreated tumour itself shrinks by the partial-response threshold, a response on the
    bispecific is not the drug's, so the claim is not tested there."""
    thr = partial_response_pct()
    if best_untreated_pct <= thr:
        return "NOT TESTED HERE (the untreated tumour itself reaches a partial response)"
    return (
        "the bispecific alone reaches a partial response"
        if best_bsab_pct <= thr
        else "the bispecific alone does not reach a partial response"
    )


def proliferation_verdict(peak_t_eff_fold: float, decisions: DecisionThresholds | None = None) -> str:
    """Claim 2 (proliferation): the bispecific expands tumour effectors more than ``proliferation_fold``
    (2-fold) over untreated."""
    fold = (decisions or load_decisions()).proliferation_fold
    return (
        f"HOLDS (peak effectors >{fold:g}x untreated)"
        if peak_t_eff_fold > fold
        else f"DOES NOT HOLD (peak effectors <={fold:g}x untreated)"
    )


def _point_verdicts(point: Mapping, decisions: DecisionThresholds) -> tuple[str, str]:
    best, fold = point["best_percent_change"], point["peak_t_eff_fold_vs_untreated"]
    if point.get("failed") or best.get("apdl1") is None or best.get("bsab_2x2") is None:
        return "FAILED", "FAILED"
    return cold_verdict(best["apdl1"], best["bsab_2x2"]), proliferation_verdict(fold["bsab_2x2"], decisions)


def _lever_claims(s: ColdLeversSummary, decisions: DecisionThresholds) -> list[str]:
    """Which lever of the cold setting drives the cold verdict (one lever at a time at its hot value)."""
    points, levers = s.lever_outcomes, s.levers
    base_cold, base_prolif = _point_verdicts(points[BASELINE_POINT], decisions)
    base_bs = points[BASELINE_POINT]["best_percent_change"]["bsab_2x2"]
    out = [
        f"Levers ({SETTING_LABELS.get(s.setting, s.setting)} with one lever at a time at its "
        f"{SETTING_LABELS.get(s.reference_setting, s.reference_setting)} value, day "
        f"{s.duration_days:.0f}; experiment `cold_levers`): as it stands the cold verdict {base_cold}, the 2:2 "
        f"bispecific's best change {_fmt(base_bs, '%')}."
    ]
    flips, prolif_flips, moves = [], [], {}
    for lever, info in levers.items():
        point = points[lever]
        cold, prolif = _point_verdicts(point, decisions)
        if prolif != base_prolif:
            prolif_flips.append(lever)
        best = point["best_percent_change"]
        if None not in (best.get("bsab_2x2"), base_bs):
            moves[lever] = best["bsab_2x2"] - base_bs
        if cold != base_cold:
            flips.append(lever)
        fold = point["peak_t_eff_fold_vs_untreated"]["bsab_2x2"]
        out.append(
            f"{lever} {info['value']:.3g} -> {info['reference_value']:.3g}"
            + ("" if info["unit"] in ("1", "") else f" {info['unit']}")  # unit "1": dimensionless, no unit written
            + f": anti-PD-L1 "
            f"{_fmt(best['apdl1'], '%')}, 2:2 bispecific {_fmt(best['bsab_2x2'], '%')} (its peak effectors "
            f"x{fold:.3g} untreated) -> {cold}."
        )
    every = points[ALL_LEVERS_POINT]
    out.append(
        f"All levers at once: anti-PD-L1 {_fmt(every['best_percent_change']['apdl1'], '%')}, 2:2 bispecific "
        f"{_fmt(every['best_percent_change']['bsab_2x2'], '%')} -> {_point_verdicts(every, decisions)[0]}."
    )
    needed = [
        k
        for k in levers
        if f"{ALL_BUT_PREFIX}{k}" in points
        and _point_verdicts(points[f"{ALL_BUT_PREFIX}{k}"], decisions)[0] != _point_verdicts(every, decisions)[0]
    ]
    if any(f"{ALL_BUT_PREFIX}{k}" in points for k in levers):
        parts = [f"{k} {_fmt(points[ALL_BUT_PREFIX + k]['best_percent_change']['bsab_2x2'], '%')}" for k in levers]
        out.append(
            "All levers hot but one (that one kept cold), 2:2 bispecific best change: "
            + ", ".join(parts)
            + "; "
            + (
                f"the all-levers verdict is lost when {', '.join(needed)} stay(s) cold."
                if needed
                else "no single cold lever changes the all-levers verdict."
            )
        )
    driver = max(moves, key=lambda k: abs(moves[k])) if moves else None
    meaningful = decisions.meaningful_difference_pct_points
    out.append(
        "Verdict driver: "
        + (
            f"the verdict changes when {', '.join(flips)} alone take(s) the hot value"
            if flips
            else "no single lever changes the verdict alone"
        )
        + (
            f"; the lever that moves the bispecific's best change most is {driver} "
            f"({moves[driver]:+.0f} percentage points)."
            if driver and abs(moves[driver]) > meaningful
            else f"; no lever alone moves the bispecific's best change by more than {meaningful:.0f} percentage points."
        )
        + f" Proliferation verdict (bispecific) as it stands {base_prolif}; "
        + (
            f"it changes when {', '.join(prolif_flips)} alone take(s) the hot value."
            if prolif_flips
            else "no single lever changes it."
        )
    )
    return out


def _gain_claims(s: ColdLeversSummary, decisions: DecisionThresholds) -> list[str]:
    """How each costimulation verdict depends on the 4-1BB gains (each at the ends of its bounds)."""
    out = []
    for setting, block in (s.gains or {}).items():
        points, values = block["outcomes"], block["values"]
        base_cold, base_prolif = _point_verdicts(points[BASELINE_POINT], decisions)
        parts, changes = [], []
        for label, point in points.items():
            if label == BASELINE_POINT:
                continue
            gain, end = label.split(":")
            cold, prolif = _point_verdicts(point, decisions)
            fold = point["peak_t_eff_fold_vs_untreated"]["bsab_2x2"]
            parts.append(
                f"{gain} {end} ({values[label][gain]:.3g}): peak effectors x{fold:.3g}, bispecific best change "
                f"{_fmt(point['best_percent_change']['bsab_2x2'], '%')}"
            )
            if prolif != base_prolif:
                changes.append(f"proliferation verdict at {gain} {end}")
            if setting == "cold" and cold != base_cold:
                changes.append(f"cold verdict at {gain} {end}")
        label = SETTING_LABELS.get(setting, setting)
        out.append(
            f"Costimulation gains, {label} (as it stands: proliferation {base_prolif}"
            + (f"; cold verdict {base_cold}" if setting == "cold" else "")
            + "): "
            + "; ".join(parts)
            + ". "
            + (
                "Verdicts that flip within the bounds: " + ", ".join(changes)
                if changes
                else "No verdict flips within the bounds of these gains"
            )
            + "."
        )
    return out


def _arms_claims(s: ArmsSettingsSummary, decisions: DecisionThresholds) -> dict[str, list[str]]:
    best = s.best_percent_change
    # Inhibition is compared at day 84 (four cycles) when available: by a year most active arms
    # have eradicated the simulated tumour and every ratio saturates.
    final = s.diameter_mm_day84 or s.final_diameter_mm
    day = 84.0 if s.diameter_mm_day84 is not None else s.duration_days if s.duration_days is not None else float("nan")
    out: dict[str, list[str]] = {k: [] for k in ("synergy", "cold", "broader", "format", "chemo", "pdl1neg")}
    meaningful = decisions.meaningful_difference_pct_points
    margin, ratio = decisions.bliss_synergy_margin, decisions.format_diameter_ratio
    for setting, label in SETTING_LABELS.items():
        if setting not in best.get("untreated", {}):
            continue
        ref = final["untreated"][setting]
        ia = _volume_inhibition(final["apdl1"][setting], ref)
        ib = _volume_inhibition(final["a41bb"][setting], ref)
        iab = _volume_inhibition(final["apdl1_a41bb"][setting], ref)
        ibs = _volume_inhibition(final["bsab_2x2"][setting], ref)
        ex_two, ex_bs = _bliss(ia, ib, iab), _bliss(ia, ib, ibs)
        word = lambda e: "synergy" if e > margin else ("antagonism" if e < -margin else "additivity")  # noqa: E731
        out["synergy"].append(
            f"{label}: volume inhibition at day {day:.0f} anti-PD-L1 {ia:.2f}, anti-4-1BB {ib:.2f}; two mAbs {iab:.2f} "
            f"(Bliss excess {ex_two:+.2f}: {word(ex_two)}); 2:2 bispecific {ibs:.2f} (Bliss excess vs the two "
            f"monotherapies {ex_bs:+.2f}: {word(ex_bs)})."
        )
        b_pd, b_bs = best["apdl1"][setting], best["bsab_2x2"][setting]
        if setting == "cold":
            verdict = cold_verdict(b_pd, b_bs)
            out["cold"].append(
                f"{label}: best change anti-PD-L1 {_fmt(b_pd, '%')}, 2:2 bispecific {_fmt(b_bs, '%')} -> {verdict}."
            )
        better = b_bs < b_pd - meaningful
        out["broader"].append(
            f"{label}: best change 2:2 bispecific {_fmt(b_bs, '%')} vs anti-PD-L1 {_fmt(b_pd, '%')} -> "
            + (
                "bispecific better"
                if better
                else "no meaningful difference"
                if abs(b_bs - b_pd) <= meaningful
                else "anti-PD-L1 better"
            )
        )
        b11 = best["bsab_1x1"][setting]
        diff = b_bs - b11
        d22, d11 = final["bsab_2x2"][setting], final["bsab_1x1"][setting]
        smaller = d22 < ratio * d11
        out["format"].append(
            f"{label}: best change 2:2 {_fmt(b_bs, '%')} vs 1:1 {_fmt(b11, '%')}; diameter at day {day:.0f} "
            f"{d22:.1f} vs {d11:.1f} mm -> "
            + (
                "2:2 better"
                if diff < -meaningful or smaller
                else "1:1 better"
                if diff > meaningful or d11 < ratio * d22
                else "no meaningful difference"
            )
        )
        ic = _volume_inhibition(final["nabp"][setting], ref)
        icb = _volume_inhibition(final["nabp_bsab_2x2"][setting], ref)
        ex_c = _bliss(ic, ibs, icb)
        out["chemo"].append(
            f"{label}: inhibition nab-paclitaxel {ic:.2f}, 2:2 bispecific {ibs:.2f}, both {icb:.2f} "
            f"(Bliss excess {ex_c:+.2f}: {word(ex_c)}); best change both {_fmt(best['nabp_bsab_2x2'][setting], '%')} "
            f"vs nab-paclitaxel + anti-PD-L1 {_fmt(best['nabp_apdl1'][setting], '%')}."
        )
        if setting == "pdl1_negative_tnbc":
            out["pdl1neg"].append(
                f"{label}: best change untreated {_fmt(best['untreated'][setting], '%')}, anti-PD-L1 "
                f"{_fmt(b_pd, '%')}, 2:2 bispecific {_fmt(b_bs, '%')}, anti-4-1BB agonist "
                f"{_fmt(best['a41bb'][setting], '%')}, nab-paclitaxel {_fmt(best['nabp'][setting], '%')}, "
                "nab-paclitaxel + 2:2 "
                f"{_fmt(best['nabp_bsab_2x2'][setting], '%')} -> "
                + pdl1_negative_verdict(best["untreated"][setting], b_bs)
            )
    return out


# ----- the verdicts per point of a sweep (experiment claims_robustness) --------------------------------------
@dataclasses.dataclass(frozen=True)
class ArmOutcome:
    """One arm in one setting at every point of a sweep (arrays over points)."""

    best: np.ndarray  # best % change of tumour diameter (moa.analysis.best_percent_change) [%]
    d84: np.ndarray  # tumour diameter at day 84 [mm]
    t_eff_fold: np.ndarray | None = None  # peak over time of the arm's tumour effectors / untreated's [1]


#: What a point of a sweep gives each claim in one setting: ``{arm: ArmOutcome}``.
PointOutcomes = Mapping[str, ArmOutcome]


@dataclasses.dataclass(frozen=True)
class PointClaim:
    """A claim's verdict for every point of a sweep, by the same rule and thresholds as the text above.

    ``holds(outcomes)`` is True/False per point (NaN-free inputs) and ``margin(outcomes)`` a number per
    point that is larger where the point favours the claim (what the sensitivity analysis ranks).
    A point is undecided where ``tested`` is False (the cold claim where anti-PD-L1 already responds:
    :func:`cold_verdict`'s NOT TESTED; the PD-L1-negative claim where the untreated tumour itself responds:
    :func:`pdl1_negative_verdict`'s) or the margin is undefined (no untreated tumour left at day 84
    to compare inhibition with).
    """

    key: str
    section: int
    title: str
    settings: tuple[str, ...]
    arms: tuple[str, ...]
    rule: str
    margin_label: str
    margin_unit: str
    margin: Callable[[PointOutcomes], np.ndarray]
    holds: Callable[[PointOutcomes], np.ndarray]
    tested: Callable[[PointOutcomes], np.ndarray] | None = None  # where the claim is tested at all (None: everywhere)


def _inhibitions(o: PointOutcomes, *arms: str) -> list[np.ndarray]:
    return [volume_inhibition(o[a].d84, o["untreated"].d84) for a in arms]


def _cold_margin(o: PointOutcomes) -> np.ndarray:
    thr = partial_response_pct()
    return np.minimum(o["apdl1"].best - thr, thr - o["bsab_2x2"].best)


def _cold_holds(o: PointOutcomes) -> np.ndarray:
    """:func:`cold_verdict` == HOLDS per point: anti-PD-L1 resists and the bispecific responds."""
    thr = partial_response_pct()
    return (o["apdl1"].best > thr) & (o["bsab_2x2"].best <= thr)


def _pdl1neg_margin(o: PointOutcomes) -> np.ndarray:
    """Positive exactly where claim 7 holds: the untreated tumour stays above the response threshold and the
    bispecific reaches it (as :func:`_cold_margin`, with the untreated tumour in anti-PD-L1's place)."""
    thr = partial_response_pct()
    return np.minimum(o["untreated"].best - thr, thr - o["bsab_2x2"].best)


def _format_holds(o: PointOutcomes, d: DecisionThresholds) -> np.ndarray:
    """The format line's "2:2 better": best change lower by the meaningful margin, or day-84 diameter below
    the format ratio times 1:1's."""
    diff = o["bsab_2x2"].best - o["bsab_1x1"].best
    return (diff < -d.meaningful_difference_pct_points) | (
        o["bsab_2x2"].d84 < d.format_diameter_ratio * o["bsab_1x1"].d84
    )


_ALL = ("hot_tnbc", "cold", "pdl1_negative_tnbc")


def point_claims(decisions: DecisionThresholds | None = None) -> tuple[PointClaim, ...]:
    """The claims judged per point of a sweep, with the thresholds of ``models/decisions.toml`` (or ``decisions``)."""
    d = decisions or load_decisions()
    return (
        PointClaim(
            "synergy",
            1,
            "PD-L1 blockade and 4-1BB activation act synergistically",
            _ALL,
            ("untreated", "apdl1", "a41bb", "bsab_2x2"),
            "2:2 bispecific's Bliss excess vs the two monotherapies (volume inhibition at day 84) > "
            f"{d.bliss_synergy_margin}",
            "Bliss excess",
            "1",
            lambda o: bliss_excess(*_inhibitions(o, "apdl1", "a41bb", "bsab_2x2")),
            lambda o: bliss_excess(*_inhibitions(o, "apdl1", "a41bb", "bsab_2x2")) > d.bliss_synergy_margin,
        ),
        PointClaim(
            "proliferation",
            2,
            "4-1BB agonism drives T-cell proliferation",
            ("cold",),
            ("untreated", "bsab_2x2"),
            f"2:2 bispecific's peak tumour effectors > {d.proliferation_fold:g}x untreated (proliferation_verdict)",
            "peak effector fold vs untreated",
            "1",
            lambda o: o["bsab_2x2"].t_eff_fold,
            lambda o: o["bsab_2x2"].t_eff_fold > d.proliferation_fold,
        ),
        PointClaim(
            "cold",
            3,
            "Suited to cold tumours that resist PD-(L)1 blockade",
            ("cold",),
            ("apdl1", "bsab_2x2"),
            f"anti-PD-L1 best change > {partial_response_pct():.0f}% and 2:2 bispecific <= it (cold_verdict HOLDS)",
            "min(anti-PD-L1 - threshold, threshold - bispecific)",
            "%",
            _cold_margin,
            _cold_holds,
            lambda o: o["apdl1"].best > partial_response_pct(),
        ),
        PointClaim(
            "format",
            4,
            "The 2:2 structure is better than 1:1",
            _ALL,
            ("bsab_2x2", "bsab_1x1"),
            f"2:2 best change lower than 1:1's by > {d.meaningful_difference_pct_points:.0f} points or day-84 diameter "
            f"< {d.format_diameter_ratio:g} x 1:1's",
            "best change 1:1 - 2:2",
            "%",
            lambda o: o["bsab_1x1"].best - o["bsab_2x2"].best,
            lambda o: _format_holds(o, d),
        ),
        PointClaim(
            "broader",
            5,
            "Broader potential than PD-(L)1 inhibitors alone",
            _ALL,
            ("apdl1", "bsab_2x2"),
            f"2:2 bispecific's best change lower than anti-PD-L1's by > "
            f"{d.meaningful_difference_pct_points:.0f} points",
            "best change anti-PD-L1 - bispecific",
            "%",
            lambda o: o["apdl1"].best - o["bsab_2x2"].best,
            lambda o: o["bsab_2x2"].best < o["apdl1"].best - d.meaningful_difference_pct_points,
        ),
        PointClaim(
            "chemo",
            6,
            "Benefit with nab-paclitaxel",
            _ALL,
            ("untreated", "nabp", "bsab_2x2", "nabp_bsab_2x2"),
            f"Bliss excess of nab-paclitaxel + 2:2 bispecific (volume inhibition at day 84) > {d.bliss_synergy_margin}",
            "Bliss excess",
            "1",
            lambda o: bliss_excess(*_inhibitions(o, "nabp", "bsab_2x2", "nabp_bsab_2x2")),
            lambda o: bliss_excess(*_inhibitions(o, "nabp", "bsab_2x2", "nabp_bsab_2x2")) > d.bliss_synergy_margin,
        ),
        PointClaim(
            "pdl1neg",
            7,
            "A case in PD-L1-negative TNBC",
            ("pdl1_negative_tnbc",),
            ("untreated", "bsab_2x2"),
            f"2:2 bispecific alone reaches a partial response (best change <= {partial_response_pct():.0f}%); "
            "tested where the untreated tumour does not",
            "min(untreated - threshold, threshold - bispecific)",
            "%",
            _pdl1neg_margin,
            lambda o: o["bsab_2x2"].best <= partial_response_pct(),
            lambda o: o["untreated"].best > partial_response_pct(),
        ),
    )


def percent_interval(frac: float | None, low: float | None, high: float | None) -> str:
    """``"12% (9-19%)"`` from fractions; ``"n/a"`` where no point decided."""
    return "n/a" if frac is None else f"{100 * frac:.0f}% ({100 * low:.0f}-{100 * high:.0f}%)"


def _subset_fraction(subset) -> str:
    """A robustness subset (``no_untreated_response``) as ``"12% (9-19%) of 193"``; ``"-"`` when not recorded."""
    if not subset:
        return "-"
    return f"{percent_interval(subset['fraction_holds'], subset['ci_low'], subset['ci_high'])} of {subset['points']}"


def _arm_label(arm: str) -> str:
    """A treatment arm by its label in models/arms.toml (the name where it has none)."""
    found = load_arms().get(arm)
    return found.label if found is not None and found.label else arm


def _format_setting_label(key: str) -> str:
    """``"bsab_1x1|cold"`` as ``"1:1 bispecific, cold tumour"`` (labels from models/formats.toml and the setting
    labels); a part without a label is kept as written."""
    fmt, *settings = key.split("|")
    label = {name: f.label for name, f in load_formats().items()}.get(fmt, fmt)
    return ", ".join([label] + [SETTING_LABELS.get(s, s) for s in settings])


def _robustness_lines(summaries) -> list[str]:
    """The robustness table (experiment ``claims_robustness``), or nothing when it was not run."""
    rb = _read(summaries, "claims_robustness")
    if not rb:
        return []
    lines = [
        "## How robust each verdict is",
        f"Experiment `claims_robustness`: {rb.n_points} points of the plausible parameter space ({rb.sampling}, "
        f"{len(rb.parameters)} parameters within their bounds in models/; drug-design constants and setting levers "
        f"fixed), {rb.duration_days:.0f} days per simulation. The fraction is of the points that ran; the interval is "
        "the 95% Clopper-Pearson interval; undecided points (the claim is not tested there, or no untreated "
        f"tumour is left to compare with) are left out; drivers by {rb.driver_method}.",
        "",
        "| claim | setting | verdict rule | holds in (95% CI) | where the untreated tumour does not respond: "
        "holds in (95% CI) of points | undecided / failed points | main drivers |",
        "|---|---|---|---|---|---|---|",
    ]
    order = list(SETTING_LABELS)
    for entry in sorted(
        rb.claims.values(),
        key=lambda e: (e["section"], order.index(e["setting"]) if e["setting"] in order else len(order)),
    ):
        held = percent_interval(entry["fraction_holds"], entry["ci_low"], entry["ci_high"])
        if entry.get("by_construction"):
            held += f"; by construction: {entry['by_construction']}"
        lines.append(
            f"| {entry['section']}. {entry['title']} | {SETTING_LABELS.get(entry['setting'], entry['setting'])} | "
            f"{entry['rule']} | {held} | {_subset_fraction(entry.get('no_untreated_response'))} | "
            f"{entry.get('undecided_points', 0)} / {entry['failed_points']} | "
            f"{', '.join(entry['drivers']) or 'none significant'} |"
        )
    if rb.untreated_partial_response:
        shares = "; ".join(
            f"{SETTING_LABELS.get(s, s)} {100 * f:.0f}%"
            for s, f in sorted(
                rb.untreated_partial_response.items(),
                key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order),
            )
        )
        lines += [
            "",
            f"Without treatment the tumour itself reaches a partial response by day {rb.duration_days:.0f} in {shares} "
            "of the points that ran: the plausible ranges admit tumours the immune system controls alone. A "
            "response on a drug there is not the drug's: claim 7 leaves those points undecided (claim 3 leaves "
            "undecided those where anti-PD-L1 responds).",
        ]
        if rb.untreated_response_drivers and any(rb.untreated_response_drivers.values()):
            lines[-1] += (
                " What makes it shrink (PRCC with the untreated best change, negative: it shrinks more as the "
                "parameter rises): "
                + "; ".join(
                    f"{SETTING_LABELS.get(s, s)} {', '.join(top)}"
                    for s, top in sorted(
                        rb.untreated_response_drivers.items(),
                        key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order),
                    )
                    if top
                )
                + "."
            )
    return lines + [""]


def claims_markdown(
    summaries: Mapping[str, Mapping | ExperimentSummary], decisions: DecisionThresholds | None = None
) -> str:
    """The claims file's text, from the experiments' summaries (missing experiments are said so).

    Each summary is a dict as in ``run.json`` or its contract (:mod:`moa.report.summaries`); a summary
    that does not match its contract raises :class:`~moa.errors.SummaryError`. ``decisions`` defaults
    to ``models/decisions.toml`` (:func:`load_decisions`).
    """
    decisions = decisions or load_decisions()
    arms = _read(summaries, "arms_settings")
    a = _arms_claims(arms, decisions) if arms else None
    missing = "not run (run `moa run arms_settings`)"

    def bullets(key: str) -> list[str]:
        return [f"  - {line}" for line in a[key]] if a else [f"  - {missing}"]

    lines = [
        "# The press release's claims, checked by the model",
        "",
        "Generated by `moa run` from the experiments' numbers (moa.report.claims). Verdicts use fixed thresholds: "
        f"partial response at {partial_response_pct():.0f}% best change; Bliss excess beyond "
        f"+-{decisions.bliss_synergy_margin:g} on volume inhibition vs untreated; differences under "
        f"{decisions.meaningful_difference_pct_points:.0f} percentage points count as none. One typical "
        "patient per setting with default parameters; the sweeps say where a verdict flips.",
        "",
    ]
    lines += _robustness_lines(summaries)

    lines += [
        "## 1. PD-L1 blockade and 4-1BB activation act synergistically",
        "Experiment `arms_settings` (figure best_response_heatmap).",
        *bullets("synergy"),
        "",
    ]

    lines += [
        "## 2. 4-1BB agonism reactivates exhausted T cells and drives their proliferation",
        "Experiment `exhaustion_dynamics` (figure exhaustion_cold).",
    ]
    ex = _read(summaries, "exhaustion_dynamics")
    if ex:
        arms_ex = ex.arms
        for arm in ("a41bb", "bsab_2x2", "apdl1"):
            if arm not in arms_ex:
                continue
            w, wo = arms_ex[arm]["with_reinvigoration"], arms_ex[arm]["without_reinvigoration"]
            lines.append(
                f"  - {_arm_label(arm)}, cold tumour: peak Tpex x{w['peak_t_pex_fold_vs_untreated']:.3g} and peak "
                "effectors "
                f"x{w['peak_t_eff_fold_vs_untreated']:.3g} vs untreated; with reinvigoration set to 0: "
                f"x{wo['peak_t_pex_fold_vs_untreated']:.3g} and x{wo['peak_t_eff_fold_vs_untreated']:.3g}; tumour at "
                f"day 84 {w['diameter_day84']:.1f} vs {wo['diameter_day84']:.1f} mm."
            )
        bs = arms_ex.get("bsab_2x2")
        if bs:
            w, wo = bs["with_reinvigoration"], bs["without_reinvigoration"]
            fold = decisions.proliferation_fold
            prolif = w["peak_t_eff_fold_vs_untreated"] > fold
            reinv = abs(w["diameter_day84"] - wo["diameter_day84"]) > decisions.reinvigoration_diameter_change * max(
                wo["diameter_day84"], 1e-9
            )
            lines.append(
                "  - Verdict: proliferation "
                + (
                    f"HOLDS in the model (peak effector expansion >{fold:g}x vs untreated)"
                    if prolif
                    else f"DOES NOT HOLD (no >{fold:g}x peak expansion)"
                )
                + "; reactivation of terminally exhausted cells "
                + (
                    "changes the outcome"
                    if reinv
                    else "barely changes the outcome: the benefit comes from proliferation and survival"
                )
                + f". The reinvigoration rate ({ex.default_reinvigoration_per_day} /day) is assumed, not measured."
            )
    else:
        lines.append("  - not run (run `moa run exhaustion_dynamics`)")
    levers = _read(summaries, "cold_levers")
    if levers:
        lines += [f"  - {line}" for line in _gain_claims(levers, decisions)]
    else:
        lines.append("  - Costimulation gains: not run (run `moa run cold_levers`)")
    lines.append("")

    lines += [
        "## 3. Suited to cold tumours that resist PD-(L)1 blockade",
        "Experiments `arms_settings`, `cold_levers` and `sweeps` (hot/cold levers).",
        *bullets("cold"),
    ]
    if levers:
        lines += [f"  - {line}" for line in _lever_claims(levers, decisions)]
    else:
        lines.append("  - Levers: not run (run `moa run cold_levers`)")
    sw = _read(summaries, "sweeps")
    if sw:
        mp = sw.map or {}
        if mp.get("fraction_bsab_beats_apdl1") is not None:
            lo, hi = mp.get("benefit_range_log10") or (float("nan"), float("nan"))
            lines.append(
                f"  - {' x '.join(mp.get('axes', []))} map ({SETTING_LABELS.get(mp.get('setting'), mp.get('setting'))} "
                f"background, day {sw.benefit_day:g}): "
                f"the 2:2 bispecific leaves fewer tumour cells than anti-PD-L1 by > {mp.get('margin_log10')} log10 on "
                f"{100 * mp['fraction_bsab_beats_apdl1']:.0f}% of the map and anti-PD-L1 wins on "
                f"{100 * (mp.get('fraction_apdl1_beats_bsab') or 0):.0f}% (benefit {lo:.2g} to {hi:.2g} log10)."
            )
        for setting, params in (sw.sweeps or {}).items():
            flips = [
                f"{p} {', '.join(f'{x:.3g}' for x in v['sign_changes_at'])} {v.get('unit', '')}".rstrip()
                for p, v in params.items()
                if v.get("sign_changes_at")
            ]
            weakest = min(
                params.items(),
                key=lambda kv: min(
                    x for x in (kv[1]["low"]["benefit_log10"], kv[1]["high"]["benefit_log10"]) if x is not None
                ),
            )
            lines.append(  # "+ 0.0" below prints a benefit of -0.0 as 0, not as "-0"
                f"  - One-parameter sweeps, {SETTING_LABELS.get(setting, setting)}: the benefit changes sign "
                + (
                    f"(from beyond +{sw.margin_log10:g} to beyond -{sw.margin_log10:g} log10 or back) "
                    if sw.margin_log10 is not None
                    else ""
                )
                + (f"at {'; '.join(flips)}" if flips else "nowhere within the bounds")
                + "; it is smallest at the "
                f"{('low' if weakest[1]['low']['benefit_log10'] <= weakest[1]['high']['benefit_log10'] else 'high')} "
                f"end of {weakest[0]} "
                f"({min(weakest[1]['low']['benefit_log10'], weakest[1]['high']['benefit_log10']) + 0.0:.2g} log10)."
            )
        if sw.failed_points:
            lines.append(f"  - {sw.failed_points} sweep point(s) failed: {sw.failure_reasons}.")
    lines.append("")

    lines += ["## 4. The 2:2 structure is optimal", "Experiments `format_bell` and `arms_settings`."]
    fb = _read(summaries, "format_bell")
    if fb:
        lines.append(
            f"  - In vitro (4-1BB arm KD 100 nM, 1e5 PD-L1 per cell): peak bridged 4-1BB of 2:2 is "
            f"x{fb.format_gain_peak_ternary:.3g} that of 1:1 (same KDs, valency only)."
        )
        for key, v in (fb.in_vivo or {}).items():
            where = (
                "inside the dose range" if v["peak_is_interior"] else "at an end of the dose range (no interior peak)"
            )
            lines.append(
                f"  - In vivo, {_format_setting_label(key)}: tumour ternary peaks at "
                f"{v['dose_at_peak_ternary_mg_per_kg']:g} mg/kg, {where}; at 15 mg/kg it is "
                f"{100 * v['ternary_at_rp2d_over_peak']:.0f}% of the peak; best change at 15 mg/kg "
                f"{v['best_percent_change_at_rp2d']:+.0f}%"
                + (
                    f"; 4-1BB signal in cycle 2 at 15 mg/kg {v['cd137_signal_cycle2_at_rp2d']:.2f}."
                    if "cd137_signal_cycle2_at_rp2d" in v
                    else "."
                )
            )
        for fmt, thr in (fb.pdl1_threshold_per_cell or {}).items():
            lines.append(
                f"  - In vitro PD-L1 threshold of conditional agonism ({_format_setting_label(fmt)}): half-maximal "
                "best 4-1BB signal at "
                f"{thr:.3g} PD-L1 per cell (emerges from contact-zone bridging and clustering; MCLA-145 "
                "needed about 5-6e3)."
            )
    lines += bullets("format")
    lines += ["  - The model compares 2:2 with 1:1 only; 'optimal' among all formats is beyond what it tests.", ""]

    lines += [
        "## 5. Broader potential than PD-(L)1 inhibitors alone",
        "Experiment `arms_settings`.",
        *bullets("broader"),
        "",
    ]

    lines += [
        "## 6. Benefit with nab-paclitaxel",
        "Experiments `arms_settings` and `chemo_combination`.",
        *bullets("chemo"),
    ]
    ch = _read(summaries, "chemo_combination")
    if ch:
        for setting, combos in (ch.bliss_excess or {}).items():
            parts = [f"{c}: " + ", ".join(f"{d} {v:+.3f}" for d, v in days.items()) for c, days in combos.items()]
            lines.append(
                f"  - Bliss excess on inhibition, {SETTING_LABELS.get(setting, setting)}: " + "; ".join(parts) + "."
            )
        for setting, verdicts in (ch.schedule or {}).items():
            lines.append(
                f"  - Schedule, {SETTING_LABELS.get(setting, setting)}: "
                + "; ".join(f"day {v['day']:g}: {v['better']}" for v in verdicts)
                + "."
            )
    lines.append("")

    lines += ["## 7. A case in PD-L1-negative TNBC", "Experiment `arms_settings`.", *bullets("pdl1neg"), ""]

    lines += ["## 8. Conditional agonism spares the periphery (favourable safety)", "Experiment `mabs_vs_bispecific`."]
    mv = _read(summaries, "mabs_vs_bispecific")
    if mv:
        r = mv.peripheral_ratio_agonist0p1_over_bsab15
        lines.append(
            "  - Liver 4-1BB signal AUC over the first cycle of the agonist at its tolerated 0.1 mg/kg is "
            f"x{r:.3g} that of the 2:2 bispecific at 15 mg/kg; best change in hot TNBC: bispecific 15 mg/kg "
            f"{mv.best_change_bsab15_hot:+.0f}%, two mAbs (agonist 0.1 mg/kg) "
            f"{mv.best_change_two_mabs_agonist0p1_hot:+.0f}% -> "
            + (
                "HOLDS: wider window for the bispecific"
                if r > decisions.safety_window_fold
                else "DOES NOT HOLD: no clear peripheral advantage"
            )
        )
        if mv.liver_threshold_day is not None:
            lo, hi = mv.agonist_readout_0p1_and_1_mg_per_kg
            lines.append(
                f"  - Threshold {mv.liver_threshold_day:g} day, calibrated between the agonist at 0.1 mg/kg "
                f"({lo:.3g} day) and 1 mg/kg ({hi:.3g} day) (Segal 2017)."
            )
            for cis, values in (mv.bsab_liver_readout_by_cis_efficacy or {}).items():
                worst = max(values)
                lines.append(
                    f"  - Prediction, 2:2 bispecific 0.2-25 mg/kg with unanchored signal cis_efficacy_bsab = {cis}: "
                    f"readout up to {worst:.3g} day -> "
                    + ("above the threshold" if worst > mv.liver_threshold_day else "below the threshold")
                )
    else:
        lines.append("  - not run (run `moa run mabs_vs_bispecific`)")
    lines += ["", "## On a virtual population (claims 5-7 re-judged)", "Experiment `virtual_trial`."]
    vt = _read(summaries, "virtual_trial")
    lines += _population_claims(vt) if vt else ["  - not run (run `moa run virtual_trial`)"]
    lines += [
        "",
        "## What the model does not know",
        "Opatisumimab's KDs, PK and molecular weight are not public (class values); the T-cell exhaustion rates, "
        "4-1BB reinvigoration and costimulation gains are assumed and swept; the strength of Treg and myeloid "
        "suppression and the direction of 4-1BB agonism on Tregs are assumed (bounds span both directions); "
        "the taxane-resistant and immune-escape clones have assumed or calibrated shares and strengths; the "
        "typical patients have one lesion, and the virtual trial's lesions do not interact and no new lesions "
        "appear (docs/validation.md); liver safety is a 4-1BB signalling readout with a calibrated threshold, not a "
        "toxicity model; the hand calibrations hold at the default values together, while the parameter bounds, "
        "drawn independently, admit many tumours that shrink untreated (the robustness section gives how many). "
        "See docs/model.md.",
        "",
    ]
    prov = base_provenance()
    lines.append(f"_moa {prov['moa_version']}, commit {prov['git_commit']}, {prov['created_utc']}_")
    return "\n".join(_with_robustness_per_claim(lines, summaries)) + "\n"


def _population_claims(vt) -> list[str]:
    """Trial-level lines of ``virtual_trial``: calibration fit, then the bispecific arms by PD-L1 status."""
    fitted = [r for r in vt.calibration if r["weight"] > 0]
    out = [
        f"  - Calibration: {sum(r['inside_trial_ci'] for r in fitted)} of {len(fitted)} fitted IMpassion130 numbers "
        f"inside their trial 95% CI ({vt.n_patients_per_arm} virtual patients per arm"
        + (f", seed {vt.seed}" if vt.seed is not None else "")
        + "; the fit's own population and fresh ones: `python -m moa.trial check --seed S`, docs/validation.md)."
    ]
    for arm in ("bsab_2x2", "nabp_bsab_2x2"):
        for sg in ("pdl1_positive", "pdl1_negative"):
            r = vt.readouts.get(arm, {}).get(sg)
            if not r:
                continue
            hr = r.get("hr_vs_nabp_apdl1") or [float("nan")] * 3
            orr = r.get("orr") or [float("nan")] * 3
            out.append(
                f"  - {_arm_label(arm)}, {sg.replace('pdl1_', 'PD-L1-')}: ORR {orr[0]:.0f}% "
                f"({orr[1]:.0f}-{orr[2]:.0f}), PFS HR vs nab-paclitaxel + "
                f"anti-PD-L1 {hr[0]:.2f} ({hr[1]:.2f}-{hr[2]:.2f}) -> "
                + ("better" if hr[2] < 1 else "worse" if hr[1] > 1 else "no difference shown")
            )
    return out


def write_claims(results_dir: str | pathlib.Path) -> pathlib.Path:
    """Write ``results_dir/claims.md`` from the experiments found there."""
    path = pathlib.Path(results_dir) / "claims.md"
    write_text(path, claims_markdown(load_summaries(results_dir)))
    return path


def _with_robustness_per_claim(lines: list[str], summaries) -> list[str]:
    """``lines`` with, under each claim's heading and its experiment line, the share of the plausible
    parameter space where that claim holds per setting (experiment ``claims_robustness``), when it was run."""
    rb = _read(summaries, "claims_robustness")
    if not rb:
        return lines
    by_section: dict[int, list[str]] = {}
    order = list(SETTING_LABELS)
    for entry in sorted(rb.claims.values(), key=lambda e: order.index(e["setting"]) if e["setting"] in order else 9):
        frac = entry["fraction_holds"]
        if frac is not None:
            label = SETTING_LABELS.get(entry["setting"], entry["setting"])
            subset = entry.get("no_untreated_response")
            by_section.setdefault(entry["section"], []).append(
                f"{label} {percent_interval(frac, entry['ci_low'], entry['ci_high'])}"
                + (
                    f", {percent_interval(subset['fraction_holds'], subset['ci_low'], subset['ci_high'])} where "
                    "the untreated tumour does not respond"
                    if subset and subset["fraction_holds"] is not None
                    else ""
                )
            )
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        heading = i > 0 and lines[i - 1].startswith("## ") and lines[i - 1][3:].split(".")[0].isdigit()
        section = int(lines[i - 1][3:].split(".")[0]) if heading else None
        if section in by_section:
            out.append(
                "  - Across the plausible parameter space (`claims_robustness`), holds in: "
                + "; ".join(by_section[section])
                + "."
            )
    return out
