"""The engine: analytic Jacobian, batching, conservation in a closed binding system, unit checks."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from moa.codegen import compile_model
import moa
from moa.symbolic.named_models import pk_model
from moa.symbolic import Mechanism, Model
from moa.errors import UnitError
from moa.parameters import ParameterSet, ParameterSpec


def nonlinear_model() -> Model:
    """Saturable elimination, reversible binding, a Hill-type degradation and an exponential feedback."""
    m = Mechanism("nonlinear")
    a = m.species("ligand", "nM", "free ligand", initial=10.0)
    b = m.species("receptor", "nM", "free receptor", initial=2.0)
    c = m.species("complex", "nM", "ligand-receptor complex")
    vmax, km = m.parameter("vmax", "nM/day", "maximal elimination"), m.parameter("km", "nM", "half-saturation")
    kon, koff = m.parameter("kon", "1/(nM*day)", "association"), m.parameter("koff", "1/day", "dissociation")
    ksyn, kdeg = m.parameter("ksyn", "nM/day", "receptor synthesis"), m.parameter("kdeg", "1/day", "complex loss")
    hill = m.parameter("hill", "1", "Hill coefficient")
    binding = kon * a * b - koff * c
    m.term(a, -vmax * a / (km + a), "saturable elimination")
    m.term(a, -binding, "binding")
    m.term(b, -binding, "binding")
    m.term(c, binding, "binding")
    m.term(b, ksyn * sympy.exp(-a / km), "feedback-inhibited synthesis")
    m.term(c, -kdeg * c * (c / km) ** hill / (1 + (c / km) ** hill), "cooperative loss")
    return Model([m], name="nonlinear")


NONLINEAR_VALUES = {
    "vmax": (5.0, "nM/day"),
    "km": (3.0, "nM"),
    "kon": (0.7, "1/(nM*day)"),
    "koff": (0.4, "1/day"),
    "ksyn": (1.5, "nM/day"),
    "kdeg": (0.9, "1/day"),
    "hill": (2.5, "1"),
}


def random_parameters(model: Model, rng: np.random.Generator, N: int) -> np.ndarray:
    """(N, m) parameters log-uniform over [0.1, 10] x default (model parameters and inputs)."""
    if model.name == "nonlinear":
        base = np.array([NONLINEAR_VALUES[n][0] for n in model.parameter_names])
    else:
        defaults = moa.load_parameters()
        base = np.array([defaults[n] for n in model.parameter_names])
    base = np.concatenate([base, np.ones(len(model.inputs))])
    return base * 10 ** rng.uniform(-1, 1, size=(N, base.size))


def finite_difference_jacobian(compiled, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Central differences, column by column, for a batch: [N, n, n]."""
    N, n = y.shape
    J = np.empty((N, n, n))
    for j in range(n):
        h = 1e-6 * np.maximum(np.abs(y[:, j]), 1e-3)
        up, down = y.copy(), y.copy()
        up[:, j] += h
        down[:, j] -= h
        J[:, :, j] = (compiled.rhs(0.0, up, p) - compiled.rhs(0.0, down, p)) / (2 * h[:, None])
    return J


@pytest.mark.parametrize("make_model", [lambda: pk_model("bsab"), nonlinear_model], ids=["pk_tmdd", "nonlinear"])
def test_jacobian_matches_finite_differences(make_model):
    model = make_model()
    compiled = compile_model(model)
    rng = np.random.default_rng(20240603)
    N = 25
    y = 10 ** rng.uniform(-2, 2, size=(N, compiled.n_species))
    p = random_parameters(model, rng, N)
    J = compiled.jac(0.0, y, p)
    assert J.shape == (N, compiled.n_species, compiled.n_species)
    J_fd = finite_difference_jacobian(compiled, y, p)
    scale = np.max(np.abs(J_fd), axis=(1, 2), keepdims=True)
    assert np.all(np.abs(J - J_fd) <= 1e-6 * np.abs(J_fd) + 1e-7 * scale)
    # The test has teeth: a Jacobian with one entry perturbed by 1e-4 relative is caught.
    i, j = compiled.jac_rows[0], compiled.jac_cols[0]
    J[:, i, j] *= 1 + 1e-4
    assert not np.all(np.abs(J - J_fd) <= 1e-6 * np.abs(J_fd) + 1e-7 * scale)


@pytest.mark.parametrize("make_model", [lambda: pk_model("bsab"), nonlinear_model], ids=["pk_tmdd", "nonlinear"])
def test_batched_rhs_and_jacobian_equal_single_calls(make_model):
    model = make_model()
    compiled = compile_model(model)
    rng = np.random.default_rng(7)
    N = 9
    y = 10 ** rng.uniform(-2, 2, size=(N, compiled.n_species))
    p = random_parameters(model, rng, N)
    batched, jac = compiled.rhs(1.0, y, p), compiled.jac(1.0, y, p)
    assert batched.shape == (N, compiled.n_species)
    for k in range(N):
        np.testing.assert_array_equal(batched[k], compiled.rhs(1.0, y[k], p[k])[0])
        np.testing.assert_array_equal(jac[k], compiled.jac(1.0, y[k], p[k])[0])
    # The samples differ, so equality above is not trivially one row repeated.
    assert not np.allclose(batched[0], batched[1])


def test_simulate_with_array_parameters_equals_separate_simulations():
    model, p = pk_model("bsab"), moa.load_parameters()
    values = {"cl_bsab": [0.12, 0.2, 0.35], "kd_pdl1_bsab": [0.05, 0.5, 5.0]}
    regimen = moa.every("bsab", 3.0, "mg/kg", 21.0, 42.0)
    batch = moa.simulate(model, p.with_values(values), regimen, duration_days=42.0)
    assert batch.sizes["sample"] == 3
    np.testing.assert_array_equal(batch["cl_bsab"].values, values["cl_bsab"])
    for k in range(3):
        single = moa.simulate(model, p.with_values({n: v[k] for n, v in values.items()}), regimen, duration_days=42.0)
        for name in model.species_names + ["pdl1_systemic_occupancy_bsab"]:
            np.testing.assert_allclose(batch[name].isel(sample=k).values, single[name].values, rtol=1e-12, atol=0)
    assert not np.allclose(batch["bsab_central"].isel(sample=0), batch["bsab_central"].isel(sample=2))


def test_closed_binding_system_conserves_drug_and_receptor():
    """No clearance, distribution, synthesis, turnover or internalisation: binding only moves mass."""
    model = pk_model("bsab")
    closed = moa.load_parameters().with_values(
        {"cl_bsab": 0.0, "q_bsab": 0.0, "kdeg_pdl1": 0.0, "kint_pdl1_complex": 0.0}
    )
    regimen = moa.Regimen(
        "one dose", (moa.Dose("bsab", 0.02, "mg/kg", 0.0),)
    )  # comparable to the target: binding matters
    ds = moa.simulate(model, closed, regimen, times=np.linspace(0, 30, 301), solver="Radau", rtol=1e-10, atol=1e-14)
    drug = ds["bsab_central"] + ds["pdl1_systemic_bsab"]
    receptor = ds["pdl1_systemic"] + ds["pdl1_systemic_bsab"]
    assert float(ds["pdl1_systemic_bsab"].max()) > 0.1 * float(receptor[0])  # binding really happened
    assert np.max(np.abs(drug / drug[0] - 1)) < 1e-8
    assert np.max(np.abs(receptor / receptor[0] - 1)) < 1e-8
    assert np.all(ds["bsab_peripheral"].values == 0.0)


def test_open_system_does_not_conserve():
    """The counterpart: with clearance on, total drug falls (so the conservation test can fail)."""
    ds = moa.simulate(
        pk_model("bsab"),
        moa.load_parameters(),
        moa.Regimen("d", (moa.Dose("bsab", 0.02, "mg/kg", 0.0),)),
        duration_days=30.0,
    )
    drug = ds["bsab_central"] + ds["pdl1_systemic_bsab"]
    assert float(drug[-1] / drug[0]) < 0.9


# ----- units ------------------------------------------------------------------------------
def _rate_model(term_builder, label: str) -> Model:
    m = Mechanism("units")
    conc = m.species("conc", "nM", "a concentration")
    cells = m.species("tumour_cells", "cell", "a cell count")
    k_h = m.parameter("k_per_hour", "1/h", "a rate in per hour")
    k_d = m.parameter("k_per_day", "1/day", "a rate in per day")
    m.term(cells, -k_d * cells, "cell death")
    m.term(conc, term_builder(conc, cells, k_h, k_d), label)
    return Model([m])


def test_consistent_model_is_accepted():
    model = _rate_model(lambda c, n, kh, kd: -kd * c, "elimination per day")
    assert model.species_names == ["conc", "tumour_cells"]


def test_per_hour_added_to_per_day_is_refused_naming_the_term():
    with pytest.raises(UnitError, match="mixed elimination") as err:
        _rate_model(lambda c, n, kh, kd: -(kh + kd) * c, "mixed elimination")
    assert "1 / hour" in str(err.value) or "1/h" in str(err.value)
    assert "conversion" in str(err.value)  # says what to do


def test_rate_in_wrong_time_unit_is_refused_naming_both_units():
    with pytest.raises(UnitError, match="hourly elimination") as err:
        _rate_model(lambda c, n, kh, kd: -kh * c, "hourly elimination")
    assert "nM" in str(err.value) and "d" in str(err.value)


def test_concentration_added_to_cells_is_refused_naming_the_term():
    with pytest.raises(UnitError, match="cells plus drug") as err:
        _rate_model(lambda c, n, kh, kd: -kd * (c + n), "cells plus drug")
    assert "cell" in str(err.value) and "nM" in str(err.value)


def test_refused_model_message_names_the_mechanism_and_species():
    with pytest.raises(UnitError) as err:
        _rate_model(lambda c, n, kh, kd: -kd * n, "cell count in a concentration equation")
    message = str(err.value)
    assert "cell count in a concentration equation" in message and "units" in message and "conc" in message


def test_engine_model_is_listed_for_docs():
    """Species, parameters and rate terms are available by name for documentation."""
    model = nonlinear_model()
    assert model.species_names == ["ligand", "receptor", "complex"]
    assert set(model.parameter_names) == set(NONLINEAR_VALUES)
    labels = {t.label for t in model.ode_terms("ligand")}
    assert labels == {"saturable elimination", "binding"}


def test_nonlinear_model_simulates_from_test_parameter_set():
    ps = ParameterSet({k: ParameterSpec(k, v, u, 0.0, 100.0, "test") for k, (v, u) in NONLINEAR_VALUES.items()})
    ds = moa.simulate(nonlinear_model(), ps, duration_days=5.0, solver="Radau", rtol=1e-8, atol=1e-12)
    assert int(ds["status"]) == 0
    # Ligand is only lost, never made.
    assert np.all(np.diff(ds["ligand"].values) < 0)


# ----- generated numpy source cached on disk ---------------------------------------------------
def _compiled_twice(model, tmp_path, monkeypatch):
    from moa.codegen import CompiledModel

    monkeypatch.setenv("MOA_CACHE_DIR", str(tmp_path))
    return CompiledModel(model), CompiledModel(model)


def test_a_new_process_loads_the_generated_source_and_computes_the_same_bits(tmp_path, monkeypatch):
    """The second compile of a model execs the cached text: same source, same Jacobian pattern,
    bit-identical rhs, Jacobian, observables and initial values at random states."""
    model = pk_model()
    first, second = _compiled_twice(model, tmp_path, monkeypatch)
    assert (first.source_origin, second.source_origin) == ("generated", "loaded")
    assert second.rhs_T.source == first.rhs_T.source and second.jac_values_T.source == first.jac_values_T.source
    assert np.array_equal(first.jac_rows, second.jac_rows) and np.array_equal(first.jac_cols, second.jac_cols)
    rng = np.random.default_rng(1)
    Y = rng.uniform(0.1, 10.0, (first.n_species, 5))
    P = rng.uniform(0.1, 10.0, (first.n_parameters, 5))
    for name in ("rhs_T", "jac_values_T", "_observables_T", "_initial_T"):
        assert np.array_equal(getattr(first, name)(0.0, Y, P), getattr(second, name)(0.0, Y, P)), name
    assert second.families.outputs("jacobian") == first.families.outputs("jacobian")  # derived on demand when loaded
    assert len(list(tmp_path.rglob("numpy_*_rhs_scalar.json"))) == 0
    y, p_ = list(Y[:, 0]), list(P[:, 0])
    assert first.rhs_scalar(y, p_) == second.rhs_scalar(y, p_)  # one-trajectory forms: cached on
    assert first.jac_values_scalar(y, p_) == second.jac_values_scalar(y, p_)  # first use, then read back
    third = type(first)(model)
    assert third.rhs_scalar.source == first.rhs_scalar.source and len(list(tmp_path.rglob("numpy_*_scalar.json"))) == 2


def test_a_changed_model_or_a_damaged_cache_file_is_generated_again(tmp_path, monkeypatch):
    from moa.codegen import CompiledModel, model_key

    from tests.model_edits import with_term_replaced

    model = pk_model()
    first, _ = _compiled_twice(model, tmp_path, monkeypatch)
    term = model.terms[0]
    changed = Model(with_term_replaced(model, term.mechanism, term.label, lambda e: 2 * e), name=model.name)
    assert model_key(changed) != model_key(model)
    assert CompiledModel(changed).source_origin == "generated"
    (cached,) = [f for f in tmp_path.rglob("numpy_*.json") if model_key(model)[:32] in f.name]
    cached.write_text(cached.read_text()[:200])  # truncated: not valid JSON
    again = CompiledModel(model)
    assert again.source_origin == "generated" and again.rhs_T.source == first.rhs_T.source
    assert CompiledModel(model).source_origin == "loaded"  # and written back whole


def test_the_symbolic_model_does_not_compile_itself():
    """Building a Model derives its equations and nothing else: code generation is moa.codegen's."""
    from moa.symbolic import Model

    assert not hasattr(Model, "compiled")
    model = pk_model("bsab")
    assert compile_model(model) is compile_model(model)  # one CompiledModel per model, built on first request
