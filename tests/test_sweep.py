"""moa.sweep (issue 16 items 1-3, 6): a bad spec is refused naming the field; samples honour the
bounds and scales in models/; failed points are recorded while the others equal a clean run;
a killed sweep resumes bit-identical; a corrupt chunk is recomputed; another spec in the same
folder is refused; the ``moa sweep`` command exits 2 on a bad spec and writes nothing."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import types

import numpy as np
import pytest

from moa.cli import main
from moa.sweep import (
    ChunkWarning,
    ParameterDistribution,
    SpecError,
    SweepDirError,
    load_spec,
    parameter_values,
    run_sweep,
    spec_from_dict,
    unit_design,
)
from moa.sweep.store import code_fingerprint
from sweep_helpers import DAYS, StarvedPoints, same, tiny_spec

# ----- the spec ------------------------------------------------------------------------------------

GOOD_TOML = """
name = "t"
arms = ["apdl1"]
settings = ["cold"]
duration_days = 60
[sampling]
method = "lhs"
n = 8
seed = 1
[parameters.tumour_growth_rate]
[parameters.kill_rate_max]
distribution = "uniform"
low = 0.1
high = 1.0
[outputs]
summaries = ["best_change_pct"]
"""


def test_toml_spec_defaults_to_the_models_bounds_and_scale(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(GOOD_TOML)
    spec = load_spec(path)
    growth, kill = spec.parameters
    assert (growth.distribution, growth.low, growth.high) == ("loguniform", 0.0006, 0.008)  # scale = "log" in models/
    assert (kill.distribution, kill.low, kill.high) == ("uniform", 0.1, 1.0)
    assert spec.n == 8 and spec.arms == ("apdl1",)


@pytest.mark.parametrize(
    "change, words",
    [
        ("[parameters.no_such_parameter]", ["parameters.no_such_parameter", "unknown parameter"]),
        ("[parameters.cl_bsab]\nlow = 0.001", ["parameters.cl_bsab.low=0.001", "outside the model's bounds"]),
        ('[parameters.cl_bsab]\ndistribution = "cauchy"', ["distribution='cauchy'", "uniform", "lognormal"]),
        ('[parameters.cl_bsab]\ndistribution = "normal"\nmean = 0.2', ["needs mean and sd"]),
    ],
)
def test_bad_parameter_entries_are_refused_naming_the_field(tmp_path, change, words):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD_TOML + "\n" + change + "\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "field, value, words",
    [
        (
            "summaries",
            ["best_change_pct", "tumour_size_score"],
            ["outputs.summaries", "'tumour_size_score'", "best_change_pct"],
        ),
        ("observables", ["tumour_diameterr"], ["outputs.observables", "tumour_diameter"]),
    ],
)
def test_unknown_outputs_are_refused(field, value, words):
    data = {"arms": ["apdl1"], "settings": ["cold"], "parameters": {"cl_bsab": {}}, "outputs": {field: value}}
    with pytest.raises(SpecError) as err:
        spec_from_dict(data)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "sampling, words",
    [
        ({"method": "lhs", "n": 0}, ["sampling.n=0", ">= 1"]),
        ({"method": "sobol", "n": 12}, ["sampling.n=12", "power of 2"]),
        ({"method": "random", "n": 8}, ["sampling.method='random'", "grid"]),
        ({"method": "lhs", "n": 2.5}, ["sampling.n=2.5", "integer"]),
    ],
)
def test_bad_sampling_is_refused(sampling, words):
    data = {"arms": ["apdl1"], "settings": ["cold"], "parameters": {"cl_bsab": {}}, "sampling": sampling}
    with pytest.raises(SpecError) as err:
        spec_from_dict(data)
    for word in words:
        assert word in str(err.value)


def test_bad_spec_exits_2_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD_TOML + "\n[parameters.cl_bsab]\nhigh = 99.0\n")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "parameters.cl_bsab.high=99" in err and "outside the model's bounds" in err
    assert not out.exists()


# ----- sampling ------------------------------------------------------------------------------------


def test_samples_honour_bounds_and_log_scale_and_repeat_with_the_seed():
    spec = tiny_spec(n=256)
    unit = unit_design(spec)
    values = parameter_values(spec, unit)
    growth = spec.parameters[0]
    assert growth.distribution == "loguniform"
    x = values["tumour_growth_rate"]
    assert np.all((x >= growth.low) & (x <= growth.high))
    # log-uniform: ln(x) is uniform, so the log-midpoint splits the points in half (LHS: exactly)
    assert np.sum(x < np.sqrt(growth.low * growth.high)) == 128
    assert np.array_equal(unit, unit_design(spec))
    assert not np.array_equal(unit, unit_design(dataclasses.replace(spec, seed=4)))


def test_grid_reaches_the_bounds_and_truncated_normal_stays_inside():
    grid = tiny_spec(sampling="grid", n=3)
    v = parameter_values(grid, unit_design(grid))
    assert v["kill_rate_max"].size == 9
    assert np.isclose(v["kill_rate_max"].min(), grid.parameters[1].low) and np.isclose(
        v["kill_rate_max"].max(), grid.parameters[1].high
    )
    normal = ParameterDistribution("kill_rate_max", "normal", 0.05, 3.0, mean=0.2, sd=1.0)
    x = normal.ppf(np.linspace(0, 1, 101))
    assert x.min() == 0.05 and x.max() == 3.0 and np.all(np.diff(x) >= 0)
    narrow = ParameterDistribution("kill_rate_max", "normal", 0.05, 3.0, mean=1.5, sd=0.2)  # truncation negligible
    np.testing.assert_allclose(narrow.ppf(np.array([0.5, 0.841344746]))[:], [1.5, 1.7], rtol=1e-6)
    lognormal = ParameterDistribution("kill_rate_max", "lognormal", 0.05, 3.0, median=0.5, sd_log=0.1)
    np.testing.assert_allclose(lognormal.ppf(np.array([0.5, 0.841344746])), [0.5, 0.5 * np.exp(0.1)], rtol=1e-6)


def test_saltelli_design_reaches_the_sweep_through_moa_sensitivity(monkeypatch):
    """Until moa.sensitivity lands, a stand-in with the agreed signature (blocks A, B, AB_1..AB_d)."""
    from scipy.stats import qmc

    def saltelli_design(n_base, n_params, seed):
        ab = qmc.Sobol(2 * n_params, rng=np.random.default_rng(seed)).random(n_base)
        a, b = ab[:, :n_params], ab[:, n_params:]
        blocks = [a, b] + [np.where(np.arange(n_params) == i, b, a) for i in range(n_params)]
        return np.vstack(blocks)

    import moa

    if not hasattr(moa, "sensitivity"):
        monkeypatch.setitem(sys.modules, "moa.sensitivity", types.SimpleNamespace(saltelli_design=saltelli_design))
        monkeypatch.setattr(moa, "sensitivity", sys.modules["moa.sensitivity"], raising=False)
    spec = tiny_spec(sampling="saltelli", n=4)
    unit = unit_design(spec)
    assert unit.shape == (4 * (2 + 2), 2)
    a, b, ab1 = unit[:4], unit[4:8], unit[8:12]
    assert np.array_equal(ab1[:, 0], b[:, 0]) and np.array_equal(ab1[:, 1], a[:, 1])


# ----- failures, checkpoints, resume ---------------------------------------------------------------


@pytest.fixture(scope="module")
def clean():
    return run_sweep(tiny_spec())


def test_failed_points_are_recorded_and_the_others_equal_a_clean_run(clean):
    spec = tiny_spec()
    values = parameter_values(spec, unit_design(spec))["kill_rate_max"]
    bad = [1, 6]
    broken = run_sweep(dataclasses.replace(spec, solver=StarvedPoints("kill_rate_max", tuple(values[bad]))))
    status = broken["status"].values
    assert np.nonzero(status)[0].tolist() == bad
    for k in bad:
        assert "step" in str(broken["message"].values[k]).lower()
        assert np.isnan(broken["best_change_pct"].values[k])
    good = np.setdiff1d(np.arange(16), bad)
    assert np.all(clean["status"].values == 0)
    for name in ("best_change_pct", "final_diameter_mm", "tumour_diameter"):
        np.testing.assert_allclose(broken[name].values[good], clean[name].values[good], rtol=1e-12, atol=0)
    assert broken.attrs["failed_points"] == 2


def test_killed_sweep_resumes_bit_identical(tmp_path, clean):
    spec = tiny_spec()

    class Killed(Exception):
        pass

    done = []

    def kill_after_two(chunk, arrays):
        done.append(chunk.index)
        if len(done) == 2:
            raise Killed

    with pytest.raises(Killed):
        run_sweep(spec, tmp_path, on_chunk=kill_after_two)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(manifest["chunks"]) == ["0", "1"] and not (tmp_path / "sweep.nc").exists()
    resumed = run_sweep(spec, tmp_path, resume=True)
    assert resumed.attrs["chunks_reused"] == 2
    assert same(resumed, clean)
    again = run_sweep(spec, tmp_path)  # everything done: nothing recomputed
    assert again.attrs["chunks_reused"] == 4 and same(again, clean)


def test_corrupt_or_partial_chunk_is_detected_and_recomputed(tmp_path, clean):
    spec = tiny_spec()
    run_sweep(spec, tmp_path)
    corrupt, partial = tmp_path / "chunks" / "chunk_000001.npz", tmp_path / "chunks" / "chunk_000002.npz"
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    partial.write_bytes(partial.read_bytes()[:100])
    with pytest.warns(ChunkWarning) as caught:
        again = run_sweep(spec, tmp_path)
    texts = " ".join(str(w.message) for w in caught)
    assert "chunk 1" in texts and "chunk 2" in texts and "sha256" in texts
    assert again.attrs["chunks_reused"] == 2
    assert same(again, clean)


def test_checkpoints_of_other_code_are_recomputed(tmp_path, clean):
    """A manifest whose code fingerprint differs (moa's sources or models/ changed since) is not reused."""
    spec = tiny_spec()
    run_sweep(spec, tmp_path)
    manifest = tmp_path / "manifest.json"
    data = json.loads(manifest.read_text())
    assert data["code"] == code_fingerprint()
    data["code"] = "0123456789abcdef"
    manifest.write_text(json.dumps(data))
    with pytest.warns(ChunkWarning, match="computed by other code .*recomputing them all"):
        again = run_sweep(spec, tmp_path, resume=True)
    assert again.attrs["chunks_reused"] == 0 and same(again, clean)
    assert json.loads(manifest.read_text())["code"] == code_fingerprint()


def test_code_fingerprint_follows_sources_and_parameter_files_but_not_the_report_layer(tmp_path):
    package, models = tmp_path / "moa", tmp_path / "models"
    (package / "report").mkdir(parents=True)
    models.mkdir()
    (package / "engine.py").write_text("x = 1\n")
    (package / "report" / "plots.py").write_text("y = 1\n")
    (models / "parameters.toml").write_text("a = 1\n")
    first = code_fingerprint(package, models)
    (package / "report" / "plots.py").write_text("y = 2\n")
    assert code_fingerprint.__wrapped__(package, models) == first
    (models / "parameters.toml").write_text("a = 2\n")
    second = code_fingerprint.__wrapped__(package, models)
    assert second != first
    (package / "engine.py").write_text("x = 2\n")
    assert code_fingerprint.__wrapped__(package, models) not in (first, second)


def test_another_spec_in_the_same_folder_is_refused(tmp_path):
    run_sweep(tiny_spec(n=4), tmp_path)
    with pytest.raises(SweepDirError, match="another sweep"):
        run_sweep(tiny_spec(n=4, seed=5), tmp_path)


def test_moa_sweep_command_runs_a_spec(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(GOOD_TOML.replace("n = 8", "n = 4"))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    assert "4 simulations" in capsys.readouterr().out
    import xarray as xr

    with xr.open_dataset(out / "sweep.nc") as ds:
        assert ds["best_change_pct"].shape == (4,) and int(ds.attrs["failed_points"]) == 0
    assert main(["sweep", str(path), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "1 reused" in capsys.readouterr().out


def test_example_spec_in_models_is_valid():
    spec = load_spec(pathlib.Path(__file__).resolve().parents[1] / "models" / "sweeps" / "example.toml")
    assert spec.n == 128 and len(spec.parameters) == 3


def test_a_sweep_point_is_the_simulation_of_its_parameter_values():
    """The sweep's wiring (sampled values, scenario overlays, quasi-steady start, summaries) against a direct
    batched simulation of the same points with moa.runs.run_points and moa.analysis (one chunk, so one batch)."""
    from moa.analysis import best_percent_change
    from moa.runs import run_points

    spec = tiny_spec(chunk_size=16)
    ds = run_sweep(spec)
    values = {p: ds[p].values for p in spec.parameter_names}
    direct = run_points("bsab_2x2", "cold", values, DAYS, variables=["tumour_diameter"], solver="rodas")
    np.testing.assert_allclose(
        ds["final_diameter_mm"].values, direct["tumour_diameter"].isel(time=-1).values, rtol=1e-12
    )
    np.testing.assert_allclose(
        ds["tumour_diameter"].values, direct["tumour_diameter"].sel(time=[30.0, 60.0]).values, rtol=1e-12
    )
    np.testing.assert_allclose(
        ds["best_change_pct"].values, best_percent_change(direct["tumour_diameter"]).values, rtol=1e-12
    )
