"""Solver backends behind one interface (:class:`moa.solvers.base.Solver`)."""

from __future__ import annotations

from .base import STATUS, SegmentResult, Solver
from .scipy_backend import METHODS as SCIPY_METHODS
from .scipy_backend import ScipySolver

__all__ = ["get_solver", "Solver", "SegmentResult", "STATUS", "SOLVERS"]

SOLVERS = (*SCIPY_METHODS, "rodas")


def get_solver(solver) -> Solver:
    """A backend from its name ("LSODA", "BDF", "Radau", "rodas") or a solver object."""
    if isinstance(solver, str):
        if solver in SCIPY_METHODS:
            return ScipySolver(solver)
        if solver == "rodas":
            from .batched import RodasSolver

            return RodasSolver()
        raise ValueError(f"solver={solver!r}: allowed solvers are {SOLVERS} or an object with .integrate()")
    if not hasattr(solver, "integrate"):
        raise ValueError(f"solver={solver!r}: must be a name in {SOLVERS} or have an .integrate() method")
    return solver
