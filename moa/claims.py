"""The press release's claims, checked against the experiments' numbers.

:func:`claims_markdown` is a pure function of the experiments' summaries (the ``summary`` in
each ``results/<name>/run.json``); :func:`write_claims` reads them and writes
``results/claims.md``. Each verdict is computed from the numbers with the thresholds below;
nothing here knows what the press release hopes for. Every summary is read through its
experiment's contract in :mod:`moa.summaries` (attributes, not string keys), so a key an
experiment renames fails with a :class:`~moa.errors.SummaryError` instead of changing a verdict.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping

from .analysis import partial_response_pct
from .provenance import base_provenance
from .results import write_text
from .summaries import (ALL_BUT_PREFIX, ALL_LEVERS_POINT, BASELINE_POINT, ArmsSettingsSummary, ColdLeversSummary,
                        ExperimentSummary, contract_for)

__all__ = ["claims_markdown", "write_claims", "load_summaries", "cold_verdict", "proliferation_verdict", "THRESHOLDS"]

#: Decision thresholds (documented in every claims file). The response threshold, a partial response
#: on best % change, is RECIST's and is read from models/recist.toml (moa.analysis.partial_response_pct).
THRESHOLDS = {
    "bliss_synergy": 0.05,  # Bliss excess above which we call a combination synergistic
    "meaningful_pct_points": 10.0,  # difference in best % change that counts as a real difference
}
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


def _fmt(x: float, unit: str = "") -> str:
    return f"{x:+.0f}{unit}" if unit == "%" else f"{x:.3g}{unit}"


def cold_verdict(best_apdl1_pct: float, best_bsab_pct: float) -> str:
    """Claim 3 in one setting: anti-PD-L1 resists (no partial response) and the bispecific responds."""
    thr = partial_response_pct()
    resists, helps = best_apdl1_pct > thr, best_bsab_pct <= thr
    return ("HOLDS" if resists and helps else "DOES NOT HOLD" if resists
            else "NOT TESTED HERE (anti-PD-L1 already responds in this setting)")


def proliferation_verdict(peak_t_eff_fold: float) -> str:
    """Claim 2 (proliferation): the bispecific expands tumour effectors more than 2-fold over untreated."""
    return "HOLDS (peak effectors >2x untreated)" if peak_t_eff_fold > 2 else "DOES NOT HOLD (peak effectors <=2x untreated)"


def _point_verdicts(point: Mapping) -> tuple[str, str]:
    best, fold = point["best_percent_change"], point["peak_t_eff_fold_vs_untreated"]
    if point.get("failed") or best.get("apdl1") is None or best.get("bsab_2x2") is None:
        return "FAILED", "FAILED"
    return cold_verdict(best["apdl1"], best["bsab_2x2"]), proliferation_verdict(fold["bsab_2x2"])


def _lever_claims(s: ColdLeversSummary) -> list[str]:
    """Which lever of the cold setting drives the cold verdict (one lever at a time at its hot value)."""
    points, levers = s.lever_outcomes, s.levers
    base_cold, base_prolif = _point_verdicts(points[BASELINE_POINT])
    base_bs = points[BASELINE_POINT]["best_percent_change"]["bsab_2x2"]
    out = [f"Levers ({s.setting} with one lever at a time at its {s.reference_setting} value, day "
           f"{s.duration_days:.0f}; experiment `cold_levers`): as it stands the cold verdict {base_cold}, the 2:2 "
           f"bispecific's best change {_fmt(base_bs, '%')}."]
    flips, prolif_flips, moves = [], [], {}
    for lever, info in levers.items():
        point = points[lever]
        cold, prolif = _point_verdicts(point)
        if prolif != base_prolif:
            prolif_flips.append(lever)
        best = point["best_percent_change"]
        if None not in (best.get("bsab_2x2"), base_bs):
            moves[lever] = best["bsab_2x2"] - base_bs
        if cold != base_cold:
            flips.append(lever)
        fold = point["peak_t_eff_fold_vs_untreated"]["bsab_2x2"]
        out.append(f"{lever} {info['value']:.3g} -> {info['reference_value']:.3g} {info['unit']}: anti-PD-L1 "
                   f"{_fmt(best['apdl1'], '%')}, 2:2 bispecific {_fmt(best['bsab_2x2'], '%')} (its peak effectors "
                   f"x{fold:.3g} untreated) -> {cold}.")
    every = points[ALL_LEVERS_POINT]
    out.append(f"All levers at once: anti-PD-L1 {_fmt(every['best_percent_change']['apdl1'], '%')}, 2:2 bispecific "
               f"{_fmt(every['best_percent_change']['bsab_2x2'], '%')} -> {_point_verdicts(every)[0]}.")
    needed = [k for k in levers if f"{ALL_BUT_PREFIX}{k}" in points
              and _point_verdicts(points[f"{ALL_BUT_PREFIX}{k}"])[0] != _point_verdicts(every)[0]]
    if any(f"{ALL_BUT_PREFIX}{k}" in points for k in levers):
        parts = [f"{k} {_fmt(points[ALL_BUT_PREFIX + k]['best_percent_change']['bsab_2x2'], '%')}" for k in levers]
        out.append("All levers hot but one (that one kept cold), 2:2 bispecific best change: " + ", ".join(parts) + "; "
                   + (f"the all-levers verdict is lost when {', '.join(needed)} stay(s) cold." if needed
                      else "no single cold lever changes the all-levers verdict."))
    driver = max(moves, key=lambda k: abs(moves[k])) if moves else None
    meaningful = THRESHOLDS["meaningful_pct_points"]
    out.append("Verdict driver: " + (f"the verdict changes when {', '.join(flips)} alone take(s) the hot value" if flips
                                     else "no single lever changes the verdict alone")
               + (f"; the lever that moves the bispecific's best change most is {driver} "
                  f"({moves[driver]:+.0f} percentage points)." if driver and abs(moves[driver]) > meaningful
                  else f"; no lever alone moves the bispecific's best change by more than {meaningful:.0f} percentage points.")
               + f" Proliferation verdict (bispecific) as it stands {base_prolif}; "
               + (f"it changes when {', '.join(prolif_flips)} alone take(s) the hot value." if prolif_flips
                  else "no single lever changes it."))
    return out


def _gain_claims(s: ColdLeversSummary) -> list[str]:
    """How each costimulation verdict depends on the 4-1BB gains (each at the ends of its bounds)."""
    out = []
    for setting, block in (s.gains or {}).items():
        points, values = block["outcomes"], block["values"]
        base_cold, base_prolif = _point_verdicts(points[BASELINE_POINT])
        parts, changes = [], []
        for label, point in points.items():
            if label == BASELINE_POINT:
                continue
            gain, end = label.split(":")
            cold, prolif = _point_verdicts(point)
            fold = point["peak_t_eff_fold_vs_untreated"]["bsab_2x2"]
            parts.append(f"{gain} {end} ({values[label][gain]:.3g}): effectors x{fold:.3g}, bispecific "
                         f"{_fmt(point['best_percent_change']['bsab_2x2'], '%')}")
            if prolif != base_prolif:
                changes.append(f"proliferation verdict at {gain} {end}")
            if setting == "cold" and cold != base_cold:
                changes.append(f"cold verdict at {gain} {end}")
        label = SETTING_LABELS.get(setting, setting)
        out.append(f"Costimulation gains, {label} (as it stands: proliferation {base_prolif}"
                   + (f"; cold verdict {base_cold}" if setting == "cold" else "") + "): " + "; ".join(parts) + ". "
                   + ("Verdicts that flip within the bounds: " + ", ".join(changes) if changes
                      else "No verdict flips within the bounds of these gains") + ".")
    return out


def _arms_claims(s: ArmsSettingsSummary) -> dict[str, list[str]]:
    best = s.best_percent_change
    # Inhibition is compared at day 84 (four cycles) when available: by a year most active arms
    # have eradicated the simulated tumour and every ratio saturates.
    final = s.diameter_mm_day84 or s.final_diameter_mm
    day = 84.0 if s.diameter_mm_day84 is not None else s.duration_days if s.duration_days is not None else float("nan")
    out: dict[str, list[str]] = {k: [] for k in ("synergy", "cold", "broader", "format", "chemo", "pdl1neg")}
    thr, meaningful = partial_response_pct(), THRESHOLDS["meaningful_pct_points"]
    for setting, label in SETTING_LABELS.items():
        if setting not in best.get("untreated", {}):
            continue
        ref = final["untreated"][setting]
        ia = _volume_inhibition(final["apdl1"][setting], ref)
        ib = _volume_inhibition(final["a41bb"][setting], ref)
        iab = _volume_inhibition(final["apdl1_a41bb"][setting], ref)
        ibs = _volume_inhibition(final["bsab_2x2"][setting], ref)
        ex_two, ex_bs = _bliss(ia, ib, iab), _bliss(ia, ib, ibs)
        word = lambda e: "synergy" if e > THRESHOLDS["bliss_synergy"] else ("antagonism" if e < -THRESHOLDS["bliss_synergy"] else "additivity")  # noqa: E731
        out["synergy"].append(
            f"{label}: volume inhibition at day {day:.0f} anti-PD-L1 {ia:.2f}, anti-4-1BB {ib:.2f}; two mAbs {iab:.2f} "
            f"(Bliss excess {ex_two:+.2f}: {word(ex_two)}); 2:2 bispecific {ibs:.2f} (Bliss excess vs the two "
            f"monotherapies {ex_bs:+.2f}: {word(ex_bs)}).")
        b_pd, b_bs = best["apdl1"][setting], best["bsab_2x2"][setting]
        if setting == "cold":
            verdict = cold_verdict(b_pd, b_bs)
            out["cold"].append(f"{label}: best change anti-PD-L1 {_fmt(b_pd, '%')}, 2:2 bispecific {_fmt(b_bs, '%')} -> {verdict}.")
        better = b_bs < b_pd - meaningful
        out["broader"].append(f"{label}: 2:2 bispecific {_fmt(b_bs, '%')} vs anti-PD-L1 {_fmt(b_pd, '%')} -> "
                              + ("bispecific better" if better else "no meaningful difference" if abs(b_bs - b_pd) <= meaningful else "anti-PD-L1 better"))
        b11 = best["bsab_1x1"][setting]
        diff = b_bs - b11
        d22, d11 = final["bsab_2x2"][setting], final["bsab_1x1"][setting]
        smaller = d22 < 0.9 * d11
        out["format"].append(f"{label}: best change 2:2 {_fmt(b_bs, '%')} vs 1:1 {_fmt(b11, '%')}; diameter at day {day:.0f} "
                             f"{d22:.1f} vs {d11:.1f} mm -> "
                             + ("2:2 better" if diff < -meaningful or smaller else "1:1 better" if diff > meaningful or d11 < 0.9 * d22
                                else "no meaningful difference"))
        ic = _volume_inhibition(final["nabp"][setting], ref)
        icb = _volume_inhibition(final["nabp_bsab_2x2"][setting], ref)
        ex_c = _bliss(ic, ibs, icb)
        out["chemo"].append(f"{label}: inhibition nab-paclitaxel {ic:.2f}, 2:2 bispecific {ibs:.2f}, both {icb:.2f} "
                            f"(Bliss excess {ex_c:+.2f}: {word(ex_c)}); best change both {_fmt(best['nabp_bsab_2x2'][setting], '%')} "
                            f"vs nab-paclitaxel + anti-PD-L1 {_fmt(best['nabp_apdl1'][setting], '%')}.")
        if setting == "pdl1_negative_tnbc":
            out["pdl1neg"].append(
                f"{label}: best change untreated {_fmt(best['untreated'][setting], '%')}, anti-PD-L1 {_fmt(b_pd, '%')}, "
                f"2:2 bispecific {_fmt(b_bs, '%')}, anti-4-1BB agonist {_fmt(best['a41bb'][setting], '%')}, "
                f"nab-paclitaxel {_fmt(best['nabp'][setting], '%')}, nab-paclitaxel + 2:2 {_fmt(best['nabp_bsab_2x2'][setting], '%')} -> "
                + ("the bispecific alone reaches a partial response" if b_bs <= thr else "the bispecific alone does not reach a partial response"))
    return out


def claims_markdown(summaries: Mapping[str, Mapping | ExperimentSummary]) -> str:
    """The claims file's text, from the experiments' summaries (missing experiments are said so).

    Each summary is a dict as in ``run.json`` or its contract (:mod:`moa.summaries`); a summary
    that does not match its contract raises :class:`~moa.errors.SummaryError`.
    """
    arms = _read(summaries, "arms_settings")
    a = _arms_claims(arms) if arms else None
    missing = "not run (run `moa run arms_settings`)"

    def bullets(key: str) -> list[str]:
        return [f"  - {line}" for line in a[key]] if a else [f"  - {missing}"]

    lines = ["# The press release's claims, checked by the model", "",
             "Generated by `moa run` from the experiments' numbers (moa.claims). Verdicts use fixed thresholds: "
             f"partial response at {partial_response_pct():.0f}% best change; Bliss excess beyond "
             f"+-{THRESHOLDS['bliss_synergy']} on volume inhibition vs untreated; differences under "
             f"{THRESHOLDS['meaningful_pct_points']:.0f} percentage points count as none. One typical patient per setting "
             "with default parameters; the sweeps say where a verdict flips.", ""]

    lines += ["## 1. PD-L1 blockade and 4-1BB activation act synergistically",
              "Experiment `arms_settings` (figure best_response_heatmap).", *bullets("synergy"), ""]

    lines += ["## 2. 4-1BB agonism reactivates exhausted T cells and drives their proliferation",
              "Experiment `exhaustion_dynamics` (figure exhaustion_cold)."]
    ex = _read(summaries, "exhaustion_dynamics")
    if ex:
        arms_ex = ex.arms
        for arm in ("a41bb", "bsab_2x2", "apdl1"):
            if arm not in arms_ex:
                continue
            w, wo = arms_ex[arm]["with_reinvigoration"], arms_ex[arm]["without_reinvigoration"]
            lines.append(f"  - {arm} (cold): peak Tpex x{w['peak_t_pex_fold_vs_untreated']:.3g} and peak effectors "
                         f"x{w['peak_t_eff_fold_vs_untreated']:.3g} vs untreated; with reinvigoration set to 0: "
                         f"x{wo['peak_t_pex_fold_vs_untreated']:.3g} and x{wo['peak_t_eff_fold_vs_untreated']:.3g}; tumour at "
                         f"day 84 {w['diameter_day84']:.1f} vs {wo['diameter_day84']:.1f} mm.")
        bs = arms_ex.get("bsab_2x2")
        if bs:
            w, wo = bs["with_reinvigoration"], bs["without_reinvigoration"]
            prolif = w["peak_t_eff_fold_vs_untreated"] > 2
            reinv = abs(w["diameter_day84"] - wo["diameter_day84"]) > 0.1 * max(wo["diameter_day84"], 1e-9)
            lines.append("  - Verdict: proliferation " + ("HOLDS in the model (peak effector expansion >2x vs untreated)" if prolif else "DOES NOT HOLD (no >2x peak expansion)")
                         + "; reactivation of terminally exhausted cells "
                         + ("changes the outcome" if reinv else "barely changes the outcome: the benefit comes from proliferation and survival")
                         + f". The reinvigoration rate ({ex.default_reinvigoration_per_day} /day) is assumed, not measured.")
    else:
        lines.append("  - not run (run `moa run exhaustion_dynamics`)")
    levers = _read(summaries, "cold_levers")
    if levers:
        lines += [f"  - {line}" for line in _gain_claims(levers)]
    else:
        lines.append("  - Costimulation gains: not run (run `moa run cold_levers`)")
    lines.append("")

    lines += ["## 3. Suited to cold tumours that resist PD-(L)1 blockade",
              "Experiments `arms_settings`, `cold_levers` and `sweeps` (hot/cold levers).", *bullets("cold")]
    if levers:
        lines += [f"  - {line}" for line in _lever_claims(levers)]
    else:
        lines.append("  - Levers: not run (run `moa run cold_levers`)")
    sw = _read(summaries, "sweeps")
    if sw:
        mp = sw.map or {}
        if mp.get("fraction_bsab_beats_apdl1") is not None:
            lo, hi = mp.get("benefit_range_log10") or (float("nan"), float("nan"))
            lines.append(f"  - {' x '.join(mp.get('axes', []))} map ({mp.get('setting')} background, day {sw.benefit_day}): "
                         f"the 2:2 bispecific leaves fewer tumour cells than anti-PD-L1 by > {mp.get('margin_log10')} log10 on "
                         f"{100 * mp['fraction_bsab_beats_apdl1']:.0f}% of the map and anti-PD-L1 wins on "
                         f"{100 * (mp.get('fraction_apdl1_beats_bsab') or 0):.0f}% (benefit {lo:.2g} to {hi:.2g} log10).")
        for setting, params in (sw.sweeps or {}).items():
            flips = {p: v["sign_changes_at"] for p, v in params.items() if v.get("sign_changes_at")}
            weakest = min(params.items(), key=lambda kv: min(x for x in (kv[1]["low"]["benefit_log10"], kv[1]["high"]["benefit_log10"])
                                                               if x is not None))
            lines.append(f"  - One-parameter sweeps ({setting}): the benefit changes sign "
                         + (f"at {flips}" if flips else "nowhere within the bounds")
                         + f"; it is smallest at the {('low' if weakest[1]['low']['benefit_log10'] <= weakest[1]['high']['benefit_log10'] else 'high')} "
                         f"end of {weakest[0]} ({min(weakest[1]['low']['benefit_log10'], weakest[1]['high']['benefit_log10']):.2g} log10).")
        if sw.failed_points:
            lines.append(f"  - {sw.failed_points} sweep point(s) failed: {sw.failure_reasons}.")
    lines.append("")

    lines += ["## 4. The 2:2 structure is optimal", "Experiments `format_bell` and `arms_settings`."]
    fb = _read(summaries, "format_bell")
    if fb:
        lines.append(f"  - In vitro (4-1BB arm KD 100 nM, 1e5 PD-L1 per cell): peak bridged 4-1BB of 2:2 is "
                     f"x{fb.format_gain_peak_ternary:.3g} that of 1:1 (same KDs, valency only).")
        for key, v in (fb.in_vivo or {}).items():
            lines.append(f"  - In vivo {key}: tumour ternary peaks at {v['dose_at_peak_ternary_mg_per_kg']:g} mg/kg "
                         f"(interior peak: {v['peak_is_interior']}); at 15 mg/kg it is {100 * v['ternary_at_rp2d_over_peak']:.0f}% "
                         f"of the peak; best change at 15 mg/kg {v['best_percent_change_at_rp2d']:+.0f}%"
                         + (f"; 4-1BB signal in cycle 2 at 15 mg/kg {v['cd137_signal_cycle2_at_rp2d']:.2f}."
                            if "cd137_signal_cycle2_at_rp2d" in v else "."))
        for fmt, thr in (fb.pdl1_threshold_per_cell or {}).items():
            lines.append(f"  - In vitro PD-L1 threshold of conditional agonism ({fmt}): half-maximal best 4-1BB signal at "
                         f"{thr:.3g} PD-L1 per cell (emerges from contact-zone bridging and clustering; MCLA-145 needed about 5-6e3).")
    lines += bullets("format")
    lines += ["  - The model compares 2:2 with 1:1 only; 'optimal' among all formats is beyond what it tests.", ""]

    lines += ["## 5. Broader potential than PD-(L)1 inhibitors alone", "Experiment `arms_settings`.", *bullets("broader"), ""]

    lines += ["## 6. Benefit with nab-paclitaxel", "Experiments `arms_settings` and `chemo_combination`.", *bullets("chemo")]
    ch = _read(summaries, "chemo_combination")
    if ch:
        for setting, combos in (ch.bliss_excess or {}).items():
            parts = [f"{c}: " + ", ".join(f"{d} {v:+.3f}" for d, v in days.items()) for c, days in combos.items()]
            lines.append(f"  - Bliss excess on inhibition, {SETTING_LABELS.get(setting, setting)}: " + "; ".join(parts) + ".")
        for setting, verdicts in (ch.schedule or {}).items():
            lines.append(f"  - Schedule, {SETTING_LABELS.get(setting, setting)}: "
                         + "; ".join(f"day {v['day']:g}: {v['better']}" for v in verdicts) + ".")
    lines.append("")

    lines += ["## 7. A case in PD-L1-negative TNBC", "Experiment `arms_settings`.", *bullets("pdl1neg"), ""]

    lines += ["## 8. Conditional agonism spares the periphery (favourable safety)", "Experiment `mabs_vs_bispecific`."]
    mv = _read(summaries, "mabs_vs_bispecific")
    if mv:
        r = mv.peripheral_ratio_agonist0p1_over_bsab15
        lines.append(f"  - Liver 4-1BB signal AUC over the first cycle of the agonist at its tolerated 0.1 mg/kg is x{r:.3g} that of the "
                     f"2:2 bispecific at 15 mg/kg; best change in hot TNBC: bispecific 15 mg/kg {mv.best_change_bsab15_hot:+.0f}%, "
                     f"two mAbs (agonist 0.1 mg/kg) {mv.best_change_two_mabs_agonist0p1_hot:+.0f}% -> "
                     + ("HOLDS: wider window for the bispecific" if r > 3 else "DOES NOT HOLD: no clear peripheral advantage"))
        if mv.liver_threshold_day is not None:
            lo, hi = mv.agonist_readout_0p1_and_1_mg_per_kg
            lines.append(f"  - Threshold {mv.liver_threshold_day:g} day, calibrated between the agonist at 0.1 mg/kg ({lo:.3g} day) "
                         f"and 1 mg/kg ({hi:.3g} day) (Segal 2017).")
            for cis, values in (mv.bsab_liver_readout_by_cis_efficacy or {}).items():
                worst = max(values)
                lines.append(f"  - Prediction, 2:2 bispecific 0.2-25 mg/kg with unanchored signal cis_efficacy_bsab = {cis}: "
                             f"readout up to {worst:.3g} day -> "
                             + ("above the threshold" if worst > mv.liver_threshold_day else "below the threshold"))
    else:
        lines.append("  - not run (run `moa run mabs_vs_bispecific`)")
    lines += ["", "## On a virtual population (claims 5-7 re-judged)", "Experiment `virtual_trial`."]
    vt = _read(summaries, "virtual_trial")
    lines += _population_claims(vt) if vt else ["  - not run (run `moa run virtual_trial`)"]
    lines += ["", "## What the model does not know",
              "Opatisumimab's KDs, PK and molecular weight are not public (class values); the T-cell exhaustion rates, "
              "4-1BB reinvigoration and costimulation gains are assumed and swept; the strength of Treg and myeloid "
              "suppression and the direction of 4-1BB agonism on Tregs are assumed (bounds span both directions); "
              "the taxane-resistant and immune-escape clones have assumed or calibrated shares and strengths; there "
              "are no multiple lesions; liver safety is a 4-1BB signalling readout with a calibrated threshold, not a "
              "toxicity model. See docs/model.md.", ""]
    prov = base_provenance()
    lines.append(f"_moa {prov['moa_version']}, commit {prov['git_commit']}, {prov['created_utc']}_")
    return "\n".join(lines) + "\n"


def _population_claims(vt) -> list[str]:
    """Trial-level lines of ``virtual_trial``: calibration fit, then the bispecific arms by PD-L1 status."""
    fitted = [r for r in vt.calibration if r["weight"] > 0]
    out = [f"  - Calibration: {sum(r['inside_trial_ci'] for r in fitted)} of {len(fitted)} fitted IMpassion130 numbers "
           f"inside their trial 95% CI ({vt.n_patients_per_arm} virtual patients per arm)."]
    for arm in ("bsab_2x2", "nabp_bsab_2x2"):
        for sg in ("pdl1_positive", "pdl1_negative"):
            r = vt.readouts.get(arm, {}).get(sg)
            if not r:
                continue
            hr = r.get("hr_vs_nabp_apdl1") or [float("nan")] * 3
            orr = r.get("orr") or [float("nan")] * 3
            out.append(f"  - {arm}, {sg}: ORR {orr[0]:.0f}% ({orr[1]:.0f}-{orr[2]:.0f}), PFS HR vs nab-paclitaxel + "
                       f"anti-PD-L1 {hr[0]:.2f} ({hr[1]:.2f}-{hr[2]:.2f}) -> "
                       + ("better" if hr[2] < 1 else "worse" if hr[1] > 1 else "no difference shown"))
    return out


def write_claims(results_dir: str | pathlib.Path) -> pathlib.Path:
    """Write ``results_dir/claims.md`` from the experiments found there."""
    path = pathlib.Path(results_dir) / "claims.md"
    write_text(path, claims_markdown(load_summaries(results_dir)))
    return path
