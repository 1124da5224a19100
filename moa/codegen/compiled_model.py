"""Generated numpy functions of a model (:class:`CompiledModel`), their source kept on disk between processes.

Compiled functions are component-major: states ``Y`` have shape ``(n, N)``, parameters ``P`` shape ``(m, N)``;
``rhs_T(t, Y, P) -> (n, N)``. The public row-major forms ``rhs(t, y[N, n], p[N, m]) -> [N, n]`` and
``jac(t, y, p) -> [N, n, n]`` wrap them. The equations come from :class:`moa.symbolic.Model` (derived there once);
this module only prints them (:mod:`moa.codegen.printers`) and execs the text.
"""

from __future__ import annotations

import functools
import hashlib
import math
import pathlib
import weakref
from typing import Callable

import numpy as np
import sympy

from ..symbolic.model import Model
from . import cache
from .printers import OutputFamilies, compile_source, numpy_function_source, scalar_function_source

__all__ = ["CompiledModel", "compile_model", "model_key", "output_families"]

#: Bump when the generated functions change meaning without the printers' or the model's source changing.
SOURCE_CACHE_FORMAT = 1
#: The sources the generated text depends on: the symbolic model (expansion, derivation) and the printers.
_GENERATOR_SOURCES = ("symbolic/mechanism.py", "symbolic/model.py", "codegen/printers.py", "codegen/compiled_model.py")


@functools.lru_cache(maxsize=1)
def _generator_source_text() -> str:
    root = pathlib.Path(__file__).resolve().parents[1]
    return "\x00".join((root / rel).read_text(encoding="utf-8") for rel in _GENERATOR_SOURCES)


def model_key(model: Model) -> str:
    """sha256 of everything the generated numpy code depends on: the model's declarations (species,
    parameters, inputs, conversions, expressions, terms, dose routes, in order), the source of the symbolic
    model and of the code generation (printers, expansion, code layout) and the sympy version. Two models
    with equal keys generate the same text."""
    parts = [str(SOURCE_CACHE_FORMAT), sympy.__version__, _generator_source_text(), model.name]
    for group in (
        model.species,
        model.parameters,
        model.inputs,
        model.conversions,
        model.expressions,
        model.terms,
        model.dose_routes,
    ):
        parts.append(repr(group))
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def output_families(model: Model) -> OutputFamilies:
    """The model's output families (see :class:`~moa.codegen.printers.OutputFamilies`), each cse'd once."""
    jac = model.jacobian
    return OutputFamilies(
        {
            "rhs": model.rhs,
            "jacobian": lambda: jac().values,
            "rhs_jacobian": lambda: model.rhs() + jac().values,
            "observables": model.observables,
            "initial_values": model.initial_values,
            "dose_per_mg": model.dose_per_mg,
            "extinction_thresholds": model.extinction_thresholds,
        }
    )


#: numpy function name -> the output family it prints
_NUMPY_FUNCTIONS = {
    "rhs_T": "rhs",
    "jac_values_T": "jacobian",
    "observables_T": "observables",
    "initial_T": "initial_values",
    "dose_per_mg_T": "dose_per_mg",
    "extinct_threshold_T": "extinction_thresholds",
}

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compile_model(model: Model) -> "CompiledModel":
    """The :class:`CompiledModel` of ``model``, built on first use and kept for as long as the model lives."""
    compiled = _COMPILED.get(model)
    if compiled is None:
        compiled = _COMPILED[model] = CompiledModel(model)
    return compiled


class CompiledModel:
    """Batched numpy functions generated from a :class:`~moa.symbolic.Model`.

    Attributes ``jac_rows``/``jac_cols`` give the Jacobian's sparsity pattern;
    ``jac_values_T(t, Y, P) -> (nnz, N)`` its values. ``families`` holds the model's output families, each
    cse'd once, for every printer that needs them (the one-trajectory forms here, numba's kernels).
    """

    def __init__(self, model: Model):
        self.model = model
        self.species_names = model.species_names
        self.parameter_names = model.parameter_names + model.input_names
        y, p = model.state_symbols(), model.parameter_symbols()
        self.n_species, self.n_parameters = len(y), len(p)
        #: (rhs expressions, state symbols, parameter symbols in the order of P's rows), for code generators
        self.symbolic = (model.rhs(), y, p)
        self.families = output_families(model)
        self.observable_names = [e.name for e in model.expressions]
        self.dose_index = {r.drug: self.species_names.index(r.species) for r in model.dose_routes}
        self.input_index = {r.drug: self.parameter_names.index(r.infusion_symbol.name) for r in model.dose_routes}
        self.drugs = [r.drug for r in model.dose_routes]
        ext = [i for i, s in enumerate(model.species) if s.extinct_below is not None]
        #: species that go extinct below a threshold: their indices, in model order
        self.extinct_index = np.array(ext, dtype=np.int64)
        self.extinct_names = [model.species[i].name for i in ext]

        # The numpy source of the six function families takes sympy's cse tens of seconds for the
        # full model; it is a pure function of the model's declarations (model_key), so it is kept
        # on disk beside the numba modules and a later process only execs it.
        key = self.model_key = model_key(model)
        cache_file = cache.source_cache_file(key)
        generated = cache.read_source_cache(cache_file, key)
        #: "loaded" (numpy source read from the cache) or "generated" (derived with sympy this time)
        self.source_origin = "loaded" if generated is not None else "generated"
        if generated is None:
            generated = self._generate_all()
            cache.write_source_cache(cache_file, key, generated)
        self.jac_rows = np.array(generated["jac_rows"], dtype=np.intp)
        self.jac_cols = np.array(generated["jac_cols"], dtype=np.intp)
        self.jac_nnz = len(generated["jac_rows"])
        namespace = {"np": np, "numpy": np}
        funcs = {
            name: compile_source(name, src, imports, namespace)
            for name, (src, imports) in generated["functions"].items()
        }
        self.rhs_T = funcs["rhs_T"]
        self.jac_values_T = funcs["jac_values_T"]
        self._observables_T = funcs["observables_T"]
        self._initial_T = funcs["initial_T"]
        self._dose_per_mg_T = funcs["dose_per_mg_T"]
        self._extinct_threshold_T = funcs["extinct_threshold_T"]

    def _generate_all(self) -> dict:
        """Every generated numpy function's source (and the names it imports) and the Jacobian pattern."""
        _, y, p = self.symbolic
        jac = self.model.jacobian()
        functions = {}
        for fname, family in _NUMPY_FUNCTIONS.items():
            n_outputs = len(self.families.outputs(family))
            n_out = len(y) if family in ("rhs", "initial_values") else max(n_outputs, 1)
            functions[fname] = numpy_function_source(
                fname, self.families.cse(family), y, p, n_out, [str(k) for k in range(n_outputs)]
            )
        return {"jac_rows": list(jac.rows), "jac_cols": list(jac.cols), "functions": functions}

    # one-trajectory forms for the scipy reference backend, generated on first use (sympy's cse of
    # the full model takes seconds, and the compiled Rodas4 does not need them)
    @functools.cached_property
    def rhs_scalar(self) -> Callable:
        return self._cached_scalar("rhs_scalar", "rhs")

    @functools.cached_property
    def jac_values_scalar(self) -> Callable:
        return self._cached_scalar("jac_values_scalar", "jacobian")

    def _cached_scalar(self, fname: str, family: str) -> Callable:
        """A one-trajectory function, its source read from the disk cache (same key as the batched
        functions, one file per function) or printed from ``family`` and written there."""
        cache_file = cache.source_cache_file(self.model_key, part=fname)
        generated = cache.read_source_cache(cache_file, self.model_key)
        if generated is None:
            _, y, p = self.symbolic
            source, imports = scalar_function_source(fname, self.families.cse(family), y, p)
            generated = {"source": source, "imports": imports}
            cache.write_source_cache(cache_file, self.model_key, generated)
        return compile_source(fname, generated["source"], generated["imports"], {"math": math})

    # component-major (n, N) forms used by solvers
    def jac_dense_T(self, t, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Dense Jacobian, shape (n, n, N)."""
        J = np.zeros((self.n_species, self.n_species, Y.shape[1]))
        if self.jac_nnz:
            J[self.jac_rows, self.jac_cols] = self.jac_values_T(t, Y, P)[: self.jac_nnz]
        return J

    def observables_T(self, t, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
        return self._observables_T(t, Y, P)[: len(self.observable_names)]

    def initial_T(self, P: np.ndarray) -> np.ndarray:
        """Initial states (n, N) from parameters (m, N)."""
        return self._initial_T(0.0, np.zeros((self.n_species, P.shape[1])), P)

    def extinct_threshold_T(self, P: np.ndarray) -> np.ndarray:
        """(n_extinct, N): extinction threshold of each species in ``extinct_index``."""
        return self._extinct_threshold_T(0.0, np.zeros((self.n_species, P.shape[1])), P)[: self.extinct_index.size]

    def dose_per_mg_T(self, P: np.ndarray) -> np.ndarray:
        """(n_drugs, N): increment of each drug's dose species per mg given."""
        return self._dose_per_mg_T(0.0, np.zeros((self.n_species, P.shape[1])), P)[: len(self.drugs)]

    # row-major public forms
    def rhs(self, t, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """d y/dt for N parameter sets at once: y [N, n], p [N, m] -> [N, n]."""
        y, p = np.atleast_2d(y), np.atleast_2d(p)
        return self.rhs_T(t, y.T, p.T).T

    def jac(self, t, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Analytic Jacobian d(rhs)/dy: [N, n, n]."""
        y, p = np.atleast_2d(y), np.atleast_2d(p)
        return np.moveaxis(self.jac_dense_T(t, y.T, p.T), -1, 0)
