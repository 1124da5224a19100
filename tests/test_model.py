"""The full mechanism model: units, steady state, the exhaustion hierarchy, PD-1 blockade.

Issue 4 "Must show". Single runs use LSODA; the full model is compiled once per process
(``full_model()`` is cached).
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import sympy

from moa.codegen import compile_model
import moa
from moa.symbolic.named_models import full_model
from moa.errors import UnitError
from moa.scenarios import scenario

from model_edits import with_term_replaced


@pytest.fixture(scope="session")
def model():
    return full_model()


def _param_vector(model, params):
    return np.concatenate([params.matrix(model.parameter_names)[:, 0], np.zeros(len(model.inputs))])


# ----- units -------------------------------------------------------------------------------
def test_full_model_passes_the_unit_check(model):
    model.check_units()  # Model() already ran it; run again so a failure names the term here
    assert len(model.terms) > 100 and len(model.species) > 30


def test_a_term_with_a_wrong_unit_is_refused(model):
    kdeg = sympy.Symbol("kdeg_pdl1", real=True)
    broken = with_term_replaced(model, "binding", "PD-L1 synthesis and turnover", lambda e: e / kdeg)
    with pytest.raises(UnitError, match="PD-L1 synthesis and turnover"):
        moa.Model(broken)


def test_a_missing_unit_conversion_is_refused(model):
    # drop the explicit mL/L conversion from IFN-gamma secretion: cells*nmol/cell/day/mL is not nM/day
    ml_per_l = sympy.Symbol("mL_per_L", real=True)
    broken = with_term_replaced(model, "t_cells", "secretion by effectors", lambda e: e.subs(ml_per_l, 1))
    with pytest.raises(UnitError, match="secretion by effectors"):
        moa.Model(broken)


def test_no_rate_term_is_counted_twice_on_a_shared_species(model):
    """Species shared by several mechanisms (plasma drug, systemic PD-L1) get each process once.

    This caught systemic PD-L1 synthesis/turnover being added by every PD-L1-binding drug's
    TMDD mechanism (turnover at 2 x kdeg_pdl1).
    """
    seen = collections.Counter((t.species, sympy.srepr(t.expr)) for t in model.terms)
    assert [k for k, n in seen.items() if n > 1] == []


# ----- steady state ------------------------------------------------------------------------
def test_steady_state_without_drug_and_without_tumour_growth_drive(model):
    """No drug, no tumour growth and no T-cell killing: the tumour cell number is constant, so
    antigen (shedding = clearance) is constant; the T-cell and receptor system then has
    constant inputs and relaxes to a fixed point. Priming stays on, so the fixed point has
    T cells (a non-trivial steady state, not everything at zero)."""
    params, _ = scenario("untreated", "hot_tnbc")
    params = params.with_values({"tumour_growth_rate": 0.0, "kill_rate_max": 0.0, "resistance_transition_rate": 0.0})
    ds = moa.simulate(model, params, None, times=np.linspace(0, 3000, 31), rtol=1e-9, atol=1e-12)
    assert int(ds.status) == 0
    y = np.array([ds[n].values for n in model.species_names])  # (species, time)
    dydt = compile_model(model).rhs(0.0, y[:, -1][None], _param_vector(model, params)[None])[0]
    scale = np.abs(y).max(axis=1)
    loose = np.abs(dydt) > 1e-7 * scale + 1e-15
    assert not loose.any(), {
        n: (float(dydt[i]), float(scale[i])) for i, n in enumerate(model.species_names) if loose[i]
    }
    # the initial state was far from it: the test does not pass by never moving
    start = compile_model(model).rhs(0.0, y[:, 0][None], _param_vector(model, params)[None])[0]
    assert np.any(np.abs(start) > 1e-3 * scale)
    assert ds.tumour_t_cells.values[-1] > 1e5
    np.testing.assert_allclose(ds.tumour_cells.values, ds.tumour_cells.values[0], rtol=1e-9)


# ----- exhaustion hierarchy ----------------------------------------------------------------
def _first_time_above(ds, name, level):
    above = np.nonzero(ds[name].values > level)[0]
    return float(ds.time.values[above[0]]) if above.size else np.inf


def test_chronic_antigen_moves_effectors_to_tpex_then_tex(model):
    params, _ = scenario("untreated", "hot_tnbc")
    params = params.with_values({"initial_fraction_pex": 0.0, "initial_fraction_ex": 0.0})
    ds = moa.simulate(model, params, None, times=np.linspace(0, 60, 241))
    assert ds.t_pex.values[0] == 0 and ds.t_ex.values[0] == 0
    level = 1e-2 * ds.t_eff.values[0]
    t_pex, t_ex = _first_time_above(ds, "t_pex", level), _first_time_above(ds, "t_ex", level)
    assert 0 < t_pex < t_ex < 60, (t_pex, t_ex)
    # Tex is fed only by Tpex: at first it grows quadratically, so it lags far behind
    k = int(np.searchsorted(ds.time.values, 1.0))
    assert ds.t_ex.values[k] < 0.2 * ds.t_pex.values[k]
    assert (
        ds.t_pex.values[-1] > 0.1 * ds.tumour_t_cells.values[-1]
        and ds.t_ex.values[-1] > 0.1 * ds.tumour_t_cells.values[-1]
    )
    # without antigen-driven exhaustion nothing leaves the effector state
    calm = moa.simulate(model, params.with_values({"exhaustion_rate": 0.0}), None, times=[0, 30, 60])
    assert np.all(calm.t_pex.values == 0) and np.all(calm.t_ex.values == 0)


def _blockade_runs(model, reinvigoration):
    out = {}
    for arm in ("untreated", "apdl1"):
        params, regimen = scenario(arm, "hot_tnbc", duration_days=84)
        params = params.with_values({"cd137_reinvigoration_rate": reinvigoration})
        out[arm] = (params, moa.simulate(model, params, regimen, duration_days=84))
    return out


def _tex_death_only_floor(ds, params):
    """Tex can fall no faster than by death alone unless something converts it (survival <= 1)."""
    return ds.t_ex.values[0] * np.exp(-float(params["death_rate_ex"]) * ds.time.values)


def _tpex_to_effector_inflow(ds, params):
    """Cells that entered the effector state from Tpex over the run (trapezoid of the flux)."""
    flux = float(params["pex_differentiation_rate"]) * (
        1 - float(params["pd1_differentiation_brake"]) * ds.pd1_engaged.values
    )
    return float(np.trapezoid(flux * ds.t_pex.values, ds.time.values))


def test_pdl1_blockade_expands_tpex_derived_effectors_but_does_not_rescue_tex(model):
    runs = _blockade_runs(model, reinvigoration=0.0)
    (params0, untreated), (params, blocked) = runs["untreated"], runs["apdl1"]
    assert blocked.pd1_engaged.sel(time=21).item() < 0.1 < untreated.pd1_engaged.sel(time=21).item()
    for day in (21, 42, 84):
        assert blocked.t_eff.sel(time=day).item() > 1.1 * untreated.t_eff.sel(time=day).item()
    # more effectors come from Tpex under blockade (PD-1 no longer brakes differentiation)
    assert _tpex_to_effector_inflow(blocked, params) > 1.05 * _tpex_to_effector_inflow(untreated, params0)
    # Blockade also slows effector exhaustion (pd1_exhaustion_boost). With that route shut,
    # effectors still rise: the part that is Tpex-derived alone.
    only_tpex = {"pd1_exhaustion_boost": 0.0}
    regimen = scenario("apdl1", "hot_tnbc", duration_days=84)[1]
    base = moa.simulate(model, params0.with_values(only_tpex), None, duration_days=84)
    treated = moa.simulate(model, params.with_values(only_tpex), regimen, duration_days=84)
    assert treated.t_eff.sel(time=42).item() > 1.02 * base.t_eff.sel(time=42).item()
    # Tex is not returned to Tpex: the reinvigoration flux is zero, and Tex never falls below
    # death-only decay
    assert float(params["cd137_reinvigoration_rate"]) == 0.0
    assert np.all(blocked.t_ex.values >= _tex_death_only_floor(blocked, params) * (1 - 1e-6))


def test_tex_rescue_check_can_fail_when_4_1bb_reinvigorates(model):
    """The floor used above is violated once 4-1BB signalling with reinvigoration > 0 acts."""
    params, regimen = scenario("bsab_2x2", "hot_tnbc", duration_days=84)
    params = params.with_values({"cd137_reinvigoration_rate": 0.2})
    ds = moa.simulate(model, params, regimen, duration_days=84)
    assert np.any(ds.t_ex.values < 0.9 * _tex_death_only_floor(ds, params))


# ----- PD-1 checkpoint ---------------------------------------------------------------------
def test_pd1_engagement_falls_monotonically_with_anti_pdl1_dose(model):
    doses_mg = [0.0, 1.0, 10.0, 100.0, 1200.0]
    mean_engaged = []
    for dose in doses_mg:
        params, _ = scenario("untreated", "hot_tnbc", duration_days=21)
        ds = moa.simulate(model, params, moa.every("apdl1", dose, "mg", 21.0, 21.0), duration_days=21)
        mean_engaged.append(float(ds.pd1_engaged.sel(time=slice(1, 21)).mean()))
    assert np.all(np.diff(mean_engaged) < 0), mean_engaged
    assert mean_engaged[0] > 0.5 and mean_engaged[-1] < 0.05, mean_engaged
