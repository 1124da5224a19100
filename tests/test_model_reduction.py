"""``full_model(drugs=...)``: the full model without the antibodies a regimen never doses. Their states stay
exactly zero in the full model, so the reduced model must have the very same equations for every other state."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import moa
from moa.codegen import compile_model
from moa.errors import DoseWarning
from moa.report import results
from moa.scenarios import scenario
from moa.solvers import RodasSolver
from moa.symbolic.named_models import full_model


def _columns(values: dict[str, np.ndarray], names) -> np.ndarray:
    return np.array([values[n] for n in names])


def test_reduced_model_has_the_full_models_equations_on_its_states():
    """At random states (the dropped antibodies' states zero) and infusion rates, the reduced model's rates
    equal the full model's on every kept state (1e-13 relative: only the order of sums may differ), the full
    model's rates of the dropped states are exactly zero (so they stay zero), and the shared observables agree."""
    full, reduced = compile_model(full_model()), compile_model(full_model(("bsab",)))
    assert reduced.n_species == 39 and full.n_species == 54
    assert set(reduced.species_names) < set(full.species_names)
    assert set(reduced.parameter_names) <= set(full.parameter_names)
    params, _ = scenario("nabp_bsab_2x2", "hot_tnbc", duration_days=30.0)
    rng = np.random.default_rng(5)
    N = 16
    inputs = set(full_model().input_names)
    values = {
        n: (
            (rng.uniform(0.0, 5.0, N) if n in reduced.parameter_names else np.zeros(N))  # no infusion of a dropped drug
            if n in inputs
            else np.broadcast_to(np.asarray(params[n], float), (N,))
        )
        for n in full.parameter_names
    }
    Pf, Pr = _columns(values, full.parameter_names), _columns(values, reduced.parameter_names)
    Yr = reduced.initial_T(Pr) * rng.lognormal(0.0, 0.5, (reduced.n_species, N))
    kept = [full.species_names.index(s) for s in reduced.species_names]
    dropped = np.setdiff1d(np.arange(full.n_species), kept)
    assert dropped.size == 15
    Yf = np.zeros((full.n_species, N))
    Yf[kept] = Yr
    rate_full, rate_reduced = full.rhs_T(0.0, Yf, Pf), reduced.rhs_T(0.0, Yr, Pr)
    assert np.all(rate_full[dropped] == 0.0)
    np.testing.assert_allclose(rate_reduced, rate_full[kept], rtol=1e-13, atol=1e-300)
    assert np.count_nonzero(rate_reduced) > reduced.n_species  # the comparison is not of zeros
    shared = [o for o in reduced.observable_names if o in full.observable_names]
    assert len(shared) > 20
    of, orr = full.observables_T(0.0, Yf, Pf), reduced.observables_T(0.0, Yr, Pr)
    np.testing.assert_allclose(
        _columns(dict(zip(reduced.observable_names, orr)), shared),
        _columns(dict(zip(full.observable_names, of)), shared),
        rtol=1e-13,
        atol=1e-300,
    )


def test_reduced_model_agrees_with_the_full_model_to_the_solver_tolerance():
    """Three days of nab-paclitaxel + 2:2 (both given on day 0), numpy Rodas4 at rtol 1e-7: every kept species
    within 1e-5 relative of the full model (not identical: the error norm is a mean over the states)."""
    params, regimen = scenario("nabp_bsab_2x2", "hot_tnbc", duration_days=3.0)
    batch = params.with_values({"kill_rate_max": np.array([0.3, 1.5])})
    runs = {}
    for drugs in (None, ("bsab",)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DoseWarning)
            runs[drugs] = moa.simulate(
                full_model(drugs),
                batch,
                regimen,
                times=np.linspace(0.0, 3.0, 7),
                solver=RodasSolver(backend="numpy"),
                rtol=1e-7,
                atol=1e-10,
            )
    full, reduced = runs[None], runs[("bsab",)]
    assert json.loads(reduced.attrs["simulation"])["model"] == "moa_pdl1_41bb[bsab]"
    for name in compile_model(full_model(("bsab",))).species_names:
        a, b = reduced[name].values, full[name].values
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-10 * max(1.0, float(np.abs(b).max())), err_msg=name)
    assert float(np.abs(np.diff(full["tumour_volume"].values, axis=0)).max()) > 0  # something happens


def test_drug_names_are_checked_and_rerun_rebuilds_the_reduced_model():
    assert full_model(("bsab",)).name == "moa_pdl1_41bb[bsab]" and full_model().name == "moa_pdl1_41bb"
    assert full_model(("bsab", "apdl1", "a41bb")).name == "moa_pdl1_41bb"
    for bad in (("bsab", "bsab"), ("nivolumab",), ()):
        with pytest.raises(ValueError, match=r"give distinct antibodies of \('bsab', 'apdl1', 'a41bb'\)"):
            full_model(bad)
    assert len(results._model_named("moa_pdl1_41bb[bsab]", 39).species) == 39
    with pytest.raises(ValueError, match="the record has 54 states, this moa's model has 39"):
        results._model_named("moa_pdl1_41bb[bsab]", 54)
    params, regimen = scenario("nabp_apdl1", "hot_tnbc", duration_days=7.0)
    with pytest.raises(ValueError, match=r"doses \['apdl1'\], which the model cannot take"):
        moa.simulate(full_model(("bsab",)), params, regimen, duration_days=7.0)
