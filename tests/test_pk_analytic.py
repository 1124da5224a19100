"""Dosing against closed-form pharmacokinetics (issue 3, "Must show").

Small test-only models are built with the engine; their closed forms are textbook:
one compartment (bolus, zero-order infusion) and two compartments (bi-exponential).
"""

from __future__ import annotations

import numpy as np
import pytest

import moa
from moa.symbolic import Mechanism, Model
from moa.mechanisms.pharmacokinetics import antibody_two_compartment
from moa.parameters import ParameterSet, ParameterSpec

TIGHT = dict(solver="Radau", rtol=1e-10, atol=1e-14)
CL, V, V2, Q = 0.5, 4.0, 2.5, 1.2  # L/day, L, L, L/day
WEIGHT, BSA = 70.0, 1.8  # kg, m^2


def spec(name: str, value: float, unit: str) -> ParameterSpec:
    return ParameterSpec(name, value, unit, 0.0, 1e9, "test")


def params(**extra: tuple[float, str]) -> ParameterSet:
    base = {
        "cl": (CL, "L/day"),
        "v": (V, "L"),
        "body_weight": (WEIGHT, "kg"),
        "body_surface_area": (BSA, "m^2"),
        **extra,
    }
    return ParameterSet({k: spec(k, v, u) for k, (v, u) in base.items()}, name="test")


def one_compartment() -> Model:
    """Amount-free form: concentration in mg/L, a dose of 1 mg raises it by 1/V."""
    m = Mechanism("one_compartment")
    c = m.species("conc", "mg/L", "drug concentration in plasma")
    cl = m.parameter("cl", "L/day", "clearance")
    v = m.parameter("v", "L", "volume")
    m.term(c, -cl / v * c, "linear clearance")
    m.dose_route("drug", c, 1 / v)
    return Model([m], name="one_compartment")


def two_compartment() -> Model:
    """Concentrations on both sides: the flux q (C1 - C2) [mg/day] enters each side over its own volume."""
    m = Mechanism("two_compartment")
    c1 = m.species("conc", "mg/L", "central concentration")
    c2 = m.species("conc_peripheral", "mg/L", "peripheral concentration")
    cl, v = m.parameter("cl", "L/day", "clearance"), m.parameter("v", "L", "central volume")
    v2, q = m.parameter("v2", "L", "peripheral volume"), m.parameter("q", "L/day", "distribution clearance")
    m.term(c1, -cl / v * c1, "linear clearance")
    m.flow("distribution", q * (c1 - c2) / v, source=c1, target=c2, target_scale=v / v2)
    m.dose_route("drug", c1, 1 / v)
    return Model([m], name="two_compartment")


def bolus_closed_form(t, doses_mg, dose_times, cl=CL, v=V):
    """Superposition of one-compartment boluses; the value at a dose time includes that dose."""
    k = cl / v
    t = np.asarray(t, dtype=float)[:, None]
    given = t >= np.asarray(dose_times)[None, :]
    return np.sum(np.where(given, np.asarray(doses_mg) / v * np.exp(-k * (t - np.asarray(dose_times))), 0.0), axis=1)


def rel_err(got, want):
    return np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300))


@pytest.mark.parametrize(
    "amount, unit, mg", [(100.0, "mg", 100.0), (2.0, "mg/kg", 2.0 * WEIGHT), (50.0, "mg/m^2", 50.0 * BSA)]
)
def test_one_compartment_bolus_matches_exponential(amount, unit, mg):
    t = np.linspace(0.0, 20.0, 81)
    regimen = moa.Regimen("bolus", (moa.Dose("drug", amount, unit, 0.0),))
    ds = moa.simulate(one_compartment(), params(), regimen, times=t, **TIGHT)
    want = mg / V * np.exp(-CL / V * t)
    assert rel_err(ds["conc"].values, want) < 1e-6


def test_one_compartment_infusion_matches_closed_form():
    rate_mg_per_day, start, duration = 30.0, 2.0, 0.5  # a 12 h infusion from day 2
    regimen = moa.Regimen(
        "infusion", (moa.Dose("drug", rate_mg_per_day * duration, "mg", start, "infusion", duration),)
    )
    t = np.linspace(0.0, 10.0, 201)
    ds = moa.simulate(one_compartment(), params(), regimen, times=t, **TIGHT)
    k, end = CL / V, start + duration
    during = rate_mg_per_day / CL * (1 - np.exp(-k * np.clip(t - start, 0, duration)))
    want = np.where(t <= end, during, rate_mg_per_day / CL * (1 - np.exp(-k * duration)) * np.exp(-k * (t - end)))
    after = t > start
    assert np.all(ds["conc"].values[~after] == 0.0)
    assert rel_err(ds["conc"].values[after], want[after]) < 1e-6
    # The infusion must not leak outside its window: peak at the end of the infusion.
    assert t[np.argmax(ds["conc"].values)] == pytest.approx(end)


def test_two_compartment_bolus_matches_biexponential():
    dose_mg = 70.0
    model = two_compartment()
    p = params(v2=(V2, "L"), q=(Q, "L/day"))
    t = np.linspace(0.0, 60.0, 241)
    ds = moa.simulate(model, p, moa.Regimen("bolus", (moa.Dose("drug", dose_mg, "mg", 0.0),)), times=t, **TIGHT)
    k10, k12, k21 = CL / V, Q / V, Q / V2
    s, prod = k10 + k12 + k21, k10 * k21
    alpha, beta = (s + np.sqrt(s * s - 4 * prod)) / 2, (s - np.sqrt(s * s - 4 * prod)) / 2
    want = dose_mg / V * ((alpha - k21) * np.exp(-alpha * t) + (k21 - beta) * np.exp(-beta * t)) / (alpha - beta)
    assert rel_err(ds["conc"].values, want) < 1e-6
    # Peripheral amount D k12 (e^-bt - e^-at)/(a - b), as a concentration over V2.
    want2 = dose_mg / V * k12 * (np.exp(-beta * t) - np.exp(-alpha * t)) / (alpha - beta) * V / V2
    assert rel_err(ds["conc_peripheral"].values[1:], want2[1:]) < 1e-6


def test_antibody_mechanism_two_compartment_with_molecular_weight():
    """The real PK mechanism (nM, mg/kg via body weight and molecular weight) against the closed form."""
    model = Model([antibody_two_compartment("bsab", "test antibody")])
    p = moa.load_parameters()
    regimen = moa.every("bsab", 3.0, "mg/kg", 21.0, 63.0)
    t = np.linspace(0.0, 63.0, 253)
    ds = moa.simulate(model, p, regimen, times=t, **TIGHT)
    cl, v1, v2, q, mw = (p[n] for n in ("cl_bsab", "v1_bsab", "v2_bsab", "q_bsab", "mw_bsab"))
    nM_per_mg = 1e-3 / mw * 1e9 / v1  # mg -> g -> mol -> nmol, per litre of central volume
    k10, k12, k21 = cl / v1, q / v1, q / v2
    s = k10 + k12 + k21
    alpha, beta = (s + np.sqrt(s * s - 4 * k10 * k21)) / 2, (s - np.sqrt(s * s - 4 * k10 * k21)) / 2
    want = np.zeros_like(t)
    for d in regimen.doses:
        tau = np.clip(t - d.time_days, 0, None)
        unit_response = ((alpha - k21) * np.exp(-alpha * tau) + (k21 - beta) * np.exp(-beta * tau)) / (alpha - beta)
        want += np.where(t >= d.time_days, 3.0 * p["body_weight"] * nM_per_mg * unit_response, 0.0)
    assert rel_err(ds["bsab_central"].values, want) < 1e-6


@pytest.mark.parametrize("schedule", ["q3d x30", "d1,8,15 q28 x10"])
def test_every_dose_appears_exactly_at_its_time(schedule):
    """Output at a dose time is the post-dose state; just before it, the pre-dose state. No dose is missed."""
    if schedule == "q3d x30":
        regimen = moa.every("drug", 10.0, "mg", 3.0, 90.0)
    else:
        regimen = moa.cycles("drug", 10.0, "mg", (1, 8, 15), 28.0, 10)
    dose_times = np.array([d.time_days for d in regimen.doses])
    assert len(dose_times) == 30
    eps = 1e-7
    before = dose_times[1:] - eps
    t = np.unique(np.concatenate([dose_times, before, np.linspace(0, dose_times[-1] + 5, 97)]))
    ds = moa.simulate(one_compartment(), params(), regimen, times=t, **TIGHT)
    conc = ds["conc"].sel(time=dose_times).values
    pre = np.concatenate([[0.0], ds["conc"].sel(time=before).values])
    jump = conc - pre
    # Each jump is the full dose, 10 mg / V; decay during eps (k*C*eps ~ 1e-8) is the only slack.
    np.testing.assert_allclose(jump, 10.0 / V, rtol=1e-6)
    # And the whole trajectory (including points between doses) is the superposition.
    assert rel_err(ds["conc"].values[t > 0], bolus_closed_form(t, [10.0] * 30, dose_times)[t > 0]) < 1e-6


def test_doses_between_output_times_are_not_missed():
    """A coarse output grid that never hits a dose time still carries every dose."""
    regimen = moa.every("drug", 10.0, "mg", 0.7, 21.0)  # 30 doses, none on the weekly grid but the first
    t = np.arange(0.0, 29.0, 7.0)
    ds = moa.simulate(one_compartment(), params(), regimen, times=t, **TIGHT)
    dose_times = [d.time_days for d in regimen.doses]
    assert rel_err(ds["conc"].values, bolus_closed_form(t, [10.0] * len(dose_times), dose_times)) < 1e-6
