"""The claims file follows the numbers: change an input, the verdict text changes with it."""

import ast
import copy
import dataclasses
import json
import pathlib

import pytest

from moa.report import claims
from moa.report.claims import claims_markdown, write_claims
from moa.errors import SummaryError, UnitError
from moa.parameters import load_parameter_file
from moa.scenarios import load_arms, load_settings
from moa.report.summaries import (
    CONTRACTS,
    ArmsSettingsSummary,
    ColdLeversSummary,
    FormatBellSummary,
    contract_for,
    declared_keys,
)

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
    safety = {
        "peripheral_ratio_agonist0.1_over_bsab15": 1.2,
        "best_change_bsab15_hot": -50.0,
        "best_change_two_mabs_agonist0.1_hot": -50.0,
    }
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
        return {
            "best_percent_change": {"untreated": 50.0, "apdl1": apdl1, "a41bb": 40.0, "bsab_2x2": bsab},
            "peak_t_eff_fold_vs_untreated": {"apdl1": 1.0, "a41bb": fold, "bsab_2x2": fold},
            "failed": False,
        }

    levers = {
        "antigenicity": {"value": 0.1, "reference_value": 1.0, "unit": "1"},
        "infiltration_rate": {"value": 0.02, "reference_value": 0.5, "unit": "1/day"},
    }
    outcomes = {
        "baseline": point(40.0, 30.0),
        "antigenicity": point(35.0, bsab_best_when_antigenic, 5.0),
        "infiltration_rate": point(38.0, 28.0),
        "all_levers": point(-40.0, -90.0, 20.0),
        "all_but:antigenicity": point(30.0, 20.0),
        "all_but:infiltration_rate": point(-35.0, -80.0),
    }
    gains = {
        "cold": {
            "values": {
                "baseline": {"cd137_prolif_gain": 2.0},
                "cd137_prolif_gain:low": {"cd137_prolif_gain": 0.0},
                "cd137_prolif_gain:high": {"cd137_prolif_gain": 5.0},
            },
            "outcomes": {
                "baseline": point(40.0, 30.0, 1.5),
                "cd137_prolif_gain:low": point(40.0, 35.0, 1.1),
                "cd137_prolif_gain:high": point(40.0, -40.0, 3.0),
            },
        }
    }
    return {
        "setting": "cold",
        "reference_setting": "hot_tnbc",
        "duration_days": 168.0,
        "levers": levers,
        "lever_outcomes": outcomes,
        "gains": gains,
    }


def test_lever_driving_the_cold_verdict_follows_the_numbers():
    text = _section(claims_markdown({"cold_levers": _levers_summary(-50.0)}), 3)
    assert "Verdict driver: the verdict changes when antigenicity alone" in text
    assert "antigenicity 0.1 -> 1: anti-PD-L1 +35%, 2:2 bispecific -50%" in text and "-> HOLDS" in text
    assert "infiltration_rate 0.02 -> 0.5 1/day: anti-PD-L1" in text  # a unit other than "1" is written
    assert "Levers (cold tumour with one lever at a time at its hot TNBC (PD-L1+) value" in text
    text = _section(claims_markdown({"cold_levers": _levers_summary(25.0)}), 3)
    assert "no single lever changes the verdict alone" in text
    assert "All levers at once: anti-PD-L1 -40%, 2:2 bispecific -90% -> NOT TESTED HERE" in text
    assert "the all-levers verdict is lost when antigenicity stay(s) cold" in text
    assert "Proliferation verdict (bispecific) as it stands DOES NOT HOLD" in text
    assert "it changes when antigenicity alone take(s) the hot value" in text


def test_costimulation_gain_verdicts_follow_the_numbers():
    text = _section(claims_markdown({"cold_levers": _levers_summary(25.0)}), 2)
    assert (
        "proliferation verdict at cd137_prolif_gain high" in text and "cold verdict at cd137_prolif_gain high" in text
    )
    assert "proliferation verdict at cd137_prolif_gain low" not in text


def test_the_response_threshold_is_recists_from_models(tmp_path):
    """One -30 % threshold: the claims, the sweep and lever figures read it from models/recist.toml;
    a best change of exactly -30 % is a response (as at the written threshold), -29.9 % is not."""
    from moa.analysis import load_recist, partial_response_pct
    from moa.report.claims import cold_verdict
    from moa.parameters import MODELS_DIR

    assert partial_response_pct() == pytest.approx(-100 * load_recist().pr_fraction, abs=1e-12)
    assert partial_response_pct() == -30.0
    assert cold_verdict(-29.9, -30.0) == "HOLDS"
    assert cold_verdict(-30.0, -30.0).startswith("NOT TESTED")
    edited = (MODELS_DIR / "recist.toml").read_text().replace("value = 0.30", "value = 0.50")
    (tmp_path / "recist.toml").write_text(edited)
    assert partial_response_pct(load_recist(tmp_path / "recist.toml")) == -50.0


# ----- the decision thresholds (models/decisions.toml) ----------------------------------------
def test_decision_thresholds_are_read_from_models_with_their_stated_values():
    """The margins the verdicts used as literals before they became data (claims text unchanged)."""
    d = claims.load_decisions()
    assert dataclasses.asdict(d) == {
        "bliss_synergy_margin": 0.05,
        "meaningful_difference_pct_points": 10.0,
        "proliferation_fold": 2.0,
        "reinvigoration_diameter_change": 0.1,
        "format_diameter_ratio": 0.9,
        "safety_window_fold": 3.0,
    }
    specs = load_parameter_file(claims.DECISIONS_PATH)
    assert all(s.source.startswith("assumed: ") for s in specs.values())  # no paper gives these margins


def test_a_decision_threshold_in_the_file_moves_the_verdict(arms_summary, tmp_path):
    s = copy.deepcopy(arms_summary)
    f = s["final_diameter_mm"]
    f["untreated"]["cold"], f["apdl1"]["cold"], f["a41bb"]["cold"], f["apdl1_a41bb"]["cold"] = 40.0, 40.0, 40.0, 37.0
    assert "(Bliss excess +0.21: synergy)" in _section(claims_markdown({"arms_settings": s}), 1)
    path = tmp_path / "decisions.toml"
    path.write_text(
        claims.DECISIONS_PATH.read_text()
        .replace("value = 0.05", "value = 0.19", 1)
        .replace("upper = 0.2\n", "upper = 0.3\n", 1)
    )
    text = claims_markdown({"arms_settings": s}, claims.load_decisions(path))
    assert "(Bliss excess +0.21: synergy)" in _section(text, 1) and "Bliss excess beyond +-0.19" in text
    path.write_text(path.read_text().replace("value = 0.19", "value = 0.25", 1))
    assert "(Bliss excess +0.21: additivity)" in _section(
        claims_markdown({"arms_settings": s}, claims.load_decisions(path)), 1
    )
    assert claims.proliferation_verdict(2.5) == "HOLDS (peak effectors >2x untreated)"
    path.write_text(claims.DECISIONS_PATH.read_text().replace("value = 2.0", "value = 3.0", 1))
    assert (
        claims.proliferation_verdict(2.5, claims.load_decisions(path))
        == "DOES NOT HOLD (peak effectors <=3x untreated)"
    )


@pytest.mark.parametrize(
    "old, new, error, match",
    [
        (
            "value = 0.9\n",
            "value = 1.5\n",
            ValueError,
            r"decisions.toml.*'format_diameter_ratio'=1.5 1: outside its physical domain 'fraction' \(must "
            r"be in \[0, 1\]\)",
        ),
        (
            "value = 3.0\n",
            "value = 30.0\n",
            ValueError,
            r"decisions.toml.*'safety_window_fold'.*value=30.0 lies outside \[lower=1.5, upper=10.0\]",
        ),
        (
            'unit = "percent"',
            'unit = "mm"',
            UnitError,
            r"decisions.toml: meaningful_difference_pct_points: value=10 in 'mm'.*different dimensions",
        ),
        (
            "[proliferation_fold]",
            "[proliferation_folds]",
            ValueError,
            r"decisions.toml: decision thresholds: missing \['proliferation_fold'\], unknown \['proliferation_folds'\]",
        ),
        (
            'source = "assumed: a more',
            'source = ""\nxsource = "assumed: a more',
            ValueError,
            r"decisions.toml: parameter 'proliferation_fold': unknown field\(s\) \['xsource'\]",
        ),
        (
            "value = 0.05",
            'value = "0.05"',
            ValueError,
            r"decisions.toml.*'bliss_synergy_margin'.*value='0.05': must be a finite number",
        ),
    ],
)
def test_a_bad_decision_threshold_is_refused_naming_file_field_value_and_what_is_allowed(
    tmp_path, old, new, error, match
):
    text = claims.DECISIONS_PATH.read_text()
    assert old in text
    path = tmp_path / "decisions.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(error, match=match):
        claims.load_decisions(path)


# ----- the summary contracts (moa.report.summaries) -------------------------------------------------
SUMMARY_FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "summaries"
EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent.parent / "experiments"


def _fixture_records() -> list[pathlib.Path]:
    """The arms_settings run record and one run record per contract in fixtures/summaries/ (from ``moa run all``)."""
    return [FIXTURE, *sorted(SUMMARY_FIXTURES.glob("*.json"))]


def test_every_contract_has_a_fixture_and_an_experiment_that_builds_through_it():
    named = {json.loads(p.read_text())["experiment"] for p in _fixture_records()}
    assert set(CONTRACTS) <= named, f"no fixture summary for {sorted(set(CONTRACTS) - named)}"
    for name, contract in CONTRACTS.items():
        source = (EXPERIMENTS_DIR / f"{name}.py").read_text()
        assert f"{contract.__name__}.from_summary(summary).as_dict()" in source, (
            f"experiments/{name}.py bypasses its contract"
        )


@pytest.mark.parametrize("path", _fixture_records(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_summary_validates_and_round_trips(path):
    record = json.loads(path.read_text())
    name, summary = record["experiment"], record["summary"]
    read = contract_for(name).from_record(record)
    assert {k: v for k, v in read.as_dict().items() if k in summary} == summary
    assert all(read.as_dict()[k] is None for k in set(read.as_dict()) - set(summary))  # absent keys are optional
    assert f"`{name}`" in claims_markdown({name: summary})


def test_fixture_summaries_give_every_section():
    records = [json.loads(p.read_text()) for p in sorted(SUMMARY_FIXTURES.glob("*.json"))]
    text = claims_markdown({r["experiment"]: r["summary"] for r in records})
    assert "not run" not in text
    for number in range(1, 9):
        assert f"## {number}." in text


def test_a_missing_key_names_the_experiment_the_key_and_the_keys_present(arms_summary):
    s = copy.deepcopy(arms_summary)
    del s["final_diameter_mm"]
    with pytest.raises(
        SummaryError,
        match=r"'arms_settings'.*missing key\(s\) \['final_diameter_mm'\].*keys present \["
        r"'best_percent_change', 'best_response'",
    ):
        ArmsSettingsSummary.from_record({"experiment": "arms_settings", "summary": s})
    with pytest.raises(SummaryError, match="'arms_settings'.*has no 'summary'"):
        ArmsSettingsSummary.from_record({"experiment": "arms_settings"})


def test_a_renamed_key_fails_instead_of_changing_a_verdict(arms_summary):
    """A renamed top-level key, a renamed nested key and an unknown key all raise; none reaches a verdict."""
    s = copy.deepcopy(arms_summary)
    s["best_pct_change"] = s.pop("best_percent_change")
    with pytest.raises(SummaryError, match=r"missing key\(s\) \['best_percent_change'\]"):
        claims_markdown({"arms_settings": s})
    levers = _levers_summary(-50.0)
    point = levers["lever_outcomes"]["antigenicity"]
    point["peak_t_eff_fold"] = point.pop("peak_t_eff_fold_vs_untreated")
    with pytest.raises(
        SummaryError,
        match=r"'cold_levers'.*lever_outcomes\['antigenicity'\]: missing key\(s\) "
        r"\['peak_t_eff_fold_vs_untreated'\]; unknown key\(s\) \['peak_t_eff_fold'\]",
    ):
        claims_markdown({"cold_levers": levers})
    safety = {
        "peripheral_ratio_agonist0.1_over_bsab15": 30.0,
        "best_change_bsab15_hot": -50.0,
        "best_change_two_mabs_agonist0.1_hot": -50.0,
        "liver_threshold": 2.0,
    }
    with pytest.raises(SummaryError, match=r"'mabs_vs_bispecific'.*unknown key\(s\) \['liver_threshold'\]"):
        claims_markdown({"mabs_vs_bispecific": safety})
    with pytest.raises(SummaryError, match="'pk_occupancy' has no summary contract"):
        contract_for("pk_occupancy")


def test_optional_keys_may_be_absent_and_required_nested_keys_may_not():
    levers = _levers_summary(-50.0)
    del levers["lever_outcomes"]["antigenicity"]["failed"]  # optional: a point without it did not fail
    assert (
        ColdLeversSummary.from_summary(levers).lever_outcomes["antigenicity"]["best_percent_change"]["bsab_2x2"]
        == -50.0
    )
    assert "antigenicity 0.1 -> 1: anti-PD-L1 +35%, 2:2 bispecific -50%" in claims_markdown({"cold_levers": levers})
    bell = {
        "dose_at_peak_ternary_mg_per_kg": 3.2,
        "peak_is_interior": True,
        "ternary_at_rp2d_over_peak": 0.5,
        "best_percent_change_at_rp2d": -40.0,
    }
    assert "of the peak; best change at 15 mg/kg -40%." in claims_markdown(
        {"format_bell": {"format_gain_peak_ternary": 2.0, "in_vivo": {"bsab_2x2|cold": bell}}}
    )
    del bell["peak_is_interior"]
    with pytest.raises(
        SummaryError, match=r"'format_bell'.*in_vivo\['bsab_2x2\|cold'\]: missing key\(s\) \['peak_is_interior'\]"
    ):
        FormatBellSummary.from_summary({"format_gain_peak_ternary": 2.0, "in_vivo": {"bsab_2x2|cold": bell}})


#: claims.py's own dicts (its output lines by claim, the provenance stamp, its tables), not summaries.
CLAIMS_OWN_DICTS = {"out", "prov", "SETTING_LABELS"}


def _string_keys_read(tree: ast.AST) -> set[str]:
    """String literals that ``tree`` uses as keys: ``x["k"]``, ``x.get("k")`` and ``"k" in x``
    (except subscripts of :data:`CLAIMS_OWN_DICTS`)."""
    keys = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
            and not (isinstance(node.value, ast.Name) and node.value.id in CLAIMS_OWN_DICTS)
        ):
            keys.add(node.slice.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            keys.add(node.args[0].value)
        elif (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
            and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops)
        ):
            keys.add(node.left.value)
    return keys


def test_claims_read_no_summary_key_outside_the_contracts():
    """Every string key moa/report/claims.py reads is declared by a contract or names an arm, a setting, a
    threshold or a field of the run record: a key read only by claims.py (a typo, a rename) fails here."""
    tree = ast.parse(pathlib.Path(claims.__file__).read_text())
    names = set(load_arms()) | set(load_settings()) | set(claims.DECISION_UNITS) | {"experiment", "summary"}
    undeclared = _string_keys_read(tree) - declared_keys() - names
    assert undeclared == set(), (
        f"moa/report/claims.py reads keys no contract in moa/report/summaries.py declares: {sorted(undeclared)}"
    )
    top_level_only = {k for c in CONTRACTS.values() for k in c.keys()} - declared_keys(top_level=False)
    read_as_strings = sorted(_string_keys_read(tree) & top_level_only)
    assert read_as_strings == [], (
        f"moa/report/claims.py reads top-level summary keys {read_as_strings} as strings, not attributes"
    )
    assert _string_keys_read(ast.parse('s["k"]; s.get("j"); "i" in s')) == {"k", "j", "i"}  # the scan sees all three


def test_robustness_table_gives_each_claims_fraction_in_section_order():
    """With claims_robustness results, claims.md gains a table with the fraction of points where each verdict
    holds (and its interval); without them the file has no such table."""
    record = json.loads((SUMMARY_FIXTURES / "claims_robustness.json").read_text())
    summary = copy.deepcopy(record["summary"])
    entry = summary["claims"]["pdl1neg|pdl1_negative_tnbc"]
    entry.update(fraction_holds=0.625, ci_low=0.5, ci_high=0.75, points=64, drivers=["kill_rate_max (+0.54)"])
    text = claims_markdown({"claims_robustness": summary})
    rows = [line for line in text.splitlines() if line.startswith("| ") and "holds in" not in line]
    assert [int(r.split("|")[1].split(".")[0]) for r in rows] == sorted(
        int(r.split("|")[1].split(".")[0]) for r in rows
    )
    row = next(r for r in rows if r.startswith("| 7."))
    assert "| 62% (50-75%) |" in row and "kill_rate_max (+0.54)" in row
    summary["claims"]["cold|cold"]["by_construction"] = "its margin is the same at every point"
    assert "by construction: its margin is the same at every point" in claims_markdown({"claims_robustness": summary})
    assert "How robust" not in claims_markdown({})
    # the same fraction also stands under the claim's own heading, per setting
    lines = text.splitlines()
    heading = lines.index(next(line for line in lines if line.startswith("## 7.")))
    assert lines[heading + 2] == (
        "  - Across the plausible parameter space (`claims_robustness`), holds in: PD-L1-negative TNBC 62% (50-75%)."
    )
    assert "Across the plausible parameter space" not in claims_markdown({})


# ----- claim 7: a partial response the untreated tumour does not reach -----------------------------
def _experiment(name: str):
    from moa import experiment_runner

    return experiment_runner.load(experiment_runner.find([name])[0])


def test_pdl1_negative_case_is_not_tested_where_the_untreated_tumour_responds():
    """A response on the bispecific counts only where the untreated tumour does not reach one itself
    (before, a tumour that regressed untreated made the claim hold in 62% of the quick sweep's points)."""
    from moa.report.claims import pdl1_negative_verdict

    assert pdl1_negative_verdict(11.0, -35.0) == "the bispecific alone reaches a partial response"
    assert pdl1_negative_verdict(-29.9, -30.0) == "the bispecific alone reaches a partial response"
    assert pdl1_negative_verdict(11.0, -29.9) == "the bispecific alone does not reach a partial response"
    assert pdl1_negative_verdict(-30.0, -100.0).startswith("NOT TESTED")
    assert pdl1_negative_verdict(-100.0, -100.0).startswith("NOT TESTED")


def test_point_verdicts_of_the_pdl1_negative_case_follow_the_typical_patient_rule():
    """claims_robustness judges each point by the same rule as the typical patient's text: on a grid of
    (untreated, bispecific) best changes, the point verdict is undecided exactly where the text says NOT
    TESTED and holds exactly where it says the bispecific reaches a partial response."""
    import numpy as np

    from moa.report.claims import ArmOutcome, pdl1_negative_verdict, point_claims

    values = np.array([-100.0, -45.0, -30.0, -29.9, 0.0, 15.0])
    u, b = (a.ravel() for a in np.meshgrid(values, values, indexing="ij"))
    d84 = np.full(u.shape, 20.0)
    ones = np.ones(u.shape)
    outcomes = {"untreated": ArmOutcome(best=u, d84=d84), "bsab_2x2": ArmOutcome(best=b, d84=d84, t_eff_fold=ones)}
    claim = next(c for c in point_claims() if c.key == "pdl1neg")
    assert set(claim.arms) == {"untreated", "bsab_2x2"}
    texts = [pdl1_negative_verdict(x, y) for x, y in zip(u, b)]
    np.testing.assert_array_equal(claim.tested(outcomes), [not t.startswith("NOT TESTED") for t in texts])
    tested = claim.tested(outcomes)
    np.testing.assert_array_equal(
        claim.holds(outcomes)[tested],
        [t == "the bispecific alone reaches a partial response" for t in texts if not t.startswith("NOT TESTED")],
    )
    margin = claim.margin(outcomes)  # the margin the drivers rank: positive exactly where the claim holds
    np.testing.assert_array_equal(margin > 0, tested & claim.holds(outcomes) & (b < -30.0))
    module = _experiment("claims_robustness")
    other = ArmOutcome(best=b, d84=d84, t_eff_fold=ones)  # the arms claim 7 does not read
    everywhere = {s: {arm: outcomes.get(arm, other) for arm in module.ARMS} for s in module.SETTINGS}
    no_failures = {s: {arm: np.zeros(u.shape, bool) for arm in module.ARMS} for s in module.SETTINGS}
    table = module.verdicts(everywhere, no_failures)
    held = table["holds"].sel(entry="pdl1neg|pdl1_negative_tnbc").values
    assert np.isnan(held[~tested]).all() and np.isfinite(held[tested]).all()


def test_untreated_responses_are_counted_per_setting_over_the_points_that_ran():
    """The share of points whose untreated tumour reaches a partial response (failed points left out), and the
    line claims.md gives it."""
    import numpy as np
    import xarray as xr

    module = _experiment("claims_robustness")
    settings = list(module.SETTINGS)
    best = np.zeros((1, len(settings), 4))
    status = np.zeros((1, len(settings), 4), int)
    best[0, 0] = [-30.0, -29.9, -100.0, 5.0]  # two of four respond
    best[0, 1] = [-50.0, -50.0, 10.0, 10.0]
    status[0, 1] = [0, 1, 0, 1]  # of the two that ran, one responds
    status[0, 2] = 1  # none ran: left out
    main = xr.Dataset(
        {"best_change_pct": (("arm", "setting", "point"), best), "status": (("arm", "setting", "point"), status)},
        coords={"arm": ["untreated"], "setting": settings},
    )
    assert module.untreated_partial_response(main) == {settings[0]: 0.5, settings[1]: 0.5}
    record = json.loads((SUMMARY_FIXTURES / "claims_robustness.json").read_text())
    summary = {**record["summary"], "untreated_partial_response": {"cold": 0.36, "hot_tnbc": 0.28}}
    text = claims_markdown({"claims_robustness": summary})
    assert "itself reaches a partial response by day 84 in hot TNBC (PD-L1+) 28%; cold tumour 36% of the points" in text
    assert "itself reaches a partial response by day" not in claims_markdown({"claims_robustness": record["summary"]})


def test_robustness_gives_each_claim_over_the_points_whose_untreated_tumour_does_not_respond():
    """The subset column and the per-claim line come from the summary's ``no_untreated_response``, and the
    experiment counts a claim there only at points where the untreated tumour ran and did not respond."""
    import numpy as np
    import xarray as xr

    record = json.loads((SUMMARY_FIXTURES / "claims_robustness.json").read_text())
    summary = copy.deepcopy(record["summary"])
    summary["claims"]["broader|hot_tnbc"]["no_untreated_response"] = {
        "points": 46,
        "fraction_holds": 0.2609,
        "ci_low": 0.1427,
        "ci_high": 0.4113,
    }
    text = claims_markdown({"claims_robustness": summary})
    row = next(r for r in text.splitlines() if r.startswith("| 5. ") and "hot TNBC" in r)
    assert "| 26% (14-41%) of 46 |" in row
    other = next(r for r in text.splitlines() if r.startswith("| 5. ") and "cold tumour" in r)
    assert "| - |" in other  # not recorded: a dash, not a number
    assert ", 26% (14-41%) where the untreated tumour does not respond;" in _section(text, 5)

    module = _experiment("claims_robustness")
    settings = list(module.SETTINGS)
    best = np.array([[[-30.0, -29.9, 10.0, 10.0]] * len(settings)])
    status = np.zeros(best.shape, int)
    status[0, 0, 3] = 1
    main = xr.Dataset(
        {"best_change_pct": (("arm", "setting", "point"), best), "status": (("arm", "setting", "point"), status)},
        coords={"arm": ["untreated"], "setting": settings},
    )
    np.testing.assert_array_equal(module.untreated_does_not_respond(main, settings[0]), [False, True, True, False])
    np.testing.assert_array_equal(module.untreated_does_not_respond(main, settings[1]), [False, True, True, True])


def test_what_makes_the_untreated_tumour_shrink_is_found_and_reported():
    """A design where only the first parameter moves the untreated best change: it is the strongest driver
    named, with a negative PRCC as raising it shrinks the tumour; claims.md names the drivers per setting."""
    import numpy as np
    import xarray as xr

    module = _experiment("claims_robustness")
    settings = list(module.SETTINGS)
    rng = np.random.default_rng(7)
    design = rng.random((200, 5))
    best = np.stack([-100 * design[:, 0] + rng.normal(0, 5, 200)] * len(settings))[None]
    status = np.zeros(best.shape, int)
    status[0, 1, :150] = 1  # the second setting: only 50 points ran, the rest are left out
    main = xr.Dataset(
        {
            "best_change_pct": (("arm", "setting", "point"), best),
            "status": (("arm", "setting", "point"), status),
            "unit_design": (("point", "parameter"), design),
        },
        coords={"arm": ["untreated"], "setting": settings},
    )
    top = module.untreated_response_drivers(main, ["kill", "a", "b", "c", "d"])
    for setting in settings[:2]:  # the strongest is the one that matters; any other named is far weaker
        assert top[setting][0].startswith("kill (-0.9"), top[setting]
        assert all(abs(float(t.split("(")[1].rstrip(")"))) < 0.4 for t in top[setting][1:]), top[setting]
    record = json.loads((SUMMARY_FIXTURES / "claims_robustness.json").read_text())
    summary = {
        **record["summary"],
        "untreated_partial_response": {"hot_tnbc": 0.39},
        "untreated_response_drivers": {"hot_tnbc": ["kill_rate_max (-0.56)", "tumour_growth_rate (+0.53)"], "cold": []},
    }
    text = claims_markdown({"claims_robustness": summary})
    assert (
        "it shrinks more as the parameter rises): hot TNBC (PD-L1+) kill_rate_max (-0.56), tumour_growth_rate (+0.53)."
        in text
    )
    assert "cold tumour" not in text.split("What makes it shrink")[1].split("\n")[0]


def test_sweep_sign_changes_are_written_as_values_with_units_and_the_margin():
    """The one-parameter sweeps' line names each flip as "parameter value unit" (not a Python dict) and says
    the benefit must pass the experiment's margin on both sides."""
    record = json.loads((SUMMARY_FIXTURES / "sweeps.json").read_text())
    summary = copy.deepcopy(record["summary"])
    summary["margin_log10"] = 0.1
    for params in summary["sweeps"].values():
        for v in params.values():
            v["sign_changes_at"] = []
    summary["sweeps"]["hot_tnbc"]["priming_rate_max"]["sign_changes_at"] = [14820000.0, 3.0e7]
    text = _section(claims_markdown({"sweeps": summary}), 3)
    assert (
        "One-parameter sweeps, hot TNBC (PD-L1+): the benefit changes sign (from beyond +0.1 to beyond -0.1 log10 "
        "or back) at priming_rate_max 1.48e+07, 3e+07 cell/day;" in text
    )
    assert (
        "One-parameter sweeps, cold tumour: the benefit changes sign (from beyond +0.1 to beyond -0.1 log10 "
        "or back) nowhere within the bounds;" in text
    )
    assert "{" not in text


def test_format_lines_name_formats_and_settings_by_their_labels():
    """Claim 4's in vivo and threshold lines read "2:2 bispecific (...), hot TNBC (PD-L1+)" from models/, and
    say where the peak lies in words (not "bsab_2x2|hot_tnbc" and "interior peak: True")."""
    record = json.loads((SUMMARY_FIXTURES / "format_bell.json").read_text())
    summary = copy.deepcopy(record["summary"])
    text = _section(claims_markdown({"format_bell": summary}), 4)
    in_vivo = [line for line in text.splitlines() if line.startswith("  - In vivo")]
    assert in_vivo and all("|" not in line and "True" not in line and "False" not in line for line in in_vivo)
    key, v = next(iter(summary["in_vivo"].items()))
    fmt, setting = key.split("|")
    label = {"bsab_2x2": "2:2 bispecific (opatisumimab-like)", "bsab_1x1": "1:1 bispecific"}[fmt]
    where = "inside the dose range" if v["peak_is_interior"] else "at an end of the dose range (no interior peak)"
    assert (
        f"  - In vivo, {label}, {claims.SETTING_LABELS[setting]}: tumour ternary peaks at "
        f"{v['dose_at_peak_ternary_mg_per_kg']:g} mg/kg, {where};" in in_vivo[0]
    )
    assert "threshold of conditional agonism (1:1 bispecific)" in text


def test_arms_subgroups_and_settings_are_written_by_their_labels():
    """Claim 2's arms, the virtual trial's arms and subgroups and the sweeps' settings read as on a slide
    (labels from models/arms.toml and settings), not as keys such as "a41bb (cold)" or "bsab_2x2, pdl1_positive"."""
    summaries = {
        name: json.loads((SUMMARY_FIXTURES / f"{name}.json").read_text())["summary"]
        for name in ("exhaustion_dynamics", "virtual_trial", "sweeps")
    }
    text = claims_markdown(summaries)
    arms = load_arms()
    assert f"  - {arms['a41bb'].label}, cold tumour: peak Tpex x" in _section(text, 2)
    assert f"  - {arms['nabp_bsab_2x2'].label}, PD-L1-positive: ORR " in text
    assert f"  - {arms['bsab_2x2'].label}, PD-L1-negative: ORR " in text
    assert "  - One-parameter sweeps, cold tumour: the benefit changes sign" in _section(text, 3)
    for key in ("a41bb (cold)", "pdl1_positive", "pdl1_negative:", "(cold background", "sweeps (hot_tnbc)"):
        assert key not in text, key
