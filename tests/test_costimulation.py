"""Issue 14: 4-1BB is induced by antigen, Tregs and suppressive myeloid cells, what makes a
tumour cold.

Each check is paired with the case in which it must fail, so that it cannot pass by
construction (antigen present: 4-1BB agonism does expand effectors; a depleting agonist
lowers Tregs where an expanding one raises them).
"""

from __future__ import annotations


import numpy as np
import pytest
import scipy.integrate
import sympy

from moa.codegen import compile_model
import moa
from moa.symbolic.named_models import full_model
from moa.errors import UnitError
from moa.scenarios import SETTING_ORDER, load_settings, scenario

from model_edits import with_term_replaced

YEAR = 365.0


@pytest.fixture(scope="module")
def model():
    return full_model()


def _run(model, arm, setting, days=YEAR, **values):
    params, regimen = scenario(arm, setting, duration_days=days)
    if values:
        params = params.with_values(values)
    ds = moa.simulate(model, params, regimen, duration_days=days)
    assert int(ds.status) == 0, str(ds.message.values)
    return ds


def _peak_fold(ds, ref, name="t_eff"):
    return float((ds[name] / ref[name]).max())


# ----- 1. 4-1BB is induced: costimulation needs antigen --------------------------------------
@pytest.mark.parametrize("setting", ["cold", "hot_tnbc"])
def test_costimulation_needs_antigen(model, setting):
    """With antigenicity 0 no 4-1BB is induced on CD8 T cells: neither the agonist nor the
    bispecific expands tumour effectors more than 2-fold over untreated (the bispecific keeps
    its PD-L1 blockade, which acts through Tpex)."""
    untreated = _run(model, "untreated", setting, antigenicity=0.0)
    for arm in ("a41bb", "bsab_2x2"):
        treated = _run(model, arm, setting, antigenicity=0.0)
        assert _peak_fold(treated, untreated) <= 2.0, arm
        assert float(treated["cd137_costimulation"].max()) < 1e-6, arm


def test_costimulation_check_fails_when_antigen_is_seen(model):
    """The same check fails in hot TNBC with its antigenicity: the agonist expands effectors."""
    untreated, agonist = _run(model, "untreated", "hot_tnbc"), _run(model, "a41bb", "hot_tnbc")
    assert _peak_fold(agonist, untreated) > 2.0


def _rhs_solution(model, params, changes, days):
    """Integrate the model's own rhs from its initial state with some species changed."""
    compiled = compile_model(model)
    p = np.concatenate([params.matrix(model.parameter_names)[:, 0], np.zeros(len(model.inputs))])
    y0 = compiled.initial_T(p[:, None])[:, 0].copy()
    names = model.species_names
    for name, value in changes.items():
        y0[names.index(name)] = value
    sol = scipy.integrate.solve_ivp(
        lambda t, y: compiled.rhs(t, y[None], p[None])[0],
        (0.0, days),
        y0,
        method="LSODA",
        rtol=1e-8,
        atol=1e-12,
        dense_output=True,
    )
    assert sol.success, sol.message
    return sol, names.index("cd137_induction_cd8")


def test_cd137_expression_rises_with_antigen_and_decays_without_it_with_the_stated_lag(model):
    """4-1BB expression is first order in antigen recognition with the time constant
    ``cd137_expression_lag`` from models/: from none, it reaches 1 - 1/e of the recognition
    level after one lag; without recognition (antigenicity 0) it falls to 1/e after one lag."""
    params, _ = scenario("untreated", "hot_tnbc")
    lag = float(params["cd137_expression_lag"])
    assert params.specs["cd137_expression_lag"].unit == "day" and 0.5 <= lag <= 2.0  # CD137 within a day (Wolfl 2007)
    recognition = float(_run(model, "untreated", "hot_tnbc", days=1.0)["antigen_recognition"][0])
    assert recognition > 0.9
    sol, i = _rhs_solution(model, params, {"cd137_induction_cd8": 0.0}, 5 * lag)
    assert sol.sol(0.0)[i] == 0.0
    assert sol.sol(lag)[i] == pytest.approx(recognition * (1 - np.exp(-1)), rel=0.01)
    assert sol.sol(5 * lag)[i] == pytest.approx(recognition, rel=0.01)
    silent = params.with_values({"antigenicity": 0.0})
    sol, i = _rhs_solution(model, silent, {"cd137_induction_cd8": 1.0}, 5 * lag)
    assert sol.sol(lag)[i] == pytest.approx(np.exp(-1), rel=1e-3)
    assert sol.sol(5 * lag)[i] < 0.01


# ----- 2. regulatory T cells ----------------------------------------------------------------
def test_removing_tregs_raises_effector_killing(model):
    with_tregs = _run(model, "untreated", "hot_tnbc", days=84.0)
    without = _run(model, "untreated", "hot_tnbc", days=84.0, treg_density=0.0)
    assert float(without["t_reg"].max()) == 0.0
    kill_per_effector = lambda ds: ds["immune_kill_rate"] / ds["t_eff"]  # noqa: E731
    assert np.all(kill_per_effector(without).values > kill_per_effector(with_tregs).values)
    assert float(without["tumour_cells"][-1]) < float(with_tregs["tumour_cells"][-1])


def test_4_1bb_agonist_acts_on_tregs_in_the_direction_of_its_source(model):
    """Default (FcgammaR-independent agonist): 4-1BB signal lowers Treg loss, so the agonist
    raises tumour Tregs (Zheng 2004, Elpek 2007). A depleting (Fc-competent) agonist, loss
    factor > 1, lowers them (Buchan 2018)."""
    params, _ = scenario("a41bb", "hot_tnbc")
    factor = float(params["cd137_treg_loss_factor"])
    assert factor < 1 and "Zheng 2004" in params.specs["cd137_treg_loss_factor"].source
    untreated, agonist = _run(model, "untreated", "hot_tnbc", days=84.0), _run(model, "a41bb", "hot_tnbc", days=84.0)
    assert float((agonist["t_reg"] / untreated["t_reg"]).max()) > 1.1
    depleting = _run(model, "a41bb", "hot_tnbc", days=84.0, cd137_treg_loss_factor=3.0)
    untreated_d = _run(model, "untreated", "hot_tnbc", days=84.0, cd137_treg_loss_factor=3.0)
    assert float((depleting["t_reg"] / untreated_d["t_reg"]).min()) < 0.9


# ----- 3. suppressive myeloid cells ---------------------------------------------------------
def test_removing_myeloid_cells_raises_effector_function(model):
    with_myeloid = _run(model, "untreated", "cold", days=84.0)
    without = _run(model, "untreated", "cold", days=84.0, myeloid_density=0.0)
    assert np.all(without["effector_function"].values > with_myeloid["effector_function"].values)
    assert float(without["myeloid_suppression"].max()) == 0.0
    assert float(with_myeloid["myeloid_suppression"].min()) > 0.1


def test_myeloid_pdl1_anchor_is_counted_once(model):
    """The myeloid PD-L1 in the binding mechanism's target is exactly PD-L1 per myeloid cell x
    myeloid cells per interstitial volume, and no separate myeloid PD-L1 parameter remains."""
    assert "pdl1_myeloid_nM" not in model.parameter_names
    assert "pdl1_myeloid_nM" in [e.name for e in model.expressions]
    with_myeloid = _run(model, "untreated", "hot_tnbc", days=21.0)
    without = _run(model, "untreated", "hot_tnbc", days=21.0, myeloid_density=0.0)
    params, _ = scenario("untreated", "hot_tnbc")
    molecules_per_nmol_per_l_to_ml = 6.02214076e14 / 1000.0
    expected = (
        float(params["pdl1_per_myeloid_cell"])
        * with_myeloid["myeloid_cells"]
        / with_myeloid["tumour_interstitial_volume"]
        / molecules_per_nmol_per_l_to_ml
    )
    np.testing.assert_allclose(with_myeloid["pdl1_myeloid_nM"].values, expected.values, rtol=1e-9)
    np.testing.assert_allclose(
        with_myeloid["pdl1_target"].values[0] - without["pdl1_target"].values[0], expected.values[0], rtol=1e-9
    )
    assert float(without["pdl1_myeloid_nM"].max()) == 0.0


# ----- 4. what makes a tumour cold ----------------------------------------------------------
def test_settings_differ_only_by_their_named_levers_and_initial_state():
    """Every value a setting sets is one of its levers or its state at the first dose
    (``initial_*``), and any two settings differ only in those."""
    settings = load_settings()
    for name, s in settings.items():
        assert s.levers, name
        extra = [k for k in s.values if k not in s.levers and not k.startswith("initial_")]
        assert extra == [], (name, extra)
    for a in SETTING_ORDER:
        for b in SETTING_ORDER:
            pa, pb = scenario("untreated", a)[0], scenario("untreated", b)[0]
            differ = {k for k in pa if float(pa[k]) != float(pb[k])}
            allowed = (
                set(settings[a].levers) | set(settings[b].levers) | {k for k in differ if k.startswith("initial_")}
            )
            assert differ <= allowed, (a, b, differ - allowed)
    cold = settings["cold"]
    for lever in ("antigenicity", "infiltration_rate", "treg_density", "myeloid_density"):
        assert lever in cold.levers


def test_a_lever_not_set_by_its_setting_is_refused(tmp_path):
    from moa.parameters import MODELS_DIR

    models = tmp_path / "models"
    (models / "parameters").mkdir(parents=True)
    for f in (MODELS_DIR / "parameters").glob("*.toml"):
        (models / "parameters" / f.name).write_text(f.read_text())
    text = (
        (MODELS_DIR / "settings.toml")
        .read_text()
        .replace(
            'levers = ["antigenicity", "infiltration_rate", "pdl1_per',
            'levers = ["kill_rate_max", "infiltration_rate", "pdl1_per',
            1,
        )
    )
    (models / "settings.toml").write_text(text)
    with pytest.raises(ValueError, match="levers="):
        load_settings(models)


# ----- units ---------------------------------------------------------------------------------
NEW_TERMS = [
    ("regulatory_t_cells", "recruitment (braked by T-cell packing)"),
    ("regulatory_t_cells", "loss, changed by 4-1BB signal"),
    ("suppressive_myeloid_cells", "recruitment and turnover"),
    ("t_cells", "induction by antigen recognition, loss without it"),
]


@pytest.mark.parametrize("mechanism, label", NEW_TERMS)
def test_unit_check_covers_the_new_terms(model, mechanism, label):
    """Each new term is checked: dividing it by a rate constant is refused, naming the term."""
    kdeg = sympy.Symbol("kdeg_pdl1", real=True)
    out = with_term_replaced(model, mechanism, label, lambda e: e / kdeg)
    with pytest.raises(UnitError, match=label.split(" (")[0]):
        moa.Model(out)
