"""``moa.simulate``: the one way in. Piecewise integration between doses, labelled results."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import xarray as xr

from .checks import is_finite_real
from .codegen import compile_model
from .errors import DoseWarning, SimulationError
from .parameters import ParameterSet, model_units
from .report.provenance import base_provenance, simulation_record
from .regimen import MAX_DOSES, Dose, Regimen
from .solvers import auto_solver, get_solver
from .solvers.base import STATUS, Status
from .steady_state import quasi_steady_state
from .symbolic import Model

__all__ = [
    "simulate",
    "variable_names",
    "output_times",
    "negative_states",
    "NEGATIVE_NOISE_REL",
    "NEGATIVE_NOISE_ATOL",
    "MAX_SEGMENTS",
    "START_OPTIONS",
]

#: A species below ``-(NEGATIVE_NOISE_ATOL * max(atol, NOISE_ATOL_FLOOR) + NEGATIVE_NOISE_REL * max|y|)``
#: (its maximum over the trajectory) is not solver noise: the sample is marked failed (status 5).
#: Rodas4 with rtol 1e-6 leaves decayed species at up to a few atol below zero (1.4 atol seen on a
#: bispecific complex in a one-year run), and the linear solves mix round-off of large coupled
#: species (1e5 nM x 1e-16) into species that should stay 0, so a tighter atol does not shrink the
#: noise below about 1e-11: hence the floor. 1e-6 of the species' own scale allows round-off of large terms.
NEGATIVE_NOISE_ATOL = 10.0
NOISE_ATOL_FLOOR = 1e-9
NEGATIVE_NOISE_REL = 1e-6

#: The most solver segments (spans between dose times and infusion ends) one run may have.
#: assumed: the same as moa.regimen.MAX_DOSES, since each segment costs about what a dose does;
#: infusions (a start and an end each) could otherwise double the segments of a regimen at that limit.
MAX_SEGMENTS = MAX_DOSES

#: How ``simulate`` may start (see its ``start`` argument).
START_OPTIONS = ("parameters", "quasi_steady")


def output_times(duration_days: float, step_days: float = 1.0) -> np.ndarray:
    """Regular output grid 0, step, ..., duration (inclusive)."""
    if not (is_finite_real(duration_days) and duration_days > 0):
        raise ValueError(f"duration_days={duration_days!r}: must be a finite number > 0")
    if not (is_finite_real(step_days) and step_days > 0):
        raise ValueError(f"step_days={step_days!r}: must be a finite number > 0")
    n = int(np.floor(duration_days / step_days + 1e-9))
    t = np.arange(n + 1) * step_days
    return t if np.isclose(t[-1], duration_days) else np.append(t, duration_days)


def _check_times(times) -> np.ndarray:
    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"times: must be a non-empty 1-D array of days, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("times: contains non-finite values; allowed: finite days >= 0")
    if t[0] < 0:
        raise ValueError(f"times[0]={t[0]}: must be >= 0 (day 0 is the first dose)")
    back = np.nonzero(np.diff(t) <= 0)[0]
    if back.size:
        i = back[0]
        raise ValueError(
            f"times: runs backwards or repeats at index {i + 1} ({t[i]} -> {t[i + 1]}); times must be "
            "strictly increasing"
        )
    return t


def _takes_expected_work(backend) -> bool:
    """True when ``backend`` declares ``takes_expected_work`` and its ``integrate`` accepts ``expected_work``
    (a subclass that overrides ``integrate`` with the plain signature is called without it)."""
    if not getattr(backend, "takes_expected_work", False):
        return False
    try:
        params = inspect.signature(backend.integrate).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "expected_work" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _check_tolerances(rtol: float, atol: float) -> None:
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not (is_finite_real(v) and v > 0):
            raise ValueError(f"{name}={v!r}: must be a finite number > 0")
    if rtol < 1e-13 or rtol > 0.1:
        raise ValueError(f"rtol={rtol!r}: allowed range is 1e-13 .. 0.1")


def _dose_mg(dose: Dose, parameters: ParameterSet, N: int, known: dict) -> np.ndarray:
    """The dose in mg for each of the N parameter sets, (N,). ``known`` holds those already computed by
    (amount, unit): a long regimen repeats a few amounts, so no (doses, N) array is ever kept."""
    key = (dose.amount, dose.unit)
    if key not in known:
        known[key] = np.broadcast_to(np.asarray(dose.amount_mg(parameters), dtype=float), (N,))
    return known[key]


def _given_doses(regimen: Regimen, t_end: float) -> tuple[Regimen, str]:
    """The part of ``regimen`` a run ending at ``t_end`` [day] gives, and the ``doses_not_given`` record (JSON).

    Doses after the end are left out with a :class:`DoseWarning`; an infusion running past the end is
    given up to it (pro rata, see :meth:`moa.regimen.Dose.given_until`). A regimen none of whose
    doses falls within the run is refused: that is almost surely a mistake in the times or the
    duration, and a silent untreated result would hide it.
    """
    given, not_given, cut = regimen.given_until(t_end)
    if not given.doses:
        raise ValueError(
            f"regimen {regimen.name!r}: no dose falls within the run: the first dose is at day "
            f"{regimen.doses[0].time_days:g} and the run ends at day {t_end:g} (duration_days or times[-1]); "
            "lengthen the run, move the doses, or pass regimen=None for an untreated arm"
        )
    record = _not_given_record(not_given, cut)
    if not_given or cut:
        parts = []
        if not_given:
            parts.append(
                f"{len(not_given)} of {len(regimen.doses)} doses ({', '.join(record['drugs'])}) fall after the end "
                f"of the run at day {t_end:g} and are not given, the first at day {not_given[0].time_days:g}"
            )
        if cut:
            parts.append(
                f"{len(cut)} infusion(s) ({', '.join(sorted({d.drug for d in cut}))}) run past day {t_end:g} "
                "and are given only up to it (pro rata)"
            )
        warnings.warn(
            DoseWarning(
                f"regimen {regimen.name!r}: {'; '.join(parts)}. The result and attrs['doses'] hold "
                "only what was given; attrs['doses_not_given'] records the rest"
            ),
            stacklevel=3,
        )
    return given, json.dumps(record)


def _not_given_record(not_given: Sequence[Dose] = (), cut: Sequence[Dose] = ()) -> dict:
    """Provenance of what a run left out: how many doses, of which drugs, from when; and the infusions
    (as scheduled: drug, amount, unit, start day, duration in days) given only up to the end."""
    return {
        "count": len(not_given),
        "drugs": sorted({d.drug for d in not_given}),
        "first_time_days": not_given[0].time_days if not_given else None,
        "infusions_cut_at_end": [[d.drug, d.amount, d.unit, d.time_days, d.duration_days] for d in cut],
    }


_QSS_CACHE: dict = {}
_QSS_CACHE_SIZE = 16


def _quasi_steady(model, P: np.ndarray, backend: str = "auto"):
    """:func:`quasi_steady_state` of (model, P) on ``backend``, remembered for the last few distinct inputs.

    The start depends only on the model and the parameter matrix (no dose enters it), so the
    simulations of a dose-response or regimen comparison on the same patients share one solve. The
    key holds the parameter values exactly (their bytes), and the model object itself is kept and
    compared, so a new model with a reused ``id`` never gets another model's start."""
    key = (id(model), backend, P.shape, hashlib.sha256(np.ascontiguousarray(P).tobytes()).hexdigest())
    hit = _QSS_CACHE.get(key)
    if hit is None or hit[0] is not model:
        if len(_QSS_CACHE) >= _QSS_CACHE_SIZE:
            _QSS_CACHE.pop(next(iter(_QSS_CACHE)))
        hit = _QSS_CACHE[key] = (model, quasi_steady_state(model, P, backend=backend))
    qss = hit[1]
    return dataclasses.replace(qss, y=qss.y.copy())


def _start_on(solver, model, P: np.ndarray):
    """The quasi-steady start on the solver's own hardware: the numpy Rodas4 asked for explicitly relaxes
    with numpy (no numba compilation for its model), a batch the solver sends to the GPU relaxes there
    (on one CPU core the start costs 0.7-1.0 ms per set, several times the GPU's whole run), anything
    else with "auto". A GPU start that fails falls back to the CPU with a warning, unless the GPU was asked for."""
    kind = getattr(solver, "backend", None)
    gpu = getattr(solver, "sends_to_gpu", None)
    if kind == "numpy":
        return _quasi_steady(model, P, "numpy")
    if callable(gpu) and gpu(P.shape[1]):
        try:
            return _quasi_steady(model, P, "cuda")
        except Exception as exc:  # noqa: BLE001 -- CUDA's and numba's errors have no common base
            if kind == "cuda":
                raise
            warnings.warn(
                f"quasi-steady start: the CUDA Rodas4 failed ({type(exc).__name__}: {str(exc)[:300]}); "
                "relaxing on the CPU instead (same method)",
                RuntimeWarning,
                stacklevel=3,
            )
    return _quasi_steady(model, P, "auto")


def simulate(
    model: Model,
    parameters: ParameterSet,
    regimen: Regimen | None = None,
    *,
    duration_days: float | None = None,
    times: Sequence[float] | np.ndarray | None = None,
    overrides: Mapping[str, object] | None = None,
    solver: str | object = "auto",
    rtol: float = 1e-6,
    atol: float = 1e-9,
    pre_equilibrate_days: float = 0.0,
    start: str = "parameters",
    on_failure: str = "raise",
    progress: bool | None = None,
    strict_bounds: bool = False,
    keep: Sequence[str] | None = None,
    dose_stop_days: Sequence[float] | np.ndarray | None = None,
    stop_when: Callable[[int, Mapping[str, np.ndarray]], np.ndarray] | None = None,
) -> xr.Dataset:
    """Simulate ``model`` with ``parameters`` under ``regimen``.

    Parameters
    ----------
    model: the assembled :class:`moa.symbolic.Model`.
    parameters: a :class:`ParameterSet` (from ``moa.load_parameters`` plus overlays). Array
        values (all of one length N) run N parameter sets at once along dim ``sample``.
    regimen: doses; ``None`` means untreated. A regimen without doses is refused (ambiguous).
    duration_days / times: output grid in days. ``times`` wins; default daily to duration.
    overrides: parameter values replacing those in ``parameters``: numbers in the parameter's unit or
        pint Quantities (converted). A value outside the physical domain is refused; one outside the
        sweep bounds gives a :class:`moa.errors.BoundsWarning` (a ValueError with ``strict_bounds=True``).
    solver: "auto" (:func:`moa.solvers.auto_solver`: "rodas" when numba is installed, else LSODA for
        fewer than 8 parameter sets and "rodas" from 8 up), "LSODA", "BDF", "Radau" (scipy, one
        trajectory at a time) or "rodas" (batched Rodas4, compiled with numba when installed), or a
        solver object such as ``RodasSolver(backend="numpy")``.
    rtol, atol: solver tolerances (atol in each species' own unit).
    pre_equilibrate_days: integrate the untreated system this long first and start from there.
    start: "parameters" (the initial values the mechanisms derive from the parameters) or
        "quasi_steady" (T cells, receptors and antigen relaxed to balance with the tumour held
        fixed, :func:`moa.steady_state.quasi_steady_state`; the default of ``moa.runs`` and the
        experiments). Applied before ``pre_equilibrate_days``.
    on_failure: "raise" (SimulationError) or "record" (NaN states, reason in ``status``/``message``).
    progress: show a progress bar over dosing segments (needs the ``progress`` extra); None (the
        default): only when the ``MOA_PROGRESS`` environment variable is set (``moa run --progress``).
    strict_bounds: refuse override values outside their sweep bounds instead of warning.
    keep: names of the species, observables, extinction days (``extinct_day_<species>``) and step counts
        (``n_steps``, ``n_rejected``) to return; ``None`` returns all. ``status``/``message`` are always kept.
        An unknown name is refused, listing those that exist. A large sweep keeps only what it needs this
        way (see :func:`variable_names`).
    dose_stop_days: per-sample end of treatment, (N,) days (``np.inf``: never stop), or None (every sample
        gets every dose). A bolus at or after a sample's stop day is not given to that sample, and an
        infusion that starts at or after it is not given (one started before it runs to its end).
        Treatment until progression in a virtual trial uses it (:mod:`moa.trial`); recorded in
        ``attrs["dose_stop_days"]``.
    stop_when: ``stop_when(i, values) -> (N,) bool``, called once per output time ``times[i]``, in order,
        after it is solved; ``values`` maps every species and observable name to its (N,) values there
        (NaN for a sample already stopped or failed). A sample it marks is not simulated past ``times[i]``:
        its later outputs are NaN, its ``status`` stays 0 and ``stop_day`` (dim ``sample``, NaN: ran to the
        end) records the day. A virtual trial ends each patient's run at its progression scan this way
        (:mod:`moa.trial`). Up to its stop day a sample's solution is the one it has without ``stop_when``.

    Parameters are converted to the units the model's mechanisms declare before they reach the
    solver (a different dimension is refused naming the file, parameter, value and both units);
    batched parameters appear as ``sample`` coordinates in those units. A species that goes
    negative beyond solver noise (see :data:`NEGATIVE_NOISE_REL`) fails its sample with status 5.

    Returns
    -------
    xarray.Dataset with one variable per species and observable (dims ``time`` and, when
    batched, ``sample``), ``status``/``message`` per sample, the solver's accepted and rejected steps per
    sample summed over segments (``n_steps``, ``n_rejected``, unit "1"; NaN from scipy, which counts rhs
    evaluations, not steps), and provenance in ``attrs``:
    besides version, commit and hash, ``attrs["simulation"]`` (JSON) holds every parameter value
    with its unit, the regimen given, the output times, solver, tolerances and start, from which
    :func:`moa.report.results.rerun` repeats the run (see :func:`moa.report.provenance.simulation_record`).
    Output at a dose time is the state just *after* the dose.
    """
    if not isinstance(model, Model):
        raise ValueError(f"model={type(model).__name__}: must be a moa Model")
    if not isinstance(parameters, ParameterSet):
        raise ValueError(f"parameters={type(parameters).__name__}: must be a ParameterSet (moa.load_parameters())")
    keep = _check_keep(model, keep)
    if overrides:
        parameters = parameters.with_values(overrides, strict=strict_bounds, origin="overrides")
    parameters = parameters.in_units(model_units(model))
    if regimen is not None:
        if not isinstance(regimen, Regimen):
            raise ValueError(f"regimen={type(regimen).__name__}: must be a moa Regimen or None (untreated)")
        if not regimen.doses:
            raise ValueError(f"regimen {regimen.name!r} has no doses; pass regimen=None for an untreated arm")
        unknown = sorted(set(regimen.drugs) - set(model.drugs))
        if unknown:
            raise ValueError(
                f"regimen {regimen.name!r} doses {unknown}, which the model cannot take; allowed drugs: {model.drugs}"
            )
    if on_failure not in ("raise", "record"):
        raise ValueError(f"on_failure={on_failure!r}: allowed values are 'raise' and 'record'")
    _check_tolerances(rtol, atol)
    rtol, atol = float(rtol), float(atol)  # numpy scalars: one compiled signature, JSON-able provenance
    if times is None:
        if duration_days is None:
            raise ValueError("give duration_days or times")
        t_out = output_times(duration_days)
    else:
        t_out = _check_times(times)
        if duration_days is not None and not np.isclose(duration_days, t_out[-1]):
            raise ValueError(f"duration_days={duration_days} disagrees with times[-1]={t_out[-1]}; give one of them")
    if start not in START_OPTIONS:
        raise ValueError(f"start={start!r}: allowed values are {START_OPTIONS}")
    if not (is_finite_real(pre_equilibrate_days) and pre_equilibrate_days >= 0):
        raise ValueError(f"pre_equilibrate_days={pre_equilibrate_days!r}: must be a finite number >= 0")
    pre_equilibrate_days = float(pre_equilibrate_days)
    t_end = float(t_out[-1])
    if regimen is not None:
        regimen, doses_not_given = _given_doses(regimen, t_end)
        for dose in {d.unit: d for d in regimen.doses}.values():
            dose.amount_mg(parameters)  # a missing body_weight / body_surface_area fails here, before any solving
    else:
        doses_not_given = json.dumps(_not_given_record())
    dosing = regimen if regimen is not None else Regimen("untreated")
    edges = dosing.segment_edges(t_end)
    if len(edges) - 1 > MAX_SEGMENTS:
        raise ValueError(
            f"regimen {regimen.name!r} cuts the run into {len(edges) - 1:,} solver segments (at every dose "
            f"time and infusion end within 0..{t_end:g} day); at most moa.simulate.MAX_SEGMENTS="
            f"{MAX_SEGMENTS:,} are allowed"
        )
    if solver == "auto":
        solver = auto_solver(parameters.batch_size)
    backend = get_solver(solver)

    compiled = compile_model(model)
    N = parameters.batch_size
    dose_stop = _check_dose_stop(dose_stop_days, N)
    if stop_when is not None and not callable(stop_when):
        raise ValueError(f"stop_when={stop_when!r}: must be a function (i, values) -> (N,) bool, or None")
    stopped = np.zeros(N, dtype=bool)
    stop_day = np.full(N, np.nan)
    P = np.vstack([parameters.matrix(model.parameter_names), np.zeros((len(model.inputs), N))])
    Y = compiled.initial_T(P)
    status = np.zeros(N, dtype=int)
    message = [""] * N
    failed_at = np.full(N, np.nan)
    start_note = "parameters"
    if start == "quasi_steady":
        qss = _start_on(backend, model, P)  # on the solver's hardware: numpy, the GPU, or numba
        Y = qss.y
        for k in np.nonzero(~np.all(np.isfinite(Y), axis=0))[0]:
            status[k], message[k], failed_at[k] = (
                Status.SOLVER_FAILURE,
                "quasi-steady start: the relaxation failed",
                0.0,
            )
        slow = int(np.sum(~qss.converged & (status == Status.OK)))
        if slow:
            warnings.warn(
                f"quasi-steady start: {slow} of {N} parameter set(s) still change by more than "
                f"1e-4 of themselves per day after {qss.days:g} days; starting from there",
                RuntimeWarning,
                stacklevel=2,
            )
        start_note = (
            f"quasi_steady: held {','.join(qss.held)}; relaxed the rest for up to {qss.days:g} days ({qss.backend}); "
            f"converged {int(qss.converged.sum())}/{N}; max relative rate "
            f"{float(np.nanmax(qss.max_relative_rate_per_day)):.2g}/day"
        )
    extinct_day = np.full((compiled.extinct_index.size, N), np.nan)
    steps = SolverSteps.zeros(N)
    wants_work = _takes_expected_work(backend)

    def run(t0, t1, Y0, t_seg, out=None):
        """Integrate the samples still running from ``t0`` to ``t1``; their outputs at ``t_seg`` go into
        ``out`` (len(t_seg), species, N) when given (NaN for the others); returns the state at ``t1``."""
        alive = (status == Status.OK) & ~stopped
        everyone = bool(alive.all())
        if out is not None and not everyone:
            out[:] = np.nan
        Yend = np.full_like(Y0, np.nan)
        if alive.any():
            idx = np.nonzero(alive)[0]
            # a backend that hands trajectories to threads (the GPU) takes the longest-running ones first
            hints = {"expected_work": steps.so_far(idx)} if wants_work else {}
            with np.errstate(all="ignore"):
                res = backend.integrate(
                    compiled,
                    t0,
                    t1,
                    # no copy while every sample runs (backends do not write into their inputs), else the
                    # running columns, C-ordered (np.take is several times faster than a boolean mask here)
                    Y0 if everyone else np.take(Y0, idx, axis=1),
                    P if everyone else np.take(P, idx, axis=1),
                    t_seg,
                    rtol,
                    atol,
                    **hints,
                )
            if out is not None:
                if everyone:
                    out[:] = res.y
                else:
                    out[:, :, idx] = res.y
            Yend[:, idx] = res.y_final
            steps.add(idx, res)
            if res.extinct_day is not None and extinct_day.size:
                seen = extinct_day[:, idx]
                extinct_day[:, idx] = np.where(np.isnan(seen), res.extinct_day, seen)
            for j in np.nonzero(np.asarray(res.status) != Status.OK)[0].tolist():
                k = int(idx[j])
                status[k] = res.status[j]
                message[k] = res.message[j] or STATUS.get(int(res.status[j]), "failed")
                failed_at[k] = t0
            Yend[:, status != Status.OK] = np.nan
        return Yend

    if pre_equilibrate_days > 0:
        Y = run(0.0, pre_equilibrate_days, Y, np.array([]))
        extinct_day[:] = np.nan  # the clock starts at the first dose

    per_mg = compiled.dose_per_mg_T(P) if compiled.drugs else np.zeros((0, N))
    drug_row = {d: i for i, d in enumerate(compiled.drugs)}
    mg_known: dict = {}
    Y_out = np.full((len(t_out), compiled.n_species, N), np.nan)
    # only the infusion inputs change between segments: keep their values at each output time, not a
    # copy of all parameters per segment (that would be O(segments x parameters x N) memory)
    input_rows = slice(len(model.parameter_names), P.shape[0])
    inputs_out = np.zeros((len(t_out), P.shape[0] - len(model.parameter_names), N))

    # the output times within each segment [a, b) (the last: [a, t_end]), found for all segments at once
    first_out = np.searchsorted(t_out, edges[:-1], "left").tolist()
    end_out = np.searchsorted(t_out, edges[1:], "left").tolist()
    end_out[-1] = len(t_out)
    iterator = zip(dosing.segments(t_end), first_out, end_out)
    if progress or (progress is None and os.environ.get("MOA_PROGRESS")):
        from tqdm.auto import tqdm  # optional extra

        iterator = tqdm(
            iterator, total=len(edges) - 1, desc=f"simulate {regimen.name if regimen else 'untreated'}", unit="segment"
        )
    for segment, lo, hi in iterator:
        a, b = segment.start_days, segment.end_days
        if segment.boluses:
            Y = Y.copy()
            for dose in segment.boluses:
                Y[compiled.dose_index[dose.drug]] += (
                    _dose_mg(dose, parameters, N, mg_known) * per_mg[drug_row[dose.drug]] * (dose.time_days < dose_stop)
                )
        for drug, running in segment.infusions.items():
            rate = np.zeros(N)
            for dose in running:
                rate = rate + _dose_mg(dose, parameters, N, mg_known) / dose.duration_days * (
                    dose.time_days < dose_stop
                )
            P[compiled.input_index[drug]] = rate
        Y = run(a, b, Y, t_out[lo:hi], Y_out[lo:hi])
        if hi > lo:
            inputs_out[lo:hi] = P[input_rows]
        if hi > lo and stop_when is not None:
            for i in range(lo, hi):  # ask in output order; a sample stopped at i loses this segment's later outputs
                new = _stops(stop_when, i, t_out[i], Y_out[i], P, compiled, model, N) & ~stopped & (status == Status.OK)
                stop_day[new] = t_out[i]
                stopped |= new
                Y_out[i + 1 : hi, :, new] = np.nan
                Y[:, new] = np.nan

    # A bolus at exactly the last output time: report the post-dose state there too.
    if t_end > 0:
        for dose in (d for d in dosing.doses if d.route == "bolus" and d.time_days == t_end):
            Y_out[-1, compiled.dose_index[dose.drug]] += (
                _dose_mg(dose, parameters, N, mg_known) * per_mg[drug_row[dose.drug]] * (dose.time_days < dose_stop)
            )

    for k, text in negative_states(model, t_out, Y_out, atol).items():
        if status[k] == Status.OK:
            status[k], message[k], failed_at[k] = Status.NEGATIVE_STATE, text, np.nan

    if on_failure == "raise" and np.any(status != Status.OK):
        raise SimulationError(_failure_message(model, parameters, backend.name, status, message, failed_at))

    obs = np.full((len(t_out), len(compiled.observable_names), N), np.nan)
    P_at = P.copy()
    for i, t in enumerate(t_out):
        P_at[input_rows] = inputs_out[i]
        obs[i] = compiled.observables_T(t, Y_out[i], P_at)
    ds = _to_dataset(
        model,
        parameters,
        regimen,
        backend,
        rtol,
        atol,
        t_out,
        Y_out,
        obs,
        status,
        message,
        pre_equilibrate_days,
        doses_not_given,
        extinct_day,
        keep,
        steps,
    )
    if stop_when is not None:
        ds["stop_day"] = (
            ds["status"].dims,
            stop_day if parameters.is_batched else float(stop_day[0]),
            {"units": "day", "description": "output time after which stop_when ended the sample's run (NaN: never)"},
        )
        ds.attrs["stop_when"] = getattr(stop_when, "description", getattr(stop_when, "__qualname__", repr(stop_when)))
    ds.attrs["start"] = start_note
    ds.attrs["dose_stop_days"] = (
        "none" if dose_stop_days is None else json.dumps([float(d) if np.isfinite(d) else "inf" for d in dose_stop])
    )
    ds.attrs["simulation"] = json.dumps(
        simulation_record(
            model=model,
            parameters=parameters,
            regimen=regimen,
            times=t_out,
            solver=backend.name,
            rtol=rtol,
            atol=atol,
            start=start,
            pre_equilibrate_days=pre_equilibrate_days,
            keep=keep,
        )
    )
    return ds


def _stops(stop_when, i: int, t: float, y: np.ndarray, P: np.ndarray, compiled, model: Model, n: int) -> np.ndarray:
    """``stop_when``'s answer at output ``i`` (state ``y``, (species, N)), checked to be an (N,) bool array."""
    values = dict(zip(model.species_names, y))
    values.update(zip(compiled.observable_names, compiled.observables_T(t, y, P)))
    mask = np.asarray(stop_when(i, values))
    if mask.shape != (n,) or mask.dtype != bool:
        raise ValueError(
            f"stop_when returned {mask.dtype} of shape {mask.shape} at output {i} (t={t:g} day): "
            f"must be a bool array of shape ({n},), one per parameter set"
        )
    return mask


def _check_dose_stop(dose_stop_days, n_samples: int) -> np.ndarray:
    """``dose_stop_days`` as an (N,) float array (``np.inf`` everywhere when None); refused unless it has
    one non-NaN day >= 0 (or inf) per parameter set."""
    if dose_stop_days is None:
        return np.full(n_samples, np.inf)
    stop = np.asarray(dose_stop_days, dtype=float)
    if stop.shape != (n_samples,):
        raise ValueError(f"dose_stop_days: shape {stop.shape}: must be ({n_samples},), one day per parameter set")
    bad = np.nonzero(np.isnan(stop) | (stop < 0))[0]
    if bad.size:
        raise ValueError(f"dose_stop_days[{bad[0]}]={float(stop[bad[0]])!r}: must be a day >= 0 or inf (never stop)")
    return stop


@dataclasses.dataclass
class SolverSteps:
    """Accepted and rejected solver steps per sample, summed over the run's segments (pre-equilibration
    included). NaN for a sample whose backend does not count steps (scipy counts rhs evaluations)."""

    n_steps: np.ndarray  # (N,)
    n_rejected: np.ndarray  # (N,)

    NAMES = ("n_steps", "n_rejected")

    @classmethod
    def zeros(cls, n_samples: int) -> "SolverSteps":
        return cls(np.zeros(n_samples), np.zeros(n_samples))

    def so_far(self, samples: np.ndarray) -> np.ndarray:
        """Accepted + rejected steps of ``samples`` so far (NaN counted as 0): their expected work."""
        return np.nan_to_num(self.n_steps[samples] + self.n_rejected[samples], nan=0.0)

    def add(self, samples: np.ndarray, segment) -> None:
        """Add one segment's counts (a SegmentResult for ``samples``); a missing count adds NaN."""
        rejected = segment.n_rejected if segment.n_rejected is not None else np.full(len(samples), np.nan)
        self.n_steps[samples] += np.asarray(segment.n_steps, dtype=float)
        self.n_rejected[samples] += np.asarray(rejected, dtype=float)


def variable_names(model: Model) -> list[str]:
    """The names ``simulate(..., keep=...)`` accepts for ``model``: species, observables, extinction days
    and the solver's step counts (``n_steps``, ``n_rejected``)."""
    return (
        [s.name for s in model.species]
        + [e.name for e in model.expressions]
        + [f"extinct_day_{n}" for n in compile_model(model).extinct_names]
        + list(SolverSteps.NAMES)
    )


def _check_keep(model: Model, keep) -> list[str] | None:
    """``keep`` as a list of known variable names (None: all); unknown names refused, listing what exists."""
    if keep is None:
        return None
    if isinstance(keep, str):
        raise ValueError(f"keep={keep!r}: must be a list of variable names, not one string (write keep=[{keep!r}])")
    names = list(dict.fromkeys(keep))
    known = variable_names(model)
    unknown = [n for n in names if n not in set(known)]
    if unknown:
        raise ValueError(f"keep: {unknown} are not variables of model {model.name!r}; it has {len(known)}: {known}")
    return names


def negative_states(model: Model, t_out: np.ndarray, Y_out: np.ndarray, atol: float) -> dict[int, str]:
    """Samples whose trajectory has a species below solver noise, with a message naming the
    species, the value and the time of its most negative point.

    ``Y_out`` is (time, species, N). Noise tolerance per species and sample:
    ``NEGATIVE_NOISE_ATOL * max(atol, NOISE_ATOL_FLOOR) + NEGATIVE_NOISE_REL * max_t |y|``; NaN (failed)
    entries are ignored.
    """
    with np.errstate(invalid="ignore"):
        lowest = np.fmin.reduce(Y_out, axis=0)  # (species, N), NaN only where every time is NaN
        highest = np.fmax.reduce(Y_out, axis=0)
        scale = np.nan_to_num(np.maximum(np.abs(lowest), np.abs(highest)), nan=0.0)  # max_t |y|
        limit = -(NEGATIVE_NOISE_ATOL * np.maximum(atol, NOISE_ATOL_FLOOR) + NEGATIVE_NOISE_REL * scale)
        below = lowest < limit  # (species, N); NaN compares False
    out = {}
    for k in np.nonzero(below.any(axis=0))[0]:
        j = int(np.nonzero(below[:, k])[0][0])
        i = int(np.nanargmin(Y_out[:, j, k]))
        s = model.species[j]
        out[int(k)] = (
            f"species {s.name} = {Y_out[i, j, k]:.6g} {s.unit} at t={t_out[i]:g} day is negative beyond solver "
            f"noise (tolerance {-limit[j, k]:.3g} {s.unit}); check the rate terms and parameters"
        )
    return out


def _failure_message(
    model: Model,
    parameters: ParameterSet,
    solver_name: str,
    status: np.ndarray,
    message: list[str],
    failed_at: np.ndarray,
    max_values: int = 4,
    max_reason: int = 200,
) -> str:
    """A short SimulationError text: the first failed set, its reason, and where the others are.

    A batch of thousands of sets with dozens of swept parameters would otherwise give a message
    of pages; the full list is what ``on_failure='record'`` returns (``status``, ``message``).
    """
    failed = np.nonzero(status != Status.OK)[0]
    k, N = int(failed[0]), len(status)
    swept = [(n, float(np.asarray(parameters[n]).ravel()[k])) for n in model.parameter_names if np.ndim(parameters[n])]
    values = ", ".join(f"{n}={v:.6g}" for n, v in swept[:max_values]) + (
        f", ... ({len(swept)} swept)" if len(swept) > max_values else ""
    )
    reason = " ".join(str(message[k]).split())
    reason = reason if len(reason) <= max_reason else reason[: max_reason - 3] + "..."
    others = f" {len(failed) - 1} other set(s) of {N} failed too;" if len(failed) > 1 else ""
    return (
        f"solver {solver_name} failed for parameter set {k} of {N} (hash {parameters.digest()}"
        + (f", batched values {values}" if swept else "")
        + (f") in the segment starting at t={failed_at[k]:g} day" if np.isfinite(failed_at[k]) else ")")
        + f": {reason}.{others} "
        "Try: solver='Radau' or 'BDF', a tighter rtol, or check that the parameters are within their bounds; "
        "use on_failure='record' to keep the other parameter sets (their reasons are in the result's status "
        "and message)."
    )


def _to_dataset(
    model,
    parameters,
    regimen,
    backend,
    rtol,
    atol,
    t_out,
    Y_out,
    obs,
    status,
    message,
    pre_days,
    doses_not_given,
    extinct_day,
    keep=None,
    steps: SolverSteps | None = None,
) -> xr.Dataset:
    batched = parameters.is_batched
    dims = ("sample", "time") if batched else ("time",)

    def arr(a):  # a: (time, N)
        return a.T if batched else a[:, 0]

    wanted = set(keep) if keep is not None else None
    data = {}
    for j, s in enumerate(model.species):
        if wanted is None or s.name in wanted:
            data[s.name] = (
                dims,
                arr(Y_out[:, j, :]),
                {"units": s.unit, "description": s.description, "kind": "species"},
            )
    for j, e in enumerate(model.expressions):
        if wanted is None or e.name in wanted:
            data[e.name] = (
                dims,
                arr(obs[:, j, :]),
                {"units": e.unit, "description": e.description, "kind": "observable"},
            )
    for e, name in enumerate(compile_model(model).extinct_names):
        if wanted is not None and f"extinct_day_{name}" not in wanted:
            continue
        day = extinct_day[e] if batched else extinct_day[e, 0]
        data[f"extinct_day_{name}"] = (
            ("sample",) if batched else (),
            day,
            {
                "units": "day",
                "kind": "extinction",
                "description": f"first time {name} fell below its extinction threshold and was set to 0 (NaN: never)",
            },
        )
    step_text = {"n_steps": "accepted solver steps", "n_rejected": "rejected solver steps"}
    for name in SolverSteps.NAMES if steps is not None else ():
        if wanted is None or name in wanted:
            count = getattr(steps, name)
            data[name] = (
                ("sample",) if batched else (),
                count if batched else float(count[0]),
                {
                    "units": "1",
                    "kind": "solver",
                    "description": (
                        f"{step_text[name]}, summed over the run's segments (NaN: the backend does not count them)"
                    ),
                },
            )
    coords = {"time": ("time", t_out, {"units": "day", "long_name": "time since first dose"})}
    if batched:
        N = parameters.batch_size
        coords["sample"] = ("sample", np.arange(N))
        for name in model.parameter_names:
            if np.ndim(parameters[name]):
                coords[name] = ("sample", np.asarray(parameters[name], dtype=float), {"units": parameters.unit(name)})
        data["status"] = ("sample", status, {"description": "0 ok; see moa.solvers.base.Status"})
        data["message"] = ("sample", np.array(message, dtype=object))
    else:
        data["status"] = ((), int(status[0]), {"description": "0 ok; see moa.solvers.base.Status"})
        data["message"] = ((), message[0])
    attrs = base_provenance()
    attrs.update(
        {
            "model": model.name,
            "model_states": len(model.species),
            "parameter_set": parameters.name,
            "overlays": ",".join(parameters.overlays),
            "parameter_hash": parameters.digest(),
            "solver": backend.name,
            "rtol": rtol,
            "atol": atol,
            "pre_equilibrate_days": pre_days,
            "regimen": regimen.name if regimen else "untreated",
            "doses": json.dumps(
                [[d.drug, d.amount, d.unit, d.time_days, d.route, d.duration_days] for d in regimen.doses]
            )
            if regimen
            else "[]",
            "doses_not_given": doses_not_given,
        }
    )
    return xr.Dataset(data, coords=coords, attrs=attrs)
