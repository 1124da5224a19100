"""Virtual trial (moa.trial): per-sample dose stop, population sampling, scan schedule, calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from moa import trial
from moa.symbolic.named_models import full_model
from moa.scenarios import default_parameters, scenario
from moa.simulate import simulate


def _two_patients(arm: str, duration_days: float):
    params, regimen = scenario(arm, "hot_tnbc", duration_days)
    return params.with_values({"body_weight": np.array([70.0, 70.0])}), regimen


def test_dose_stop_per_sample_in_a_batched_run():
    """Sample 0 stops at day 30 (after the doses of day 0 and 21), sample 1 keeps its Q3W doses: identical
    before day 42, then sample 0's antibody only decays while sample 1's jumps with the day-42 dose."""
    params, regimen = _two_patients("apdl1", 63.0)
    ds = simulate(
        full_model(),
        params,
        regimen,
        duration_days=63.0,
        solver="rodas",
        start="quasi_steady",
        keep=["apdl1_central"],
        dose_stop_days=np.array([30.0, np.inf]),
    )
    drug = ds["apdl1_central"]
    before = drug.sel(time=slice(0, 41))
    np.testing.assert_allclose(before.isel(sample=0), before.isel(sample=1), rtol=1e-9)
    stopped, dosed = drug.isel(sample=0), drug.isel(sample=1)
    assert float(dosed.sel(time=42.0)) > 1.5 * float(dosed.sel(time=41.0))  # the day-42 dose given
    assert float(stopped.sel(time=42.0)) < float(stopped.sel(time=41.0))  # not given: only decay
    assert np.all(np.diff(stopped.sel(time=slice(30, 63)).values) < 0)
    assert "30.0" in ds.attrs["dose_stop_days"] and "inf" in ds.attrs["dose_stop_days"]


def test_dose_stop_at_day_zero_means_untreated_and_bad_stops_are_refused():
    params, regimen = _two_patients("apdl1", 21.0)
    ds = simulate(
        full_model(),
        params,
        regimen,
        duration_days=21.0,
        solver="rodas",
        start="quasi_steady",
        keep=["apdl1_central"],
        dose_stop_days=[0.0, np.inf],
    )
    assert float(ds["apdl1_central"].isel(sample=0).max()) == 0.0
    assert float(ds["apdl1_central"].isel(sample=1).max()) > 0.0
    with pytest.raises(ValueError, match=r"dose_stop_days\[1\]=nan"):
        simulate(full_model(), params, regimen, duration_days=21.0, dose_stop_days=[1.0, np.nan])
    with pytest.raises(ValueError, match=r"dose_stop_days: shape \(3,\)"):
        simulate(full_model(), params, regimen, duration_days=21.0, dose_stop_days=[1.0, 2.0, 3.0])


def test_stop_when_ends_a_sample_at_an_output_time_and_leaves_the_others_exact():
    """A sample stopped at output 2 has the unstopped solution up to it and NaN after (status 0, stop_day set);
    the sample that is never stopped is bit-identical to a run without ``stop_when``."""
    params, regimen = _two_patients("apdl1", 63.0)
    times = np.array([0.0, 10.0, 21.0, 30.0, 50.0, 63.0])
    seen = []

    def stop_first_at_day_21(i, values):
        seen.append((i, float(values["apdl1_central"][1]), float(values["tumour_diameter"][1])))
        return np.array([times[i] == 21.0, False])

    kw = dict(times=times, solver="rodas", start="quasi_steady", keep=["apdl1_central", "tumour_diameter"])
    full = simulate(full_model(), params, regimen, **kw)
    ds = simulate(full_model(), params, regimen, stop_when=stop_first_at_day_21, **kw)
    assert [i for i, _, _ in seen] == list(range(times.size))  # called once per output time, in order
    np.testing.assert_array_equal(ds["stop_day"].values, [21.0, np.nan])
    np.testing.assert_array_equal(ds["status"].values, [0, 0])
    for name in ("apdl1_central", "tumour_diameter"):
        np.testing.assert_array_equal(ds[name].isel(sample=1).values, full[name].isel(sample=1).values)
        np.testing.assert_array_equal(
            ds[name].isel(sample=0, time=slice(0, 3)), full[name].isel(sample=0, time=slice(0, 3))
        )
        assert np.all(np.isnan(ds[name].isel(sample=0, time=slice(3, None)).values))
    assert seen[3][1] == float(full["apdl1_central"].isel(sample=1, time=3))  # the values passed are the outputs
    assert "stop_first_at_day_21" in ds.attrs["stop_when"]
    with pytest.raises(ValueError, match=r"stop_when returned int64 of shape \(2,\) at output 0 \(t=0 day\)"):
        simulate(full_model(), params, regimen, stop_when=lambda i, v: np.array([0, 1]), **kw)
    with pytest.raises(ValueError, match="stop_when=3: must be a function"):
        simulate(full_model(), params, regimen, stop_when=3, **kw)


# ----------------------------------------------------------------------------- population and conduct


@pytest.fixture(scope="module")
def population():
    return trial.sample_population(600, seed=11)


def test_pdl1_mix_matches_impassion130(population):
    """About 41% PD-L1-positive (IMpassion130): a two-sided binomial test at the fixed seed."""
    k = int(population.pdl1_positive.sum())
    assert stats.binomtest(k, population.size, population.spec.pdl1_positive_fraction).pvalue > 0.01
    # and the PD-L1 status sets the setting: PD-L1+ patients start from hot_tnbc's tumour PD-L1, the others not
    centre = population.setting_values["pdl1_per_tumour_cell"]
    assert np.all(centre[population.pdl1_positive] == 1.2e5) and np.all(centre[~population.pdl1_positive] == 500.0)


def test_lesions_follow_recist_counts_and_organ_limit(population):
    n = population.n_lesions
    assert n.min() >= 1 and n.max() <= trial.MAX_LESIONS
    assert set(np.unique(n)) == {1, 2, 3, 4, 5}
    for organs, count in zip(population.organ, n):
        named = [o for o in organs if o]
        assert len(named) == count
        assert max(named.count(o) for o in named) <= population.spec.max_per_organ
    d = population.lesion_values["initial_tumour_diameter"]
    assert np.all(np.isnan(d) == (np.arange(trial.MAX_LESIONS)[None, :] >= n[:, None]))
    assert np.nanmin(d) >= 10.0  # RECIST measurable


def test_baseline_sum_of_diameters_matches_its_target(population):
    target = population.spec.sum_of_diameters_mm
    total = population.baseline_sum_mm()
    assert total.min() >= target["lower"] and total.max() <= target["upper"]
    assert target["median_low"] <= np.median(total) <= target["median_high"]
    assert 0.3 < population.acceptance_rate <= 1.0


@pytest.mark.parametrize("name", ["tumour_growth_rate", "body_weight", "antigenicity"])
def test_patient_values_follow_their_truncated_lognormal(population, name):
    """KS test of each patient-level draw (divided by its median) against the declared truncated lognormal."""
    v = next(x for x in population.spec.patient if x.name == name)
    centre = population.setting_values.get(name, float(default_parameters()[name]))
    median = np.full(population.size, v.median) if v.median is not None else centre * v.median_factor
    z = np.log(population.patient_values[name] / median) / v.sd_log
    z_lo, z_hi = np.log(v.lower / median) / v.sd_log, np.log(v.upper / median) / v.sd_log
    # each patient's truncation differs when the median does: transform to its own uniform
    u = (stats.norm.cdf(z) - stats.norm.cdf(z_lo)) / (stats.norm.cdf(z_hi) - stats.norm.cdf(z_lo))
    assert stats.kstest(u, "uniform").pvalue > 0.01
    assert np.std(np.log(population.patient_values[name])) > 0.5 * v.sd_log  # not collapsed


def test_lesions_share_patient_values_and_differ_in_lesion_values(population):
    values, patient, _ = trial.trajectory_values(population.subset(np.arange(population.size) < 30))
    for k in np.unique(patient):
        rows = patient == k
        assert np.ptp(values["cl_apdl1"][rows]) == 0 and np.ptp(values["antigenicity"][rows]) == 0
        if rows.sum() > 1:
            assert np.ptp(values["initial_tumour_diameter"][rows]) > 0


def test_same_seed_same_patients_other_seed_other_patients():
    a, b, c = (trial.sample_population(20, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(
        a.lesion_values["initial_tumour_diameter"], b.lesion_values["initial_tumour_diameter"]
    )
    assert not np.array_equal(a.patient_values["antigenicity"], c.patient_values["antigenicity"])


def test_scan_schedule_is_8_weekly_in_year_1_then_12_weekly():
    np.testing.assert_array_equal(trial.scan_days(393.0), [0, 56, 112, 168, 224, 280, 336])
    np.testing.assert_array_equal(trial.scan_days(700.0), [0, 56, 112, 168, 224, 280, 336, 420, 504, 588, 672])
    with pytest.raises(ValueError, match="follow_up_days=-1"):
        trial.scan_days(-1)


def test_population_file_errors_name_the_field(tmp_path):
    text = trial.POPULATION_FILE.read_text()
    bad = tmp_path / "population.toml"
    bad.write_text(text.replace("pdl1_positive_fraction = 0.41", "pdl1_positive_fraction = 1.41"))
    with pytest.raises(ValueError, match=r"population\.pdl1_positive_fraction=1\.41"):
        trial.load_population(bad)
    bad.write_text(text.replace("[patient.cl_bsab]", "[patient.cl_bsabb]"))
    with pytest.raises(ValueError, match=r"patient\.cl_bsabb: unknown parameter"):
        trial.load_population(bad)
    bad.write_text(
        text.replace(
            "count_probabilities = [0.25, 0.25, 0.2, 0.15, 0.15]", "count_probabilities = [0.5, 0.25, 0.2, 0.15, 0.15]"
        )
    )
    with pytest.raises(ValueError, match="count_probabilities"):
        trial.load_population(bad)
    with pytest.raises(ValueError, match=r"field 'patient\.antigenicity\.mean'"):
        trial.load_population().with_values({"patient.antigenicity.mean": 1.0})


# ----------------------------------------------------------------------------- trial conduct and calibration
def test_off_study_rule_stops_every_lesion_of_a_patient_at_its_first_pd_scan():
    """Hand-worked: patient 0 (two lesions, 10 + 10 mm) shrinks to 16 mm (nadir), then grows to 20 mm: +25 % and
    +4 mm, not PD (5 mm rule), then 22 mm: PD at scan 3. Patient 1 (one lesion) stays at 30 mm. Only patient 0's
    two trajectories stop, at scan 3 and not before."""
    patient, lesion = np.array([0, 0, 1]), np.array([0, 1, 0])
    days = np.array([0.0, 56.0, 112.0, 168.0, 224.0])
    watch = trial.OffStudyAtProgression(2, patient, lesion, days)
    diameters = [[10.0, 10.0, 30.0], [8.0, 8.0, 30.0], [10.0, 10.0, 30.0], [11.0, 11.0, 30.0], [12.0, 12.0, 30.0]]
    answers = [watch(i, {"tumour_diameter": np.array(d)}) for i, d in enumerate(diameters[:4])]
    assert [a.tolist() for a in answers] == [[False] * 3, [False] * 3, [False] * 3, [True, True, False]]
    np.testing.assert_array_equal(watch.diameter_mm[0, 3, :2], [11.0, 11.0])


def test_what_happens_after_progression_changes_no_readout():
    """Off study (the default: lesions not simulated after the progression scan), doses stopped at progression
    (two passes) and every dose to the end give the same RECIST readouts and PFS; off study leaves NaN after
    progression and is the cheapest; after progression the stopped patients' lesions are not smaller than
    with doses continued."""
    population = trial.sample_population(8, seed=3)
    off = trial.simulate_trial("nabp", population)
    stopped = trial.simulate_trial("nabp", population, after_progression="untreated")
    dosed = trial.simulate_trial("nabp", population, after_progression="treated")
    readouts = ("progression_day", "best_overall_response", "best_overall_response_unconfirmed", "best_change_pct")
    for name in readouts + ("pfs_days", "pfs_event", "duration_of_response_days", "last_assessment_day"):
        np.testing.assert_array_equal(stopped[name].values, dosed[name].values)
        np.testing.assert_array_equal(off[name].values, dosed[name].values)
    assert stopped.attrs["second_pass_trajectories"] > 0  # some patients progressed within follow-up
    after = stopped["scan_day"] > stopped["progression_day"]
    gap = (stopped["diameter_mm"].sum("lesion") - dosed["diameter_mm"].sum("lesion")).where(after)
    assert float(gap.min()) >= -1e-6 and float(gap.max()) > 0
    later = after.transpose("patient", "scan").values[:, :, None]  # (patient, scan, 1)
    d_off, d_dosed = off["diameter_mm"].values, dosed["diameter_mm"].values
    assert np.all(np.isnan(d_off[later & np.isfinite(d_dosed)]))
    np.testing.assert_array_equal(np.where(later, 0.0, d_off), np.where(later, 0.0, d_dosed))
    assert (
        off.attrs["simulated_lesion_days"]
        < dosed.attrs["simulated_lesion_days"]
        < stopped.attrs["simulated_lesion_days"]
    )
    with pytest.raises(ValueError, match=r"after_progression='ignore': allowed values are \('off_study'"):
        trial.simulate_trial("nabp", population, after_progression="ignore")


def test_trials_in_patient_chunks_over_two_processes_equal_one_run_per_arm():
    population = trial.sample_population(9, seed=4)
    one = {arm: trial.simulate_trial(arm, population) for arm in ("nabp", "bsab_2x2")}
    chunked = trial.simulate_trials(["nabp", "bsab_2x2"], population, workers=2, chunk_patients=4)
    for arm, ref in one.items():
        got = chunked[arm]
        assert set(got.data_vars) == set(ref.data_vars)
        for name in ref.data_vars:
            np.testing.assert_array_equal(got[name].values, ref[name].values)
        np.testing.assert_array_equal(got["patient"].values, np.arange(9))
        for key in ("trajectories", "simulated_lesion_days", "arm", "after_progression"):
            assert got.attrs[key] == ref.attrs[key]
        labels = [r["label"]["patients"] for r in json.loads(got.attrs["simulations"])]
        assert labels == ["0..3", "4..7", "8..8"]  # every chunk's run record is kept for rerun
    with pytest.raises(ValueError, match="chunk_patients=0: must be an integer >= 1"):
        trial.simulate_trials(["nabp"], population, chunk_patients=0)
    with pytest.raises(ValueError, match=r"arms=\[\]"):
        trial.simulate_trials([], population)


def test_with_a_gpu_one_process_runs_each_arm_as_one_batch(monkeypatch):
    """Chunks of 100 patients would never reach a GPU (RodasSolver.gpu_min_batch); with one process and a GPU
    that takes the whole population's lesions, each arm runs as one task. Without a GPU: 100-patient chunks."""
    population = trial.sample_population(9, seed=4)
    monkeypatch.setattr(trial, "TRIAL_CHUNK_PATIENTS", 4)  # so that 9 patients make several CPU chunks
    seen = []
    monkeypatch.setattr(trial, "_gpu_takes", lambda n: seen.append(n) or True)
    assert trial._chunk_size(population, workers=1, pool=None) == 9
    assert seen == [int(population.n_lesions.sum())]
    assert trial._chunk_size(population, workers=2, pool=None) == 4

    def chunk_labels():
        got = trial.simulate_trials(["nabp"], population)["nabp"]
        return [r["label"]["patients"] for r in json.loads(got.attrs["simulations"])]

    assert chunk_labels() == ["0..8"]
    monkeypatch.setattr(trial, "_gpu_takes", lambda n: False)
    assert chunk_labels() == ["0..3", "4..7", "8..8"]


def test_without_a_gpu_the_solver_sends_no_trial_to_it():
    from moa.solvers.rodas4 import cuda

    if cuda.available():
        pytest.skip("this machine has a CUDA GPU (or the simulator is on)")
    assert trial._gpu_takes(10**6) is False


def test_calibration_is_reproducible_with_the_same_seed(capsys):
    """Same seed, same fit; also when the arms of each evaluation run in two processes. Progress: one line per
    evaluation on stderr."""
    a = trial.calibrate(n_patients=3, seed=1, max_evaluations=2, progress=True)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("calibrate: ")]
    assert lines[0].startswith("calibrate: evaluation 1: objective ") and len(lines) == a["evaluations"]
    b = trial.calibrate(n_patients=3, seed=1, max_evaluations=2, workers=2)
    assert a["fitted"] == b["fitted"] and a["objective"] == b["objective"] and a["history"] == b["history"]
    assert a["evaluations"] >= 2 and len(a["residuals"]) == len(trial.load_population().targets)
    with pytest.raises(ValueError, match="workers=0: must be an integer >= 1"):
        trial.calibrate(n_patients=3, seed=1, max_evaluations=2, workers=0)


def test_fitted_values_are_written_into_the_population_file_with_their_source(tmp_path):
    path = tmp_path / "population.toml"
    path.write_text(trial.POPULATION_FILE.read_text())
    field = "patient.tumour_growth_rate.median_factor"
    for value in (2.5, 2.75):  # a second fit replaces the first note, keeps the entry's own citation
        trial.write_calibrated({field: value}, "test fit", path)
    spec = trial.load_population(path)
    assert spec.value_of(field) == 2.75
    source = next(v.source for v in spec.patient if v.name == "tumour_growth_rate")
    assert source.startswith("calibrated: median_factor = 2.75 (test fit)") and source.count("calibrated:") == 1
    assert "Ryu 2014" in source
    with pytest.raises(ValueError, match="sd_log=-1"):
        trial.write_calibrated({"patient.antigenicity.sd_log": -1.0}, "bad", path)
    assert trial.load_population(path).value_of("patient.antigenicity.sd_log") >= 0  # file left as it was


def test_calibration_check_on_another_population_reports_each_target(tmp_path, capsys):
    """``python -m moa.trial check``: the file's values on a population of another seed, every target reported;
    exit status 1 when a fitted target falls outside its trial CI (four patients cannot hit them all)."""
    out = tmp_path / "check.json"
    status = trial.main(["check", "--patients", "4", "--seed", "7", "--out", str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["inside_trial_ci"] < result["fitted_targets"] and status == 1 and "OUTSIDE" in printed
    spec = trial.load_population()
    assert result["seed"] == 7 and result["n_patients_per_arm"] == 4
    assert len(result["residuals"]) == len(spec.targets)
    assert result["fitted_targets"] == sum(1 for t in spec.targets if t.weight > 0)
    assert f"of {result['fitted_targets']} fitted targets inside their trial CI" in printed
    again = trial.check_calibration(n_patients=4, seed=7)
    assert again["objective"] == result["objective"]
