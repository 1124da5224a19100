"""``moa.simulate``: the one way in. Piecewise integration between doses, labelled results."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from .engine import Model
from .errors import SimulationError
from .parameters import ParameterSet
from .provenance import base_provenance
from .regimen import Regimen
from .solvers import auto_solver, get_solver
from .solvers.base import STATUS
from .steady_state import quasi_steady_state

__all__ = ["simulate", "output_times", "START_OPTIONS"]

#: How ``simulate`` may start (see its ``start`` argument).
START_OPTIONS = ("parameters", "quasi_steady")


def output_times(duration_days: float, step_days: float = 1.0) -> np.ndarray:
    """Regular output grid 0, step, ..., duration (inclusive)."""
    if not (np.isfinite(duration_days) and duration_days > 0):
        raise ValueError(f"duration_days={duration_days!r}: must be a finite number > 0")
    if not (np.isfinite(step_days) and step_days > 0):
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
        raise ValueError(f"times: runs backwards or repeats at index {i + 1} ({t[i]} -> {t[i + 1]}); times must be strictly increasing")
    return t


def _check_tolerances(rtol: float, atol: float) -> None:
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
            raise ValueError(f"{name}={v!r}: must be a finite number > 0")
    if rtol < 1e-13 or rtol > 0.1:
        raise ValueError(f"rtol={rtol!r}: allowed range is 1e-13 .. 0.1")


def _dose_amounts_mg(regimen: Regimen, parameters: ParameterSet, N: int) -> list[np.ndarray]:
    return [np.broadcast_to(np.asarray(d.amount_mg(parameters), dtype=float), (N,)) for d in regimen.doses]


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
    progress: bool = False,
) -> xr.Dataset:
    """Simulate ``model`` with ``parameters`` under ``regimen``.

    Parameters
    ----------
    model: the assembled :class:`moa.engine.Model`.
    parameters: a :class:`ParameterSet` (from ``moa.load_parameters`` plus overlays). Array
        values (all of one length N) run N parameter sets at once along dim ``sample``.
    regimen: doses; ``None`` means untreated. A regimen without doses is refused (ambiguous).
    duration_days / times: output grid in days. ``times`` wins; default daily to duration.
    overrides: parameter values replacing those in ``parameters`` (validated).
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
    progress: show a progress bar over dosing segments (needs the ``progress`` extra).

    Returns
    -------
    xarray.Dataset with one variable per species and observable (dims ``time`` and, when
    batched, ``sample``), ``status``/``message`` per sample, and provenance in ``attrs``.
    Output at a dose time is the state just *after* the dose.
    """
    if not isinstance(model, Model):
        raise ValueError(f"model={type(model).__name__}: must be a moa Model")
    if not isinstance(parameters, ParameterSet):
        raise ValueError(f"parameters={type(parameters).__name__}: must be a ParameterSet (moa.load_parameters())")
    if overrides:
        parameters = parameters.with_values(overrides)
    if regimen is not None:
        if not isinstance(regimen, Regimen):
            raise ValueError(f"regimen={type(regimen).__name__}: must be a moa Regimen or None (untreated)")
        if not regimen.doses:
            raise ValueError(f"regimen {regimen.name!r} has no doses; pass regimen=None for an untreated arm")
        unknown = sorted(set(regimen.drugs) - set(model.drugs))
        if unknown:
            raise ValueError(f"regimen {regimen.name!r} doses {unknown}, which the model cannot take; allowed drugs: {model.drugs}")
    if on_failure not in ("raise", "record"):
        raise ValueError(f"on_failure={on_failure!r}: allowed values are 'raise' and 'record'")
    _check_tolerances(rtol, atol)
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
    if not (np.isfinite(pre_equilibrate_days) and pre_equilibrate_days >= 0):
        raise ValueError(f"pre_equilibrate_days={pre_equilibrate_days!r}: must be a finite number >= 0")
    t_end = float(t_out[-1])
    if solver == "auto":
        solver = auto_solver(parameters.batch_size)
    backend = get_solver(solver)

    compiled = model.compiled
    N = parameters.batch_size
    P = np.vstack([parameters.matrix(model.parameter_names), np.zeros((len(model.inputs), N))])
    Y = compiled.initial_T(P)
    status = np.zeros(N, dtype=int)
    message = [""] * N
    failed_at = np.full(N, np.nan)
    start_note = "parameters"
    if start == "quasi_steady":
        qss = quasi_steady_state(model, P)
        Y = qss.y
        for k in np.nonzero(~np.all(np.isfinite(Y), axis=0))[0]:
            status[k], message[k], failed_at[k] = 4, "quasi-steady start: the relaxation failed", 0.0
        slow = int(np.sum(~qss.converged & (status == 0)))
        if slow:
            warnings.warn(f"quasi-steady start: {slow} of {N} parameter set(s) still change by more than "
                          f"1e-4 of themselves per day after {qss.days:g} days; starting from there", RuntimeWarning,
                          stacklevel=2)
        start_note = (f"quasi_steady: held {','.join(qss.held)}; relaxed the rest for {qss.days:g} days; "
                      f"converged {int(qss.converged.sum())}/{N}; max relative rate "
                      f"{float(np.nanmax(qss.max_relative_rate_per_day)):.2g}/day")
    extinct_day = np.full((compiled.extinct_index.size, N), np.nan)

    def run(t0, t1, Y0, t_seg):
        alive = status == 0
        out = np.full((len(t_seg), compiled.n_species, N), np.nan)
        Yend = np.full_like(Y0, np.nan)
        if alive.any():
            with np.errstate(all="ignore"):
                res = backend.integrate(compiled, t0, t1, Y0[:, alive], P[:, alive], t_seg, rtol, atol)
            idx = np.nonzero(alive)[0]
            out[:, :, idx], Yend[:, idx] = res.y, res.y_final
            if res.extinct_day is not None and extinct_day.size:
                seen = extinct_day[:, idx]
                extinct_day[:, idx] = np.where(np.isnan(seen), res.extinct_day, seen)
            for j, k in enumerate(idx):
                if res.status[j] != 0:
                    status[k] = res.status[j]
                    message[k] = res.message[j] or STATUS.get(int(res.status[j]), "failed")
                    failed_at[k] = t0
            Yend[:, status != 0] = np.nan
        return out, Yend

    if pre_equilibrate_days > 0:
        _, Y = run(0.0, pre_equilibrate_days, Y, np.array([]))
        extinct_day[:] = np.nan   # the clock starts at the first dose

    doses = regimen.doses if regimen is not None else ()
    amounts = _dose_amounts_mg(regimen, parameters, N) if regimen is not None else []
    per_mg = compiled.dose_per_mg_T(P) if compiled.drugs else np.zeros((0, N))
    drug_row = {d: i for i, d in enumerate(compiled.drugs)}
    edges = [0.0] + (regimen.breakpoints(t_end) if regimen is not None else []) + [t_end]
    Y_out = np.full((len(t_out), compiled.n_species, N), np.nan)
    # parameters (with the segment's infusion inputs) in force at each output time, one copy per segment
    segment_params: list[np.ndarray] = []
    segment_of = np.full(len(t_out), -1)

    segments = list(zip(edges[:-1], edges[1:]))
    iterator = segments
    if progress:
        from tqdm.auto import tqdm  # optional extra

        iterator = tqdm(segments, desc=f"simulate {regimen.name if regimen else 'untreated'}", unit="segment")
    for a, b in iterator:
        Y = Y.copy()
        for dose, amount in zip(doses, amounts):
            if dose.route == "bolus" and dose.time_days == a:
                row = compiled.dose_index[dose.drug]
                Y[row] += amount * per_mg[drug_row[dose.drug]]
        for drug in compiled.drugs:
            rate = np.zeros(N)
            for dose, amount in zip(doses, amounts):
                if dose.drug == drug and dose.route == "infusion" and dose.time_days <= a < dose.end_days:
                    rate = rate + amount / dose.duration_days
            P[compiled.input_index[drug]] = rate
        last = b == t_end
        in_seg = (t_out >= a) & ((t_out <= b) if last else (t_out < b))
        seg_out, Y = run(a, b, Y, t_out[in_seg])
        Y_out[in_seg] = seg_out
        segment_params.append(P.copy())
        segment_of[in_seg] = len(segment_params) - 1

    # A bolus at exactly the last output time: report the post-dose state there too.
    for dose, amount in zip(doses, amounts):
        if dose.route == "bolus" and dose.time_days == t_end and t_end > 0:
            Y_out[-1, compiled.dose_index[dose.drug]] += amount * per_mg[drug_row[dose.drug]]

    if on_failure == "raise" and np.any(status != 0):
        k = int(np.nonzero(status != 0)[0][0])
        swept = {n: float(np.asarray(parameters[n]).ravel()[k if np.ndim(parameters[n]) else 0])
                 for n in model.parameter_names if np.ndim(parameters[n])}
        raise SimulationError(
            f"solver {backend.name} failed for parameter set {k} of {N} (hash {parameters.digest()}"
            + (f", batched values {swept}" if swept else "")
            + f") in the segment starting at t={failed_at[k]:g} day: {message[k]}. "
            "Try: solver='Radau' or 'BDF', a tighter rtol, or check that the parameters are within their bounds; "
            "use on_failure='record' to keep the other parameter sets."
        )

    obs = np.full((len(t_out), len(compiled.observable_names), N), np.nan)
    for i, t in enumerate(t_out):
        if segment_of[i] >= 0:
            obs[i] = compiled.observables_T(t, Y_out[i], segment_params[segment_of[i]])
    ds = _to_dataset(model, parameters, regimen, backend, rtol, atol, t_out, Y_out, obs, status, message,
                     pre_equilibrate_days, extinct_day)
    ds.attrs["start"] = start_note
    return ds


def _to_dataset(model, parameters, regimen, backend, rtol, atol, t_out, Y_out, obs, status, message, pre_days,
                extinct_day) -> xr.Dataset:
    batched = parameters.is_batched
    dims = ("sample", "time") if batched else ("time",)

    def arr(a):  # a: (time, N)
        return a.T if batched else a[:, 0]

    data = {}
    for j, s in enumerate(model.species):
        data[s.name] = (dims, arr(Y_out[:, j, :]), {"units": s.unit, "description": s.description, "kind": "species"})
    for j, e in enumerate(model.expressions):
        data[e.name] = (dims, arr(obs[:, j, :]), {"units": e.unit, "description": e.description, "kind": "observable"})
    for e, name in enumerate(model.compiled.extinct_names):
        day = extinct_day[e] if batched else extinct_day[e, 0]
        data[f"extinct_day_{name}"] = (("sample",) if batched else (), day, {
            "units": "day", "kind": "extinction",
            "description": f"first time {name} fell below its extinction threshold and was set to 0 (NaN: never)"})
    coords = {"time": ("time", t_out, {"units": "day", "long_name": "time since first dose"})}
    if batched:
        N = parameters.batch_size
        coords["sample"] = ("sample", np.arange(N))
        for name in model.parameter_names:
            if np.ndim(parameters[name]):
                coords[name] = ("sample", np.asarray(parameters[name], dtype=float), {"units": parameters.unit(name)})
        data["status"] = ("sample", status, {"description": "0 ok; see moa.solvers.base.STATUS"})
        data["message"] = ("sample", np.array(message, dtype=object))
    else:
        data["status"] = ((), int(status[0]), {"description": "0 ok; see moa.solvers.base.STATUS"})
        data["message"] = ((), message[0])
    attrs = base_provenance()
    attrs.update({
        "model": model.name,
        "parameter_set": parameters.name,
        "overlays": ",".join(parameters.overlays),
        "parameter_hash": parameters.digest(),
        "solver": backend.name,
        "rtol": rtol,
        "atol": atol,
        "pre_equilibrate_days": pre_days,
        "regimen": regimen.name if regimen else "untreated",
        "doses": json.dumps([[d.drug, d.amount, d.unit, d.time_days, d.route, d.duration_days] for d in regimen.doses]) if regimen else "[]",
    })
    return xr.Dataset(data, coords=coords, attrs=attrs)
