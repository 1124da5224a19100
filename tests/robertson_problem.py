"""Robertson's stiff chemical kinetics (Hairer & Wanner II, Sect. IV.1) for the Rodas4 tests: the
system in batched numpy form, randomised rate constants, and a scipy Radau reference."""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

ROB_ROWS = np.array([0, 0, 0, 1, 1, 1, 2])
ROB_COLS = np.array([0, 1, 2, 0, 1, 2, 1])
ROB_ATOL = np.array([1e-10, 1e-14, 1e-10])
ROB_Y0 = np.array([[1.0], [0.0], [0.0]])


def rob_rhs(t, Y, P):
    y1, y2, y3 = Y
    k1, k2, k3 = P
    return np.array([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2 * y2 - k3 * y2 * y3, k2 * y2 * y2])


def rob_jac(t, Y, P):
    y1, y2, y3 = Y
    k1, k2, k3 = P
    one = np.ones_like(y1)
    return np.array([-k1 * one, k3 * y3, k3 * y2, k1 * one, -2 * k2 * y2 - k3 * y3, -k3 * y2, 2 * k2 * y2])


def rob_params(N, seed=0):
    """(3, N) rate constants k1, k2, k3 within +-10 % of the classic 0.04, 3e7, 1e4."""
    rng = np.random.default_rng(seed)
    return np.array([[0.04], [3e7], [1e4]]) * rng.uniform(0.9, 1.1, size=(3, N))


def rob_output_times(t1, n_log=25):
    """0, 40 and log-spaced times up to t1 (the last set to t1 exactly: logspace may overshoot)."""
    t_out = np.sort(np.concatenate([[0.0, 40.0], np.logspace(-4, np.log10(t1), n_log)]))
    t_out[-1] = t1
    return t_out


def rob_radau_errors(y, P, t1, t_out):
    """Max relative error of ``y`` (len(t_out), 3, N) per trajectory against scipy Radau at rtol 1e-10,
    floored at 1e-6 of each component's range (y3 starts at 0)."""
    errs = []
    for k in range(P.shape[1]):
        pk = P[:, k : k + 1]

        def jac(t, x):
            J = np.zeros((3, 3))
            J[ROB_ROWS, ROB_COLS] = rob_jac(t, x[:, None], pk)[:, 0]
            return J

        ref = solve_ivp(
            lambda t, x: rob_rhs(t, x[:, None], pk)[:, 0],
            (0.0, t1),
            ROB_Y0[:, 0],
            method="Radau",
            rtol=1e-10,
            atol=1e-14,
            jac=jac,
            t_eval=t_out,
        ).y.T
        floor = 1e-6 * np.abs(ref).max(axis=0)
        errs.append(float((np.abs(y[:, :, k] - ref) / (np.abs(ref) + floor)).max()))
    return np.array(errs)
