"""Template of the CUDA Rodas4 integrator (read as text by :mod:`moa.solvers.rodas4.cuda`).

Not imported on its own: :func:`moa.solvers.rodas4.cuda.kernel_source` appends the model's kernels, printed
by the same printers as the numba CPU backend (:mod:`moa.solvers.rodas4.codegen`) but decorated
``@cuda.jit(device=True)``, and the constants ``N_STATES``, ``N_SLOTS`` (compile-time sizes of the
per-thread work arrays) and the method's coefficients.

One thread integrates one trajectory from ``t0`` to ``t1``: the loop of ``integrator.integrate_one``
line for line (same tableau, controller, landing rule, dense output, extinction rule and status
codes), with the work arrays in ``cuda.local.array``. Global arrays are laid out with the trajectory
index ``j`` last (``Y0``/``P`` (n, N), ``y_out`` (n_out, n, N)), so a warp's reads and writes of one
component are coalesced.

One difference: there is no pivoted dense LU (54 x 54 doubles per thread would not fit). Where the
CPU backends fall back to it (pivot growth above ``GROWTH_LIMIT`` or a non-finite pivot in the
unpivoted sparse LU) the thread stops with status 6 and the host reruns that trajectory on the CPU.
Status codes: 0 ok, 1 non-finite rhs/Jacobian after a step, 2 step size underflow, 3 too many steps,
5 non-finite initial state, rhs or Jacobian, 6 sparse LU unstable (needs the dense fallback).
"""

import math

from numba import cuda, float64

N_STATES = 1
N_SLOTS = 1


def _rhs(y, p, out):  # placeholder, redefined by the generated kernels
    raise NotImplementedError


def _rhs_jac(y, p, out, jv):  # placeholder
    raise NotImplementedError


def _factor(a, d):  # placeholder
    raise NotImplementedError


def _solve(a, d, b):  # placeholder
    raise NotImplementedError


def _add_diag(a, c):  # placeholder: a[diagonal slots] += c
    raise NotImplementedError


# Coefficients and controller constants appended by the generator (from moa.solvers.rodas4.tableau).
GAMMA = SAFE = FAC_MIN = FAC_MAX = GROWTH_LIMIT = float("nan")
A21 = A31 = A32 = A41 = A42 = A43 = A51 = A52 = A53 = A54 = float("nan")
C21 = C31 = C32 = C41 = C42 = C43 = C51 = C52 = C53 = C54 = float("nan")
C61 = C62 = C63 = C64 = C65 = float("nan")
H21 = H22 = H23 = H24 = H25 = H31 = H32 = H33 = H34 = H35 = float("nan")
EPS = 2.220446049250313e-16
INF = float("inf")
NAN = float("nan")


@cuda.jit(device=True)
def _all_finite(x, size):
    for i in range(size):
        if not math.isfinite(x[i]):
            return False
    return True


@cuda.jit(device=True)
def _initial_step(y, p, f0, atol, rtol, span, ws, f1):
    """Hairer-Wanner starting step (one extra rhs call), as ``integrator._initial_step``."""
    n = N_STATES
    s0 = 0.0
    s1 = 0.0
    for i in range(n):
        sc = atol[i] + rtol * abs(y[i])
        v0 = y[i] / sc
        v1 = f0[i] / sc
        s0 += v0 * v0
        s1 += v1 * v1
    d0 = math.sqrt(s0 / n)
    d1 = math.sqrt(s1 / n)
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


@cuda.jit(device=True)
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
    """One trajectory, as ``integrator.integrate_one``; ``y`` (local) ends as the final state.
    Returns ``(status, t_reached, n_accepted, n_rejected, h_last, last_nonfinite, h_now, ptr)``,
    ``ptr``: the first output row not written."""
    n = N_STATES
    n_out = t_out.shape[0]
    f0 = cuda.local.array(N_STATES, float64)
    jv = cuda.local.array(N_SLOTS, float64)
    a = cuda.local.array(N_SLOTS, float64)
    d = cuda.local.array(N_STATES, float64)
    k1 = cuda.local.array(N_STATES, float64)
    k2 = cuda.local.array(N_STATES, float64)
    k3 = cuda.local.array(N_STATES, float64)
    k4 = cuda.local.array(N_STATES, float64)
    k5 = cuda.local.array(N_STATES, float64)
    k6 = cuda.local.array(N_STATES, float64)
    ys = cuda.local.array(N_STATES, float64)
    fs = cuda.local.array(N_STATES, float64)
    y_new = cuda.local.array(N_STATES, float64)
    for k in range(N_SLOTS):
        jv[k] = 0.0  # slots outside the Jacobian's pattern are never written

    _rhs_jac(y, p, f0, jv)
    if not (_all_finite(y, n) and _all_finite(f0, n) and _all_finite(jv, N_SLOTS)):
        return 5, t0, 0, 0, NAN, False, 0.0, k0
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
    h_last = NAN
    last_nonfinite = False
    while True:
        target = t1
        if not dense_output and ptr < n_out and t_out[ptr] < target:
            target = t_out[ptr]
        land = t + h * 1.0001 >= target
        if land:
            t_new = target
        else:
            t_new = t + h
        hh = t_new - t

        c = 1.0 / (GAMMA * hh)
        for k in range(N_SLOTS):
            a[k] = -jv[k]
        _add_diag(a, c)
        growth = _factor(a, d)
        if not (growth <= GROWTH_LIMIT and _all_finite(d, n)):
            return 6, t, n_acc, n_rej, h_last, last_nonfinite, h, ptr
        inv_h = 1.0 / hh

        for i in range(n):
            k1[i] = f0[i]
        _solve(a, d, k1)
        for i in range(n):
            ys[i] = y[i] + A21 * k1[i]
        _rhs(ys, p, fs)
        for i in range(n):
            k2[i] = fs[i] + C21 * k1[i] * inv_h
        _solve(a, d, k2)
        for i in range(n):
            ys[i] = y[i] + A31 * k1[i] + A32 * k2[i]
        _rhs(ys, p, fs)
        for i in range(n):
            k3[i] = fs[i] + (C31 * k1[i] + C32 * k2[i]) * inv_h
        _solve(a, d, k3)
        for i in range(n):
            ys[i] = y[i] + A41 * k1[i] + A42 * k2[i] + A43 * k3[i]
        _rhs(ys, p, fs)
        for i in range(n):
            k4[i] = fs[i] + (C41 * k1[i] + C42 * k2[i] + C43 * k3[i]) * inv_h
        _solve(a, d, k4)
        for i in range(n):
            ys[i] = y[i] + A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i]
        _rhs(ys, p, fs)
        for i in range(n):
            k5[i] = fs[i] + (C51 * k1[i] + C52 * k2[i] + C53 * k3[i] + C54 * k4[i]) * inv_h
        _solve(a, d, k5)
        for i in range(n):
            ys[i] = ys[i] + k5[i]  # stage-6 argument = embedded order-3 solution
        _rhs(ys, p, fs)
        for i in range(n):
            k6[i] = fs[i] + (C61 * k1[i] + C62 * k2[i] + C63 * k3[i] + C64 * k4[i] + C65 * k5[i]) * inv_h
        _solve(a, d, k6)
        for i in range(n):
            y_new[i] = ys[i] + k6[i]

        finite = _all_finite(y_new, n)
        if fixed_step > 0:
            err = 0.0 if finite else INF
        else:
            s = 0.0
            for i in range(n):
                sc = atol[i] + rtol * max(abs(y[i]), abs(y_new[i]))
                v = k6[i] / sc
                s += v * v
            err = math.sqrt(s / n)
            if not (finite and math.isfinite(err)):
                err = INF
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
            for e in range(ext_idx.shape[0]):
                i = ext_idx[e]
                if y[i] != 0.0 and y[i] < ext_thr[e, j]:
                    y[i] = 0.0
                    if math.isnan(ext_day[e, j]):
                        ext_day[e, j] = t
            h_acc = hh
            err_acc = max(1e-2, err)
            h_last = h_new_acc
            h = h_new_acc
            rejected = False
            if t >= t1:
                return 0, t, n_acc, n_rej, h_last, last_nonfinite, h, ptr
            _rhs_jac(y, p, f0, jv)
            if not (_all_finite(f0, n) and _all_finite(jv, N_SLOTS)):
                return 1, t, n_acc, n_rej, h_last, last_nonfinite, h, ptr
        else:
            n_rej += 1
            h = h_new_rej
            rejected = True
        if h < max(h_min, 10 * EPS * abs(t)):
            return 2, t, n_acc, n_rej, h_last, last_nonfinite, h, ptr
        if n_acc + n_rej >= max_steps:
            return 3, t, n_acc, n_rej, h_last, last_nonfinite, h, ptr


@cuda.jit(cache=True)  # numba-cuda keeps the compiled kernel beside the module (a second process loads it)
def integrate_kernel(
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
    """Thread ``j`` integrates column ``j`` of ``Y0`` (n, N) with parameters ``P[:, j]`` and writes
    every output row of ``y_out[:, :, j]`` (``Y0`` before ``k0``, NaN after a failure)."""
    j = cuda.grid(1)
    if j >= Y0.shape[1]:
        return
    y = cuda.local.array(N_STATES, float64)
    for i in range(N_STATES):
        y[i] = Y0[i, j]
    for k in range(k0):
        for i in range(N_STATES):
            y_out[k, i, j] = y[i]
    p = P[:, j]
    st, tr, na, nr, hl, lnf, hn, ptr = integrate_one(
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
        ext_thr,
        ext_day,
    )
    for k in range(ptr, t_out.shape[0]):
        for i in range(N_STATES):
            y_out[k, i, j] = NAN
    status[j] = st
    t_reached[j] = tr
    n_steps[j] = na
    n_rej[j] = nr
    h_last[j] = hl
    last_nonfinite[j] = lnf
    h_now[j] = hn
    for i in range(N_STATES):
        y_final[i, j] = y[i]
