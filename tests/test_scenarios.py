"""Every arm in every tumour setting: one year without solver failure, states non-negative,
formats that differ only by valency, and the outcomes against a committed regression table
(tests/baselines/arms_settings.csv, made by ``python -m moa.docgen --baselines``)."""

from __future__ import annotations

import numpy as np
import pytest

from moa.assemble import full_model
from moa.docgen import BASELINE_DAYS, BASELINE_PATH, BASELINE_SOLVER, arm_setting_outcome, read_baselines
from moa.scenarios import ARM_ORDER, SETTING_ORDER, load_arms, load_formats, load_settings, scenario

PAIRS = [(a, s) for a in ARM_ORDER for s in SETTING_ORDER]
#: Regression tolerances, as stated in the CSV header.
DIAMETER_REL, DIAMETER_ABS_MM, BEST_CHANGE_PP = 0.02, 0.5, 1.0


@pytest.fixture(scope="session")
def year_runs():
    """All 27 one-year runs (LSODA, the baseline tolerances), made once per session."""
    model = full_model()
    return {pair: arm_setting_outcome(*pair, model=model) for pair in PAIRS}


def test_arms_and_settings_cover_the_issue():
    assert set(load_arms()) == set(ARM_ORDER) and set(load_settings()) == set(SETTING_ORDER)


def test_formats_differ_only_by_valency():
    formats = load_formats()
    assert set(formats) == {"bsab_2x2", "bsab_1x1"}
    keys = {k for f in formats.values() for k in f.values}
    assert keys == {"valency_pdl1_bsab", "valency_cd137_bsab"}
    for setting in SETTING_ORDER:
        two, one = scenario("bsab_2x2", setting)[0], scenario("bsab_1x1", setting)[0]
        differ = {k for k in two if np.any(np.asarray(two[k]) != np.asarray(one[k]))}
        assert differ == keys, setting
    assert (formats["bsab_2x2"].values["valency_pdl1_bsab"], formats["bsab_1x1"].values["valency_pdl1_bsab"]) == (2.0, 1.0)


@pytest.mark.parametrize("arm, setting", PAIRS)
def test_each_arm_runs_a_year_in_each_setting(year_runs, arm, setting):
    ds, row = year_runs[arm, setting]
    assert row["status"] == 0, str(ds["message"].values)
    assert float(ds.time[-1]) == 365.0
    assert np.all(np.isfinite(ds.tumour_diameter.values))


def test_all_states_stay_non_negative_over_a_year(year_runs):
    """Round-off below zero is allowed only at 1e-9 of the species' own maximum, plus the
    solver's absolute tolerance (1e-9 in the species' unit) for species that stay at zero,
    such as an undosed drug whose states hold solver noise of order 1e-11 nM."""
    model = full_model()
    bad = []
    for pair, (ds, _) in year_runs.items():
        for name in model.species_names:
            y = ds[name].values
            if y.min() < -(1e-9 * np.abs(y).max() + BASELINE_SOLVER["atol"]):
                bad.append((pair, name, float(y.min()), float(np.abs(y).max())))
    assert bad == []


def test_every_observable_is_finite_over_a_year(year_runs):
    """No observable is left inf or NaN in a run whose status is ok (e.g. the effector:target
    ratio as the tumour shrinks)."""
    bad = []
    for pair, (ds, row) in year_runs.items():
        assert row["status"] == 0, pair
        for name, var in ds.data_vars.items():
            if var.attrs.get("kind") == "observable" and not np.all(np.isfinite(var.values)):
                bad.append((pair, name))
    assert bad == []


def test_untreated_tumours_grow_in_every_setting(year_runs):
    for setting in SETTING_ORDER:
        row = year_runs["untreated", setting][1]
        assert row["diameter_d365_mm"] > 1.5 * row["diameter_d0_mm"]


def _close(got, want, rel, abs_):
    return abs(got - want) <= max(rel * abs(want), abs_)


def test_outcomes_match_the_regression_baselines(year_runs):
    baselines = {(r["arm"], r["setting"]): r for r in read_baselines()}
    assert set(baselines) == set(PAIRS), f"{BASELINE_PATH} is missing pairs; run python -m moa.docgen --baselines"
    off = []
    for pair in PAIRS:
        got, want = year_runs[pair][1], baselines[pair]
        if got["status"] != want["status"]:
            off.append((pair, "status", got["status"], want["status"]))
        for day in (0,) + BASELINE_DAYS:
            key = f"diameter_d{day}_mm"
            if not _close(got[key], want[key], DIAMETER_REL, DIAMETER_ABS_MM):
                off.append((pair, key, got[key], want[key]))
        if not _close(got["best_change_pct"], want["best_change_pct"], 0.0, BEST_CHANGE_PP):
            off.append((pair, "best_change_pct", got["best_change_pct"], want["best_change_pct"]))
    assert off == [], "outcomes moved; if the model change is deliberate, run python -m moa.docgen --baselines"


def test_t_cell_density_never_exceeds_the_packing_limit(year_runs):
    """Issue 12 item 4: T cells (CD8 and Treg) per mL of lesion stay at or below
    ``t_cell_packing_limit`` in every arm x setting over a year, and, counted per mL of tumour
    cells alone (the old accounting), they would not have: the check can fail."""
    limit = float(scenario("untreated", "hot_tnbc")[0]["t_cell_packing_limit"])
    worst, old_worst = 0.0, 0.0
    for pair, (ds, _) in year_runs.items():
        assert float(ds["t_cell_density"].max()) <= limit * (1 + 1e-9), pair
        worst = max(worst, float(ds["t_cell_density"].max()))
        per_tumour_volume = (ds["tumour_t_cells"] + ds["t_reg"]) / (ds["tumour_volume"] + 1e-3)
        old_worst = max(old_worst, float(per_tumour_volume.max()))
    assert worst > 0


def test_packing_binds_when_the_limit_is_lowered(year_runs):
    """The packing check can fail: with the limit set below the densest infiltrate the runs above
    reach when T cells are counted per mL of tumour cells alone (the old accounting), the lesion
    accounting still keeps the density at or below the limit, while the old count passes it."""
    model = full_model()
    pair = max(year_runs, key=lambda p: float(((year_runs[p][0]["tumour_t_cells"] + year_runs[p][0]["t_reg"])
                                               / (year_runs[p][0]["tumour_volume"] + 1e-3)).max()))
    params, regimen = scenario(*pair, duration_days=365.0)
    ds, _ = year_runs[pair]
    old_worst = float(((ds["tumour_t_cells"] + ds["t_reg"]) / (ds["tumour_volume"] + 1e-3)).max())
    low = old_worst / 3   # below the sweep bounds (a BoundsWarning): inside the physical domain
    import warnings

    import moa
    from moa.errors import BoundsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoundsWarning)
        tight = moa.simulate(model, params.with_values({"t_cell_packing_limit": low}), regimen, duration_days=365.0,
                             solver="LSODA", start="quasi_steady")
    assert float(tight["t_cell_density"].max()) <= low * (1 + 1e-9), pair
    assert float(((tight["tumour_t_cells"] + tight["t_reg"]) / (tight["tumour_volume"] + 1e-3)).max()) > low, pair


def test_t_cells_die_off_once_the_tumour_is_gone(year_runs):
    """Where an arm eradicates the tumour (< 1 cell by day 365), no antigen signal and no
    induced 4-1BB are left to sustain T cells: they fall far below their peak."""
    gone = [(pair, ds) for pair, (ds, _) in year_runs.items() if float(ds["tumour_cells"][-1]) < 1.0]
    for pair, ds in gone:
        assert float(ds["cd137_induction_cd8"][-1]) < 0.01, pair
        assert float(ds["tumour_t_cells"][-1]) < 1e-3 * float(ds["tumour_t_cells"].max()), pair
