"""The solver interface: integrate a batch of trajectories over one smooth segment.

The simulator splits time at every dose and infusion edge, so a solver never steps across
a discontinuity. A backend receives component-major arrays (states ``(n, N)``, parameters
``(m, N)``) and returns states at the requested output times plus a status per trajectory.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

__all__ = ["SegmentResult", "Solver", "STATUS"]

#: Status codes shared by all backends.
STATUS = {0: "ok", 1: "non-finite state or rate", 2: "step size underflow", 3: "too many steps", 4: "solver failure"}


@dataclasses.dataclass
class SegmentResult:
    y: np.ndarray  # (len(t_out), n, N)
    y_final: np.ndarray  # (n, N)
    status: np.ndarray  # (N,) int, 0 = ok
    message: list[str]  # per trajectory; "" when ok
    n_steps: np.ndarray  # (N,) accepted steps


class Solver(Protocol):
    """What ``moa.simulate`` needs from a backend."""

    name: str

    def integrate(self, compiled, t0: float, t1: float, Y0: np.ndarray, P: np.ndarray, t_out: np.ndarray,
                  rtol: float, atol: float) -> SegmentResult: ...
