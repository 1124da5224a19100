"""Batched Rodas4 vs scipy on the Robertson stiff chemistry problem.

Usage:  python benchmarks/robertson_rodas.py [--n 1000] [--sample 20] [--rtol 1e-6] [--t1 1e5]

Integrates N Robertson systems (rate constants k1, k2, k3 varied by +-10 % per trajectory) from
t=0 to t1 with 41 log-spaced outputs, with ``integrate_batch`` in one call, then a sample of them
one-by-one with scipy ``solve_ivp`` (BDF and Radau at the same tolerances, and Radau at
rtol 1e-10/atol 1e-14 as the reference), all in this process on one core. Prints sims/s and the
maximum error relative to the reference (per component, with a floor of 1e-6 of the component's
maximum so that values far below atol do not dominate).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from moa.solvers.rodas4 import SparseLUPlan, integrate_batch  # noqa: E402

ROWS = np.array([0, 0, 0, 1, 1, 1, 2])
COLS = np.array([0, 1, 2, 0, 1, 2, 1])


def rhs(t, Y, P):
    """Robertson: Y (3, N), P = (k1, k2, k3) (3, N); per time unit."""
    y1, y2, y3 = Y
    k1, k2, k3 = P
    r1, r2, r3 = k1 * y1, k2 * y2 * y2, k3 * y2 * y3
    return np.array([-r1 + r3, r1 - r2 - r3, r2])


def jac_values(t, Y, P):
    """Jacobian values on (ROWS, COLS), shape (7, N)."""
    y1, y2, y3 = Y
    k1, k2, k3 = P
    one = np.ones_like(y1)
    return np.array([-k1 * one, k3 * y3, k3 * y2, k1 * one, -2 * k2 * y2 - k3 * y3, -k3 * y2, 2 * k2 * y2])


def scipy_one(p, y0, t1, t_out, method, rtol, atol):
    def f(t, y):
        return rhs(t, y[:, None], p[:, None])[:, 0]

    def jac(t, y):
        v = jac_values(t, y[:, None], p[:, None])[:, 0]
        J = np.zeros((3, 3))
        J[ROWS, COLS] = v
        return J

    sol = solve_ivp(f, (0.0, t1), y0, method=method, rtol=rtol, atol=atol, jac=jac, t_eval=t_out)
    return sol.y.T  # (len(t_out), 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=20)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--t1", type=float, default=1e5)
    args = ap.parse_args()

    rng = np.random.default_rng(1)
    N, t1, rtol = args.n, args.t1, args.rtol
    atol = np.array([1e-10, 1e-14, 1e-10])
    P = np.array([[0.04], [3e7], [1e4]]) * rng.uniform(0.9, 1.1, size=(3, N))
    Y0 = np.tile(np.array([[1.0], [0.0], [0.0]]), (1, N))
    t_out = np.concatenate([[0.0], np.logspace(-5, np.log10(t1), 40)])

    plan = SparseLUPlan(3, ROWS, COLS)
    integrate_batch(
        rhs, jac_values, ROWS, COLS, 0.0, t1, Y0[:, :10], P[:, :10], t_out, rtol=rtol, atol=atol, plan=plan
    )  # warm-up
    tic = time.perf_counter()
    res = integrate_batch(rhs, jac_values, ROWS, COLS, 0.0, t1, Y0, P, t_out, rtol=rtol, atol=atol, plan=plan)
    t_batch = time.perf_counter() - tic
    assert (res.status == 0).all(), res.message

    sample = np.linspace(0, N - 1, args.sample).astype(int)
    refs, timings, errs = [], {}, {}
    for method, rt, at in (("Radau", 1e-10, 1e-14), ("BDF", rtol, atol), ("Radau", rtol, atol)):
        key = f"{method} rtol={rt:g}"
        tic = time.perf_counter()
        ys = [scipy_one(P[:, k], Y0[:, k], t1, t_out, method, rt, at) for k in sample]
        timings[key] = time.perf_counter() - tic
        if not refs:
            refs = ys
        else:
            errs[key] = max(_err(y, r) for y, r in zip(ys, refs))
    err_rodas = max(_err(res.y[:, :, k], r) for k, r in zip(sample, refs))

    print(f"Robertson to t1={t1:g}, {len(t_out)} outputs, rtol={rtol:g}, atol={atol.tolist()}")
    print(f"{'method':28s} {'sims/s':>10s} {'max rel err':>12s}")
    print(
        f"{'rodas batch N=%d' % N:28s} {N / t_batch:10.1f} {err_rodas:12.2e}"
        f"   (mean {res.n_steps.mean():.0f} steps, {res.n_rejected.mean():.1f} rejected;"
        f" {t_batch:.2f} s)"
    )
    for key, t in timings.items():
        e = errs.get(key)
        print(
            f"{'scipy ' + key + ' (1-by-1)':28s} {len(sample) / t:10.1f} "
            f"{('%12.2e' % e) if e is not None else '   reference'}"
        )


def _err(y, ref):
    floor = 1e-6 * np.abs(ref).max(axis=0)
    return float(np.max(np.abs(y - ref) / (np.abs(ref) + floor)))


if __name__ == "__main__":
    main()
