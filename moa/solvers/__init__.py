"""Solver backends behind one interface (:class:`moa.solvers.base.Solver`)."""

from __future__ import annotations

from .base import STATUS, SegmentResult, Solver, Status
from .rodas4 import RodasSolver
from .scipy_backend import METHODS as SCIPY_METHODS
from .scipy_backend import ScipySolver

__all__ = ["get_solver", "auto_solver", "Solver", "SegmentResult", "STATUS", "Status", "SOLVERS", "RodasSolver"]

SOLVERS = (*SCIPY_METHODS, "rodas")


def auto_solver(batch_size: int) -> str:
    """The solver ``solver="auto"`` stands for: the compiled Rodas4 whenever numba is installed (it is
    faster than LSODA even for one trajectory); without numba, LSODA below 8 parameter sets (numpy's
    batched Rodas4 pays a fixed Python cost per step) and the numpy Rodas4 from 8 up."""
    from .rodas4 import numba_kernels

    return "rodas" if (numba_kernels.available() or batch_size >= 8) else "LSODA"


def get_solver(solver) -> Solver:
    """A backend from its name ("LSODA", "BDF", "Radau", "rodas") or a solver object."""
    if isinstance(solver, str):
        if solver in SCIPY_METHODS:
            return ScipySolver(solver)
        if solver == "rodas":
            from .rodas4.solver import RodasSolver

            return RodasSolver()
        raise ValueError(f"solver={solver!r}: allowed solvers are {SOLVERS} or an object with .integrate()")
    if not hasattr(solver, "integrate"):
        raise ValueError(f"solver={solver!r}: must be a name in {SOLVERS} or have an .integrate() method")
    return solver
