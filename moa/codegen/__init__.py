"""Code generation: the symbolic model printed as numpy (batched) and scalar Python, the source cached on disk.

:func:`compile_model` gives a model's :class:`CompiledModel` (built once per model). The numba kernels of the
compiled Rodas4 are printed by :mod:`moa.solvers.rodas4.codegen` with the scalar printer of this package.
"""

from .compiled_model import CompiledModel, compile_model, model_key
from .printers import NumpyBatchedPrinter, OutputFamilies, ScalarPrinter

__all__ = ["CompiledModel", "compile_model", "model_key", "NumpyBatchedPrinter", "OutputFamilies", "ScalarPrinter"]
