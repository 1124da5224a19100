"""Doses after the end of a run, and dense regimens (issue 10, items 3 and 4).

A run gives only the doses within it (the rest: a DoseWarning and ``attrs['doses_not_given']``),
refuses a regimen none of whose doses it gives, refuses schedules beyond ``moa.regimen.MAX_DOSES``
before allocating them, and handles doses in time linear in their number.
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from test_pk_analytic import CL, TIGHT, V, bolus_closed_form, one_compartment, params

from moa.codegen import compile_model
import moa
from moa.errors import DoseWarning
from moa.regimen import cycles, every, regimen_from_table
from moa.solvers.base import SegmentResult

simulate_module = sys.modules["moa.simulate"]  # the module; ``moa.simulate`` is the function


class ClosedFormOneCompartment:
    """A test-only backend for ``one_compartment()`` dosed by bolus: conc(t) = conc(t0) exp(-cl/v (t - t0)).

    Exact and a few numpy operations per segment, so a timing with it measures simulate's own work
    per dose (where the O(doses^2) scan was), not a solver's step control.
    """

    name = "closed-form one compartment (test)"

    def __init__(self, model):
        names = list(compile_model(model).parameter_names)
        self.cl_row, self.v_row = names.index("cl"), names.index("v")

    def integrate(self, compiled, t0, t1, Y0, P, t_out, rtol, atol) -> SegmentResult:
        k_per_day = P[self.cl_row] / P[self.v_row]  # (N,)
        y = Y0[None] * np.exp(-k_per_day * (np.asarray(t_out, dtype=float) - t0)[:, None, None])
        N = Y0.shape[1]
        return SegmentResult(y, Y0 * np.exp(-k_per_day * (t1 - t0)), np.zeros(N, int), [""] * N, np.zeros(N, int))


def dose_attrs(ds) -> tuple[list, dict]:
    return json.loads(ds.attrs["doses"]), json.loads(ds.attrs["doses_not_given"])


# ---- item 3: doses after the end -------------------------------------------------------------


def test_dose_after_the_end_warns_and_is_left_out_of_result_and_provenance():
    regimen = moa.Regimen("late", (moa.Dose("drug", 10.0, "mg", 0.0), moa.Dose("drug", 10.0, "mg", 500.0)))
    t = np.linspace(0.0, 365.0, 74)
    with pytest.warns(
        DoseWarning, match=r"'late': 1 of 2 doses \(drug\) fall after the end of the run at day 365.*first at day 500"
    ):
        ds = moa.simulate(one_compartment(), params(), regimen, times=t, **TIGHT)
    given, not_given = dose_attrs(ds)
    assert [d[3] for d in given] == [0.0]
    assert not_given == {"count": 1, "drugs": ["drug"], "first_time_days": 500.0, "infusions_cut_at_end": []}
    assert np.max(np.abs(ds["conc"].values - bolus_closed_form(t, [10.0], [0.0]))) < 1e-6 * 10.0 / V


def test_q3w_to_day_730_in_a_365_day_run_gives_18_and_records_17():
    regimen = every("drug", 10.0, "mg", interval_days=21.0, until_days=730.0)
    # days 0, 21, ..., 714: 35 doses; days 0..357 (18 doses) lie within 365, days 378..714 (17) after it
    assert len(regimen.doses) == 35
    with pytest.warns(DoseWarning, match=r"17 of 35 doses .* first at day 378"):
        ds = moa.simulate(one_compartment(), params(), regimen, duration_days=365.0, solver="LSODA")
    given, not_given = dose_attrs(ds)
    assert [d[3] for d in given] == [21.0 * i for i in range(18)]
    assert (not_given["count"], not_given["first_time_days"]) == (17, 378.0)


def test_no_warning_and_an_empty_record_when_every_dose_is_given():
    regimen = moa.Regimen(
        "ends on the last day", (moa.Dose("drug", 10.0, "mg", 0.0), moa.Dose("drug", 10.0, "mg", 10.0))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DoseWarning)
        ds = moa.simulate(one_compartment(), params(), regimen, duration_days=10.0, **TIGHT)
    given, not_given = dose_attrs(ds)
    assert [d[3] for d in given] == [0.0, 10.0]  # a bolus exactly at the end is given (and in the last output)
    assert not_given["count"] == 0
    assert ds["conc"].values[-1] == pytest.approx(bolus_closed_form([10.0], [10.0, 10.0], [0.0, 10.0])[0], rel=1e-6)


def test_regimen_with_every_dose_after_the_end_is_refused():
    regimen = moa.Regimen("all late", (moa.Dose("drug", 10.0, "mg", 500.0),))
    with pytest.raises(
        ValueError,
        match=r"'all late': no dose falls within the run.*first dose is at day 500.*ends at day 365.*regimen=None",
    ):
        moa.simulate(one_compartment(), params(), regimen, duration_days=365.0)


def test_infusion_running_past_the_end_is_given_up_to_it_and_recorded():
    """A 2-day infusion from day 9 in a 10-day run: the first day of it is given, at the scheduled rate."""
    rate_mg_per_day, start, duration = 30.0, 9.0, 2.0
    infusion = moa.Dose("drug", rate_mg_per_day * duration, "mg", start, "infusion", duration)
    late = moa.Dose("drug", 5.0, "mg", 10.0, "infusion", 1.0)  # starts at the end: gives nothing
    t = np.linspace(0.0, 10.0, 41)
    with pytest.warns(
        DoseWarning,
        match=r"1 of 2 doses.*first at day 10; 1 infusion\(s\) \(drug\) run past day 10 and are given only up to it",
    ):
        ds = moa.simulate(one_compartment(), params(), moa.Regimen("cut", (infusion, late)), times=t, **TIGHT)
    given, not_given = dose_attrs(ds)
    assert given == [["drug", 30.0, "mg", 9.0, "infusion", 1.0]]  # the part given: one day at 30 mg/day
    assert not_given["infusions_cut_at_end"] == [["drug", 60.0, "mg", 9.0, 2.0]]
    k = CL / V
    want = rate_mg_per_day / CL * (1 - np.exp(-k * np.clip(t - start, 0.0, None)))
    assert np.max(np.abs(ds["conc"].values - want)) < 1e-6 * np.max(want)


def test_overlapping_and_nested_infusions_with_boluses_match_superposition():
    """Infusions that end in another order than they start (nested), two at once, and boluses inside them."""
    infusions = [(0.0, 10.0, 20.0), (2.0, 2.0, 50.0), (3.0, 4.0, 10.0)]  # start day, duration days, rate mg/day
    boluses = [(0.0, 40.0), (3.0, 25.0), (12.0, 15.0)]  # day, mg
    regimen = moa.Regimen(
        "mixed",
        tuple(moa.Dose("drug", r * d, "mg", s, "infusion", d) for s, d, r in infusions)
        + tuple(moa.Dose("drug", mg, "mg", s) for s, mg in boluses),
    )
    t = np.linspace(0.0, 20.0, 161)
    ds = moa.simulate(one_compartment(), params(), regimen, times=t, **TIGHT)
    k = CL / V
    want = bolus_closed_form(t, [mg for _, mg in boluses], [s for s, _ in boluses])
    for s, d, r in infusions:
        on = np.clip(t - s, 0.0, d)  # days infused so far
        want += r / CL * (1 - np.exp(-k * on)) * np.exp(-k * np.clip(t - s - d, 0.0, None))
    assert np.max(np.abs(ds["conc"].values - want)) < 1e-6 * np.max(want)


# ---- item 4: bounded and linear --------------------------------------------------------------


def test_every_with_a_microsecond_interval_is_refused_before_allocating():
    tracemalloc.start()
    try:
        with pytest.raises(
            ValueError, match=r"interval_days=1e-06 .*until_days=365.*365,000,000 doses.*MAX_DOSES=1,000,000"
        ):
            every("drug", 1.0, "mg", interval_days=1e-6, until_days=365.0)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < 1_000_000  # the 365 million times were never made (they would take 2.9 GB)


def test_other_dose_counts_beyond_the_limit_are_refused():
    with pytest.raises(ValueError, match=r"n_cycles=400000 with 3 dose day\(s\).*1,200,000 doses.*MAX_DOSES"):
        cycles("drug", 1.0, "mg", (1, 8, 15), 28.0, 400_000)
    table = {"dose": [{"drug": "drug", "amount": 1.0, "unit": "mg", "interval_days": 1e-4}]}
    with pytest.raises(ValueError, match=r"regimen 'dense' dose 0: interval_days=0.0001 .*3,650,000 doses"):
        regimen_from_table("dense", table, until_days=365.0)
    with pytest.raises(ValueError, match=r"until_days=inf"):
        every("drug", 1.0, "mg", interval_days=1.0, until_days=float("inf"))


def test_regimen_and_segment_limits_are_checked(monkeypatch):
    monkeypatch.setattr("moa.regimen.MAX_DOSES", 5)
    assert len(every("drug", 1.0, "mg", interval_days=1.0, until_days=5.0).doses) == 5  # days 0..4: at the limit
    with pytest.raises(ValueError, match=r"interval_days=1.0 .*would make 6 doses; at most moa.regimen.MAX_DOSES=5"):
        every("drug", 1.0, "mg", interval_days=1.0, until_days=5.5)
    with pytest.raises(ValueError, match=r"regimen 'six' holds 6 doses; at most moa.regimen.MAX_DOSES=5"):
        moa.Regimen("six", tuple(moa.Dose("drug", 1.0, "mg", float(i)) for i in range(6)))
    monkeypatch.setattr(simulate_module, "MAX_SEGMENTS", 5)
    # 3 infusions: starts 0, 2, 4 and ends 1, 3, 5 cut a 6-day run into 6 segments
    regimen = moa.Regimen("infusions", tuple(moa.Dose("drug", 1.0, "mg", 2.0 * i, "infusion", 1.0) for i in range(3)))
    with pytest.raises(ValueError, match=r"'infusions' cuts the run into 6 solver segments.*MAX_SEGMENTS=5"):
        moa.simulate(one_compartment(), params(), regimen, duration_days=6.0)


def test_dose_handling_takes_time_linear_in_the_number_of_doses():
    """Daily boluses for 10,000 and 100,000 days: the time per dose stays within 2x (a scan of all doses
    per segment made it grow tenfold); the end state is the geometric sum of the doses.

    Time is this process's CPU time (``time.process_time``), which other work on a shared machine
    disturbs far less than wall time; the 10,000-dose run is the best of three.
    """
    model, p = one_compartment(), params()
    solver = ClosedFormOneCompartment(model)
    decay = np.exp(-CL / V)  # per day

    regimens = {n: every("drug", 1.0, "mg", interval_days=1.0, until_days=float(n)) for n in (10_000, 100_000)}

    def cpu_seconds_per_dose(n_doses: int) -> float:
        start = time.process_time()
        ds = moa.simulate(model, p, regimens[n_doses], times=[0.0, float(n_doses)], solver=solver)
        seconds = time.process_time() - start
        # doses on days 0 .. n-1, read on day n: (1/V) (e^-k + e^-2k + ... + e^-nk)
        assert ds["conc"].values[-1] == pytest.approx(decay * (1 - decay**n_doses) / (1 - decay) / V, rel=1e-9)
        return seconds / n_doses

    small = min(cpu_seconds_per_dose(10_000) for _ in range(3))
    large = cpu_seconds_per_dose(100_000)
    assert large / small < 2.0, (
        f"CPU time per dose grew {large / small:.2f}x from 10,000 to 100,000 doses ({small:.2e} -> {large:.2e} s)"
    )
