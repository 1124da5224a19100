"""Units in data files are converted to the mechanism's unit or refused; physical domains are
enforced while sweep bounds are advice; negative states and infinite observables are not "ok"
(issue 10, items 1 and 2)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from moa.codegen import compile_model
import moa
from moa.analysis import load_recist
from moa.symbolic.named_models import full_model, pk_model
from moa.symbolic import Mechanism, Model
from moa.errors import BoundsWarning, SimulationError, UnitError
from moa.parameters import DOMAINS, MODELS_DIR, ParameterSet, ParameterSpec, check_domain, load_parameters
from moa.scenarios import scenario
from moa.symbolic.units import registry

PK = pk_model("bsab")
DEFAULTS = load_parameters()
Q3W = moa.every("bsab", 10.0, "mg/kg", 21.0, 42.0)
SCIPY = dict(solver="Radau", rtol=1e-10, atol=1e-12)
ML_PER_H_IN_L_PER_DAY = 24.0 / 1000.0  # 1 mL/h = 24 mL/day = 0.024 L/day
Q_ = registry().Quantity


def copy_models(tmp_path):
    target = tmp_path / "models"
    shutil.copytree(MODELS_DIR, target)
    return target


def rewrite_table(path, name: str, **fields) -> None:
    """Replace fields (value, unit, lower, upper) of the table ``[name]`` in a parameter file."""
    text = path.read_text()
    start = text.index(f"[{name}]")
    end = text.find("\n[", start + 1)
    end = len(text) if end < 0 else end
    table = text[start:end]
    for key, value in fields.items():
        table, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value!r}".replace("'", '"'), table)
        assert n == 1, (name, key)
    path.write_text(text[:start] + table + text[end:])


def params_with_cl_bsab(tmp_path, value, unit, lower, upper) -> ParameterSet:
    models = copy_models(tmp_path)
    rewrite_table(
        models / "parameters" / "pharmacokinetics.toml", "cl_bsab", value=value, unit=unit, lower=lower, upper=upper
    )
    return load_parameters(sorted((models / "parameters").glob("*.toml")))


# ----- units ------------------------------------------------------------------------------------
def test_clearance_in_ml_per_hour_gives_the_l_per_day_trajectory(tmp_path):
    """8.3 mL/h is 0.1992 L/day: same trajectory (<= 1e-9 relative), not a 120-fold faster clearance."""
    ml_h = params_with_cl_bsab(tmp_path, 8.3, "mL/h", 4.0, 16.0)
    l_day = DEFAULTS.with_values({"cl_bsab": 8.3 * ML_PER_H_IN_L_PER_DAY})
    a = moa.simulate(PK, ml_h, Q3W, duration_days=42.0, **SCIPY)
    b = moa.simulate(PK, l_day, Q3W, duration_days=42.0, **SCIPY)
    assert int(a.status) == 0 and int(b.status) == 0
    for name in PK.species_names:
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-9, atol=1e-12 * np.abs(b[name].values).max())
    assert float(a.bsab_central.sel(time=20.0)) > 10.0  # nM; read as 8.3 L/day it would be ~0.1 nM


def test_sweep_coordinate_carries_the_unit_of_its_numbers(tmp_path):
    ml_h = params_with_cl_bsab(tmp_path, 8.3, "mL/h", 4.0, 16.0).with_values({"cl_bsab": np.array([6.0, 8.3, 12.0])})
    ds = moa.simulate(PK, ml_h, Q3W, duration_days=21.0, solver="LSODA")
    assert ds["cl_bsab"].attrs["units"] == "L/day"
    np.testing.assert_allclose(ds["cl_bsab"].values, np.array([6.0, 8.3, 12.0]) * ML_PER_H_IN_L_PER_DAY, rtol=1e-12)
    # faster clearance, less drug: the coordinate and the trajectories agree
    assert np.all(np.diff(ds.bsab_central.sel(time=21.0).values) < 0)


def test_clearance_written_in_mg_is_refused_naming_file_field_and_units(tmp_path):
    mg = params_with_cl_bsab(tmp_path, 0.2, "mg", 0.1, 0.4)
    with pytest.raises(UnitError) as err:
        moa.simulate(PK, mg, Q3W, duration_days=21.0, solver="LSODA")
    text = str(err.value)
    for part in ("pharmacokinetics.toml", "'cl_bsab'", "0.2", "'mg'", "'L/day'", "different dimensions"):
        assert part in text, (part, text)


def test_sbml_export_sees_the_converted_value(tmp_path):
    pytest.importorskip("libsbml")
    from moa.interop.sbml import _values

    ml_h = params_with_cl_bsab(tmp_path, 8.3, "mL/h", 4.0, 16.0)
    assert _values(PK, ml_h.in_units({"cl_bsab": "L/day"}))["cl_bsab"] == pytest.approx(
        8.3 * ML_PER_H_IN_L_PER_DAY, rel=1e-12
    )


def test_overlay_in_a_compatible_unit_is_converted_and_another_dimension_refused(tmp_path):
    models = copy_models(tmp_path)
    settings = models / "settings.toml"
    text = settings.read_text()
    old = 'initial_t_cell_density = { value = 4.5e6, unit = "cell/mL"'
    assert old in text
    settings.write_text(text.replace(old, 'initial_t_cell_density = { value = 4.5e9, unit = "cell/L"'))
    params, _ = scenario("untreated", "hot_tnbc", models_dir=models)
    assert params["initial_t_cell_density"] == pytest.approx(4.5e6, rel=1e-12)
    assert params.unit("initial_t_cell_density") == "cell/mL"

    settings.write_text(text.replace(old, 'initial_t_cell_density = { value = 4.5e6, unit = "kg"'))
    with pytest.raises(ValueError) as err:
        scenario("untreated", "hot_tnbc", models_dir=models)
    for part in ("settings.toml", "hot_tnbc.initial_t_cell_density", "4.5e+06", "'kg'", "'cell/mL'"):
        assert part in str(err.value), (part, str(err.value))


def test_with_values_converts_a_quantity_and_refuses_another_dimension():
    p = DEFAULTS.with_values({"cl_bsab": Q_(8.3, "mL/h"), "v1_bsab": Q_(3500.0, "mL")})
    assert p["cl_bsab"] == pytest.approx(0.1992, rel=1e-12) and p["v1_bsab"] == pytest.approx(3.5, rel=1e-12)
    with pytest.raises(UnitError, match=r"'cl_bsab'.*'mg'.*'L/day'.*different dimensions"):
        DEFAULTS.with_values({"cl_bsab": Q_(1.0, "mg")})


def test_in_units_converts_value_and_bounds_together():
    spec = ParameterSpec("cl", 8.3, "mL/h", 4.0, 16.0, "test", domain="positive")
    p = ParameterSet({"cl": spec}).in_units({"cl": "L/day"})
    s = p.specs["cl"]
    assert (s.unit, s.domain) == ("L/day", "positive")
    np.testing.assert_allclose(
        [p["cl"], s.value, s.lower, s.upper], np.array([8.3, 8.3, 4.0, 16.0]) * 0.024, rtol=1e-12
    )


def test_recist_value_in_cm_is_converted_and_another_dimension_refused(tmp_path):
    path = tmp_path / "recist.toml"
    text = (MODELS_DIR / "recist.toml").read_text()
    old = 'value = 5.0\nunit = "mm"'
    assert old in text
    path.write_text(text.replace(old, 'value = 0.5\nunit = "cm"'))
    assert load_recist(path).pd_absolute_mm == pytest.approx(5.0, rel=1e-12)
    path.write_text(text.replace(old, 'value = 5.0\nunit = "day"'))
    with pytest.raises(UnitError, match=r"recist.toml: pd_absolute_mm.*'day'.*'mm'"):
        load_recist(path)


def test_dose_per_kg_uses_body_weight_in_kg_whatever_it_is_written_in():
    in_lb = ParameterSet(
        {"body_weight": ParameterSpec("body_weight", 150.0, "lb", 90.0, 250.0, "test", domain="positive")}
    )
    assert moa.Dose("bsab", 10.0, "mg/kg", 0.0).amount_mg(in_lb) == pytest.approx(10.0 * 150.0 * 0.45359237, rel=1e-12)


# ----- physical domains and bounds --------------------------------------------------------------
@pytest.mark.parametrize(
    "name, value, domain",
    [
        ("initial_fraction_ex", 5.0, "fraction"),
        ("body_weight", 0.0, "positive"),
        ("valency_pdl1_bsab", 0.5, "at_least_one"),
        ("cl_bsab", -0.1, "nonnegative"),
    ],
)
def test_impossible_override_is_refused(name, value, domain):
    with pytest.raises(ValueError) as err:
        moa.simulate(PK, DEFAULTS, Q3W, duration_days=21.0, overrides={name: value}, solver="LSODA")
    for part in ("overrides", repr(name), f"{value:g}", repr(domain)):
        assert part in str(err.value), (part, str(err.value))


def test_out_of_bounds_but_physical_value_warns_and_runs_and_strict_refuses():
    spec = DEFAULTS.specs["cl_bsab"]
    fast = spec.upper * 1.5
    with pytest.warns(BoundsWarning, match=rf"'cl_bsab'={fast:g}.*\[{spec.lower:g}, {spec.upper:g}\]"):
        ds = moa.simulate(PK, DEFAULTS, Q3W, duration_days=21.0, overrides={"cl_bsab": fast}, solver="LSODA")
    assert int(ds.status) == 0
    with pytest.raises(ValueError, match=r"'cl_bsab'.*sweep bounds.*strict"):
        moa.simulate(
            PK, DEFAULTS, Q3W, duration_days=21.0, overrides={"cl_bsab": fast}, solver="LSODA", strict_bounds=True
        )
    with pytest.raises(ValueError, match=r"'cl_bsab'.*sweep bounds"):
        DEFAULTS.with_values({"cl_bsab": fast}, check_bounds=True)  # the older spelling of strict


def test_every_parameter_has_a_domain_consistent_with_its_bounds():
    specs = DEFAULTS.specs
    for s in specs.values():
        assert s.domain in DOMAINS, s.name
        for v in (s.lower, s.value, s.upper):
            check_domain(s.name, v, s.domain, s.unit, "test")
    # the classes the issue names
    for name, s in specs.items():
        if re.match(r"(v\d|mw|kd)_|body_", name):
            assert s.domain == "positive", name
        if name.startswith("valency_") or name.startswith("chi_cis_"):
            assert s.domain == "at_least_one", name
    assert {
        specs[n].domain for n in ("initial_fraction_ex", "initial_fraction_pex", "tumour_interstitial_fraction")
    } == {"fraction"}


def test_a_spec_whose_bounds_leave_its_domain_is_refused():
    with pytest.raises(ValueError, match=r"'f'=2.*'fraction'"):
        ParameterSpec("f", 0.5, "1", 0.0, 2.0, "test", domain="fraction")
    with pytest.raises(ValueError, match=r"domain='ratio'.*allowed"):
        ParameterSpec("f", 0.5, "1", 0.0, 1.0, "test", domain="ratio")
    with pytest.raises(ValueError, match=r"value=5.*outside \[lower=0.0, upper=1.0\]"):
        ParameterSpec("f", 5.0, "1", 0.0, 1.0, "test")  # a default outside its own bounds stays an error


def test_a_fraction_in_percent_is_checked_as_a_fraction():
    assert ParameterSpec("f", 30.0, "percent", 0.0, 100.0, "test", domain="fraction").value == 30.0
    with pytest.raises(ValueError, match="'fraction'"):
        ParameterSpec("f", 130.0, "percent", 0.0, 150.0, "test", domain="fraction")


# ----- results: negative states, finite observables --------------------------------------------
def drain_model() -> Model:
    """x is drained at a constant rate: it crosses zero at t = x0 / r and keeps falling."""
    m = Mechanism("drain")
    x = m.species("x", "nM", "drained species", initial=m.parameter("x0", "nM", "initial amount"))
    m.term(x, -m.parameter("r", "nM/day", "constant drain"), "zero-order drain")
    return Model([m], name="drain")


DRAIN = ParameterSet(
    {
        "x0": ParameterSpec("x0", 1.0, "nM", 0.0, 10.0, "test"),
        "r": ParameterSpec("r", 0.5, "nM/day", 0.0, 10.0, "test"),
    },
    name="drain",
)


def test_a_state_driven_negative_is_reported_as_failed():
    ds = moa.simulate(drain_model(), DRAIN, times=[0.0, 1.0, 3.0, 4.0], solver="LSODA", on_failure="record")
    assert int(ds.status) == 5
    assert re.search(r"species x = -1 nM at t=4 day", str(ds.message.values)), str(ds.message.values)
    with pytest.raises(SimulationError, match=r"species x = -1 nM at t=4"):
        moa.simulate(drain_model(), DRAIN, times=[0.0, 1.0, 3.0, 4.0], solver="LSODA")
    # stopping before zero is fine
    ok = moa.simulate(drain_model(), DRAIN, times=[0.0, 1.0, 2.0], solver="LSODA")
    assert int(ok.status) == 0 and float(ok.x[-1]) == pytest.approx(0.0, abs=1e-8)


def test_every_observable_is_finite_when_the_tumour_and_its_t_cells_are_gone():
    model = full_model()
    compiled = compile_model(model)
    P = np.vstack([DEFAULTS.matrix(model.parameter_names), np.zeros((len(model.inputs), 1))])
    Y = compiled.initial_T(P)
    for name in (
        "tumour_cells_sensitive",
        "tumour_cells_resistant",
        "tumour_cells_escape",
        "t_eff",
        "t_pex",
        "t_ex",
        "t_reg",
        "antigen",
        "ifng_tumour",
    ):
        Y[model.species_names.index(name)] = 0.0
    obs = compiled.observables_T(0.0, Y, P)[:, 0]
    bad = [n for n, v in zip(compiled.observable_names, obs) if not np.isfinite(v)]
    assert bad == []
    assert obs[list(compiled.observable_names).index("effector_target_ratio")] == 0.0


def test_fractions_that_sum_past_one_give_a_failed_sample_not_negative_effectors():
    """Each fraction is inside its domain, but together they leave -10% of the T cells as effectors."""
    with pytest.warns(BoundsWarning):
        ds = moa.simulate(
            full_model(),
            DEFAULTS,
            None,
            times=[0.0, 1.0],
            solver="LSODA",
            on_failure="record",
            overrides={"initial_fraction_pex": 0.5, "initial_fraction_ex": 0.6},
        )
    assert int(ds.status) == 5
    assert "species t_eff" in str(ds.message.values) and "t=0 day" in str(ds.message.values)
