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
from .solvers.rodas4 import SparseLUPlan, integrate_batch, numba_kernels
from .symbolic import Model

__all__ = ["QuasiSteadyState", "quasi_steady_state", "held_species", "QSS_BACKENDS"]


@dataclasses.dataclass
class QuasiSteadyState:
    """Result of :func:`quasi_steady_state` for N parameter sets."""

    y: np.ndarray  # (n, N) states
    days: float  # the longest relaxation: untreated days integrated with the tumour held
    converged: np.ndarray  # (N,) bool
    max_relative_rate_per_day: np.ndarray  # (N,) largest |dy/dt| / (|y| + abs_floor) over relaxed states
    held: tuple[str, ...]
    days_each: np.ndarray  # (N,) days each parameter set was relaxed (a multiple of chunk_days)
    backend: str  # "numba", "numpy" or "cuda": what integrated it


#: How :func:`quasi_steady_state` may integrate: "auto" is the compiled Rodas4 when numba is available, else
#: numpy (never the GPU: ``moa.simulate`` asks for "cuda" when its solver sends the batch there).
QSS_BACKENDS = ("auto", "numba", "numpy", "cuda")


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
    backend: str = "auto",
) -> QuasiSteadyState:
    """Relax the untreated model from its parameter-derived initial state with ``held`` states fixed.

    P: (m, N) parameter matrix in the compiled model's order (infusion inputs included, zero).
    Each parameter set is integrated in chunks of ``chunk_days`` (Rodas4; the rows of held states are zero in
    the rate and the Jacobian) until every relaxed state satisfies ``|dy/dt| <= tol_per_day (|y| + abs_floor)``
    (per day), and then left where it is; after ``max_days`` the sets still moving are returned with
    ``converged`` False. A set's start depends only on its own parameters, never on the other sets in the batch.

    ``backend``: "numba" (compiled Rodas4, a separate kernel module for the held system, compiled once and
    cached like the model's), "numpy" (batched Rodas4; the same steps, results equal to rounding), "cuda"
    (the GPU Rodas4 of the same held system: the same steps as numba; raises without a usable GPU, naming
    the missing piece) or "auto" (numba when it is installed, else numpy).
    """
    if not (np.isfinite(tol_per_day) and tol_per_day > 0):
        raise ValueError(f"tol_per_day={tol_per_day!r}: must be a finite number > 0")
    if not (np.isfinite(max_days) and max_days > 0 and np.isfinite(chunk_days) and chunk_days > 0):
        raise ValueError(f"max_days={max_days!r}, chunk_days={chunk_days!r}: must be finite numbers > 0")
    if backend not in QSS_BACKENDS:
        raise ValueError(f"backend={backend!r}: allowed values are {QSS_BACKENDS}")
    c = compile_model(model)
    held = held_species(c, held)
    unknown = sorted(set(held or ()) - set(c.species_names))
    if unknown:
        raise ValueError(f"held={unknown}: not species of model {model.name!r}; allowed: {c.species_names}")
    rows = np.array([c.species_names.index(s) for s in held], dtype=int)
    free = np.setdiff1d(np.arange(c.n_species), rows)
    if backend == "auto":
        backend = "numba" if numba_kernels.available() else "numpy"
    integrate = _integrator(c, rows, backend, rtol, atol)

    def relative_rate(Y, P_):
        with np.errstate(all="ignore"):
            rate = c.rhs_T(0.0, Y, P_)
            r = np.abs(rate[free]) / (np.abs(Y[free]) + abs_floor)
        return np.nanmax(np.where(np.isfinite(r), r, np.inf), axis=0) if free.size else np.zeros(Y.shape[1])

    P = np.asarray(P, dtype=float)
    Y = c.initial_T(P)
    N = Y.shape[1]
    days = np.zeros(N)
    h_next = np.full(N, np.nan)
    rate = relative_rate(Y, P)
    moving = np.nonzero(rate > tol_per_day)[0]
    elapsed = 0.0
    while moving.size and elapsed < max_days:
        step = min(chunk_days, max_days - elapsed)
        with np.errstate(all="ignore"):
            res = integrate(step, Y[:, moving], P[:, moving], h_next[moving])
        ok = res.status == Status.OK
        Y[:, moving] = np.where(ok[None], res.y_final, np.nan)
        h_next[moving] = res.h_last
        days[moving] += step
        elapsed += step
        rate[moving] = np.where(ok, relative_rate(Y[:, moving], P[:, moving]), np.inf)
        moving = moving[(rate[moving] > tol_per_day) & ok]
    return QuasiSteadyState(Y, float(days.max(initial=0.0)), rate <= tol_per_day, rate, held, days, backend)


def held_species(c, held: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The states the start holds in compiled model ``c``: ``held`` (default the tumour clones,
    ``moa.mechanisms.tumour.CLONES``), those that are species of ``c``, in that order."""
    return tuple(s for s in (CLONES if held is None else held) if s in c.species_names)


def _integrator(c, rows: np.ndarray, backend: str, rtol: float, atol: float):
    """``integrate(days, Y, P, h0) -> BatchResult`` of the held system from day 0, on ``backend``.

    ``h0``: each set's first step (NaN: the automatic starting step)."""
    if backend == "cuda":
        from .solvers.rodas4 import cuda

        held = tuple(rows.tolist())
        k = cuda.kernels_for_model(c, held=held)
        # trajectories whose unpivoted LU is unstable on the GPU are rerun on the CPU, as in RodasSolver
        cpu = (
            (lambda: numba_kernels.kernels_for_model(c, compile_now=True, held=held))
            if numba_kernels.available()
            else None
        )

        def integrate(days, Y, P, h0):
            return cuda.integrate_batch_cuda(k, 0.0, days, Y, P, [], rtol=rtol, atol=atol, h0=h0, cpu_kernels=cpu)

        return integrate
    if backend == "numba":
        k = numba_kernels.kernels_for_model(c, compile_now=True, held=rows)

        def integrate(days, Y, P, h0):
            return numba_kernels.integrate_batch_jit(k, 0.0, days, Y, P, [], rtol=rtol, atol=atol, h0=h0)

        return integrate
    plan = SparseLUPlan(c.n_species, c.jac_rows, c.jac_cols)
    jac_held = np.isin(c.jac_rows, rows)

    def rhs(t, Y, P_):
        out = c.rhs_T(t, Y, P_)
        out[rows] = 0.0
        return out

    def jac_values(t, Y, P_):
        v = np.array(c.jac_values_T(t, Y, P_), dtype=float)
        v[: c.jac_nnz][jac_held] = 0.0
        return v

    def integrate(days, Y, P, h0):
        return integrate_batch(
            rhs, jac_values, c.jac_rows, c.jac_cols, 0.0, days, Y, P, [], rtol=rtol, atol=atol, plan=plan, h0=h0
        )

    return integrate
