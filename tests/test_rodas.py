"""Tests of the batched Rodas4 integrator and its generated sparse LU (moa.solvers.rodas4: stepper_numpy, lu_plan)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from moa.solvers.base import STATUS, Status
from moa.solvers.rodas4.lu_plan import SparseLUPlan, dense_jacobian
from moa.solvers.rodas4.stepper_numpy import _LinearSolver, integrate_batch
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

# ----------------------------------------------------------------------------- test problems


def linear_problem(n):
    """y' = A y with A = P.reshape(n, n, N) (row-major per trajectory)."""

    def rhs(t, Y, P):
        return np.einsum("ijk,jk->ik", P.reshape(n, n, -1), Y)

    jv, rows, cols = dense_jacobian(lambda t, Y, P: P.reshape(n, n, -1), n)
    return rhs, jv, rows, cols


def vdp_rhs(t, Y, P):
    y1, y2 = Y
    return np.array([y2, P[0] * (1 - y1 * y1) * y2 - y1])


def vdp_jac(t, Y, P):
    y1, y2 = Y
    return np.array([[np.zeros_like(y1), np.ones_like(y1)], [-2 * P[0] * y1 * y2 - 1, P[0] * (1 - y1 * y1)]])


# ----------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("dense_output", [True, False])
def test_linear_system_matches_expm(dense_output):
    n, N, rtol = 4, 6, 1e-6
    rng = np.random.default_rng(42)
    As = []
    for k in range(N):
        A = -np.diag(rng.uniform(0.5, 5.0, n)) + 0.3 * rng.normal(size=(n, n))
        if k == N - 1:  # one stiff trajectory: a fast mode at -1e4
            A[0, 0] = -1e4
        As.append(A)
    P = np.stack([A.ravel() for A in As], axis=1)
    y0 = rng.uniform(0.5, 2.0, size=(n, N))
    t_out = np.linspace(0.0, 3.0, 61)
    rhs, jv, rows, cols = linear_problem(n)
    res = integrate_batch(rhs, jv, rows, cols, 0.0, 3.0, y0, P, t_out, rtol=rtol, atol=1e-12, dense_output=dense_output)
    assert (res.status == 0).all()
    for k in range(N):
        exact = np.stack([expm(As[k] * t) @ y0[:, k] for t in t_out])
        # norm-wise relative error at each output time (components may cross zero)
        err = np.abs(res.y[:, :, k] - exact).max(axis=1) / np.abs(exact).max(axis=1)
        assert err.max() < 10 * rtol, (k, err.max())
    np.testing.assert_array_equal(res.y[0], y0)  # t0 is an output
    np.testing.assert_array_equal(res.y[-1], res.y_final)  # t1 is an output


def test_robertson_against_radau():
    N, t1, rtol = 4, 4e5, 1e-6
    P = rob_params(N)
    Y0 = np.tile(ROB_Y0, (1, N))
    t_out = rob_output_times(t1)
    res = integrate_batch(rob_rhs, rob_jac, ROB_ROWS, ROB_COLS, 0.0, t1, Y0, P, t_out, rtol=rtol, atol=ROB_ATOL)
    assert (res.status == 0).all(), res.message
    np.testing.assert_allclose(res.t_reached, t1)
    errs = rob_radau_errors(res.y, P, t1, t_out)
    assert errs.max() < 1e-4, errs
    # mass conservation y1 + y2 + y3 = 1 holds for linear invariants of Rosenbrock methods
    np.testing.assert_allclose(res.y.sum(axis=1), 1.0, atol=1e-12)


def test_fixed_step_order_is_four():
    jv, rows, cols = dense_jacobian(vdp_jac, 2)
    y0, P, T = np.array([[2.0], [0.0]]), np.array([[1.0]]), 2.0
    ref = solve_ivp(
        lambda t, y: vdp_rhs(t, y[:, None], P)[:, 0],
        (0, T),
        y0[:, 0],
        method="DOP853",
        rtol=1e-13,
        atol=1e-14,
        dense_output=True,
    )
    t_out = np.linspace(0.0, T, 11)  # step ends for every h below
    t_mid = np.linspace(0.0125, T - 0.0125, 80)  # inside steps: tests the dense output
    errs, errs_mid = [], []
    for h in (0.1, 0.05, 0.025):
        res = integrate_batch(vdp_rhs, jv, rows, cols, 0.0, T, y0, P, t_out, fixed_step=h)
        assert res.n_steps[0] == round(T / h)
        errs.append(np.abs(res.y[:, :, 0] - ref.sol(t_out).T).max())
        res = integrate_batch(vdp_rhs, jv, rows, cols, 0.0, T, y0, P, t_mid, fixed_step=h)
        errs_mid.append(np.abs(res.y[:, :, 0] - ref.sol(t_mid).T).max())
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 3.5) & (orders < 4.6)), orders
    # Rodas4's continuous extension is of order 3: errors between steps shrink at least ~h^3
    orders_mid = np.log2(np.array(errs_mid[:-1]) / np.array(errs_mid[1:]))
    assert np.all(orders_mid > 2.7), orders_mid


# ----------------------------------------------------------------------------- batching


def test_batched_equals_single():
    N, t1 = 5, 1e3
    P = rob_params(N, seed=3)
    Y0 = np.tile(np.array([[1.0], [0.0], [0.0]]), (1, N))
    t_out = np.logspace(-3, 3, 13)
    kw = dict(rtol=1e-5, atol=np.array([1e-10, 1e-14, 1e-10]))
    res = integrate_batch(rob_rhs, rob_jac, ROB_ROWS, ROB_COLS, 0.0, t1, Y0, P, t_out, **kw)
    steps = set()
    for k in range(N):
        one = integrate_batch(
            rob_rhs, rob_jac, ROB_ROWS, ROB_COLS, 0.0, t1, Y0[:, k : k + 1], P[:, k : k + 1], t_out, **kw
        )
        np.testing.assert_allclose(one.y[:, :, 0], res.y[:, :, k], rtol=1e-12, atol=1e-300)
        assert one.n_steps[0] == res.n_steps[k] and one.n_rejected[0] == res.n_rejected[k]
        assert one.h_last[0] == res.h_last[k]
        steps.add(int(res.n_steps[k]))
    assert len(steps) > 1  # trajectories really took different step sequences
    chunked = integrate_batch(rob_rhs, rob_jac, ROB_ROWS, ROB_COLS, 0.0, t1, Y0, P, t_out, chunk_size=2, **kw)
    np.testing.assert_array_equal(chunked.y, res.y)
    np.testing.assert_array_equal(chunked.n_steps, res.n_steps)


def test_failure_is_isolated():
    """y1' = p0 y1^2 (y1(0) = 1) blows up at t = 1/p0 for p0 > 0; p0 = NaN is non-finite at once;
    the Jacobian turns NaN once y2 = exp(-t) drops below p1 (mid-run failure at t = ln 2)."""

    def rhs(t, Y, P):
        return np.array([P[0] * Y[0] ** 2, -Y[1]])

    def jac(t, Y, P):
        return np.array([2 * P[0] * Y[0], -1.0 + 0.0 * np.sqrt(Y[1] - P[1])])

    rows, cols = np.array([0, 1]), np.array([0, 1])
    p = np.array([[-1.0, 8.0, np.nan, -0.5, -1.0], [-1.0, -1.0, -1.0, -1.0, 0.5]])
    y0 = np.ones((2, 5))
    t_out = np.linspace(0.0, 2.0, 21)
    res = integrate_batch(rhs, jac, rows, cols, 0.0, 2.0, y0, p, t_out, rtol=1e-7, atol=1e-12)
    assert res.status[0] == 0 and res.status[3] == 0
    assert res.message[0] == res.message[3] == ""
    # blow-up: step size underflow (or overflow to inf) just at the blow-up time
    assert res.status[1] in (1, 2) and "t=" in res.message[1]
    assert 0.12 < res.t_reached[1] <= 0.125 + 1e-6
    assert np.isnan(res.y[2:, :, 1]).all()
    np.testing.assert_allclose(res.y[1, 0, 1], 1.0 / (1.0 - 0.8), rtol=1e-5)  # before blow-up
    # NaN parameter: fails immediately, only the t0 output is set
    assert res.status[2] == 1 and "non-finite" in res.message[2]
    assert np.isnan(res.y[1:, :, 2]).all()
    # Jacobian NaN mid-run
    assert res.status[4] == 1 and "non-finite" in res.message[4]
    assert np.log(2) < res.t_reached[4] < 0.9
    np.testing.assert_allclose(res.y_final[1, 4], np.exp(-res.t_reached[4]), rtol=1e-5)
    for k, pk in ((0, -1.0), (3, -0.5)):
        np.testing.assert_allclose(res.t_reached[k], 2.0)
        exact = 1.0 / (1.0 - pk * t_out)
        np.testing.assert_allclose(res.y[:, 0, k], exact, rtol=1e-6)
        np.testing.assert_allclose(res.y[:, 1, k], np.exp(-t_out), rtol=1e-6)


def test_status_codes_keep_their_values():
    """Status is an IntEnum with the integers results have always stored (saved Datasets stay readable)."""
    assert [(s.name, int(s)) for s in Status] == [
        ("OK", 0),
        ("NON_FINITE", 1),
        ("STEP_UNDERFLOW", 2),
        ("TOO_MANY_STEPS", 3),
        ("SOLVER_FAILURE", 4),
        ("NEGATIVE_STATE", 5),
    ]
    assert set(STATUS) == set(Status) and STATUS[3] == "too many steps"
    res = integrate_batch(
        lambda t, Y, P: -Y,
        lambda t, Y, P: -np.ones_like(Y),
        np.array([0]),
        np.array([0]),
        0.0,
        1.0,
        np.array([[1.0, np.nan]]),
        np.zeros((1, 2)),
        [],
    )
    assert res.status.dtype.kind == "i" and [Status(int(s)) for s in res.status] == [Status.OK, Status.NON_FINITE]


@pytest.mark.parametrize("h0", [0.05, 0.2, 1.0, 5.0])
def test_error_control_with_too_large_initial_step(h0):
    """A caller-supplied h0 that is far too large must be rejected, not accepted."""
    n, rtol = 2, 1e-6
    A = np.array([[-1.0, 0.5], [0.0, -3.0]])
    rhs, jv, rows, cols = linear_problem(n)
    y0 = np.array([[1.0], [1.0]])
    t_out = np.linspace(0.0, 5.0, 26)
    res = integrate_batch(
        rhs, jv, rows, cols, 0.0, 5.0, y0, A.reshape(-1, 1), t_out, rtol=rtol, atol=1e-12, h0=np.array([h0])
    )
    exact = np.stack([expm(A * t) @ y0[:, 0] for t in t_out])
    err = np.abs(res.y[:, :, 0] - exact).max(axis=1) / np.abs(exact).max(axis=1)
    assert err.max() < 10 * rtol, err.max()
    if h0 >= 1.0:
        assert res.n_rejected[0] >= 1
    # tolerance proportionality: 100x tighter rtol gives a clearly smaller error
    tight = integrate_batch(
        rhs, jv, rows, cols, 0.0, 5.0, y0, A.reshape(-1, 1), t_out, rtol=rtol / 100, atol=1e-14, h0=np.array([h0])
    )
    err_t = np.abs(tight.y[:, :, 0] - exact).max(axis=1) / np.abs(exact).max(axis=1)
    assert err_t.max() < err.max() / 10


def test_max_steps_and_restart():
    P = rob_params(3)
    Y0 = np.tile(np.array([[1.0], [0.0], [0.0]]), (1, 3))
    kw = dict(rtol=1e-6, atol=np.array([1e-10, 1e-14, 1e-10]))
    res = integrate_batch(rob_rhs, rob_jac, ROB_ROWS, ROB_COLS, 0.0, 1e3, Y0, P, [], max_steps=20, **kw)
    assert (res.status == 3).all() and all("max_steps" in m for m in res.message)
    assert (res.t_reached < 1e3).all()
    # Restarting a second segment with h_last must continue smoothly: far fewer steps than a
    # cold start and the same answer as one long run.
    a = integrate_batch(rob_rhs, rob_jac, ROB_ROWS, ROB_COLS, 0.0, 10.0, Y0, P, [], **kw)
    assert np.all(np.isfinite(a.h_last) & (a.h_last > 0))
    b = integrate_batch(rob_rhs, rob_jac, ROB_ROWS, ROB_COLS, 10.0, 20.0, a.y_final, P, [], h0=a.h_last, **kw)
    whole = integrate_batch(rob_rhs, rob_jac, ROB_ROWS, ROB_COLS, 0.0, 20.0, Y0, P, [], **kw)
    np.testing.assert_allclose(b.y_final, whole.y_final, rtol=1e-5, atol=1e-12)
    assert b.n_rejected.max() <= 2 and b.n_steps.max() < 30


# ----------------------------------------------------------------------------- sparse LU


@pytest.mark.parametrize("ordering", ["min_degree", "rcm", "natural"])
def test_sparse_lu_matches_numpy(ordering):
    rng = np.random.default_rng(7)
    for n, density in ((1, 1.0), (12, 0.2), (30, 0.12)):
        N = 9
        mask = rng.random((n, n)) < density
        np.fill_diagonal(mask, False)  # diagonal is added by the plan itself (test that)
        rows, cols = np.nonzero(mask)
        plan = SparseLUPlan(n, rows, cols, ordering=ordering)
        vals = rng.normal(size=(rows.size, N))
        # diagonally dominant: diag = row sum of |off-diagonals| + 1
        dense = np.zeros((N, n, n))
        dense[:, rows, cols] = vals.T
        diag = np.abs(dense).sum(axis=2) + 1.0  # (N, n)
        a = plan.assemble(vals)
        a[plan.diag_slot] += diag.T
        dense[:, np.arange(n), np.arange(n)] = diag
        np.testing.assert_allclose(plan.to_dense(a, 2), dense[2])
        b = rng.normal(size=(n, N))
        d = plan.factor(a)
        x = plan.solve(a, d, b.copy())
        expect = np.linalg.solve(dense, b.T[..., None])[..., 0].T
        np.testing.assert_allclose(x, expect, rtol=1e-10, atol=1e-12)
        assert plan.nnz_fill >= rows.size + n


def test_fill_reducing_order_reduces_fill():
    # Arrow matrix with the dense row/column first: natural order fills in completely,
    # minimum degree eliminates the leaves first and has no fill at all.
    n = 15
    rows = np.r_[np.zeros(n - 1, int), np.arange(1, n)]
    cols = np.r_[np.arange(1, n), np.zeros(n - 1, int)]
    nat = SparseLUPlan(n, rows, cols, ordering="natural")
    md = SparseLUPlan(n, rows, cols, ordering="min_degree")
    assert nat.nnz_fill == n * n
    assert md.nnz_fill == 3 * n - 2


def test_zero_pivot_falls_back_to_pivoted_dense_solve():
    # [[0, 1], [1, 0]] in natural order has a zero first pivot; column 1 is benign.
    plan = SparseLUPlan(2, [0, 1], [1, 0], ordering="natural")
    JV = np.array([[-1.0, -0.5], [-1.0, -0.5]])  # J entries; M = c I - J
    c = np.array([0.0, 2.0])
    M = plan.assemble(JV, c, sign=-1.0)
    lin = _LinearSolver(plan, M, JV, c)
    assert lin.dense_cols is not None and lin.dense_cols.tolist() == [0]
    b = np.array([[1.0, 1.0], [2.0, 3.0]])
    x = lin.solve(b.copy())
    np.testing.assert_allclose(x[:, 0], np.linalg.solve([[0, 1], [1, 0]], b[:, 0]))
    np.testing.assert_allclose(x[:, 1], np.linalg.solve([[2, 0.5], [0.5, 2]], b[:, 1]))


def test_lu_plans_are_keyed_by_the_jacobian_pattern(monkeypatch):
    """RodasSolver keeps one sparse LU plan per Jacobian pattern (rows, cols, n). Keyed by id(compiled),
    a model built where a freed one lived (same id) got the old model's plan; forcing every id to
    coincide shows the pattern, not the object, picks the plan."""
    from types import SimpleNamespace

    from moa.solvers.rodas4 import solver as batched

    monkeypatch.setattr(batched, "id", lambda obj: 1, raising=False)  # every object "at the same address"
    solver = batched.RodasSolver(backend="numpy")
    diagonal = SimpleNamespace(n_species=2, jac_rows=np.array([0, 1]), jac_cols=np.array([0, 1]))
    coupled = SimpleNamespace(n_species=2, jac_rows=np.array([0, 0, 1]), jac_cols=np.array([0, 1, 1]))
    wider = SimpleNamespace(n_species=3, jac_rows=np.array([0, 1]), jac_cols=np.array([0, 1]))
    plans = [solver._plan(c) for c in (diagonal, coupled, wider)]
    for c, plan in zip((diagonal, coupled, wider), plans):
        assert plan.n == c.n_species and np.array_equal(plan.jac_rows, c.jac_rows)
    assert len({id(p) for p in plans}) == 3
    same_pattern = SimpleNamespace(n_species=2, jac_rows=np.array([0, 0, 1]), jac_cols=np.array([0, 1, 1]))
    assert solver._plan(same_pattern) is plans[1]  # a rebuilt model with the same pattern reuses its plan
