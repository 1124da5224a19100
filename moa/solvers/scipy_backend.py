"""Reference backend: scipy ``solve_ivp`` one trajectory at a time, with the analytic Jacobian."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.integrate import solve_ivp

from .base import SegmentResult, trivial_segment

__all__ = ["ScipySolver"]


class _NonFinite(ArithmeticError):
    """Raised from the right-hand side: LSODA keeps stepping on inf/NaN states and never returns."""

METHODS = ("LSODA", "BDF", "Radau")


@dataclasses.dataclass
class ScipySolver:
    """``solve_ivp`` with ``method`` in LSODA, BDF, Radau. Slow per trajectory; the reference."""

    method: str = "LSODA"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: allowed scipy methods are {METHODS}")

    @property
    def name(self) -> str:
        return f"scipy-{self.method}"

    def integrate(self, compiled, t0, t1, Y0, P, t_out, rtol, atol) -> SegmentResult:
        trivial = trivial_segment(compiled, t0, t1, Y0, P, t_out)
        if trivial is not None:
            return trivial
        n, N = Y0.shape
        y = np.full((len(t_out), n, N), np.nan)
        y_final = np.full((n, N), np.nan)
        status = np.zeros(N, dtype=int)
        message = [""] * N
        n_steps = np.zeros(N, dtype=int)
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

            with np.errstate(all="ignore"):
                try:
                    sol = solve_ivp(f, (t0, t1), Y0[:, k], method=self.method, jac=jac, t_eval=t_eval,
                                    rtol=rtol, atol=atol)
                except _NonFinite as exc:
                    status[k], message[k] = 1, str(exc)
                    continue
                except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
                    status[k], message[k] = 4, f"{type(exc).__name__}: {exc}"
                    continue
            if sol.status != 0 or not np.all(np.isfinite(sol.y)):
                reached = sol.t[-1] if sol.t.size else t0
                status[k] = 1 if sol.status == 0 else 4
                message[k] = f"{sol.message} (reached t={reached:.6g} day)"
                continue
            y[:, :, k] = sol.y[:, : len(t_out)].T
            y_final[:, k] = sol.y[:, -1]
            n_steps[k] = sol.nfev
        return SegmentResult(y, y_final, status, message, n_steps)
