"""The fast backend: batched Rodas4 behind the solver interface.

Three implementations of the same method: compiled with numba (:mod:`moa.solvers.rodas4.numba_kernels`,
optional extra ``moa[fast]``), pure numpy (:mod:`moa.solvers.rodas4.stepper_numpy`) and one GPU thread per
trajectory (:mod:`moa.solvers.rodas4.cuda`, extra ``moa[gpu]``, imported only when used). ``backend="auto"`` takes
the GPU for batches of at least ``gpu_min_batch`` when a CUDA GPU is present (never numba's
simulator), else the compiled one when numba is installed.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ..base import SegmentDriver, SegmentResult
from . import numba_kernels as jit
from .lu_plan import SparseLUPlan
from .stepper_numpy import integrate_batch

__all__ = ["RodasSolver", "BACKENDS"]

BACKENDS = ("auto", "numba", "numpy", "cuda")


@dataclasses.dataclass
class RodasSolver(SegmentDriver):
    """All N parameter sets at once, each with its own adaptive step.

    backend: "auto" (the GPU for large batches when one is present, else numba when installed, else
    numpy), "numba", "numpy" or "cuda" (raises, naming the missing piece, without a usable GPU).
    The sparse LU plan depends only on the Jacobian's pattern, so it is built once per
    pattern and kept on this solver object (deterministic; results do not depend on it).
    """

    chunk_size: int = 4096
    dense_output: bool = True
    backend: str = "auto"
    _plans: dict = dataclasses.field(default_factory=dict, repr=False)
    gpu_min_batch: int = 4096
    _jit_failed: str = dataclasses.field(default="", repr=False)
    _used: str = dataclasses.field(default="", repr=False)
    _gpu_failed: str = dataclasses.field(default="", repr=False)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}: allowed values are {BACKENDS}")
        if self.backend == "numba":
            jit.require()
        if self.backend == "cuda":
            from . import cuda

            cuda.require()

    @property
    def compiled_backend(self) -> bool:
        return self.backend == "numba" or (self.backend == "auto" and jit.available() and not self._jit_failed)

    @property
    def name(self) -> str:
        if self._used == "cuda" or self.backend == "cuda":
            return "moa-rodas4-cuda"
        return "moa-rodas4-numba" if self.compiled_backend else "moa-rodas4"

    def _gpu_for(self, n_trajectories: int) -> bool:
        """Whether this batch goes to the GPU: always for "cuda"; for "auto" only with a real GPU
        (not numba's simulator) and at least ``gpu_min_batch`` trajectories."""
        if self.backend == "cuda":
            return True
        if self.backend != "auto" or n_trajectories < self.gpu_min_batch or self._gpu_failed or not jit.available():
            return False
        from . import cuda

        return cuda.available() and not cuda.simulator()

    def sends_to_gpu(self, n_trajectories: int) -> bool:
        """Whether a batch of ``n_trajectories`` would be integrated on the GPU (``moa.simulate`` then relaxes
        its quasi-steady start there too)."""
        return self._gpu_for(n_trajectories)

    def _kernels(self, compiled):
        """The compiled kernels; with backend="auto", a model numba cannot compile falls back to numpy
        with a warning (backend="numba" raises)."""
        try:
            return jit.kernels_for_model(compiled, compile_now=True)
        except Exception as exc:  # noqa: BLE001 -- numba's errors have no common public base
            if self.backend == "numba":
                raise
            self._jit_failed = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"the compiled Rodas4 could not be built for this model ({self._jit_failed[:300]}); "
                "using the numpy backend (same method, slower)",
                RuntimeWarning,
                stacklevel=3,
            )
            return None

    def _plan(self, compiled) -> SparseLUPlan:
        """The LU plan for ``compiled``'s Jacobian pattern, built once per pattern. Keyed by the pattern
        itself (n, rows, cols), not by ``id(compiled)``: a model built where a freed one lived has the
        same id and would get that model's plan."""
        key = (
            int(compiled.n_species),
            tuple(np.asarray(compiled.jac_rows).tolist()),
            tuple(np.asarray(compiled.jac_cols).tolist()),
        )
        if key not in self._plans:
            self._plans[key] = SparseLUPlan(compiled.n_species, compiled.jac_rows, compiled.jac_cols)
        return self._plans[key]

    #: ``expected_work`` orders the trajectories on the GPU (longest first); the CPU backends ignore it
    takes_expected_work = True

    def integrate_segment(self, compiled, t0, t1, Y0, P, t_out, rtol, atol, expected_work=None) -> SegmentResult:
        ext = dict(extinct_index=compiled.extinct_index, extinct_threshold=compiled.extinct_threshold_T(P))
        if self._gpu_for(Y0.shape[1]):
            from . import cuda

            cpu = (lambda: self._kernels(compiled)) if jit.available() else None  # reruns dense-LU cases
            try:
                res = cuda.integrate_batch_cuda(
                    cuda.kernels_for_model(compiled),
                    t0,
                    t1,
                    Y0,
                    P,
                    t_out,
                    rtol=rtol,
                    atol=atol,
                    dense_output=self.dense_output,
                    expected_work=expected_work,
                    cpu_kernels=cpu,
                    **ext,
                )
            except Exception as exc:  # noqa: BLE001 -- CUDA's and numba's errors have no common base
                if self.backend == "cuda":
                    raise
                self._gpu_failed = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"the CUDA Rodas4 failed for this model ({self._gpu_failed[:300]}); using the CPU "
                    "backends (same method)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return self.integrate(compiled, t0, t1, Y0, P, t_out, rtol, atol)
            self._used = "cuda"
            return SegmentResult(
                res.y, res.y_final, res.status, res.message, res.n_steps, res.extinct_day, n_rejected=res.n_rejected
            )
        self._used = ""
        kernels = self._kernels(compiled) if self.compiled_backend else None
        if kernels is not None:
            res = jit.integrate_batch_jit(
                kernels, t0, t1, Y0, P, t_out, rtol=rtol, atol=atol, dense_output=self.dense_output, **ext
            )
        else:
            # Fortran order, as moa.simulate's column copies always gave it: numpy's sums round by memory
            # layout, and tests/test_bit_identity.py holds this backend to the digit
            res = integrate_batch(
                compiled.rhs_T,
                compiled.jac_values_T,
                compiled.jac_rows,
                compiled.jac_cols,
                t0,
                t1,
                np.asfortranarray(Y0),
                np.asfortranarray(P),
                t_out,
                rtol=rtol,
                atol=atol,
                plan=self._plan(compiled),
                dense_output=self.dense_output,
                chunk_size=self.chunk_size,
                **ext,
            )
        return SegmentResult(
            res.y, res.y_final, res.status, res.message, res.n_steps, res.extinct_day, n_rejected=res.n_rejected
        )
