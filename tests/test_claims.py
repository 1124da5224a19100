"""The claims file follows the numbers: change an input, the verdict text changes with it."""

import copy
import json
import pathlib

import pytest

from moa.claims import claims_markdown, write_claims

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "arms_settings_run.json"


@pytest.fixture
def arms_summary():
    return json.loads(FIXTURE.read_text())["summary"]


def _section(text: str, number: int) -> str:
    start = text.index(f"## {number}.")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def test_cold_claim_verdict_follows_numbers(arms_summary):
    s = copy.deepcopy(arms_summary)
    s["best_percent_change"]["apdl1"]["cold"] = 10.0
    s["best_percent_change"]["bsab_2x2"]["cold"] = -50.0
    assert "-> HOLDS" in _section(claims_markdown({"arms_settings": s}), 3)
    s["best_percent_change"]["bsab_2x2"]["cold"] = -5.0
    assert "-> DOES NOT HOLD" in _section(claims_markdown({"arms_settings": s}), 3)
    s["best_percent_change"]["apdl1"]["cold"] = -60.0
    assert "NOT TESTED HERE" in _section(claims_markdown({"arms_settings": s}), 3)


def test_synergy_verdict_follows_final_sizes(arms_summary):
    s = copy.deepcopy(arms_summary)
    f = s["final_diameter_mm"]
    f["untreated"]["cold"], f["apdl1"]["cold"], f["a41bb"]["cold"] = 40.0, 40.0, 40.0
    f["apdl1_a41bb"]["cold"] = 10.0  # combination works where neither does: synergy
    text = _section(claims_markdown({"arms_settings": s}), 1)
    assert "two mAbs 0.98 (Bliss excess +0.98: synergy)" in text
    f["apdl1_a41bb"]["cold"] = 40.0
    assert "(Bliss excess +0.00: additivity)" in _section(claims_markdown({"arms_settings": s}), 1)


def test_format_and_safety_verdicts(arms_summary):
    s = copy.deepcopy(arms_summary)
    s["best_percent_change"]["bsab_2x2"]["hot_tnbc"] = -80.0
    s["best_percent_change"]["bsab_1x1"]["hot_tnbc"] = -40.0
    assert "hot TNBC (PD-L1+): best change 2:2 -80% vs 1:1 -40%" in claims_markdown({"arms_settings": s})
    assert "-> 2:2 better" in _section(claims_markdown({"arms_settings": s}), 4)
    safety = {"peripheral_ratio_agonist0.1_over_bsab15": 1.2, "best_change_bsab15_hot": -50.0,
              "best_change_two_mabs_agonist0.1_hot": -50.0}
    assert "DOES NOT HOLD" in _section(claims_markdown({"mabs_vs_bispecific": safety}), 8)
    safety["peripheral_ratio_agonist0.1_over_bsab15"] = 30.0
    assert "HOLDS: wider window" in _section(claims_markdown({"mabs_vs_bispecific": safety}), 8)


def test_missing_experiments_are_said(tmp_path):
    text = write_claims(tmp_path).read_text()
    assert "not run (run `moa run arms_settings`)" in text
    assert "not run (run `moa run mabs_vs_bispecific`)" in text


def test_day84_sizes_are_used_when_present(arms_summary):
    s = copy.deepcopy(arms_summary)
    s["diameter_mm_day84"] = copy.deepcopy(s["final_diameter_mm"])
    s["diameter_mm_day84"]["bsab_2x2"]["cold"] = 5.0
    s["diameter_mm_day84"]["bsab_1x1"]["cold"] = 20.0
    text = _section(claims_markdown({"arms_settings": s}), 4)
    assert "diameter at day 84 5.0 vs 20.0 mm -> 2:2 better" in text


def _levers_summary(bsab_best_when_antigenic: float) -> dict:
    def point(apdl1, bsab, fold=1.0):
        return {"best_percent_change": {"untreated": 50.0, "apdl1": apdl1, "a41bb": 40.0, "bsab_2x2": bsab},
                "peak_t_eff_fold_vs_untreated": {"apdl1": 1.0, "a41bb": fold, "bsab_2x2": fold}, "failed": False}

    levers = {"antigenicity": {"value": 0.1, "reference_value": 1.0, "unit": "1"},
              "infiltration_rate": {"value": 0.02, "reference_value": 0.5, "unit": "1/day"}}
    outcomes = {"baseline": point(40.0, 30.0), "antigenicity": point(35.0, bsab_best_when_antigenic, 5.0),
                "infiltration_rate": point(38.0, 28.0), "all_levers": point(-40.0, -90.0, 20.0),
                "all_but:antigenicity": point(30.0, 20.0), "all_but:infiltration_rate": point(-35.0, -80.0)}
    gains = {"cold": {"values": {"baseline": {"cd137_prolif_gain": 2.0}, "cd137_prolif_gain:low": {"cd137_prolif_gain": 0.0},
                                 "cd137_prolif_gain:high": {"cd137_prolif_gain": 5.0}},
                      "outcomes": {"baseline": point(40.0, 30.0, 1.5), "cd137_prolif_gain:low": point(40.0, 35.0, 1.1),
                                   "cd137_prolif_gain:high": point(40.0, -40.0, 3.0)}}}
    return {"setting": "cold", "reference_setting": "hot_tnbc", "duration_days": 168.0, "levers": levers,
            "lever_outcomes": outcomes, "gains": gains}


def test_lever_driving_the_cold_verdict_follows_the_numbers():
    text = _section(claims_markdown({"cold_levers": _levers_summary(-50.0)}), 3)
    assert "Verdict driver: the verdict changes when antigenicity alone" in text
    assert "antigenicity 0.1 -> 1 1: anti-PD-L1 +35%, 2:2 bispecific -50%" in text and "-> HOLDS" in text
    text = _section(claims_markdown({"cold_levers": _levers_summary(25.0)}), 3)
    assert "no single lever changes the verdict alone" in text
    assert "All levers at once: anti-PD-L1 -40%, 2:2 bispecific -90% -> NOT TESTED HERE" in text
    assert "the all-levers verdict is lost when antigenicity stay(s) cold" in text
    assert "Proliferation verdict (bispecific) as it stands DOES NOT HOLD" in text
    assert "it changes when antigenicity alone take(s) the hot value" in text


def test_costimulation_gain_verdicts_follow_the_numbers():
    text = _section(claims_markdown({"cold_levers": _levers_summary(25.0)}), 2)
    assert "proliferation verdict at cd137_prolif_gain high" in text and "cold verdict at cd137_prolif_gain high" in text
    assert "proliferation verdict at cd137_prolif_gain low" not in text


def test_the_response_threshold_is_recists_from_models(tmp_path):
    """One -30 % threshold: the claims, the sweep and lever figures read it from models/recist.toml;
    a best change of exactly -30 % is a response (as at the written threshold), -29.9 % is not."""
    from moa.analysis import load_recist, partial_response_pct
    from moa.claims import cold_verdict
    from moa.parameters import MODELS_DIR

    assert partial_response_pct() == pytest.approx(-100 * load_recist().pr_fraction, abs=1e-12)
    assert partial_response_pct() == -30.0
    assert cold_verdict(-29.9, -30.0) == "HOLDS"
    assert cold_verdict(-30.0, -30.0).startswith("NOT TESTED")
    edited = (MODELS_DIR / "recist.toml").read_text().replace("value = 0.30", "value = 0.50")
    (tmp_path / "recist.toml").write_text(edited)
    assert partial_response_pct(load_recist(tmp_path / "recist.toml")) == -50.0
