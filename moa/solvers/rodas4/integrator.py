"""The compiled Rodas4 integrator: a real module whose functions numba compiles against one system's kernels.

The functions below are plain Python. They read the system's kernels and constants as globals that this module
does not define -- ``_rhs``, ``_rhs_jac``, ``_factor``, ``_solve``, ``N_SLOTS``, ``FILL_ROWS``, ``FILL_COLS``
and the coefficients ``GAMMA``, ``Aij``, ``Cij``, ``H2j``, ``H3j``, ``SAFE``, ``FAC_MIN``, ``FAC_MAX``,
``GROWTH_LIMIT`` (see :mod:`moa.solvers.rodas4.codegen`) -- and are never called from here. A generated kernel
module ends with ``bind(globals(), __file__)``: :func:`bind` makes a copy of each function whose globals are
that module's namespace (so numba sees that system's kernels, inlines them and knows the constants at compile
time) and whose code names that module's file (so numba keeps one machine-code cache per system, beside the
module, instead of one that different systems would overwrite), compiles it with ``njit(cache=True)`` and puts
it into the namespace (``integrate_all``, ``integrate_one``, ...).

The method, controller and output rules are those of :func:`moa.solvers.rodas4.stepper_numpy.integrate_batch`
(Hairer & Wanner's Rodas4 with their rodas.f coefficients, Gustafsson's predictive controller, order-3 dense
output); only the loop order differs: one trajectory is stepped from ``t0`` to ``t1`` before the next starts, so
all its work arrays stay in the L1 cache and no step pays Python overhead. Status codes: 0 ok, 1 non-finite
rhs/Jacobian after a step, 2 step size underflow, 3 too many steps, 5 non-finite initial state, rhs or Jacobian.
"""
# ruff: noqa: F821 -- the kernels and constants are globals of the namespace each function is bound into

from __future__ import annotations

import math
import types

import numpy as np

__all__ = ["bind", "FUNCTIONS", "EPS"]

EPS = 2.220446049250313e-16


def _rms_scaled(x, y, atol, rtol):
    s = 0.0
    for i in range(x.size):
        sc = atol[i] + rtol * abs(y[i])
        v = x[i] / sc
        s += v * v
    return math.sqrt(s / x.size)


def _initial_step(y, p, f0, atol, rtol, span, ws, f1):
    """Hairer-Wanner starting step (one extra rhs call), as ``rodas._initial_step``."""
    n = y.size
    d0 = _rms_scaled(y, y, atol, rtol)
    d1 = _rms_scaled(f0, y, atol, rtol)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = 1e-6
    else:
        h0 = 0.01 * d0 / max(d1, 1e-300)
    h0 = min(h0, span)
    for i in range(n):
        ws[i] = y[i] + h0 * f0[i]
    _rhs(ws, p, f1)
    s = 0.0
    for i in range(n):
        sc = atol[i] + rtol * abs(y[i])
        v = (f1[i] - f0[i]) / sc
        s += v * v
    d2 = math.sqrt(s / n) / h0
    dm = max(d1, d2)
    if dm <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(dm, 1e-300)) ** 0.2
    h = min(100 * h0, h1)
    if not (math.isfinite(h) and h > 0):
        h = 1e-6
    return min(h, span)


def _dense_lu(jv, c, lu, piv):
    """Pivoted dense LU of ``c I - J`` (fallback when the unpivoted elimination grows). False if
    singular."""
    n = lu.shape[0]
    lu[:, :] = 0.0
    for k in range(FILL_ROWS.size):
        lu[FILL_ROWS[k], FILL_COLS[k]] = -jv[k]
    for i in range(n):
        lu[i, i] += c
    for k in range(n):
        m = k
        big = abs(lu[k, k])
        for i in range(k + 1, n):
            if abs(lu[i, k]) > big:
                big = abs(lu[i, k])
                m = i
        piv[k] = m
        if not (big > 0.0 and math.isfinite(big)):
            return False
        if m != k:
            for j in range(n):
                tmp = lu[k, j]
                lu[k, j] = lu[m, j]
                lu[m, j] = tmp
        inv = 1.0 / lu[k, k]
        for i in range(k + 1, n):
            lu[i, k] *= inv
            f = lu[i, k]
            if f != 0.0:
                for j in range(k + 1, n):
                    lu[i, j] -= f * lu[k, j]
    return True


def _dense_solve(lu, piv, b):
    n = b.size
    for k in range(n):
        m = piv[k]
        if m != k:
            tmp = b[k]
            b[k] = b[m]
            b[m] = tmp
    for i in range(n):
        s = b[i]
        for j in range(i):
            s -= lu[i, j] * b[j]
        b[i] = s
    for i in range(n - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, n):
            s -= lu[i, j] * b[j]
        b[i] = s / lu[i, i]


def _lin_solve(a, d, b, dense, lu, piv, singular):
    if singular:
        for i in range(b.size):
            b[i] = np.nan
    elif dense:
        _dense_solve(lu, piv, b)
    else:
        _solve(a, d, b)


def _all_finite(x):
    for i in range(x.size):
        if not math.isfinite(x[i]):
            return False
    return True


def integrate_one(
    y,
    p,
    t0,
    t1,
    t_out,
    k0,
    atol,
    rtol,
    h_start,
    max_steps,
    h_min,
    dense_output,
    fixed_step,
    y_out,
    j,
    ext_idx,
    ext_thr,
    ext_day,
):
    """Integrate one trajectory (``y`` (n,) is overwritten with the final state).

    Writes outputs ``y_out[k, :, j]`` for ``t_out[k] > t0`` up to the time reached. Extinction:
    after each accepted step a state ``ext_idx[e]`` that is non-zero and below ``ext_thr[e]`` is
    set to 0 and ``ext_day[e, j]`` gets the step's end time if still NaN (the rule of
    ``moa.solvers.base.extinguish``). Returns
    ``(status, t_reached, n_accepted, n_rejected, h_last, last_nonfinite, h_now)``.
    """
    n = y.size
    n_out = t_out.size
    f0 = np.empty(n)
    jv = np.zeros(N_SLOTS)
    a = np.empty(N_SLOTS)
    d = np.empty(n)
    work = np.empty((9, n))  # six stage vectors, stage argument, rhs value, new state
    k1, k2, k3, k4, k5, k6 = work[0], work[1], work[2], work[3], work[4], work[5]
    ys, fs, y_new = work[6], work[7], work[8]
    lu = np.empty((n, n))
    piv = np.empty(n, dtype=np.int64)

    _rhs_jac(y, p, f0, jv)
    if not (_all_finite(y) and _all_finite(f0) and _all_finite(jv)):
        return 5, t0, 0, 0, np.nan, False, 0.0
    span = t1 - t0
    if fixed_step > 0:
        h = fixed_step
    elif h_start > 0 and math.isfinite(h_start):
        h = h_start
    else:
        h = _initial_step(y, p, f0, atol, rtol, span, ys, fs)
    h = min(h, span)

    t = t0
    ptr = k0
    n_acc = 0
    n_rej = 0
    h_acc = 0.0
    err_acc = 1.0
    rejected = False
    h_last = np.nan
    last_nonfinite = False
    while True:
        # step size: land on t1 (or the next output when outputs are not interpolated)
        target = t1
        if not dense_output and ptr < n_out and t_out[ptr] < target:
            target = t_out[ptr]
        land = t + h * 1.0001 >= target
        if land:
            t_new = target
        else:
            t_new = t + h
        hh = t_new - t

        # iteration matrix c I - J and its factors
        c = 1.0 / (GAMMA * hh)
        for k in range(N_SLOTS):
            a[k] = -jv[k]
        for i in range(n):
            a[DIAG_SLOT[i]] += c
        growth = _factor(a, d)
        dense = False
        singular = False
        if not (growth <= GROWTH_LIMIT and _all_finite(d)):
            dense = True
            singular = not _dense_lu(jv, c, lu, piv)
        inv_h = 1.0 / hh

        # stages
        for i in range(n):
            k1[i] = f0[i]
        _lin_solve(a, d, k1, dense, lu, piv, singular)
        for i in range(n):
            ys[i] = y[i] + A21 * k1[i]
        _rhs(ys, p, fs)
        for i in range(n):
            k2[i] = fs[i] + C21 * k1[i] * inv_h
        _lin_solve(a, d, k2, dense, lu, piv, singular)
        for i in range(n):
            ys[i] = y[i] + A31 * k1[i] + A32 * k2[i]
        _rhs(ys, p, fs)
        for i in range(n):
            k3[i] = fs[i] + (C31 * k1[i] + C32 * k2[i]) * inv_h
        _lin_solve(a, d, k3, dense, lu, piv, singular)
        for i in range(n):
            ys[i] = y[i] + A41 * k1[i] + A42 * k2[i] + A43 * k3[i]
        _rhs(ys, p, fs)
        for i in range(n):
            k4[i] = fs[i] + (C41 * k1[i] + C42 * k2[i] + C43 * k3[i]) * inv_h
        _lin_solve(a, d, k4, dense, lu, piv, singular)
        for i in range(n):
            ys[i] = y[i] + A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i]
        _rhs(ys, p, fs)
        for i in range(n):
            k5[i] = fs[i] + (C51 * k1[i] + C52 * k2[i] + C53 * k3[i] + C54 * k4[i]) * inv_h
        _lin_solve(a, d, k5, dense, lu, piv, singular)
        for i in range(n):
            ys[i] = ys[i] + k5[i]  # stage-6 argument = embedded order-3 solution
        _rhs(ys, p, fs)
        for i in range(n):
            k6[i] = fs[i] + (C61 * k1[i] + C62 * k2[i] + C63 * k3[i] + C64 * k4[i] + C65 * k5[i]) * inv_h
        _lin_solve(a, d, k6, dense, lu, piv, singular)
        for i in range(n):
            y_new[i] = ys[i] + k6[i]

        # error estimate and accept / reject
        finite = _all_finite(y_new)
        if fixed_step > 0:
            err = 0.0 if finite else np.inf
        else:
            s = 0.0
            for i in range(n):
                sc = atol[i] + rtol * max(abs(y[i]), abs(y_new[i]))
                v = k6[i] / sc
                s += v * v
            err = math.sqrt(s / n)
            if not (finite and math.isfinite(err)):
                err = np.inf
        accept = err <= 1.0

        fac = min(max(err ** (1.0 / 4.0) / SAFE, 1.0 / FAC_MAX), 1.0 / FAC_MIN)
        if h_acc > 0:
            fgus = (h_acc / hh) * (err * err / err_acc) ** 0.25 / SAFE
            fgus = min(max(fgus, 1.0 / FAC_MAX), 1.0 / FAC_MIN)
            fac_acc = max(fac, fgus)
        else:
            fac_acc = fac
        if math.isnan(fac_acc):
            fac_acc = 1.0 / FAC_MIN
        if math.isnan(fac):
            fac = 1.0 / FAC_MIN
        h_new_acc = hh / fac_acc
        if rejected:
            h_new_acc = min(h_new_acc, hh)
        if land and hh < h:
            h_new_acc = max(h_new_acc, h)
        h_new_rej = hh / fac
        if fixed_step > 0:
            h_new_acc = fixed_step

        # outputs passed by an accepted step
        if accept and ptr < n_out and t_out[ptr] <= t_new:
            if dense_output:
                for i in range(n):
                    fs[i] = H21 * k1[i] + H22 * k2[i] + H23 * k3[i] + H24 * k4[i] + H25 * k5[i]
                    ys[i] = H31 * k1[i] + H32 * k2[i] + H33 * k3[i] + H34 * k4[i] + H35 * k5[i]
            while ptr < n_out and t_out[ptr] <= t_new:
                tq = t_out[ptr]
                if dense_output and tq != t_new:
                    sq = (tq - t) / hh
                    for i in range(n):
                        y_out[ptr, i, j] = y[i] + sq * ((y_new[i] - y[i]) + (1.0 - sq) * (fs[i] + sq * ys[i]))
                else:
                    for i in range(n):
                        y_out[ptr, i, j] = y_new[i]
                ptr += 1

        last_nonfinite = not finite
        if accept:
            n_acc += 1
            for i in range(n):
                y[i] = y_new[i]
            t = t_new
            for e in range(ext_idx.size):
                i = ext_idx[e]
                if y[i] != 0.0 and y[i] < ext_thr[e]:
                    y[i] = 0.0
                    if math.isnan(ext_day[e, j]):
                        ext_day[e, j] = t
            h_acc = hh
            err_acc = max(1e-2, err)
            h_last = h_new_acc
            h = h_new_acc
            rejected = False
            if t >= t1:
                return 0, t, n_acc, n_rej, h_last, last_nonfinite, h
            _rhs_jac(y, p, f0, jv)
            if not (_all_finite(f0) and _all_finite(jv)):
                return 1, t, n_acc, n_rej, h_last, last_nonfinite, h
        else:
            n_rej += 1
            h = h_new_rej
            rejected = True
        if h < max(h_min, 10 * EPS * abs(t)):
            return 2, t, n_acc, n_rej, h_last, last_nonfinite, h
        if n_acc + n_rej >= max_steps:
            return 3, t, n_acc, n_rej, h_last, last_nonfinite, h


def integrate_all(
    Y0,
    P,
    t0,
    t1,
    t_out,
    k0,
    atol,
    rtol,
    h0,
    max_steps,
    h_min,
    dense_output,
    fixed_step,
    y_out,
    y_final,
    status,
    t_reached,
    n_steps,
    n_rej,
    h_last,
    last_nonfinite,
    h_now,
    ext_idx,
    ext_thr,
    ext_day,
):
    """Every column of ``Y0`` (n, N) from ``t0`` to ``t1``; results into the given arrays
    (``ext_thr``, ``ext_day``: (n_extinct, N))."""
    n, N = Y0.shape
    y = np.empty(n)
    p = np.empty(P.shape[0])
    thr = np.empty(ext_idx.size)
    for j in range(N):
        for i in range(n):
            y[i] = Y0[i, j]
        for i in range(P.shape[0]):
            p[i] = P[i, j]
        for e in range(ext_idx.size):
            thr[e] = ext_thr[e, j]
        st, tr, na, nr, hl, lnf, hn = integrate_one(
            y,
            p,
            t0,
            t1,
            t_out,
            k0,
            atol,
            rtol,
            h0[j],
            max_steps,
            h_min,
            dense_output,
            fixed_step,
            y_out,
            j,
            ext_idx,
            thr,
            ext_day,
        )
        status[j] = st
        t_reached[j] = tr
        n_steps[j] = na
        n_rej[j] = nr
        h_last[j] = hl
        last_nonfinite[j] = lnf
        h_now[j] = hn
        for i in range(n):
            y_final[i, j] = y[i]


#: The integrator's functions in the order :func:`bind` compiles them (callees first).
FUNCTIONS = (
    "_rms_scaled",
    "_initial_step",
    "_dense_lu",
    "_dense_solve",
    "_lin_solve",
    "_all_finite",
    "integrate_one",
    "integrate_all",
)


def bind(namespace: dict, filename: str) -> None:
    """Compile the integrator against the kernels in ``namespace`` (a generated kernel module's globals, whose file
    is ``filename``): each function of :data:`FUNCTIONS` is copied with those globals and that file name, wrapped
    in ``numba.njit(cache=True, error_model="numpy")`` and stored in ``namespace`` under its name."""
    from numba import njit  # deferred: numba is the optional extra moa[fast]

    namespace.setdefault("math", math)
    namespace.setdefault("np", np)
    namespace.setdefault("EPS", EPS)
    for name in FUNCTIONS:
        func = globals()[name]
        bound = types.FunctionType(func.__code__.replace(co_filename=filename), namespace, name, func.__defaults__)
        bound.__qualname__, bound.__doc__ = func.__qualname__, func.__doc__
        bound.__module__ = namespace.get("__name__", bound.__module__)
        namespace[name] = njit(cache=True, error_model="numpy")(bound)
