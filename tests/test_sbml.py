"""SBML export (moa.interop.sbml) validated by libsbml and cross-checked against libroadrunner.

The exported file, simulated by libroadrunner (CVODE, events for doses and extinction), must
reproduce ``moa.simulate`` within 1e-4 relative on random parameter sets drawn within the bounds
in ``models/``, for every model built in ``moa.symbolic.named_models`` (the PK/TMDD model and the full
mechanism model, one year of Q3W doses). The file also works the way other SBML tools use it:
loaded and simulated at libroadrunner's default settings (as ``tellurium.loadSBMLModel`` does),
``getFullJacobian()`` equal to moa's Jacobian, ``steadyState()`` equal to moa's quasi-steady state.

The full model costs two libroadrunner compilations (about 50 s each on a loaded 2-core machine):
the Q3W file (cross-check and default-settings run share it: libroadrunner caches a compiled
text) and the untreated file with the tumour clamped (Jacobian and steady state).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

from moa.codegen import compile_model
import moa
import moa.symbolic.named_models
from moa.symbolic import Mechanism, Model

libsbml = pytest.importorskip(
    "libsbml", reason="python-libsbml not importable (install the 'sbml' extra: pip install -e '.[sbml]')"
)
pytest.importorskip(
    "roadrunner", reason="libroadrunner not importable (install the 'sbml' extra: pip install -e '.[sbml]')"
)

from moa.interop.roadrunner import SBMLSimulator, compare_to_moa, relative_difference  # noqa: E402
from moa.interop.sbml import compartment_of, dose_per_mg_id, export, validate  # noqa: E402

RTOL_MATCH = 1e-4  # the acceptance: relative difference to moa.simulate
FLOOR_FRACTION = 1e-3  # values below 1e-3 of a variable's peak count by absolute error at that scale
ABS_FLOOR = 1e-6  # in each variable's own unit (nM, cells, fraction)
SOLVER_TOL = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def parameters():
    return moa.load_parameters()


def random_parameter_sets(model: Model, parameters, n: int, seed: int) -> list[dict[str, float]]:
    """n sets of the model's parameters drawn uniformly within their bounds (log-uniform where
    the spec says scale = "log"), with a fixed seed."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        values = {}
        for name in model.parameter_names:
            spec = parameters.specs[name]
            if spec.upper <= spec.lower:
                continue
            if spec.scale == "log":
                values[name] = float(np.exp(rng.uniform(np.log(spec.lower), np.log(spec.upper))))
            else:
                values[name] = float(rng.uniform(spec.lower, spec.upper))
        out.append(values)
    return out


def q3w_regimen(model: Model, until_days: float, route: str = "bolus") -> moa.Regimen:
    """3 mg/kg of every drug the model takes, every 21 days (infusions over 12 h)."""
    regimen = moa.Regimen("empty")
    for drug in model.drugs:
        kw = dict(route="infusion", duration_days=0.5) if route == "infusion" else {}
        regimen = regimen + moa.every(drug, 3.0, "mg/kg", 21.0, until_days, **kw)
    return regimen


# Model builders in moa.symbolic.named_models. moa's reference: LSODA for the small PK model; for the full model
# the compiled Rodas4 (already compiled by the other tests; LSODA's first full-model run costs ~50 s).
BUILDERS = [
    ("pk_model", dict(days=84.0, n_sets=4, solver="LSODA")),
    ("full_model", dict(days=365.0, n_sets=2, solver="auto")),
]


@pytest.fixture(scope="module", params=[b[0] for b in BUILDERS])
def built(request, parameters):
    """(builder name, model, settings, exported SBML of the model under its Q3W bolus regimen)."""
    model = getattr(moa.symbolic.named_models, request.param)()
    cfg = dict(BUILDERS)[request.param]
    return request.param, model, cfg, export(model, parameters, q3w_regimen(model, cfg["days"]))


def cross_check(model, parameters, regimen, days, n_sets, seed, step=0.25, sbml=None, solver="LSODA"):
    """Export once, then for each random parameter set: libroadrunner (parameters set on the
    loaded model, as the benchmark does) against moa.simulate. Returns the worst difference."""
    times = moa.output_times(days, step)
    # moa never applies a dose at exactly the last output time; keep doses strictly before it
    assert all(d.time_days < times[-1] for d in regimen.doses)
    sim = SBMLSimulator(sbml or export(model, parameters, regimen), **SOLVER_TOL)
    worst = {}
    for values in random_parameter_sets(model, parameters, n_sets, seed):
        ps = parameters.with_values(values)
        ref = moa.simulate(model, ps, regimen, times=times, solver=solver, **SOLVER_TOL)
        got = sim.run(times, values)
        diffs = compare_to_moa(ref, got, floor_fraction=FLOOR_FRACTION, abs_floor=ABS_FLOOR)
        for k, v in diffs.items():
            worst[k] = max(worst.get(k, 0.0), v)
    return worst


# ----- validation ------------------------------------------------------------------------
def test_export_validates_with_libsbml(built, parameters):
    name, model, cfg, text = built
    doc = libsbml.readSBMLFromString(text)
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)
    assert doc.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    assert validate(text) == []  # no errors and no warnings, units and modelling practice included
    m = doc.getModel()
    rate_rules = {m.getRule(i).getVariable() for i in range(m.getNumRules()) if m.getRule(i).isRate()}
    assert rate_rules == set(model.species_names)
    # every state is a species in a compartment, with a substance unit SBML allows
    assert {m.getSpecies(i).getId() for i in range(m.getNumSpecies())} == set(model.species_names)
    compartments = {m.getCompartment(i).getId() for i in range(m.getNumCompartments())}
    for s in model.species:
        sp = m.getSpecies(s.name)
        assert sp.getCompartment() in compartments and sp.isSetSubstanceUnits(), s.name
        assert sp.getHasOnlySubstanceUnits() == (s.unit in ("cell", "1")), (s.name, s.unit)
    regimen = q3w_regimen(model, cfg["days"])
    dose_events = [m.getEvent(i) for i in range(m.getNumEvents()) if m.getEvent(i).getId().startswith("dose_event_")]
    extinction = [m.getEvent(i) for i in range(m.getNumEvents()) if m.getEvent(i).getId().startswith("extinction_")]
    assert len(dose_events) == len({d.time_days for d in regimen.doses})
    assert len(dose_events) + len(extinction) == m.getNumEvents()
    assert sorted(e.getEventAssignment(0).getVariable() for e in extinction) == sorted(
        s.name for s in model.species if s.extinct_below is not None
    )
    for ev in dose_events:
        assert (
            ev.getTrigger().getPersistent()
            and not ev.getTrigger().getInitialValue()
            and ev.getUseValuesFromTriggerTime()
        )
        # the trigger time is a named parameter, not a literal
        assert libsbml.formulaToL3String(ev.getTrigger().getMath()).startswith("time >= dose_time_")
    for i, d in enumerate(regimen.doses):  # every dose amount is a named parameter in the dose's unit
        par = m.getParameter(f"dose{i}_{d.drug}_amount")
        assert (
            par.getConstant() and par.getValue() == d.amount and m.getUnitDefinition(par.getUnits()).getName() == d.unit
        )
    for p in model.parameters:
        par = m.getParameter(p.name)
        assert par.getConstant() and math.isclose(par.getValue(), parameters[p.name]) and par.isSetUnits()


def test_unit_definitions_match_pint(built, parameters):
    """libsbml checks dimensions only, not factors (1/h would pass for 1/day): check the factors
    of every unit definition against pint independently."""
    from moa.symbolic.units import parse_unit, registry

    _, model, cfg, text = built
    doc = libsbml.readSBMLFromString(text)
    kind_si = {
        "litre": (1e-3, {"meter": 3}),
        "metre": (1.0, {"meter": 1}),
        "gram": (1.0, {"gram": 1}),
        "kilogram": (1e3, {"gram": 1}),
        "second": (1.0, {"second": 1}),
        "mole": (1.0, {"mole": 1}),
        "item": (1.0, {"cell": 1}),
        "dimensionless": (1.0, {}),
    }
    m = doc.getModel()
    assert m.getNumUnitDefinitions() > 0
    for i in range(m.getNumUnitDefinitions()):
        ud = m.getUnitDefinition(i)
        factor, dims = 1.0, {}
        for j in range(ud.getNumUnits()):
            u = ud.getUnit(j)
            f, d = kind_si[libsbml.UnitKind_toString(u.getKind())]
            factor *= (u.getMultiplier() * 10.0 ** u.getScale() * f) ** u.getExponent()
            for k, e in d.items():
                dims[k] = dims.get(k, 0) + e * u.getExponent()
        q = registry().Quantity(1.0, parse_unit(ud.getName())).to_root_units()
        want = {k: float(v) for k, v in q.units._units.items()}
        assert {k: v for k, v in dims.items() if v} == want, ud.getId()
        assert math.isclose(factor, q.magnitude, rel_tol=1e-12), (ud.getId(), factor, q.magnitude)


# ----- cross-check against libroadrunner ---------------------------------------------------
def test_roadrunner_matches_moa_bolus_q3w(built, parameters):
    name, model, cfg, text = built
    worst = cross_check(
        model,
        parameters,
        q3w_regimen(model, cfg["days"]),
        cfg["days"],
        cfg["n_sets"],
        seed=1,
        sbml=text,
        solver=cfg["solver"],
    )
    print(
        f"\n{name} bolus Q3W: max relative difference libroadrunner vs moa: "
        + ", ".join(f"{k} {v:.1e}" for k, v in sorted(worst.items(), key=lambda kv: -kv[1])[:6])
    )
    assert max(worst.values()) < RTOL_MATCH, worst


def test_default_settings_load_and_simulate(built, parameters):
    """The file as a tellurium user runs it: ``roadrunner.RoadRunner(text)`` (what
    ``tellurium.loadSBMLModel`` does), ``simulate(0, T, n)`` at libroadrunner's default integrator
    settings and default selections (time and every species, by id), for the whole Q3W regimen
    (one year for the full model). It must run, report every state, and stay within 1e-3 of moa
    (measured: 1.0e-4 for the full model, in the paclitaxel effect site)."""
    import roadrunner

    name, model, cfg, text = built
    rr = roadrunner.RoadRunner(text)
    times = moa.output_times(cfg["days"], 0.25)
    res = rr.simulate(0, cfg["days"], len(times))
    assert list(res.colnames) == ["time"] + [f"[{s}]" for s in model.species_names]
    got = {"time": np.asarray(res[:, 0]), **{c[1:-1]: np.asarray(res[:, j]) for j, c in enumerate(res.colnames) if j}}
    ref = moa.simulate(model, parameters, q3w_regimen(model, cfg["days"]), times=times)
    diffs = compare_to_moa(ref, got, model.species_names, floor_fraction=FLOOR_FRACTION, abs_floor=ABS_FLOOR)
    print(
        f"\n{name} at libroadrunner defaults, {cfg['days']:g} days: worst "
        + ", ".join(f"{k} {v:.1e}" for k, v in sorted(diffs.items(), key=lambda kv: -kv[1])[:3])
    )
    assert max(diffs.values()) < 1e-3, diffs


@pytest.fixture(scope="module")
def clamped_untreated(parameters):
    """(full model, parameter matrix, libroadrunner loaded with the untreated full model whose
    tumour clones are held constant (``hold=CLONES``, boundary species)."""
    import roadrunner

    from moa.mechanisms.tumour import CLONES
    from moa.parameters import model_units

    model = moa.symbolic.named_models.full_model()
    text = export(model, parameters, None, hold=CLONES)
    P = np.vstack(
        [parameters.in_units(model_units(model)).matrix(model.parameter_names), np.zeros((len(model.inputs), 1))]
    )
    return model, P, roadrunner.RoadRunner(text)


def test_full_jacobian_equals_moa_jacobian(clamped_untreated):
    """libroadrunner's getFullJacobian() of the exported model equals moa's symbolic Jacobian
    (rows and columns of the species that are not held), at a state where every species is
    positive: libroadrunner differentiates numerically (step 1e-5), and several rates have a kink
    at 0 (a free drug of 0 nM), where a one-sided difference and the symbolic derivative differ.
    Measured: 2.8e-6 of each row's largest entry."""
    model, P, rr = clamped_untreated
    c = compile_model(model)
    rr.reset()
    ids = list(rr.model.getFloatingSpeciesIds())
    assert sorted(ids) == sorted(set(model.species_names) - set(rr.model.getBoundarySpeciesIds()))
    assert len(ids) == len(model.species_names) - 3  # the three clones are held
    index = [c.species_names.index(s) for s in ids]
    Y = c.initial_T(P)
    Y[index, 0] = np.where(Y[index, 0] == 0, 1e-3, Y[index, 0])  # 1e-3 nM (or cell) for the undosed drug states
    for sid, value in zip(ids, Y[index, 0]):
        rr[f"[{sid}]"] = float(value)
    J = np.asarray(rr.getFullJacobian())
    J_moa = c.jac_dense_T(0.0, Y, P)[:, :, 0][np.ix_(index, index)]
    row_scale = np.abs(J_moa).max(axis=1, keepdims=True)
    assert J.shape == J_moa.shape and np.all(row_scale > 0)
    assert np.max(np.abs(J - J_moa) / row_scale) < 1e-4


def test_steady_state_equals_moa_quasi_steady_state(clamped_untreated):
    """libroadrunner's steadyState() of the untreated model with the tumour clamped (the clones
    held constant: a growing tumour has no steady state) equals moa's quasi-steady start
    (moa.steady_state.quasi_steady_state, which holds the same clones), relaxed here until every
    state changes by less than 1e-9 of itself per day. Every other state is compared (T cells,
    antigen, receptors, IFN-gamma, Tregs, myeloid cells; drug states are 0 untreated).
    Measured: 2e-8 relative; the solve moves effector T cells by far more than that from the
    exported (parameter-derived) start, so it is not the start read back.

    Moiety analysis is switched off: the file has rate rules, not reactions, so there are no
    moieties to find, and libroadrunner's automatic analysis recompiles the model (~50 s)."""
    from moa.steady_state import quasi_steady_state

    model, P, rr = clamped_untreated
    c = compile_model(model)
    rr.reset()
    ids = list(rr.model.getFloatingSpeciesIds())
    start = dict(zip(ids, rr.model.getFloatingSpeciesConcentrations()))
    rr.getSteadyStateSolver().setValue("auto_moiety_analysis", False)
    residual = rr.steadyState()
    assert residual < 1e-6
    solved = dict(zip(ids, rr.model.getFloatingSpeciesConcentrations()))
    qss = quasi_steady_state(model, P, tol_per_day=1e-9, max_days=20000.0)
    assert qss.converged[0]
    ref = {s: float(qss.y[c.species_names.index(s), 0]) for s in ids}
    rel = {s: abs(solved[s] - ref[s]) / max(abs(ref[s]), 1e-9) for s in ids}
    print(
        "\nsteady state vs moa: worst "
        + ", ".join(f"{k} {v:.1e}" for k, v in sorted(rel.items(), key=lambda kv: -kv[1])[:3])
    )
    assert max(rel.values()) < 1e-6, rel
    assert abs(start["t_eff"] - ref["t_eff"]) > 0.01 * ref["t_eff"]


def test_roadrunner_matches_moa_infusion(parameters):
    model = moa.symbolic.named_models.pk_model()
    regimen = q3w_regimen(model, 63.0, route="infusion")
    worst = cross_check(model, parameters, regimen, 70.0, 3, seed=2, step=0.125)
    print("\npk_model infusion Q3W: max relative difference: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    assert max(worst.values()) < RTOL_MATCH, worst


def test_mixed_units_same_time_doses_and_overlapping_infusions(parameters):
    """Doses in mg, mg/kg and mg/m^2, two boluses at the same time (one event must add both),
    overlapping infusions (the rate is their sum), an infusion ending between output times."""
    model = moa.symbolic.named_models.pk_model()
    doses = (
        moa.Dose("bsab", 100.0, "mg", 0.0),
        moa.Dose("bsab", 1.0, "mg/kg", 0.0),
        moa.Dose("bsab", 50.0, "mg/m^2", 10.0),
        moa.Dose("bsab", 200.0, "mg", 20.0, "infusion", 1.0),
        moa.Dose("bsab", 2.0, "mg/kg", 20.3, "infusion", 0.37),
    )
    regimen = moa.Regimen("mixed", doses)
    worst = cross_check(model, parameters, regimen, 30.0, 2, seed=3, step=0.1)
    assert max(worst.values()) < RTOL_MATCH, worst


def test_dose_at_time_zero_fires_exactly_once(parameters):
    model = moa.symbolic.named_models.pk_model()
    regimen = moa.every("bsab", 10.0, "mg/kg", 21.0, 42.0)
    sim = SBMLSimulator(export(model, parameters, regimen), **SOLVER_TOL)
    per_mg = compile_model(model).dose_per_mg_T(np.vstack([parameters.matrix(model.parameter_names), [[0.0]]]))[0, 0]
    for _ in range(2):  # and again after a reset
        out = sim.run([0.0, 1.0, 21.0])
        assert out["bsab_central"][0] == pytest.approx(10.0 * parameters["body_weight"] * per_mg, rel=1e-12)
        assert out[dose_per_mg_id("bsab")][0] == pytest.approx(per_mg, rel=1e-12)
    # the output at a dose time is the state just after the dose, as in moa.simulate
    ref = moa.simulate(model, parameters, regimen, times=[0.0, 1.0, 21.0, 22.0], **SOLVER_TOL)
    got = sim.run([0.0, 1.0, 21.0, 22.0])
    assert relative_difference(got["bsab_central"], ref["bsab_central"].values, 0, 1e-12) < 1e-6


def test_repeated_runs_do_not_leak_state(parameters):
    """libroadrunner's reset() keeps parameters changed by events: a run that ends during an
    infusion must not start the next run with the infusion on, and overrides must not stick."""
    model = moa.symbolic.named_models.pk_model()
    regimen = moa.Regimen("long infusion", (moa.Dose("bsab", 300.0, "mg", 1.0, "infusion", 10.0),))
    sim = SBMLSimulator(export(model, parameters, regimen), **SOLVER_TOL)
    first = sim.run(np.linspace(0, 5, 11))  # ends while the infusion runs
    assert first["infusion_bsab"][-1] > 0
    other = sim.run(np.linspace(0, 5, 11), {"cl_bsab": 0.35, "pdl1_systemic_baseline": 4.0})
    again = sim.run(np.linspace(0, 5, 11))
    assert again["pdl1_systemic"][0] == pytest.approx(parameters["pdl1_systemic_baseline"])
    assert other["pdl1_systemic"][0] == pytest.approx(4.0)  # initial assignment follows the parameter
    for k in first:
        np.testing.assert_array_equal(again[k], first[k])


def test_dose_parameters_change_the_doses(parameters):
    """Dose amounts and times are named parameters: a run that sets them gives what moa gives for
    the changed regimen (second dose doubled and moved from day 21 to day 14)."""
    model = moa.symbolic.named_models.pk_model()
    regimen = moa.every("bsab", 3.0, "mg/kg", 21.0, 42.0)  # doses at 0 and 21
    sim = SBMLSimulator(export(model, parameters, regimen), **SOLVER_TOL)
    assert {"dose0_bsab_amount", "dose1_bsab_amount", "dose_time_0", "dose_time_1"} <= set(sim.defaults)
    times = moa.output_times(30.0, 0.25)
    got = sim.run(times, {"dose1_bsab_amount": 6.0, "dose_time_1": 14.0})
    changed = moa.Regimen("changed", (moa.Dose("bsab", 3.0, "mg/kg", 0.0), moa.Dose("bsab", 6.0, "mg/kg", 14.0)))
    ref = moa.simulate(model, parameters, changed, times=times, solver="LSODA", **SOLVER_TOL)
    diffs = compare_to_moa(ref, got, floor_fraction=FLOOR_FRACTION, abs_floor=ABS_FLOOR)
    assert max(diffs.values()) < RTOL_MATCH, diffs
    unchanged = sim.run(times)  # the overrides do not stick
    assert (
        unchanged["bsab_central"][np.searchsorted(times, 21.0)]
        > unchanged["bsab_central"][np.searchsorted(times, 20.75)]
    )


def _extinction_model() -> tuple[Model, moa.ParameterSet]:
    """A population dying at a constant rate, extinct below one cell."""
    from moa.parameters import ParameterSpec

    m = Mechanism("dying")
    one = m.parameter("extinction_threshold_cells", "cell", "extinct below this")
    k = m.parameter("death_rate", "1/day", "death rate")
    n0 = m.parameter("cells_initial", "cell", "initial population")
    cells = m.species("cells", "cell", "a dying population", initial=n0, extinct_below=one)
    m.term(cells, -k * cells, "death")
    specs = {
        "extinction_threshold_cells": ParameterSpec(
            "extinction_threshold_cells", 1.0, "cell", 1.0, 1.0, "assumed: test"
        ),
        "death_rate": ParameterSpec("death_rate", 1.0, "1/day", 0.5, 2.0, "assumed: test"),
        "cells_initial": ParameterSpec("cells_initial", 1000.0, "cell", 100.0, 1e4, "assumed: test"),
    }
    return Model([m], name="dying"), moa.ParameterSet(specs)


def test_extinction_is_an_event():
    """Below its threshold (1 cell, reached at ln(1000) = 6.9 days) the population is set to 0,
    in libroadrunner by the exported event as in moa.simulate; before that both follow
    1000 exp(-t)."""
    model, ps = _extinction_model()
    text = export(model, ps, None)
    m = libsbml.readSBMLFromString(text).getModel()
    ev = m.getEvent("extinction_cells")
    assert libsbml.formulaToL3String(ev.getTrigger().getMath()) == "cells < extinction_threshold_cells"
    times = moa.output_times(10.0, 0.25)
    got = SBMLSimulator(text, **SOLVER_TOL).run(times)["cells"]
    ref = moa.simulate(model, ps, None, times=times, solver="LSODA", **SOLVER_TOL)["cells"].values
    alive = times < np.log(1000.0)
    np.testing.assert_allclose(got[alive], 1000.0 * np.exp(-times[alive]), rtol=1e-7)
    assert np.all(got[~alive] == 0.0) and np.all(ref[~alive] == 0.0)


def test_hold_and_compartments(parameters):
    model = moa.symbolic.named_models.pk_model()
    text = export(model, parameters, None, hold=["pdl1_systemic"])
    m = libsbml.readSBMLFromString(text).getModel()
    sp = m.getSpecies("pdl1_systemic")
    assert sp.getBoundaryCondition() and sp.getConstant()
    assert "pdl1_systemic" not in {m.getRule(i).getVariable() for i in range(m.getNumRules())}
    assert {s.name: compartment_of(model, s.name) for s in model.species} == {
        "bsab_central": "plasma",
        "bsab_peripheral": "peripheral",
        "pdl1_systemic": "plasma",
        "pdl1_systemic_bsab": "plasma",
    }
    with pytest.raises(ValueError, match="hold=.*not states"):
        export(model, parameters, None, hold=["tumour_cells_sensitive"])
    with pytest.raises(ValueError, match="cannot be dosed"):
        export(model, parameters, moa.every("bsab", 3.0, "mg/kg", 21.0, 42.0), hold=["bsab_central"])
    with pytest.raises(ValueError, match="species 'nope'"):
        compartment_of(model, "nope")


# ----- math printing ----------------------------------------------------------------------
def _function_model(all_functions: bool = True) -> tuple[Model, moa.ParameterSet]:
    """A toy model using a symbolic power, Max, Min, Abs, Heaviside (in an observable) and
    rationals, plus exp, log, sqrt and Piecewise when ``all_functions``, to check that each is
    written to MathML correctly."""
    from moa.parameters import ParameterSpec

    m = Mechanism("functions")
    x = m.species("drug_x", "nM", "a dosed drug")
    y = m.species("effect_y", "1", "a dimensionless effect")
    k = m.parameter("k_elim", "1/day", "elimination")
    ec50 = m.parameter("ec50_x", "nM", "potency")
    hill = m.parameter("hill_x", "1", "Hill coefficient")
    kmax = m.parameter("kmax_y", "1/day", "maximal rate")
    mw = m.parameter("mw_x", "g/mol", "molecular weight")
    vol = m.parameter("vol_x", "L", "volume")
    g_per_mg = m.conversion("g_per_mg", "g/mg")
    nmol_per_mol = m.conversion("nmol_per_mol", "nmol/mol")
    m.term(x, -k * x, "elimination")
    stim = m.expression("stimulus_x", (x / ec50) ** hill / (1 + (x / ec50) ** hill), "1", "Hill stimulus")
    m.term(y, kmax * stim * (1 - y), "saturating activation")
    m.term(y, kmax * sympy.Max(0, sympy.Rational(1, 3) - y) / 10, "floor")
    m.term(y, -kmax * sympy.Min(y, sympy.Abs(1 - 2 * y)) / 20, "min/abs")
    if all_functions:
        m.term(
            y,
            -k * sympy.exp(-y) * sympy.Piecewise((y, y < sympy.Rational(1, 4)), (sympy.sqrt(y) / 2, True)),
            "exp/piecewise/sqrt",
        )
        m.term(y, k * sympy.log(1 + x / ec50) / 50, "log")
    # Heaviside only in an observable: the engine's Jacobian of it would be a DiracDelta
    m.expression("above_threshold_x", sympy.Heaviside(x / ec50 - sympy.Rational(1, 10)), "1", "x above a tenth of EC50")
    m.dose_route("x", x, g_per_mg * nmol_per_mol / (mw * vol))
    model = Model([m], name="functions")
    specs = {
        "k_elim": ParameterSpec("k_elim", 0.3, "1/day", 0.1, 1.0, "assumed: test"),
        "ec50_x": ParameterSpec("ec50_x", 5.0, "nM", 1.0, 50.0, "assumed: test", scale="log"),
        "hill_x": ParameterSpec("hill_x", 1.7, "1", 0.5, 3.0, "assumed: test"),
        "kmax_y": ParameterSpec("kmax_y", 2.0, "1/day", 0.5, 4.0, "assumed: test"),
        "mw_x": ParameterSpec("mw_x", 150000.0, "g/mol", 140000.0, 160000.0, "assumed: test"),
        "vol_x": ParameterSpec("vol_x", 3.0, "L", 2.0, 4.0, "assumed: test"),
        "body_weight": ParameterSpec("body_weight", 70.0, "kg", 45.0, 110.0, "assumed: test"),
    }
    return model, moa.ParameterSet(specs)


def test_function_math_matches_sympy():
    """libroadrunner's rates and observables from the exported MathML equal sympy's evaluation
    of Model.rhs_symbolic and the expressions, at states on both sides of every branch."""
    import roadrunner

    model, ps = _function_model(all_functions=True)
    text = export(model, ps, moa.Regimen("one infusion", (moa.Dose("x", 1.0, "mg/kg", 0.0, "infusion", 1.0),)))
    assert validate(text) == []
    for tag in ("<exp/>", "<ln/>", "<root/>", "<piecewise>", "<abs/>", "<power/>", 'type="rational"'):
        assert tag in text, tag
    rr = roadrunner.RoadRunner(text)
    rr.reset()  # fires the t = 0 event: the infusion is on
    values = {sympy.Symbol(n, real=True): float(ps[n]) for n in model.parameter_names}
    values[sympy.Symbol("infusion_x", real=True)] = rr["infusion_x"]
    assert rr["infusion_x"] == pytest.approx(70.0)
    rhs = model.rhs_symbolic
    observables = {e.name: model.expand(sympy.Symbol(e.name, real=True)) for e in model.expressions}
    for x_val in (0.0, 0.3, 0.5, 40.0):  # 0.5 nM = a tenth of EC50: Heaviside's own value 1/2
        for y_val in (0.0, 0.1, 0.25, 0.3, 0.4, 0.5, 0.8, 1.3):
            rr["drug_x"], rr["effect_y"] = x_val, y_val
            point = {**values, sympy.Symbol("drug_x", real=True): x_val, sympy.Symbol("effect_y", real=True): y_val}
            # rr["drug_x'"] is refused for a species with a rate rule; the rates vector is not
            rates = dict(zip(rr.model.getFloatingSpeciesIds(), rr.getRatesOfChange()))
            for name, expr in zip(model.species_names, rhs):
                assert rates[name] == pytest.approx(float(expr.xreplace(point)), rel=1e-12, abs=1e-14), (
                    name,
                    x_val,
                    y_val,
                )
            for name, expr in observables.items():
                assert rr[name] == pytest.approx(float(expr.xreplace(point)), rel=1e-12, abs=1e-14), (
                    name,
                    x_val,
                    y_val,
                )


def test_function_model_simulation_matches():
    model, ps = _function_model(all_functions=False)  # the engine's numpy printer cannot compile exp/log yet
    regimen = moa.every("x", 0.5, "mg/kg", 7.0, 28.0)
    worst = cross_check(model, ps, regimen, 30.0, 3, seed=4)
    assert max(worst.values()) < RTOL_MATCH, worst


# ----- API errors and file output ------------------------------------------------------------
def test_export_writes_file_and_refuses_bad_input(tmp_path, parameters):
    model = moa.symbolic.named_models.pk_model()
    regimen = moa.every("bsab", 3.0, "mg/kg", 21.0, 42.0)
    path = tmp_path / "sub" / "pk.xml"
    text = export(model, parameters, regimen, path=path)
    assert path.read_text() == text
    assert not [p for p in path.parent.iterdir() if p.name != "pk.xml"]  # no temporary left behind
    assert "<listOfEvents>" not in export(model, parameters, None)
    with pytest.raises(ValueError, match="batch"):
        export(model, parameters.with_values({"cl_bsab": [0.2, 0.3]}), regimen)
    with pytest.raises(ValueError, match="cannot take"):
        export(model, parameters, moa.every("unknown_drug", 1.0, "mg", 7.0, 14.0))
    sim = SBMLSimulator(text)
    with pytest.raises(ValueError, match="not a constant parameter"):
        sim.run([0.0, 1.0], {"bsab_central": 1.0})
    with pytest.raises(ValueError, match="times"):
        sim.run([1.0, 0.5])
