"""RECIST 1.1 on several target lesions (moa.analysis.recist_lesions) against hand-worked cases.

Each case is a small explicit array of lesion diameters (mm) with the answer worked out by hand in
the comment beside it. Thresholds are those of models/recist.toml: PR -30 % from baseline, PD +20 %
over the nadir and +5 mm, CR every lesion below 2 mm, confirmation 28 days, SD at 42 days or later.
"""

from __future__ import annotations

import numpy as np
import pytest

from moa.analysis import load_recist, recist_lesions

NAN = np.nan
EIGHT_WEEKLY = [0.0, 56.0, 112.0, 168.0, 224.0]


def responses(ds, patient: int = 0) -> list[str]:
    return [str(r) for r in ds["response"].values[patient]]


def test_progression_is_measured_from_the_nadir_not_from_baseline():
    # sums 50 -> 30 (-40 %, PR) -> 34 (+13 % over nadir 30: not PD; -32 %: PR) -> 37 (+23 % and +7 mm over
    # the nadir: PD, although still -26 % from baseline) -> 20 (after PD: off study, NE)
    d = np.array([[[30, 20], [20, 10], [22, 12], [25, 12], [10, 10]]], float)
    ds = recist_lesions(d, EIGHT_WEEKLY)
    np.testing.assert_allclose(ds["sum_mm"].values[0], [50, 30, 34, 37, 20])
    assert responses(ds) == ["NE", "PR", "PR", "PD", "NE"]
    assert ds["progression_day"].values[0] == 168.0 and bool(ds["progressed"].values[0])
    assert ds["best_overall_response"].values[0] == "PR"  # PR at day 56 confirmed by the PR at day 112
    assert ds["best_change_pct"].values[0] == pytest.approx(-40.0)
    # duration of response: first PR (day 56) to progression (day 168)
    assert ds["response_start_day"].values[0] == 56.0
    assert ds["duration_of_response_days"].values[0] == 112.0 and bool(ds["response_ended"].values[0])


def test_twenty_percent_without_five_mm_is_not_progression():
    # sums 20 -> 24 (+20 % but only +4 mm: SD) -> 26 (+30 %, +6 mm: PD)
    d = np.array([[[10, 10], [11, 13], [12, 14]]], float)
    ds = recist_lesions(d, [0, 56, 112])
    assert responses(ds) == ["NE", "SD", "PD"]
    assert ds["progression_day"].values[0] == 112.0
    assert ds["best_overall_response"].values[0] == "SD"  # SD at day 56 >= 42 days
    # exactly +20 % and exactly +5 mm is PD (both thresholds are inclusive): 25 -> 30
    exact = recist_lesions(np.array([[[15, 10], [18, 12]]], float), [0, 56])
    assert responses(exact) == ["NE", "PD"]


def test_a_single_pr_scan_is_not_a_confirmed_response():
    scan_days = [0, 56, 84, 140]
    d = np.array(
        [
            [[30, 20], [20, 13], [22, 16], [22, 16]],  # 50 -> 33 (PR) -> 38 (SD: -24 %, +15 % over nadir) -> 38 (SD)
            [[30, 20], [20, 14], [20, 13], [18, 12]],  # 50 -> 34 (PR) -> 33 (PR, 28 days later: confirmed) -> 30 (PR)
        ],
        float,
    )
    ds = recist_lesions(d, scan_days)
    assert responses(ds, 0) == ["NE", "PR", "SD", "SD"]
    assert responses(ds, 1) == ["NE", "PR", "PR", "PR"]
    assert list(ds["best_overall_response"].values) == ["SD", "PR"]
    assert np.isnan(ds["duration_of_response_days"].values[0])
    # the confirmed, ongoing response lasts from day 56 to the last assessment (day 140), censored there
    assert ds["duration_of_response_days"].values[1] == 84.0 and not bool(ds["response_ended"].values[1])
    # without confirmation a single PR scan is the best response
    unconfirmed = recist_lesions(d, scan_days, confirm=False)
    assert list(unconfirmed["best_overall_response"].values) == ["PR", "PR"]
    assert unconfirmed["duration_of_response_days"].values[0] == 84.0


def test_a_repeat_scan_27_days_later_does_not_confirm():
    d = np.array([[[50], [30], [30]]], float)  # PR at day 56 and day 83: 27 days apart
    assert recist_lesions(d, [0, 56, 83])["best_overall_response"].values[0] == "SD"
    assert recist_lesions(d, [0, 56, 84])["best_overall_response"].values[0] == "PR"


def test_a_new_lesion_is_progression_at_the_first_scan_at_or_after_it_even_as_the_sum_shrinks():
    d = np.array([[[30, 20], [20, 10], [15, 8], [10, 5]]] * 3, float)  # sums 50 -> 30 -> 23 -> 15, shrinking
    ds = recist_lesions(d, [0, 56, 112, 168], new_lesion_day=np.array([100.0, 112.0, np.inf]))
    assert responses(ds, 0) == ["NE", "PR", "PD", "NE"]  # appears on day 100: seen at the day-112 scan
    assert responses(ds, 1) == ["NE", "PR", "PD", "NE"]  # appears on the scan day itself
    assert responses(ds, 2) == ["NE", "PR", "PR", "PR"]  # never
    np.testing.assert_array_equal(ds["progression_day"].values, [112.0, 112.0, np.inf])
    # the PR at day 56 is unconfirmed (the next scan is PD), so the best response is SD (day 56 >= 42)
    assert list(ds["best_overall_response"].values) == ["SD", "SD", "PR"]


def test_complete_response_when_every_lesion_disappears():
    d = np.array(
        [
            [[12, 8], [1, 0.5], [0, 0]],  # every lesion < 2 mm at days 56 and 84: confirmed CR
            [[12, 8], [1.9, 1.0], [2.0, 0]],  # CR at 56, then one lesion at 2.0 mm (not < 2): PR (sum -90 %)
            [[12, 8], [0, 0], [0, 0]],
        ],
        float,
    )
    ds = recist_lesions(d, [0, 56, 84])
    assert responses(ds, 0) == ["NE", "CR", "CR"]
    assert responses(ds, 1) == ["NE", "CR", "PR"]
    assert list(ds["best_overall_response"].values) == ["CR", "PR", "CR"]  # CR then PR confirms a PR


def test_patients_with_different_numbers_of_lesions_are_judged_on_their_own_lesions():
    d = np.array(
        [
            [[20, 15, 10], [14, 10, 7], [14, 10, 7]],  # three lesions: 45 -> 31 (-31 %, PR)
            [[20, NAN, NAN], [26, NAN, NAN], [26, NAN, NAN]],  # one lesion: 20 -> 26 (+30 %, +6 mm, PD)
            [[20, 30, NAN], [20, 31, NAN], [20, 31, NAN]],  # two lesions: 50 -> 51 (SD)
        ],
        float,
    )
    ds = recist_lesions(d, [0, 56, 112])
    np.testing.assert_allclose(ds["sum_mm"].values[:, :2], [[45, 31], [20, 26], [50, 51]])
    assert list(ds["best_overall_response"].values) == ["PR", "PD", "SD"]
    # the batch answer is each patient's own answer: nothing leaks across the patient axis
    for p in range(3):
        alone = recist_lesions(d[p : p + 1, :, ~np.isnan(d[p, 0])], [0, 56, 112])
        assert responses(alone) == responses(ds, p)
        assert alone["best_overall_response"].values[0] == ds["best_overall_response"].values[p]


def test_an_unmeasured_lesion_makes_the_scan_not_evaluable_unless_the_others_already_show_progression():
    d = np.array(
        [
            [[20, 20], [NAN, 20], [14, 13]],  # 40 -> lesion 0 missing: NE -> 27 (PR)
            [[20, 20], [NAN, 50], [20, 50]],  # 40 -> the measured lesion alone sums 50 (+25 %, +10 mm over 40): PD
            [[20, 20], [NAN, NAN], [20, 20]],  # not scanned at day 56: NE, then SD
        ],
        float,
    )
    ds = recist_lesions(d, [0, 56, 112])
    assert responses(ds, 0) == ["NE", "NE", "PR"]
    assert responses(ds, 1) == ["NE", "PD", "NE"]
    assert responses(ds, 2) == ["NE", "NE", "SD"]
    assert np.isnan(ds["sum_mm"].values[0, 1])
    np.testing.assert_array_equal(ds["last_assessment_day"].values, [112.0, 56.0, 112.0])


def test_best_response_is_pd_when_progression_comes_before_the_minimum_time_for_sd():
    d = np.array(
        [
            [[40], [41], [60]],  # SD at day 28 (< 42 days), PD at day 56: PD
            [[40], [41], [41]],  # SD at day 28 and at day 56 (>= 42): SD
        ],
        float,
    )
    ds = recist_lesions(d, [0, 28, 56])
    assert list(ds["best_overall_response"].values) == ["PD", "SD"]
    early = recist_lesions(d[1:, :2], [0, 28])  # only a day-28 scan, no progression: not evaluable
    assert early["best_overall_response"].values[0] == "NE"
    assert np.isinf(early["progression_day"].values[0]) and not bool(early["progressed"].values[0])


def test_one_diameter_per_patient_matches_the_single_lesion_rules():
    sums = np.array([[50.0, 30.0, 30.0, 40.0]])  # (patient, scan): PR, PR, PD (+33 %, +10 mm over nadir 30)
    ds = recist_lesions(sums, [0, 56, 112, 168])
    assert responses(ds) == ["NE", "PR", "PR", "PD"]


def test_thresholds_come_from_the_rules():
    rules = load_recist()
    assert (rules.confirm_interval_days, rules.sd_min_days) == (28.0, 42.0)
    d = np.array([[[50], [40]]], float)  # -20 %: SD under RECIST, PR if the PR threshold were 15 %
    assert responses(recist_lesions(d, [0, 56])) == ["NE", "SD"]
    import dataclasses

    assert responses(recist_lesions(d, [0, 56], rules=dataclasses.replace(rules, pr_fraction=0.15))) == ["NE", "PR"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sum_or_diameters_mm": np.ones((2, 3, 4, 1))}, "sum_or_diameters_mm: shape"),
        ({"sum_or_diameters_mm": np.array([[[10.0], [-1.0]]])}, r"sum_or_diameters_mm: -1.0 at patient 0, scan 1"),
        ({"sum_or_diameters_mm": np.array([[[NAN], [1.0]]])}, "patient 0 has no target lesion"),
        ({"sum_or_diameters_mm": np.array([[[10.0, NAN], [10.0, 3.0]]])}, "NaN at baseline but measured at scan 1"),
        ({"scan_days": [0.0, 56.0, 112.0]}, r"scan_days: shape \(3,\)"),
        ({"scan_days": [0.0, 0.0]}, "strictly increasing"),
        ({"new_lesion_day": np.array([1.0, 2.0])}, r"new_lesion_day: shape \(2,\)"),
        ({"new_lesion_day": np.array([NAN])}, "new_lesion_day: nan for patient 0"),
        ({"new_lesion_day": np.array([-3.0])}, "new_lesion_day: -3.0"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(kwargs, match):
    args = {"sum_or_diameters_mm": np.array([[[10.0], [12.0]]]), "scan_days": [0.0, 56.0], **kwargs}
    with pytest.raises(ValueError, match=match):
        recist_lesions(args.pop("sum_or_diameters_mm"), args.pop("scan_days"), **args)


def test_vectorised_over_many_patients_quickly():
    """A 2,000-patient trial with 5 lesions and 12 scans is judged in well under a second."""
    import time

    rng = np.random.default_rng(0)
    d = 20.0 * np.exp(np.cumsum(rng.normal(0, 0.15, (2000, 12, 5)), axis=1))
    unused = rng.random((2000, 5)) < 0.4
    unused[:, 0] = False  # everyone has at least one lesion
    d = np.where(unused[:, None, :], NAN, d)
    start = time.perf_counter()
    ds = recist_lesions(d, np.arange(12) * 56.0)
    assert time.perf_counter() - start < 1.0
    assert set(np.unique(ds["best_overall_response"].values)) <= {"CR", "PR", "SD", "PD", "NE"}
    # a patient's best change is never above its change at the first PD scan (or at any counted scan)
    first = ds["change_pct"].values[:, 1]
    assert np.all(ds["best_change_pct"].values <= first + 1e-9)
