"""Template of the CUDA Rodas4 integrator (read as text by :mod:`moa.solvers.rodas4.cuda`).

Not imported on its own: :func:`moa.solvers.rodas4.cuda.kernel_source` appends the model's kernels, printed
by the same printers as the numba CPU backend (:mod:`moa.solvers.rodas4.codegen`) but decorated
``@cuda.jit(device=True)``, and the constants ``N_STATES``, ``N_SLOTS`` (compile-time sizes of the
per-thread work arrays) and the method's coefficients.

A thread integrates a trajectory from ``t0`` to ``t1`` with the step of ``integrator.integrate_one`` (same
tableau, controller, landing rule, dense output, extinction rule and status codes, the same arithmetic),
arranged for the GPU as :func:`_step` says, with the work arrays in ``cuda.local.array``; when it is
done it takes the next trajectory not yet taken (work refill, :func:`integrate_kernel`). Global arrays
are laid out with the trajectory index ``j`` last (``Y0``/``P`` (n, N), ``y_out`` (n_out, n, N)), so a
warp's reads and writes of one component are coalesced while its lanes hold neighbouring trajectories
(after refills they hold any: those accesses scatter, the work arrays in local memory do not).

One difference: there is no pivoted dense LU (54 x 54 doubles per thread would not fit). Where the
CPU backends fall back to it (pivot growth above ``GROWTH_LIMIT`` or a non-finite pivot in the
unpivoted sparse LU) the thread stops with status 6 and the host reruns that trajectory on the CPU.
Status codes: 0 ok, 1 non-finite rhs/Jacobian after a step, 2 step size underflow, 3 too many steps,
5 non-finite initial state, rhs or Jacobian, 6 sparse LU unstable (needs the dense fallback).
"""

import math

import numpy as np
from numba import cuda, float64

N_STATES = 1
N_SLOTS = 1


def _rhs(y, p, out):  # placeholder, redefined by the generated kernels
    raise NotImplementedError


def _rhs_jac(y, p, out, jv):  # placeholder (writes -J into jv: see cuda._negated_jacobian)
    raise NotImplementedError


def _factor(a, d):  # placeholder
    raise NotImplementedError


def _solve(a, d, b):  # placeholder
    raise NotImplementedError


def _add_diag(a, c):  # placeholder: a[diagonal slots] += c
    raise NotImplementedError


def _clear_fill(a):  # placeholder: a[slots outside the Jacobian's pattern] = 0
    raise NotImplementedError


# Coefficients and controller constants appended by the generator (from moa.solvers.rodas4.tableau).
GAMMA = SAFE = FAC_MIN = FAC_MAX = GROWTH_LIMIT = float("nan")
H21 = H22 = H23 = H24 = H25 = H31 = H32 = H33 = H34 = H35 = float("nan")
A_TAB = C_TAB = np.full((6, 5), np.nan)  # A[s, r], C[s, r]: weights of k_r in stage s + 1 (cuda._stage_tables)
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
def _step(
    y,
    p,
    t,
    h,
    h_acc,
    err_acc,
    h_last,
    ptr,
    n_acc,
    n_rej,
    rejected,
    first,
    last_nonfinite,
    t0,
    t1,
    t_out,
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
    f0,
    a,
    d,
    ks,
    ys,
    fs,
    y_new,
):
    """One step of trajectory ``j`` (one pass of the loop of ``integrator.integrate_one``, the same
    arithmetic), from the trajectory's state ``(t, h, h_acc, err_acc, h_last, ptr, n_acc, n_rej, rejected,
    first, last_nonfinite)``; returns ``(code, <that state after the step>)``, ``code`` -1 while the
    trajectory goes on, else its final status (0 ok, 1, 2, 3, 5, 6 as in the module docstring). ``y``
    (local) is the state vector; ``f0 .. y_new`` are the thread's work arrays.

    Written for the GPU: each model kernel has one call site (the stages are a loop over the tableau's
    rows, held in constant memory), so the compiler does not copy the model's code once per stage; and
    ``-J`` is evaluated straight into the iteration matrix's slots at the start of every step, a rejected
    one included (the same values again), so no second copy of the Jacobian is kept per thread and no
    pass over all slots builds ``c I - J``."""
    n = N_STATES
    n_out = t_out.shape[0]
    a_tab = cuda.const.array_like(A_TAB)
    c_tab = cuda.const.array_like(C_TAB)
    span = t1 - t0

    # rhs and Jacobian at (t, y): -J into the matrix's pattern slots, its other slots cleared
    _rhs_jac(y, p, f0, a)
    _clear_fill(a)
    if first:
        if not (_all_finite(y, n) and _all_finite(f0, n) and _all_finite(a, N_SLOTS)):
            return 5, t, h, h_acc, err_acc, h_last, ptr, n_acc, n_rej, rejected, first, last_nonfinite
        if fixed_step > 0:
            h = fixed_step
        elif h_start > 0 and math.isfinite(h_start):
            h = h_start
        else:
            h = _initial_step(y, p, f0, atol, rtol, span, ys, fs)
        h = min(h, span)
        first = False
    elif not rejected:
        if not (_all_finite(f0, n) and _all_finite(a, N_SLOTS)):
            return 1, t, h, h_acc, err_acc, h_last, ptr, n_acc, n_rej, rejected, first, last_nonfinite

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
    _add_diag(a, c)  # a = c I - J (a holds -J)
    growth = _factor(a, d)
    if not (growth <= GROWTH_LIMIT and _all_finite(d, n)):
        return 6, t, h, h_acc, err_acc, h_last, ptr, n_acc, n_rej, rejected, first, last_nonfinite
    inv_h = 1.0 / hh

    # stage s: argument ys = y + sum_r A[s, r] k_r (stage 6: stage 5's argument + k5), then
    # k_s = (c I - J)^-1 (f(ys) + sum_r C[s, r] k_r / h); stage 1 uses f0
    for s in range(6):
        if s == 0:
            for i in range(n):
                ks[0, i] = f0[i]
        else:
            if s < 5:
                for i in range(n):
                    acc = y[i]
                    for r in range(s):
                        acc += a_tab[s, r] * ks[r, i]
                    ys[i] = acc
            else:
                for i in range(n):
                    ys[i] = ys[i] + ks[4, i]  # stage-6 argument = embedded order-3 solution
            _rhs(ys, p, fs)
            for i in range(n):
                acc = c_tab[s, 0] * ks[0, i]
                for r in range(1, s):
                    acc += c_tab[s, r] * ks[r, i]
                ks[s, i] = fs[i] + acc * inv_h
        _solve(a, d, ks[s])
    for i in range(n):
        y_new[i] = ys[i] + ks[5, i]

    finite = _all_finite(y_new, n)
    if fixed_step > 0:
        err = 0.0 if finite else INF
    else:
        sq_sum = 0.0
        for i in range(n):
            sc = atol[i] + rtol * max(abs(y[i]), abs(y_new[i]))
            v = ks[5, i] / sc
            sq_sum += v * v
        err = math.sqrt(sq_sum / n)
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
                fs[i] = H21 * ks[0, i] + H22 * ks[1, i] + H23 * ks[2, i] + H24 * ks[3, i] + H25 * ks[4, i]
                ys[i] = H31 * ks[0, i] + H32 * ks[1, i] + H33 * ks[2, i] + H34 * ks[3, i] + H35 * ks[4, i]
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
            return 0, t, h, h_acc, err_acc, h_last, ptr, n_acc, n_rej, rejected, first, last_nonfinite
    else:
        n_rej += 1
        h = h_new_rej
        rejected = True
    if h < max(h_min, 10 * EPS * abs(t)):
        return 2, t, h, h_acc, err_acc, h_last, ptr, n_acc, n_rej, rejected, first, last_nonfinite
    if n_acc + n_rej >= max_steps:
        return 3, t, h, h_acc, err_acc, h_last, ptr, n_acc, n_rej, rejected, first, last_nonfinite
    return -1, t, h, h_acc, err_acc, h_last, ptr, n_acc, n_rej, rejected, first, last_nonfinite


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
    next_job,
    order,
):
    """Integrates the columns ``j`` of ``Y0`` (n, N) with parameters ``P[:, j]`` and writes every output
    row of ``y_out[:, :, j]`` (``Y0`` before ``k0``, NaN after a failure) and the per-trajectory results.

    Work refill: a thread takes the next trajectory ``j`` from the counter ``next_job[0]`` (atomic, starts
    at 0) whenever its own is done, and stops when none is left. The loop is flat (one step per pass; a
    finished trajectory's outputs and the next one's start are a branch inside it), so the lanes of a
    warp keep stepping their own trajectories side by side instead of idling until the warp's slowest
    is done. Launched with as many threads as the card holds at once; with one thread per trajectory
    each thread takes one. The k-th trajectory taken is column ``order[k]`` (``order`` empty: column
    k): the host hands out the longest expected first, so that the launch does not end waiting for a
    long one taken last. Which thread runs a trajectory, and when, does not change its arithmetic."""
    N = Y0.shape[1]
    y = cuda.local.array(N_STATES, float64)
    f0 = cuda.local.array(N_STATES, float64)
    a = cuda.local.array(N_SLOTS, float64)
    d = cuda.local.array(N_STATES, float64)
    ks = cuda.local.array((6, N_STATES), float64)
    ys = cuda.local.array(N_STATES, float64)
    fs = cuda.local.array(N_STATES, float64)
    y_new = cuda.local.array(N_STATES, float64)
    n_out = t_out.shape[0]

    # trajectory j's scalar state (named apart from the output arrays above)
    j = -1
    code = 0  # "the previous trajectory is done": the first pass takes one
    t, h, hacc, erracc, hlast, hstart = t0, 0.0, 0.0, 1.0, NAN, NAN
    ptr, nacc, nrej = k0, 0, 0
    rejected, first, lnf = False, True, False
    while True:
        if code >= 0:
            if j >= 0:  # trajectory j is done: its outputs
                for k in range(ptr, n_out):
                    for i in range(N_STATES):
                        y_out[k, i, j] = NAN
                status[j] = code
                t_reached[j] = t
                n_steps[j] = nacc
                n_rej[j] = nrej
                h_last[j] = hlast
                last_nonfinite[j] = lnf
                h_now[j] = h
                for i in range(N_STATES):
                    y_final[i, j] = y[i]
            j = cuda.atomic.add(next_job, 0, 1)
            if j >= N:
                return
            if order.shape[0] > 0:
                j = order[j]
            for i in range(N_STATES):
                y[i] = Y0[i, j]
            for k in range(k0):
                for i in range(N_STATES):
                    y_out[k, i, j] = y[i]
            t, h, hacc, erracc, hlast, hstart = t0, 0.0, 0.0, 1.0, NAN, h0[j]
            ptr, nacc, nrej = k0, 0, 0
            rejected, first, lnf = False, True, False
        code, t, h, hacc, erracc, hlast, ptr, nacc, nrej, rejected, first, lnf = _step(
            y,
            P[:, j],
            t,
            h,
            hacc,
            erracc,
            hlast,
            ptr,
            nacc,
            nrej,
            rejected,
            first,
            lnf,
            t0,
            t1,
            t_out,
            atol,
            rtol,
            hstart,
            max_steps,
            h_min,
            dense_output,
            fixed_step,
            y_out,
            j,
            ext_idx,
            ext_thr,
            ext_day,
            f0,
            a,
            d,
            ks,
            ys,
            fs,
            y_new,
        )
