"""Points of a sweep: a design in the unit hypercube, mapped to parameter values by each
parameter's distribution (:meth:`moa.sweep.spec.ParameterDistribution.ppf`).

Designs (``n`` as in the spec; ``d`` parameters):

* ``grid``: ``n`` levels per parameter, 0..1 inclusive (the bounds themselves), ``n**d`` points,
  the last parameter varying fastest;
* ``lhs``: ``n`` points of a Latin hypercube (``scipy.stats.qmc.LatinHypercube``);
* ``sobol``: the first ``n`` points of a scrambled Sobol sequence (``scipy.stats.qmc.Sobol``);
* ``saltelli``: :func:`moa.sensitivity.saltelli_design` with ``n`` base samples, ``n*(d+2)`` rows
  in the order :func:`moa.sensitivity.sobol_indices` reads;
* ``morris``: :func:`moa.sensitivity.morris_design`, ``n`` trajectories of ``d+1`` points.

The same spec and seed give the same design on every machine and in every process.
"""

from __future__ import annotations

import itertools

import numpy as np

from .spec import SweepSpec

__all__ = ["unit_design", "parameter_values", "MORRIS_LEVELS"]

#: Levels of the Morris grid. assumed: 4 is the common choice (Saltelli et al. 2008, Global Sensitivity
#: Analysis: The Primer, ch. 3); it cannot yet be set from a spec.
MORRIS_LEVELS = 4


def unit_design(spec: SweepSpec) -> np.ndarray:
    """(points, d) design in the unit hypercube for ``spec``'s sampling, n and seed."""
    from scipy.stats import qmc

    d, n = len(spec.parameters), int(spec.n)
    if spec.sampling == "grid":
        levels = np.linspace(0.0, 1.0, n)
        return np.array(list(itertools.product(levels, repeat=d)), dtype=float).reshape(-1, d)
    if spec.sampling == "lhs":
        return qmc.LatinHypercube(d=d, rng=np.random.default_rng(spec.seed)).random(n)
    if spec.sampling == "sobol":
        return qmc.Sobol(d=d, scramble=True, rng=np.random.default_rng(spec.seed)).random(n)
    from .. import sensitivity

    if spec.sampling == "saltelli":
        return np.asarray(sensitivity.saltelli_design(n, d, spec.seed), dtype=float)
    if spec.sampling == "morris":
        return np.asarray(sensitivity.morris_design(n, d, levels=MORRIS_LEVELS, seed=spec.seed), dtype=float)
    raise ValueError(f"sampling={spec.sampling!r}: unknown")  # validate() refuses it earlier


def parameter_values(spec: SweepSpec, unit: np.ndarray) -> dict[str, np.ndarray]:
    """``{parameter: values [its unit]}`` at the unit-hypercube points ``unit`` (points, d)."""
    unit = np.asarray(unit, dtype=float)
    if unit.ndim != 2 or unit.shape[1] != len(spec.parameters):
        raise ValueError(f"unit design of shape {unit.shape}: needs (points, {len(spec.parameters)})")
    return {p.name: p.ppf(unit[:, j]) for j, p in enumerate(spec.parameters)}
