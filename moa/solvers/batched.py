"""The fast backend: batched Rodas4 behind the solver interface.

Two implementations of the same method: compiled with numba (:mod:`moa.solvers.jit`, optional
extra ``moa[fast]``) and pure numpy (:mod:`moa.solvers.rodas`). ``backend="auto"`` takes the
compiled one when numba is installed.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from . import jit
from .base import SegmentResult, trivial_segment
from .rodas import SparseLUPlan, integrate_batch

__all__ = ["RodasSolver", "BACKENDS"]

BACKENDS = ("auto", "numba", "numpy")


@dataclasses.dataclass
class RodasSolver:
    """All N parameter sets at once, each with its own adaptive step.

    backend: "auto" (numba when installed, else numpy), "numba" or "numpy".
    The sparse LU plan depends only on the Jacobian's pattern, so it is built once per
    compiled model and kept on this solver object (deterministic; results do not depend on it).
    """

    chunk_size: int = 4096
    dense_output: bool = True
    backend: str = "auto"
    _plans: dict = dataclasses.field(default_factory=dict, repr=False)
    _jit_failed: str = dataclasses.field(default="", repr=False)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}: allowed values are {BACKENDS}")
        if self.backend == "numba":
            jit.require()

    @property
    def compiled_backend(self) -> bool:
        return self.backend == "numba" or (self.backend == "auto" and jit.available() and not self._jit_failed)

    @property
    def name(self) -> str:
        return "moa-rodas4-numba" if self.compiled_backend else "moa-rodas4"

    def _kernels(self, compiled):
        """The compiled kernels; with backend="auto", a model numba cannot compile falls back to numpy
        with a warning (backend="numba" raises)."""
        try:
            return jit.kernels_for_model(compiled, compile_now=True)
        except Exception as exc:  # noqa: BLE001 -- numba's errors have no common public base
            if self.backend == "numba":
                raise
            self._jit_failed = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"the compiled Rodas4 could not be built for this model ({self._jit_failed[:300]}); "
                          "using the numpy backend (same method, slower)", RuntimeWarning, stacklevel=3)
            return None

    def _plan(self, compiled) -> SparseLUPlan:
        key = id(compiled)
        if key not in self._plans:
            self._plans[key] = SparseLUPlan(compiled.n_species, compiled.jac_rows, compiled.jac_cols)
        return self._plans[key]

    def integrate(self, compiled, t0, t1, Y0, P, t_out, rtol, atol) -> SegmentResult:
        trivial = trivial_segment(compiled, t0, t1, Y0, P, t_out)
        if trivial is not None:
            return trivial
        t_out = np.asarray(t_out, dtype=float)
        kernels = self._kernels(compiled) if self.compiled_backend else None
        ext = dict(extinct_index=compiled.extinct_index, extinct_threshold=compiled.extinct_threshold_T(P))
        if kernels is not None:
            res = jit.integrate_batch_jit(kernels, t0, t1, Y0, P, t_out, rtol=rtol, atol=atol,
                                          dense_output=self.dense_output, **ext)
        else:
            res = integrate_batch(compiled.rhs_T, compiled.jac_values_T, compiled.jac_rows, compiled.jac_cols, t0,
                                  t1, Y0, P, t_out, rtol=rtol, atol=atol, plan=self._plan(compiled),
                                  dense_output=self.dense_output, chunk_size=self.chunk_size, **ext)
        return SegmentResult(res.y, res.y_final, res.status, res.message, res.n_steps, res.extinct_day)
