"""Quasi-steady-state start: relax the fast states of an untreated patient with the tumour held.

A patient at the first dose has carried the tumour for years: T cells, receptors and antigen are
in balance with it, while the tumour itself keeps growing slowly. The parameter-derived initial
state is not that balance (untreated, effectors fell 3.7e7 -> 1.5e7 in three weeks), which biased
every early comparison. :func:`quasi_steady_state` integrates the untreated system with the
tumour clones held fixed (their rates set to zero) until every other state changes by less than
``tol_per_day`` of itself per day, and starts the simulation there (``moa.simulate(...,
start="quasi_steady")``).

Relaxed: every state except the held ones -- T cells (primed, effector, Tpex, Tex), IFN-gamma,
tumour antigen, PD-L1 and receptor complexes, and drug states (zero without drug). Held: the
tumour clones (``moa.mechanisms.tumour.CLONES``), whose size is the patient's (parameter
``initial_tumour_diameter``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .codegen import compile_model
from .mechanisms.tumour import CLONES
from .solvers.base import Status
from .solvers.rodas4 import SparseLUPlan, integrate_batch
from .symbolic import Model

__all__ = ["QuasiSteadyState", "quasi_steady_state"]


@dataclasses.dataclass
class QuasiSteadyState:
    """Result of :func:`quasi_steady_state` for N parameter sets."""

    y: np.ndarray  # (n, N) states
    days: float  # untreated days integrated with the tumour held
    converged: np.ndarray  # (N,) bool
    max_relative_rate_per_day: np.ndarray  # (N,) largest |dy/dt| / (|y| + abs_floor) over relaxed states
    held: tuple[str, ...]


def quasi_steady_state(
    model: Model,
    P: np.ndarray,
    *,
    held: tuple[str, ...] | None = None,
    tol_per_day: float = 1e-4,
    chunk_days: float = 25.0,
    max_days: float = 2000.0,
    abs_floor: float = 1e-9,
    rtol: float = 1e-7,
    atol: float = 1e-10,
) -> QuasiSteadyState:
    """Relax the untreated model from its parameter-derived initial state with ``held`` states fixed.

    P: (m, N) parameter matrix in the compiled model's order (infusion inputs included, zero).
    Integrates in chunks of ``chunk_days`` (numpy Rodas4, rows of held states zeroed in the rate and
    the Jacobian) until every relaxed state satisfies ``|dy/dt| <= tol_per_day (|y| + abs_floor)``
    (per day) or ``max_days`` is reached (then ``converged`` is False for those sets).
    """
    if not (np.isfinite(tol_per_day) and tol_per_day > 0):
        raise ValueError(f"tol_per_day={tol_per_day!r}: must be a finite number > 0")
    if not (np.isfinite(max_days) and max_days > 0 and np.isfinite(chunk_days) and chunk_days > 0):
        raise ValueError(f"max_days={max_days!r}, chunk_days={chunk_days!r}: must be finite numbers > 0")
    c = compile_model(model)
    held = tuple(s for s in (CLONES if held is None else held) if s in c.species_names)
    unknown = sorted(set(held or ()) - set(c.species_names))
    if unknown:
        raise ValueError(f"held={unknown}: not species of model {model.name!r}; allowed: {c.species_names}")
    rows = np.array([c.species_names.index(s) for s in held], dtype=int)
    free = np.setdiff1d(np.arange(c.n_species), rows)
    jac_held = np.isin(c.jac_rows, rows)

    def rhs(t, Y, P_):
        out = c.rhs_T(t, Y, P_)
        out[rows] = 0.0
        return out

    def jac_values(t, Y, P_):
        v = np.array(c.jac_values_T(t, Y, P_), dtype=float)
        v[: c.jac_nnz][jac_held] = 0.0
        return v

    def relative_rate(Y):
        with np.errstate(all="ignore"):
            r = np.abs(rhs(0.0, Y, P)[free]) / (np.abs(Y[free]) + abs_floor)
        return np.nanmax(np.where(np.isfinite(r), r, np.inf), axis=0) if free.size else np.zeros(Y.shape[1])

    plan = SparseLUPlan(c.n_species, c.jac_rows, c.jac_cols)
    Y = c.initial_T(P)
    days = 0.0
    rate = relative_rate(Y)
    while np.any(rate > tol_per_day) and days < max_days:
        step = min(chunk_days, max_days - days)
        with np.errstate(all="ignore"):
            res = integrate_batch(
                rhs, jac_values, c.jac_rows, c.jac_cols, 0.0, step, Y, P, [], rtol=rtol, atol=atol, plan=plan
            )
        ok = res.status == Status.OK
        Y = np.where(ok[None], res.y_final, np.nan)
        days += step
        rate = np.where(ok, relative_rate(Y), np.inf)
    return QuasiSteadyState(Y, days, rate <= tol_per_day, rate, held)
