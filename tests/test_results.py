"""Labelled results: provenance, saving (atomic), and solver failures that say what happened."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

import moa
from moa.symbolic.named_models import pk_model
from moa.symbolic import Mechanism, Model
from moa.parameters import ParameterSet, ParameterSpec
from moa.report import results
from moa.report import provenance
from moa.report.provenance import RECORD_VERSION, concat_runs, recorded_value, records_of, run_context
from moa.report.results import (
    read_csv,
    read_provenance,
    remove_stale,
    rerun,
    save_dataset,
    staged_directory,
    with_status,
)
from moa.solvers.rodas4 import numba_kernels as jit


@pytest.fixture(scope="module")
def pk_result() -> xr.Dataset:
    p = moa.load_parameters().with_values({"kd_pdl1_bsab": [0.1, 1.0]})
    return moa.simulate(pk_model("bsab"), p, moa.every("bsab", 3.0, "mg/kg", 21.0, 42.0), duration_days=42.0)


def test_result_is_labelled_with_provenance(pk_result):
    ds = pk_result
    assert set(ds.dims) == {"sample", "time"}
    assert ds["bsab_central"].attrs["units"] == "nM"
    assert ds["time"].attrs["units"] == "day"
    for key in ("moa_version", "git_commit", "parameter_hash", "solver", "rtol", "atol", "regimen"):
        assert key in ds.attrs, key
    assert ds.attrs["moa_version"] == moa.__version__
    assert ds.attrs["solver"] == ("moa-rodas4-numba" if jit.available() else "scipy-LSODA")  # solver="auto"
    # The hash follows the values.
    other = moa.simulate(
        pk_model("bsab"), moa.load_parameters(), moa.every("bsab", 3.0, "mg/kg", 21.0, 42.0), duration_days=42.0
    )
    assert other.attrs["parameter_hash"] != ds.attrs["parameter_hash"]


def test_save_dataset_writes_three_files_and_netcdf_round_trips(tmp_path, pk_result):
    paths = save_dataset(pk_result, tmp_path, "pk", csv_variables=["bsab_central", "pdl1_systemic_occupancy_bsab"])
    assert {p.name for p in tmp_path.iterdir()} == {"pk.nc", "pk.csv", "pk.provenance.json"}
    assert paths["netcdf"] == tmp_path / "pk.nc"
    with xr.open_dataset(paths["netcdf"], engine="scipy") as back:
        back = back.load()
    np.testing.assert_array_equal(back["bsab_central"].values, pk_result["bsab_central"].values)
    np.testing.assert_array_equal(back["time"].values, pk_result["time"].values)
    assert back["bsab_central"].attrs["units"] == "nM"
    assert back.attrs["parameter_hash"] == pk_result.attrs["parameter_hash"]
    header = paths["csv"].read_text().splitlines()[1].split(",")  # line 0: the provenance
    assert {
        "sample",
        "time [day]",
        "bsab_central [nM]",
        "pdl1_systemic_occupancy_bsab [1]",
        "status",
        "message",
    } <= set(header)
    provenance = json.loads(paths["provenance"].read_text())
    assert provenance["git_commit"] == pk_result.attrs["git_commit"]
    assert provenance["rtol"] == pk_result.attrs["rtol"]


def test_failing_write_leaves_no_files(tmp_path, pk_result):
    with pytest.raises(ValueError, match="no_such_variable"):
        save_dataset(pk_result, tmp_path, "pk", csv_variables=["bsab_central", "no_such_variable"])
    assert list(tmp_path.iterdir()) == []


def test_failure_inside_netcdf_writer_leaves_no_files(tmp_path, pk_result):
    bad = pk_result.assign(unwritable=("time", pk_result["time"].values * 1j))  # NetCDF3 has no complex type
    with pytest.raises(Exception):
        save_dataset(bad, tmp_path, "pk")
    assert list(tmp_path.iterdir()) == []  # neither the files nor their temporaries


def test_save_replaces_existing_files_whole(tmp_path, pk_result):
    save_dataset(pk_result, tmp_path, "pk")
    first = (tmp_path / "pk.nc").read_bytes()
    save_dataset(pk_result.isel(time=slice(0, 5)), tmp_path, "pk")
    assert (tmp_path / "pk.nc").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pk.csv", "pk.nc", "pk.provenance.json"]


# ----- solver failures -------------------------------------------------------------------------
def blow_up_model() -> Model:
    """dx/dt = k x^2, x(0) = 1 nM: x = 1 / (1 - k t) runs to infinity at t = 1/k."""
    m = Mechanism("autocatalysis")
    x = m.species("x", "nM", "autocatalytic species", initial=1.0)
    k = m.parameter("k", "1/(nM*day)", "autocatalytic rate")
    m.term(x, k * x**2, "autocatalysis")
    return Model([m], name="blow_up")


BLOW_UP_PARAMETERS = ParameterSet({"k": ParameterSpec("k", 1.0, "1/(nM*day)", 0.0, 10.0, "test")}, name="blow-up test")


@pytest.mark.parametrize("solver", ["LSODA", "Radau"])
def test_solver_failure_raises_simulation_error_with_advice(solver):
    with pytest.raises(moa.SimulationError) as err:
        moa.simulate(blow_up_model(), BLOW_UP_PARAMETERS, duration_days=5.0, solver=solver)
    message = str(err.value)
    assert solver in message  # which solver
    assert "parameter set 0" in message and BLOW_UP_PARAMETERS.digest() in message  # which parameters
    assert "t=" in message  # when
    assert "Try" in message and "on_failure='record'" in message  # what to do


def test_on_failure_record_keeps_the_other_samples():
    k = [0.0, 1.0, 0.05]
    ds = moa.simulate(
        blow_up_model(),
        BLOW_UP_PARAMETERS.with_values({"k": k}),
        duration_days=5.0,
        on_failure="record",
        rtol=1e-10,
        atol=1e-12,
    )
    assert list(ds["status"].values == 0) == [True, False, True]
    assert ds["message"].values[1] and not ds["message"].values[0]
    assert np.all(np.isnan(ds["x"].isel(sample=1).values[2:]))  # nothing made up after the failure
    t = ds["time"].values
    for i in (0, 2):
        np.testing.assert_allclose(ds["x"].isel(sample=i).values, 1 / (1 - k[i] * t), rtol=1e-7)


# ----- results folders survive a kill (issue 10, item 6) ---------------------------------------
def _build(final, label: str) -> None:
    """A complete version: run.json plus a figure, both saying which version they are."""
    with staged_directory(final) as stage:
        (stage / "figure.png").write_text(label)
        (stage / "run.json").write_text(json.dumps({"version": label}))


def _build_in_finished_process(final, label: str) -> None:
    """:func:`_build` in a child process that has ended, as an earlier ``moa run`` would have."""
    pid = os.fork()
    if pid == 0:
        try:
            _build(final, label)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _visible_version(final) -> str:
    """The version ``final`` shows; fails unless the folder is complete."""
    version = json.loads((final / "run.json").read_text())["version"]
    assert (final / "figure.png").read_text() == version
    return version


def _hidden(folder) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.startswith(".")}


def test_staged_directory_publishes_through_a_link_and_replaces_an_old_real_folder(tmp_path):
    final = tmp_path / "exp"
    final.mkdir()  # a folder written by moa before version links
    (final / "run.json").write_text("{}")
    _build(final, "first")
    assert final.is_symlink() and _visible_version(final) == "first"
    assert _hidden(tmp_path) == {os.readlink(final)}  # the old real folder is gone
    _build(final, "second")
    assert _visible_version(final) == "second" and _hidden(tmp_path) == {os.readlink(final)}
    assert sorted(
        p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/*.png") if not p.parent.name.startswith(".")
    ) == ["exp/figure.png"]  # readers see it through the link
    with pytest.raises(RuntimeError):
        with staged_directory(final) as stage:
            (stage / "run.json").write_text("half")
            raise RuntimeError("failed experiment")
    assert _visible_version(final) == "second" and _hidden(tmp_path) == {os.readlink(final)}


def _die(target, name: str, when: str) -> None:
    """Replace ``target.name`` by a wrapper that ends the process (as SIGKILL would: no cleanup)
    just before or just after its first call."""
    original = getattr(target, name)

    def wrapper(*args, **kwargs):
        if when == "before":
            os._exit(17)
        original(*args, **kwargs)
        os._exit(17)

    setattr(target, name, wrapper)


# Every step of publishing a version: each kill point, and which version must then be visible.
KILL_POINTS = {
    "while building": (None, None, "old"),
    "after making the new link": ("os", "symlink", "old"),
    "before swapping the link": ("os", "replace", "old"),
    "after swapping the link": ("os", "replace", "new"),
    "before removing the old version": ("shutil", "rmtree", "new"),
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_a_kill_at_any_instant_of_the_swap_leaves_a_complete_folder_and_the_next_run_cleans_up(tmp_path, point):
    final = tmp_path / "exp"
    _build_in_finished_process(final, "old")
    module, name, expected = KILL_POINTS[point]
    pid = os.fork()
    if pid == 0:  # the child publishes "new" and is killed on the way
        try:
            if name is not None:
                _die(
                    {"os": os, "shutil": shutil}[module],
                    name,
                    "after" if expected == "new" and name == "replace" else "before",
                )
            with staged_directory(final) as stage:
                (stage / "figure.png").write_text("new")
                (stage / "run.json").write_text(json.dumps({"version": "new"}))
                if name is None:
                    os._exit(17)
        finally:
            os._exit(3)  # not reached unless the kill point was missed
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 17, "the kill point was not reached"
    assert _visible_version(final) == expected
    _build(final, "next")  # the next run removes what the killed one left
    assert _visible_version(final) == "next" and _hidden(tmp_path) == {os.readlink(final)}


def test_a_kill_between_the_two_renames_of_the_fallback_swap_is_repaired(tmp_path, monkeypatch):
    """Without renameat2 a real folder is renamed to .exp.old, then the link takes its place;
    a kill between the two leaves the old folder under .exp.old, and the next run restores it
    before anything else (the same repairs the leftovers of moa's earlier two-rename swap)."""
    from moa.report import results

    final = tmp_path / "exp"
    final.mkdir()
    (final / "figure.png").write_text("old")
    (final / "run.json").write_text(json.dumps({"version": "old"}))
    monkeypatch.setattr(results, "_rename_exchange", lambda a, b: False)
    pid = os.fork()
    if pid == 0:
        try:
            calls = []
            original = os.replace

            def replace(src, dst):
                original(src, dst)
                calls.append(dst)
                if str(dst).endswith(".exp.old"):
                    os._exit(17)

            os.replace = replace
            with staged_directory(final) as stage:
                (stage / "run.json").write_text(json.dumps({"version": "new"}))
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 17
    assert not final.exists() and (tmp_path / ".exp.old" / "run.json").exists()
    with pytest.raises(RuntimeError):  # even a run that then fails restores the old folder
        with staged_directory(final):
            assert _visible_version(final) == "old"
            raise RuntimeError("failed experiment")
    assert _visible_version(final) == "old"
    _build(final, "next")
    assert _visible_version(final) == "next" and _hidden(tmp_path) == {os.readlink(final)}


def test_remove_stale_keeps_live_runs_and_published_versions(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".exp.{sleeper.pid}-live1234"
        live.mkdir()
        dead_pid = _dead_pid()
        stale = [tmp_path / f".exp.{dead_pid}-dead1234", tmp_path / f".index.html.{dead_pid}-abcd_123.tmp"]
        stale[0].mkdir()
        stale[1].write_text("half")
        (tmp_path / f".exp.{dead_pid}-dead1234.link").symlink_to(stale[0].name)
        published = tmp_path / f".exp.{dead_pid}-publishd"
        published.mkdir()
        (tmp_path / "exp").symlink_to(published.name)
        (tmp_path / ".not_ours").mkdir()
        removed = remove_stale(tmp_path)
        assert sorted(removed) == sorted([stale[0].name, stale[1].name, f".exp.{dead_pid}-dead1234.link"])
        assert _hidden(tmp_path) == {live.name, published.name, ".not_ours"}
    finally:
        sleeper.kill()
        sleeper.wait()


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----- provenance a result can be re-run from (issue 11, item 4) --------------------------------
def _assert_same_trajectories(again: xr.Dataset, saved: xr.Dataset) -> None:
    """Every variable of the re-run equals the saved one to 1e-12 (relative, or absolute in its own unit)."""
    compared = [v for v in again.data_vars if v not in ("status", "message")]
    assert compared
    for name in compared:
        np.testing.assert_allclose(again[name].values, saved[name].values, rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(again["status"].values, saved["status"].values)


def test_a_results_file_alone_reproduces_its_trajectories(tmp_path, pk_result):
    """The values, units, regimen, times and solver travel with the file: each of the three files,
    copied alone into an empty folder, re-simulates to the saved trajectories within 1e-12."""
    paths = save_dataset(pk_result, tmp_path / "saved", "pk")
    with xr.open_dataset(paths["netcdf"]) as saved:
        saved = saved.load()
    for key, path in paths.items():
        alone = tmp_path / key / path.name
        alone.parent.mkdir()
        shutil.copy(path, alone)
        again = rerun(alone)
        assert set(again.data_vars) == set(pk_result.data_vars)
        np.testing.assert_array_equal(again["kd_pdl1_bsab"].values, [0.1, 1.0])  # the batched values, from the file
        _assert_same_trajectories(again, saved)


def test_a_version_1_record_with_json_lists_still_reruns_and_other_versions_are_refused(tmp_path, pk_result):
    """Record version 2 writes per-sample values as base64 float64; a file written by version 1 (JSON
    lists) re-simulates to the same trajectories, and a version this moa does not know is refused."""
    paths = save_dataset(pk_result, tmp_path / "saved", "pk")
    with xr.open_dataset(paths["netcdf"]) as saved:
        saved = saved.load()
    prov = read_provenance(paths["provenance"])
    record = records_of(prov)[0]
    old = {
        **record,
        "record_version": 1,
        "parameters": {
            name: {**entry, "value": np.asarray(recorded_value(entry["value"])).tolist()}
            for name, entry in record["parameters"].items()
        },
    }
    assert old["parameters"]["kd_pdl1_bsab"]["value"] == [0.1, 1.0]
    v1 = tmp_path / "v1.provenance.json"
    v1.write_text(json.dumps({**prov, "simulation": old}))
    _assert_same_trajectories(rerun(v1), saved)
    v9 = tmp_path / "v9.provenance.json"
    v9.write_text(json.dumps({**prov, "simulation": {**record, "record_version": 9}}))
    with pytest.raises(ValueError, match=r"record_version=9; this moa reads 1, 2"):
        rerun(v9)


def test_recorded_values_round_trip_exactly_and_bad_encodings_are_named():
    values = np.random.default_rng(3).lognormal(size=1001) * 1e-7
    entry = json.loads(
        json.dumps(
            provenance.parameter_values(
                ParameterSet({"k": ParameterSpec("k", 1.0, "1/day", 0.0, 1.0, "assumed")}, {"k": values})
            )
        )
    )["k"]
    assert entry["unit"] == "1/day" and entry["value"]["n"] == 1001
    back = recorded_value(entry["value"])
    assert back.dtype == np.float64 and np.array_equal(back, values)  # bit for bit
    assert recorded_value(0.25) == 0.25 and recorded_value([1, 2]).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="'n'=3 but 'float64_base64' holds 1001 values"):
        recorded_value({**entry["value"], "n": 3})
    with pytest.raises(ValueError, match="expected"):
        recorded_value({"n": 1, "float64_base64": "not base64!"})


def test_provenance_carries_values_units_regimen_model_and_mode(tmp_path, pk_result):
    with run_context(experiment="a_test", quick=True):
        paths = save_dataset(pk_result, tmp_path, "pk")
    for path in paths.values():
        prov = read_provenance(path)
        record = prov["simulation"]
        assert record["model"] == "pk_tmdd_bsab" and record["n_states"] == 4 == prov["model_states"]
        assert record["record_version"] == RECORD_VERSION == 2
        assert record["parameters"]["kd_pdl1_bsab"]["unit"] == "nM"
        assert recorded_value(record["parameters"]["kd_pdl1_bsab"]["value"]).tolist() == [0.1, 1.0]
        assert record["parameters"]["body_weight"]["unit"] == "kg"  # doses in mg/kg are scaled by it
        assert record["varying"] == ["kd_pdl1_bsab"]
        doses = record["regimen"]["doses"]
        assert [(d["drug"], d["amount"], d["unit"], d["time_days"], d["route"]) for d in doses] == [
            ("bsab", 3.0, "mg/kg", 0.0, "bolus"),
            ("bsab", 3.0, "mg/kg", 21.0, "bolus"),
        ]
        assert prov["experiment"] == "a_test"
        assert prov["quick"] in (True, "true")  # NetCDF attributes hold JSON text
    frame, prov = read_csv(paths["csv"])
    assert prov["parameter_hash"] == pk_result.attrs["parameter_hash"]
    assert {"time [day]", "bsab_central [nM]", "kd_pdl1_bsab [nM]", "status", "message"} <= set(frame.columns)
    with xr.open_dataset(paths["netcdf"]) as back:
        assert back.attrs["netcdf_compression"].startswith("none: " if results._netcdf_engine() == "scipy" else "zlib")
    outside = json.loads(paths["provenance"].read_text())
    assert "experiment" not in moa.simulate(pk_model("bsab"), moa.load_parameters(), duration_days=1.0).attrs
    assert outside["simulation"]["times_days"] == pk_result["time"].values.tolist()


def test_rerun_of_combined_runs_labels_each_part_and_an_infusion_cut_at_the_end(tmp_path):
    """Several simulations combined along a dim (as the experiments do) come back one per label; an
    infusion running past the end is recorded as given (pro rata) and re-runs without a warning."""
    params = moa.load_parameters()
    model = pk_model("bsab")
    regimens = {
        "bolus": moa.every("bsab", 3.0, "mg/kg", 7.0, 14.0),
        "infusion": moa.Regimen("long infusion", (moa.Dose("bsab", 300.0, "mg", 10.0, "infusion", 10.0),)),
    }
    with pytest.warns(moa.errors.DoseWarning):
        parts = [
            moa.simulate(
                model, params, reg, duration_days=14.0, solver="LSODA", rtol=1e-8, atol=1e-12, keep=["bsab_central"]
            ).expand_dims(route=[name])
            for name, reg in regimens.items()
        ]
    combined = concat_runs(parts, dim="route")
    paths = save_dataset(combined, tmp_path, "routes")
    with xr.open_dataset(paths["netcdf"]) as saved:
        saved = saved.load()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = rerun(paths["provenance"])
    assert [label for label, _ in again] == [{"route": "bolus"}, {"route": "infusion"}]
    for label, ds in again:
        assert list(ds.data_vars) == ["bsab_central", "status", "message"]  # keep= is part of the record
        _assert_same_trajectories(ds, saved.sel(label))
    cut = again[1][1].attrs["simulation"]
    assert json.loads(cut)["regimen"]["doses"][0]["amount"] == pytest.approx(120.0)  # 4 of 10 days of 300 mg


def test_rerun_refuses_files_without_a_record_and_models_that_changed(tmp_path, pk_result):
    table = with_status(xr.Dataset({"x": ("point", [1.0, 2.0], {"units": "nM"})}))
    paths = save_dataset(table, tmp_path, "table", csv_variables=["x"])
    with pytest.raises(ValueError, match="carries no run record"):
        rerun(paths["netcdf"])
    record = json.loads(pk_result.attrs["simulation"])
    record["n_states"] = 3
    changed = pk_result.copy()
    changed.attrs = {**pk_result.attrs, "simulation": json.dumps(record)}
    paths = save_dataset(changed, tmp_path, "changed")
    with pytest.raises(ValueError, match="the record has 3 states, this moa's model has 4"):
        rerun(paths["provenance"])
    with pytest.raises(ValueError, match="not a results file"):
        rerun(tmp_path / "table.txt")


def test_results_files_must_carry_status_and_with_status_copies_the_worst_per_sample(tmp_path):
    table = xr.Dataset({"best_percent_change": ("dose", [-10.0, -30.0], {"units": "%"})})
    with pytest.raises(ValueError, match=r"lacks \['status', 'message'\].*with_status"):
        save_dataset(table, tmp_path, "summary")
    assert list(tmp_path.iterdir()) == []
    source = xr.Dataset(
        {
            "status": (("dose", "setting"), [[0, 0], [0, 5]]),
            "message": (("dose", "setting"), np.array([["", ""], ["", "species x negative"]], dtype=object)),
        }
    )
    labelled = with_status(table, source)
    assert labelled["status"].values.tolist() == [0, 5]
    assert labelled["message"].values.tolist() == ["", "species x negative"]
    frame, _ = read_csv(save_dataset(labelled, tmp_path, "summary", csv_variables=["best_percent_change"])["csv"])
    assert frame.columns.tolist() == ["dose", "best_percent_change [%]", "status", "message"]
    assert frame["status"].tolist() == [0, 5]


def test_keep_returns_only_the_named_variables_and_refuses_unknown_names(pk_result):
    model = pk_model("bsab")
    kept = moa.simulate(model, moa.load_parameters(), duration_days=2.0, keep=["pdl1_systemic_occupancy_bsab"])
    assert list(kept.data_vars) == ["pdl1_systemic_occupancy_bsab", "status", "message"]
    with pytest.raises(ValueError) as err:
        moa.simulate(model, moa.load_parameters(), duration_days=2.0, keep=["bsab_central", "tumour_volume"])
    assert "['tumour_volume']" in str(err.value) and "pdl1_systemic_occupancy_bsab" in str(
        err.value
    )  # lists what exists
    with pytest.raises(ValueError, match="not one string"):
        moa.simulate(model, moa.load_parameters(), duration_days=2.0, keep="bsab_central")


def test_caller_project_and_commit_are_recorded_when_moa_is_used_from_another_repository(tmp_path):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    project = tmp_path / "study"
    project.mkdir()
    script = project / "analysis.py"
    script.write_text("import json, moa.report.provenance as p\nprint(json.dumps(p.base_provenance()))\n")
    for args in (["init", "-q"], ["add", "analysis.py"], ["commit", "-q", "-m", "analysis"]):
        subprocess.run(["git", *args], cwd=project, env=env, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    elsewhere = tmp_path / "elsewhere"  # the script's repository counts, not only the working directory
    elsewhere.mkdir()
    out = subprocess.run(
        [sys.executable, str(script)], cwd=elsewhere, env=env, capture_output=True, text=True, check=True
    )
    prov = json.loads(out.stdout)
    assert pathlib.Path(prov["caller_project"]).resolve() == project.resolve()
    assert prov["caller_commit"] == head
    assert (
        "caller_project" not in moa.report.provenance.base_provenance()
        or pathlib.Path(moa.report.provenance.base_provenance()["caller_project"]).resolve()
        != pathlib.Path(moa.__file__).resolve().parent.parent
    )


def test_an_experiment_results_file_alone_reproduces_its_trajectories(tmp_path):
    """pk_occupancy (quick), as ``moa run`` writes it: its provenance.json alone re-simulates every dose's
    trajectories to the saved NetCDF within 1e-12, and says it was quick mode."""
    from moa import experiment_runner

    experiment_runner.run(experiment_runner.find(["pk_occupancy"])[0], tmp_path / "results", quick=True)
    folder = tmp_path / "results" / "pk_occupancy"
    alone = tmp_path / "elsewhere" / "pk_occupancy.provenance.json"
    alone.parent.mkdir()
    shutil.copy(folder / alone.name, alone)
    assert read_provenance(alone)["quick"] is True
    with xr.open_dataset(folder / "pk_occupancy.nc") as saved:
        saved = saved.load()
    again = rerun(alone)
    assert [label for label, _ in again] == [{"dose_mg_per_kg": d} for d in saved["dose_mg_per_kg"].values.tolist()]
    for label, ds in again:
        assert len(ds.data_vars) == 9  # 4 states, 1 observable, n_steps, n_rejected, status, message
        _assert_same_trajectories(ds, saved.sel(label))
