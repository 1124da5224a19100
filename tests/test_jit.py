"""The compiled Rodas4 (moa.solvers.rodas4.numba_kernels, numba): known answers, order of convergence, agreement with
the numpy backend step for step, and failures reported per trajectory."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from moa.codegen import compile_model
from moa.solvers.rodas4 import numba_kernels as jit
from moa.solvers.rodas4 import integrate_batch
from robertson_problem import (
    ROB_ATOL,
    ROB_COLS,
    ROB_ROWS,
    ROB_Y0,
    rob_jac,
    rob_output_times,
    rob_params,
    rob_radau_errors,
    rob_rhs,
)

pytestmark = pytest.mark.skipif(not jit.available(), reason="numba not installed (pip install 'moa[fast]')")

Y1, Y2, Y3 = sp.symbols("y1 y2 y3")
K1, K2, K3 = sp.symbols("k1 k2 k3")
ROB = [-K1 * Y1 + K3 * Y2 * Y3, K1 * Y1 - K2 * Y2**2 - K3 * Y2 * Y3, K2 * Y2**2]


@pytest.fixture(scope="module")
def robertson():
    return jit.kernels(ROB, [Y1, Y2, Y3], [K1, K2, K3])


@pytest.mark.parametrize("dense_output", [True, False])
def test_step_for_step_equal_to_numpy_backend(robertson, dense_output):
    """The sympy-generated compiled kernels against the hand-written numpy Robertson."""
    N, t1 = 6, 4e5
    P = rob_params(N, seed=3)
    Y0 = np.tile(ROB_Y0, (1, N))
    t_out = rob_output_times(t1)
    kw = dict(rtol=1e-6, atol=ROB_ATOL, dense_output=dense_output)
    a = jit.integrate_batch_jit(robertson, 0.0, t1, Y0, P, t_out, **kw)
    b = integrate_batch(rob_rhs, rob_jac, ROB_ROWS, ROB_COLS, 0.0, t1, Y0, P, t_out, **kw)
    assert (a.status == 0).all() and (b.status == 0).all()
    np.testing.assert_array_equal(a.n_steps, b.n_steps)
    np.testing.assert_array_equal(a.n_rejected, b.n_rejected)
    assert len(set(a.n_steps.tolist())) > 1  # trajectories took their own step sequences
    np.testing.assert_allclose(a.y, b.y, rtol=1e-10, atol=1e-22)
    np.testing.assert_allclose(a.h_last, b.h_last, rtol=1e-5)  # the controller amplifies rounding
    np.testing.assert_allclose(a.y.sum(axis=1), 1.0, atol=1e-12)  # linear invariant
    np.testing.assert_array_equal(a.y[0], Y0)


def test_robertson_against_radau(robertson):
    N, t1 = 3, 4e5
    P = rob_params(N)
    t_out = rob_output_times(t1, n_log=20)
    res = jit.integrate_batch_jit(robertson, 0.0, t1, np.tile(ROB_Y0, (1, N)), P, t_out, rtol=1e-6, atol=ROB_ATOL)
    assert (res.status == 0).all(), res.message
    errs = rob_radau_errors(res.y, P, t1, t_out)
    assert errs.max() < 1e-4, errs


@pytest.mark.parametrize("dense_output", [True, False])
def test_linear_system_matches_expm(dense_output):
    n, N, rtol = 3, 4, 1e-6
    y = sp.symbols(f"y0:{n}")
    a = sp.symbols(f"a0:{n * n}")
    rhs = [sum(a[i * n + j] * y[j] for j in range(n)) for i in range(n)]
    k = jit.kernels(rhs, y, a)
    rng = np.random.default_rng(42)
    As = [-np.diag(rng.uniform(0.5, 5.0, n)) + 0.3 * rng.normal(size=(n, n)) for _ in range(N)]
    As[-1][0, 0] = -1e4  # one stiff trajectory
    P = np.stack([A.ravel() for A in As], axis=1)
    y0 = rng.uniform(0.5, 2.0, size=(n, N))
    t_out = np.linspace(0.0, 3.0, 61)
    res = jit.integrate_batch_jit(k, 0.0, 3.0, y0, P, t_out, rtol=rtol, atol=1e-12, dense_output=dense_output)
    assert (res.status == 0).all()
    for j in range(N):
        exact = np.stack([expm(As[j] * t) @ y0[:, j] for t in t_out])
        err = np.abs(res.y[:, :, j] - exact).max(axis=1) / np.abs(exact).max(axis=1)
        assert err.max() < 10 * rtol, (j, err.max())
    np.testing.assert_array_equal(res.y[-1], res.y_final)


def test_fixed_step_order_is_four():
    mu = sp.Symbol("mu")
    k = jit.kernels([Y2, mu * (1 - Y1**2) * Y2 - Y1], [Y1, Y2], [mu])
    y0, P, T = np.array([[2.0], [0.0]]), np.array([[1.0]]), 2.0
    ref = solve_ivp(
        lambda t, y: [y[1], (1 - y[0] ** 2) * y[1] - y[0]],
        (0, T),
        y0[:, 0],
        method="DOP853",
        rtol=1e-13,
        atol=1e-14,
        dense_output=True,
    )
    t_out = np.linspace(0.0, T, 11)
    t_mid = np.linspace(0.0125, T - 0.0125, 80)
    errs, errs_mid = [], []
    for h in (0.1, 0.05, 0.025):
        res = jit.integrate_batch_jit(k, 0.0, T, y0, P, t_out, fixed_step=h)
        assert res.n_steps[0] == round(T / h)
        errs.append(np.abs(res.y[:, :, 0] - ref.sol(t_out).T).max())
        res = jit.integrate_batch_jit(k, 0.0, T, y0, P, t_mid, fixed_step=h)
        errs_mid.append(np.abs(res.y[:, :, 0] - ref.sol(t_mid).T).max())
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 3.5) & (orders < 4.6)), orders
    assert np.all(np.log2(np.array(errs_mid[:-1]) / np.array(errs_mid[1:])) > 2.7)


def test_failures_are_isolated_and_reported():
    """y1' = p y1^2 blows up at t = 1/p (p > 0); p = NaN fails at t0; the others finish exactly."""
    p = sp.Symbol("p")
    k = jit.kernels([p * Y1**2, -Y2], [Y1, Y2], [p])
    P = np.array([[-1.0, 8.0, np.nan, -0.5]])
    y0 = np.ones((2, 4))
    t_out = np.linspace(0.0, 2.0, 21)
    res = jit.integrate_batch_jit(k, 0.0, 2.0, y0, P, t_out, rtol=1e-7, atol=1e-12)
    assert res.status.tolist()[0] == 0 and res.status[3] == 0 and res.message[0] == ""
    assert res.status[1] in (1, 2) and "t=" in res.message[1]
    assert 0.12 < res.t_reached[1] <= 0.125 + 1e-6
    assert np.isnan(res.y[2:, :, 1]).all()
    assert res.status[2] == 1 and "non-finite initial" in res.message[2]
    assert np.isnan(res.y[1:, :, 2]).all()
    for j, pj in ((0, -1.0), (3, -0.5)):
        np.testing.assert_allclose(res.y[:, 0, j], 1.0 / (1.0 - pj * t_out), rtol=1e-6)
        np.testing.assert_allclose(res.y[:, 1, j], np.exp(-t_out), rtol=1e-6)
    starved = jit.integrate_batch_jit(k, 0.0, 2.0, y0[:, :1], P[:, :1], t_out, max_steps=5)
    assert starved.status[0] == 3 and "max_steps=5" in starved.message[0] and starved.t_reached[0] < 2.0


def test_large_multiplier_falls_back_to_pivoted_solve():
    """y1' = 0, y2' = g y1 - y2 with g = 1e12: the unpivoted elimination of c I - J has a multiplier
    ~g/c >> 1e8, so each step uses the pivoted dense LU; y2 = g y1 (1 - exp(-t)) exactly."""
    g = sp.Symbol("g")
    k = jit.kernels([sp.Integer(0) * Y1, g * Y1 - Y2], [Y1, Y2], [g])
    t_out = np.linspace(0.0, 3.0, 7)
    res = jit.integrate_batch_jit(
        k, 0.0, 3.0, np.array([[1e-12], [0.0]]), np.array([[1e12]]), t_out, rtol=1e-8, atol=1e-14
    )
    assert res.status[0] == 0
    np.testing.assert_allclose(res.y[:, 1, 0], 1.0 - np.exp(-t_out), rtol=1e-6, atol=1e-12)


def test_bad_shapes_are_refused(robertson):
    with pytest.raises(ValueError, match="built for 3"):
        jit.integrate_batch_jit(robertson, 0.0, 1.0, np.ones((2, 1)), np.ones((3, 1)), [1.0])
    with pytest.raises(ValueError, match="columns"):
        jit.integrate_batch_jit(robertson, 0.0, 1.0, np.ones((3, 2)), np.ones((3, 1)), [1.0])
    with pytest.raises(ValueError, match="t_out"):
        jit.integrate_batch_jit(robertson, 0.0, 1.0, np.ones((3, 1)), np.ones((3, 1)), [2.0])


def test_auto_solver_prefers_the_compiled_backend(monkeypatch):
    from moa.solvers import auto_solver, get_solver
    from moa.solvers import RodasSolver

    assert auto_solver(1) == "rodas" and get_solver("rodas").name == "moa-rodas4-numba"
    monkeypatch.setenv("MOA_NO_JIT", "1")
    assert auto_solver(1) == "LSODA" and auto_solver(8) == "rodas"
    assert get_solver("rodas").name == "moa-rodas4"
    with pytest.raises(ImportError, match="numba"):
        RodasSolver(backend="numba")
    with pytest.raises(ValueError, match="backend='fortran'.*allowed"):
        RodasSolver(backend="fortran")


def test_auto_backend_falls_back_to_numpy_when_numba_cannot_compile(monkeypatch):
    from moa.symbolic.named_models import pk_model
    from moa.parameters import load_parameters
    from moa.regimen import every
    from moa.solvers import RodasSolver

    import moa

    def broken(compiled, compile_now=False):
        raise RuntimeError("numba could not type this model")

    monkeypatch.setattr(jit, "kernels_for_model", broken)
    model, params = pk_model("bsab"), load_parameters()
    regimen = every("bsab", 3.0, "mg/kg", 21.0, 42.0)
    with pytest.warns(RuntimeWarning, match="numpy backend"):
        ds = moa.simulate(model, params, regimen, duration_days=42.0, solver=RodasSolver())
    assert ds.attrs["solver"] == "moa-rodas4" and int(ds["status"]) == 0
    with pytest.raises(RuntimeError, match="could not type"):
        moa.simulate(model, params, regimen, duration_days=42.0, solver=RodasSolver(backend="numba"))


def test_model_kernels_are_found_again_without_sympy(monkeypatch, tmp_path):
    """A second process (here: a cleared in-memory cache) finds a model's module through the index
    file instead of writing the kernels again with sympy."""
    from moa.symbolic.named_models import pk_model

    monkeypatch.setenv("MOA_CACHE_DIR", str(tmp_path))
    compiled = compile_model(pk_model("bsab"))
    jit._kernels_for_compiled.cache_clear()
    first = jit.kernels_for_model(compiled)
    assert first.path.parent == tmp_path / "jit" and len(list((tmp_path / "jit").glob("model_*.txt"))) == 1
    jit._kernels_for_compiled.cache_clear()

    def no_sympy(*args, **kwargs):
        raise AssertionError("kernels were written again")

    monkeypatch.setattr(jit, "kernels", no_sympy)
    again = jit.kernels_for_model(compiled, compile_now=True)
    assert again.path == first.path
    jit._kernels_for_compiled.cache_clear()
