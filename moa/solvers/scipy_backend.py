"""Reference backend: scipy ``solve_ivp`` one trajectory at a time, with the analytic Jacobian."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.integrate import solve_ivp

from .base import SegmentDriver, SegmentResult, Status, extinguish

__all__ = ["ScipySolver"]


class _NonFinite(ArithmeticError):
    """Raised from the right-hand side: LSODA keeps stepping on inf/NaN states and never returns."""


METHODS = ("LSODA", "BDF", "Radau")


@dataclasses.dataclass
class ScipySolver(SegmentDriver):
    """``solve_ivp`` with ``method`` in LSODA, BDF, Radau. Slow per trajectory; the reference.

    Extinction (species in ``compiled.extinct_index``) is a terminal event at the exact crossing of
    the threshold from above: the species is set to 0 there and the integration restarts. (The
    Rodas4 backends test after each accepted step instead, so their extinction days can differ by
    up to one step.)
    """

    method: str = "LSODA"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: allowed scipy methods are {METHODS}")

    @property
    def name(self) -> str:
        return f"scipy-{self.method}"

    def integrate_segment(self, compiled, t0, t1, Y0, P, t_out, rtol, atol) -> SegmentResult:
        n, N = Y0.shape
        y = np.full((len(t_out), n, N), np.nan)
        y_final = np.full((n, N), np.nan)
        status = np.zeros(N, dtype=int)
        message = [""] * N
        n_rhs_evaluations = np.zeros(N, dtype=int)
        ext_idx = compiled.extinct_index
        ext_thr = compiled.extinct_threshold_T(P)
        extinct_day = np.full((ext_idx.size, N), np.nan)
        # t1 is always evaluated (the next segment starts from it) and stripped from the output.
        t_eval = np.append(t_out, t1) if not (len(t_out) and t_out[-1] == t1) else t_out
        n_states, rows, cols = compiled.n_species, compiled.jac_rows, compiled.jac_cols
        for k in range(N):
            p = P[:, k].tolist()

            # plain-float generated code: numpy's per-call overhead dominates for one trajectory
            def f(t, x, p=p):
                try:
                    dx = np.array(compiled.rhs_scalar(x.tolist(), p), dtype=float)
                except (ArithmeticError, ValueError, TypeError) as exc:
                    raise _NonFinite(f"{type(exc).__name__} in the rate law at t={t:.6g} day: {exc}") from None
                if not (np.all(np.isfinite(x)) and np.all(np.isfinite(dx))):
                    raise _NonFinite(f"non-finite state or rate at t={t:.6g} day")
                return dx

            def jac(t, x, p=p):
                J = np.zeros((n_states, n_states))
                try:
                    J[rows, cols] = compiled.jac_values_scalar(x.tolist(), p)
                except (ArithmeticError, ValueError, TypeError) as exc:
                    raise _NonFinite(f"{type(exc).__name__} in the Jacobian at t={t:.6g} day: {exc}") from None
                return J

            day = extinct_day[:, k : k + 1]
            ys, yend, nfev, failure = self._solve(
                f, jac, t0, t1, Y0[:, k].copy(), t_eval, rtol, atol, ext_idx, ext_thr[:, k : k + 1], day
            )
            if failure:
                status[k], message[k] = failure
                continue
            y[:, :, k] = ys[:, : len(t_out)].T
            y_final[:, k] = yend
            n_rhs_evaluations[k] = nfev
        # solve_ivp counts rhs evaluations (nfev), not accepted and rejected steps: those are NaN
        return SegmentResult(
            y,
            y_final,
            status,
            message,
            np.full(N, np.nan),
            extinct_day,
            n_rejected=np.full(N, np.nan),
            n_rhs_evaluations=n_rhs_evaluations,
        )

    def _solve(self, f, jac, t0, t1, y0, t_eval, rtol, atol, ext_idx, thr, day):
        """One trajectory, restarted at every extinction event. Returns (states at t_eval (n, len),
        final state, rhs evaluations, None or (status, message))."""
        pieces, start, y_start, nfev = [], t0, y0, 0
        while True:
            extinguish(y_start[:, None], ext_idx, thr, day, start)
            if pieces and start >= t1:
                # the event fell on the segment's end: its last output (t1) is the state after extinction
                pieces[-1][:, -1] = y_start
                return np.concatenate(pieces, axis=1), y_start, nfev, None
            live = [e for e in range(ext_idx.size) if y_start[ext_idx[e]] != 0]
            events = [_threshold_event(int(ext_idx[e]), float(thr[e, 0])) for e in live]
            te = t_eval[t_eval >= start] if not pieces else t_eval[t_eval > start]
            with np.errstate(all="ignore"):
                try:
                    sol = solve_ivp(
                        f,
                        (start, t1),
                        y_start,
                        method=self.method,
                        jac=jac,
                        t_eval=te,
                        rtol=rtol,
                        atol=atol,
                        events=events or None,
                    )
                except _NonFinite as exc:
                    return None, None, nfev, (Status.NON_FINITE, str(exc))
                except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
                    return None, None, nfev, (Status.SOLVER_FAILURE, f"{type(exc).__name__}: {exc}")
            nfev += sol.nfev
            if sol.status < 0 or not np.all(np.isfinite(sol.y)):
                reached = sol.t[-1] if sol.t.size else start
                return (
                    None,
                    None,
                    nfev,
                    (
                        Status.NON_FINITE if sol.status == 0 else Status.SOLVER_FAILURE,
                        f"{sol.message} (reached t={reached:.6g} day)",
                    ),
                )
            pieces.append(sol.y)
            if sol.status == 0:
                return np.concatenate(pieces, axis=1), sol.y[:, -1], nfev, None
            # an extinction event ended the piece: restart from there with the species at 0
            hit = next(i for i, t_ev in enumerate(sol.t_events) if t_ev.size)
            start, y_start = float(sol.t_events[hit][0]), sol.y_events[hit][0].copy()
            y_start[events[hit].species] = 0.0
            day[live[hit], 0] = start if np.isnan(day[live[hit], 0]) else day[live[hit], 0]


def _threshold_event(species: int, threshold: float):
    """Terminal event: ``y[species]`` falls through ``threshold``."""

    def event(t, x):
        return x[species] - threshold

    event.terminal, event.direction, event.species = True, -1, species
    return event
