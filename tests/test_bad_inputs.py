"""Every bad input in the catalogue (tests/bad_inputs.py) is refused with its error and writes nothing;
docs/reliability.md is what the catalogue generates; numpy scalars count as numbers (issue 10, item 8)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bad_inputs import (
    CASES,
    DOC_PATH,
    EXIT_USAGE,
    GROUPS,
    Refusal,
    _batched_decay,
    files_under,
    prepare,
    refuse,
    refusals,
    reliability_md,
)

import moa
from moa.parameters import ParameterSpec
from moa.scenarios import scenario


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_and_writes_nothing(case, tmp_path):
    before = prepare(case, tmp_path)
    got = refuse(case, tmp_path)
    assert got.error == case.error, got
    assert case.says in got.message, got
    assert files_under(tmp_path) == before, f"{case.id} wrote {sorted(files_under(tmp_path) - before)}"


def test_catalogue_covers_api_and_command_line():
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids) >= 60
    assert sum(c.argv is not None for c in CASES) >= 15 and sum(c.call is not None for c in CASES) >= 60
    assert all((c.argv is None) != (c.call is None) for c in CASES)
    assert all(c.group in GROUPS for c in CASES) and {c.group for c in CASES} == set(GROUPS)
    assert all(c.error == EXIT_USAGE for c in CASES if c.argv is not None)


def test_an_accepted_input_fails_the_catalogue(tmp_path):
    """The runner cannot pass a case whose input moa takes."""
    accepted = CASES[0].__class__(
        "accepted", GROUPS[0], "a good dose", "ValueError", "", lambda tmp: moa.Dose("bsab", 1.0, "mg", 0.0)
    )
    with pytest.raises(AssertionError, match="accepted"):
        refuse(accepted, tmp_path)


@pytest.fixture(scope="module")
def generated() -> tuple[dict, str]:
    got = refusals()
    return got, reliability_md(CASES, got)


def test_reliability_doc_is_not_stale(generated):
    assert DOC_PATH.exists(), "docs/reliability.md missing: run python tests/bad_inputs.py --write-docs"
    assert DOC_PATH.read_text() == generated[1], (
        "docs/reliability.md is stale: run python tests/bad_inputs.py --write-docs"
    )


def test_reliability_doc_shows_each_case_and_detects_a_changed_message(generated):
    got, text = generated
    for case in CASES:
        assert f"`{case.id}`" in text and got[case.id].message.replace("|", "\\|") in text, case.id
    assert "<tmp>" in text and "/tmp/" not in text and " at 0x" not in text  # deterministic
    first = CASES[0].id
    changed = dict(got) | {first: Refusal(got[first].error, got[first].message + " (reworded)")}
    assert reliability_md(CASES, changed) != text


# ----- numpy scalars are numbers --------------------------------------------------------------------
def test_numpy_scalars_are_accepted_in_doses_and_schedules():
    dose = moa.Dose("bsab", np.int64(3), "mg/kg", np.float32(7.0))
    assert dose.amount_mg({"body_weight": 70.0}) == 210.0
    infusion = moa.Dose("bsab", np.float32(1.5), "mg", np.int64(0), "infusion", np.float64(0.5))
    assert infusion.end_days == 0.5
    assert len(moa.every("bsab", np.int64(3), "mg", np.float32(7.0), np.int64(28)).doses) == 4
    assert len(moa.cycles("bsab", 1.0, "mg", (1, 8), 21.0, np.int64(3)).doses) == 6


def test_numpy_scalars_are_accepted_by_simulate_and_scenario():
    spec = ParameterSpec("k", np.float32(0.25), "1/day", np.int64(0), np.float64(1.0), "test")
    params = moa.ParameterSet({"k": spec, "x0": ParameterSpec("x0", 2.0, "nM", 0.0, 10.0, "test")})
    m = moa.Mechanism("decay")
    x = m.species("x", "nM", "decaying species", initial=m.parameter("x0", "nM", "initial amount"))
    m.term(x, -m.parameter("k", "1/day", "decay rate") * x, "first-order decay")
    ds = moa.simulate(
        moa.Model([m]),
        params,
        duration_days=np.int64(4),
        rtol=np.float32(1e-8),
        atol=np.float64(1e-12),
        pre_equilibrate_days=np.int64(0),
        solver="LSODA",
    )
    np.testing.assert_allclose(ds["x"].values, 2.0 * np.exp(-0.25 * np.arange(5)), rtol=1e-6)
    assert ds.attrs["rtol"] == float(np.float32(1e-8)) and type(ds.attrs["rtol"]) is float
    _, regimen = scenario("bsab_2x2", "cold", duration_days=np.int64(42))
    assert [d.time_days for d in regimen.doses] == [0.0, 21.0]


def test_numpy_scalar_doses_reach_the_provenance_as_plain_numbers():
    from moa.symbolic.named_models import pk_model

    regimen = moa.Regimen("np", (moa.Dose("bsab", np.int64(3), "mg/kg", np.float32(0.0)),))
    assert type(regimen.doses[0].amount) is float
    ds = moa.simulate(pk_model("bsab"), moa.load_parameters(), regimen, duration_days=np.int64(2), solver="LSODA")
    assert json.loads(ds.attrs["doses"]) == [["bsab", 3.0, "mg/kg", 0.0, "bolus", 0.0]]


def test_solver_failure_message_stays_short_with_many_sets_and_parameters():
    """40 swept parameters and 3 failing sets of 4: one reason, a few values, where the rest is."""
    model, params = _batched_decay(40, [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(moa.SimulationError) as err:
        moa.simulate(model, params, duration_days=5.0, solver="LSODA")
    message = str(err.value)
    assert len(message) < 800, len(message)
    assert "parameter set 1 of 4" in message and "k=1" in message and "(41 swept)" in message
    assert "2 other set(s) of 4 failed too" in message and "on_failure='record'" in message
    assert "unused_rate_39" not in message
