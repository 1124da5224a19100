"""The solver interface: integrate a batch of trajectories over one smooth segment.

The simulator splits time at every dose and infusion edge, so a solver never steps across
a discontinuity. A backend receives component-major arrays (states ``(n, N)``, parameters
``(m, N)``) and returns states at the requested output times plus a status per trajectory.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Protocol

import numpy as np

__all__ = [
    "SegmentResult",
    "Solver",
    "SegmentDriver",
    "Status",
    "STATUS",
    "TINY_SEGMENT_DAYS",
    "trivial_segment",
    "checked_output_times",
    "extinguish",
]


class Status(enum.IntEnum):
    """Outcome of one trajectory, shared by all backends. An ``IntEnum``: the Dataset's ``status``
    stays a plain int array with these values, and ``status == Status.OK`` works on it."""

    OK = 0
    NON_FINITE = 1  # non-finite state, rate or Jacobian
    STEP_UNDERFLOW = 2
    TOO_MANY_STEPS = 3
    SOLVER_FAILURE = 4  # anything else (scipy's own failure, the quasi-steady start, a lost worker)
    NEGATIVE_STATE = 5  # a state negative beyond solver noise (checked by moa.simulate)


#: Status codes shared by all backends, with a short description of each.
STATUS = {
    Status.OK: "ok",
    Status.NON_FINITE: "non-finite state or rate",
    Status.STEP_UNDERFLOW: "step size underflow",
    Status.TOO_MANY_STEPS: "too many steps",
    Status.SOLVER_FAILURE: "solver failure",
    Status.NEGATIVE_STATE: "negative state beyond solver noise",
}


@dataclasses.dataclass
class SegmentResult:
    y: np.ndarray  # (len(t_out), n, N)
    y_final: np.ndarray  # (n, N)
    status: np.ndarray  # (N,) int, a Status value (0 = ok)
    message: list[str]  # per trajectory; "" when ok
    n_steps: np.ndarray  # (N,) accepted steps (NaN from a backend that does not count steps)
    #: (n_extinct, N) time a species of ``compiled.extinct_index`` was first set to 0 in this
    #: segment (NaN: not in this segment); None from a backend that does not handle extinction
    extinct_day: np.ndarray | None = None
    #: (N,) rejected steps; None from a backend that does not report them (read as NaN)
    n_rejected: np.ndarray | None = None
    #: (N,) right-hand-side evaluations, from a backend that counts those instead of steps (scipy)
    n_rhs_evaluations: np.ndarray | None = None


class Solver(Protocol):
    """What ``moa.simulate`` needs from a backend. A backend whose speed depends on the order it takes the
    trajectories in sets ``takes_expected_work = True``; ``moa.simulate`` then passes
    ``expected_work=`` (N,), the steps each trajectory took so far, to :meth:`integrate`."""

    name: str

    def integrate(
        self, compiled, t0: float, t1: float, Y0: np.ndarray, P: np.ndarray, t_out: np.ndarray, rtol: float, atol: float
    ) -> SegmentResult: ...


def extinguish(Y: np.ndarray, index: np.ndarray, threshold: np.ndarray, extinct_day: np.ndarray, t) -> None:
    """Extinction, in place: every species ``index[e]`` of column ``k`` that is non-zero and below
    ``threshold[e, k]`` is set to exactly 0 and, if ``extinct_day[e, k]`` is NaN, it gets ``t``
    (a scalar or (N,) times).

    All backends apply this rule after every accepted step (the compiled Rodas4 in its own loop,
    the same test), so a population below one cell cannot regrow from a fraction of a cell; only
    an inflow (e.g. mutation from another clone) can re-seed it.
    """
    if not index.size:
        return
    sub = Y[index]
    gone = (sub != 0) & (sub < threshold)
    if gone.any():
        sub[gone] = 0.0
        Y[index] = sub
        tt = np.broadcast_to(np.asarray(t, dtype=float), (Y.shape[1],))
        first = gone & np.isnan(extinct_day)
        extinct_day[first] = np.broadcast_to(tt[None], extinct_day.shape)[first]


#: Segments shorter than this (~0.1 microsecond) are not handed to a solver (see trivial_segment).
TINY_SEGMENT_DAYS = 1e-12


def trivial_segment(compiled, t0: float, t1: float, Y0: np.ndarray, P: np.ndarray, t_out) -> SegmentResult | None:
    """The result of a segment no solver should integrate, or None.

    ``t1 <= t0``: the state is unchanged. ``t1 - t0 < TINY_SEGMENT_DAYS`` (e.g. output times a few
    ulps apart, or 5e-324 day): one explicit Euler step, exact to O(dt^2) there. Solvers fail on such
    spans in their own ways -- LSODA never returned on ~1e-200 day; Rodas4's 1/(gamma h) overflows
    on a denormal step -- so every backend starts with this check.
    """
    n, N = Y0.shape
    t_out = np.asarray(t_out, dtype=float)
    status = np.zeros(N, dtype=int)
    message = [""] * N
    if t1 <= t0:
        return SegmentResult(
            np.repeat(Y0[None], len(t_out), axis=0),
            Y0.copy(),
            status,
            message,
            np.zeros(N, int),
            n_rejected=np.zeros(N, int),
        )
    if t1 - t0 >= TINY_SEGMENT_DAYS:
        return None
    with np.errstate(all="ignore"):
        dY = compiled.rhs_T(t0, Y0, P)
        y = Y0[None] + (t_out - t0)[:, None, None] * dY[None]
        y_final = Y0 + (t1 - t0) * dY
    bad = ~np.all(np.isfinite(y_final), axis=0)
    status[bad] = Status.NON_FINITE
    for k in np.nonzero(bad)[0]:
        message[k] = f"non-finite state or rate at t={t0:.6g} day"
    return SegmentResult(y, y_final, status, message, np.zeros(N, int), n_rejected=np.zeros(N, int))


def checked_output_times(t0: float, t1: float, t_out) -> np.ndarray:
    """``t_out`` as a float array, refused unless sorted and within [t0, t1]; times that miss an end by a few ulps
    (computed with logspace or cumsum) are clipped onto it. The same rule as the Rodas4 steppers' own check."""
    t_out = np.atleast_1d(np.asarray(t_out, dtype=float))
    slack = 64 * np.finfo(float).eps * max(abs(t0), abs(t1), 1e-300)
    if t_out.size and (np.any(np.diff(t_out) < 0) or t_out[0] < t0 - slack or t_out[-1] > t1 + slack):
        raise ValueError(f"t_out must be sorted and lie within [t0, t1] = [{t0:g}, {t1:g}]")
    return np.clip(t_out, t0, t1)


class SegmentDriver:
    """The driver's chores, done once for every backend (as scipy's ``OdeSolver`` keeps them apart from the
    stepper): :meth:`integrate` checks the output times, answers a trivial segment itself
    (:func:`trivial_segment`) and only then calls the backend's :meth:`integrate_segment`."""

    name: str
    takes_expected_work = False

    def integrate(
        self, compiled, t0: float, t1: float, Y0: np.ndarray, P: np.ndarray, t_out, rtol: float, atol: float, **hints
    ) -> SegmentResult:
        """``hints`` (``expected_work``) are passed on to :meth:`integrate_segment` of a backend that takes them."""
        t_out = checked_output_times(float(t0), float(t1), t_out)
        trivial = trivial_segment(compiled, t0, t1, Y0, P, t_out)
        if trivial is not None:
            return trivial
        return self.integrate_segment(compiled, t0, t1, Y0, P, t_out, rtol, atol, **hints)

    def integrate_segment(
        self, compiled, t0: float, t1: float, Y0: np.ndarray, P: np.ndarray, t_out: np.ndarray, rtol: float, atol: float
    ) -> SegmentResult:
        """Integrate a non-trivial segment (``t1 - t0 >= TINY_SEGMENT_DAYS``, ``t_out`` checked). ``Y0`` and
        ``P`` may be the caller's own arrays (moa.simulate passes them uncopied while every sample runs):
        read them, never write into them."""
        raise NotImplementedError
