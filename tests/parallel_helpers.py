"""Helpers for tests/test_parallel.py that worker processes must import by name: a solver that
kills the worker process simulating one chosen parameter value (issue 10, item 7)."""

from __future__ import annotations

import dataclasses
import os
import signal

import numpy as np

from moa.solvers import RodasSolver


@dataclasses.dataclass
class KillingSolver(RodasSolver):
    """Kills its own process (SIGKILL: no exception, no cleanup) when the batch holds
    ``parameter == poisoned_value``; with ``once_marker`` only the first time (the marker file
    records that it happened). Otherwise the plain Rodas4 solver."""

    parameter: str = "cl_bsab"
    poisoned_value: float = float("nan")
    once_marker: str | None = None

    def integrate(self, compiled, t0, t1, Y0, P, t_out, rtol, atol):
        if np.any(P[compiled.parameter_names.index(self.parameter)] == self.poisoned_value):
            if self.once_marker is None or not os.path.exists(self.once_marker):
                if self.once_marker is not None:
                    with open(self.once_marker, "w") as f:
                        f.write(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        return super().integrate(compiled, t0, t1, Y0, P, t_out, rtol, atol)
