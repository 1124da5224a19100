"""Labelled results: provenance, saving (atomic), and solver failures that say what happened."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import moa
from moa.assemble import pk_model
from moa.engine import Mechanism, Model
from moa.parameters import ParameterSet, ParameterSpec
from moa.results import save_dataset
from moa.solvers import jit


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
    other = moa.simulate(pk_model("bsab"), moa.load_parameters(), moa.every("bsab", 3.0, "mg/kg", 21.0, 42.0), duration_days=42.0)
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
    header = paths["csv"].read_text().splitlines()[0].split(",")
    assert {"sample", "time", "bsab_central", "pdl1_systemic_occupancy_bsab"} <= set(header)
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
    ds = moa.simulate(blow_up_model(), BLOW_UP_PARAMETERS.with_values({"k": k}), duration_days=5.0, on_failure="record",
                      rtol=1e-10, atol=1e-12)
    assert list(ds["status"].values == 0) == [True, False, True]
    assert ds["message"].values[1] and not ds["message"].values[0]
    assert np.all(np.isnan(ds["x"].isel(sample=1).values[2:]))  # nothing made up after the failure
    t = ds["time"].values
    for i in (0, 2):
        np.testing.assert_allclose(ds["x"].isel(sample=i).values, 1 / (1 - k[i] * t), rtol=1e-7)
