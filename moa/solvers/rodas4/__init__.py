"""Rodas4 (Hairer & Wanner's stiff Rosenbrock method, order 4) in one package.

:mod:`.tableau` (coefficients and controller constants), :mod:`.lu_plan` (sparse LU planned per Jacobian
pattern), :mod:`.stepper_numpy` (all trajectories stepped together in numpy), :mod:`.codegen` (the model's kernels
printed for numba), :mod:`.integrator` (the compiled integrator, bound to those kernels), :mod:`.numba_kernels`
(building, caching and running them), :mod:`.cuda` with :mod:`.cuda_template` (one GPU thread per trajectory) and
:mod:`.solver` (:class:`RodasSolver`, the backend ``moa.simulate`` calls).
"""

from .lu_plan import SparseLUPlan, dense_jacobian
from .solver import BACKENDS, RodasSolver
from .stepper_numpy import BatchResult, integrate_batch
from .tableau import RODAS4

__all__ = ["RodasSolver", "BACKENDS", "SparseLUPlan", "dense_jacobian", "BatchResult", "integrate_batch", "RODAS4"]
