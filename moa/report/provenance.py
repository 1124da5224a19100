"""Where a result came from: moa version, git commit, machine, time; the caller's project and commit;
and the run record (model, parameter values with units, regimen, times, solver) a result is re-run from.

The run record of :func:`moa.simulate` is the attribute ``simulation`` of its dataset (JSON, see
:func:`simulation_record`); a dataset made of several simulations (``moa.runs.run_arms``,
``run_doses``) holds their records, each with the label of its part, in ``simulations``.
:func:`moa.report.results.rerun` rebuilds parameters and regimen from a record alone and simulates again.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import datetime
import functools
import json
import os
import pathlib
import platform
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import scipy

__all__ = [
    "version",
    "git_commit",
    "caller_repository",
    "base_provenance",
    "run_context",
    "current_run",
    "simulation_record",
    "parameter_values",
    "combine_simulations",
    "concat_runs",
    "records_of",
    "RECORD_VERSION",
    "READABLE_RECORD_VERSIONS",
    "recorded_value",
]

_REPO = pathlib.Path(__file__).resolve().parents[2]

#: Version of the run-record layout written by :func:`simulation_record`. Version 2 holds per-sample
#: parameter values as base64 float64 bytes (see :func:`recorded_value`); version 1 held them as JSON lists.
RECORD_VERSION = 2
#: The versions :func:`moa.report.results.rerun` reads; it refuses any other, naming them.
READABLE_RECORD_VERSIONS = (1, 2)

_RUN: contextvars.ContextVar[dict | None] = contextvars.ContextVar("moa_run", default=None)


def version() -> str:
    """moa's version (``moa._version``), read when asked so that this module does not import the package."""
    from .._version import __version__

    return __version__


def _git_head(folder: pathlib.Path) -> tuple[str, str] | None:
    """(top-level folder, HEAD commit with '+dirty' if tracked files changed) of the repository holding
    ``folder``, or None outside git."""
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, text=True, timeout=5
        )
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
        if top.returncode != 0 or head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return top.stdout.strip(), head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """moa's repository HEAD commit, with '+dirty' if the work tree has changes; 'unknown' outside git."""
    found = _git_head(_REPO)
    return found[1] if found else "unknown"


def _caller_folders() -> list[pathlib.Path]:
    """Where the caller lives: the running script's folder (``sys.argv[0]``; not a program installed in the
    Python environment, such as ``moa`` or ``pytest``), then the working directory."""
    folders = []
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    installed = {pathlib.Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    if script and os.path.exists(script):
        folder = pathlib.Path(script).resolve().parent
        if not any(folder.is_relative_to(prefix) for prefix in installed):
            folders.append(folder)
    with contextlib.suppress(OSError):
        folders.append(pathlib.Path.cwd())
    return folders


@functools.lru_cache(maxsize=8)
def _caller_repository(folders: tuple[pathlib.Path, ...]) -> dict[str, str]:
    moa_top = _git_head(_REPO)
    moa_top = pathlib.Path(moa_top[0]).resolve() if moa_top else None
    for folder in folders:
        found = _git_head(folder)
        if found and pathlib.Path(found[0]).resolve() != moa_top:
            return {"caller_project": found[0], "caller_commit": found[1]}
    return {}


def caller_repository() -> dict[str, str]:
    """``{"caller_project": <repository folder>, "caller_commit": <HEAD[+dirty]>}`` when moa is used from
    another git repository (the running script's, else the working directory's); ``{}`` when the caller
    is moa's own repository or no repository."""
    return dict(_caller_repository(tuple(_caller_folders())))


def base_provenance() -> dict[str, str]:
    """What made a result, as text: moa version, git commit, UTC time, Python, numpy and scipy versions,
    machine, and the caller's repository and commit when moa is used from another project."""
    out = {
        "moa_version": version(),
        "git_commit": git_commit(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "machine": f"{platform.machine()} {platform.system()}",
    }
    out.update(caller_repository())
    return out


@contextlib.contextmanager
def run_context(**fields) -> Iterator[None]:
    """Within the block, every results file :func:`moa.report.results.save_dataset` writes carries ``fields``
    (``moa.experiment_runner.run`` sets ``experiment`` and ``quick``)."""
    token = _RUN.set({**(_RUN.get() or {}), **fields})
    try:
        yield
    finally:
        _RUN.reset(token)


def current_run() -> dict:
    """The fields of the enclosing :func:`run_context` (``{}`` outside one)."""
    return dict(_RUN.get() or {})


def _recordable(value) -> float | dict:
    """A number as it is; per-sample values as ``{"n": count, "float64_base64": little-endian bytes}``: exact,
    and encoded twenty times faster than a JSON list (0.03 s against 0.7 s for 1.4 million values)."""
    a = np.asarray(value, dtype=float)
    if a.ndim == 0:
        return float(a)
    data = np.ascontiguousarray(a.ravel(), dtype="<f8").tobytes()
    return {"n": int(a.size), "float64_base64": base64.b64encode(data).decode("ascii")}


def recorded_value(value) -> float | np.ndarray:
    """A parameter value as a run record holds it, decoded: a number, or the per-sample values as a float
    array, from either record layout (version 2's ``{"n", "float64_base64"}``, version 1's JSON list)."""
    if isinstance(value, Mapping):
        try:
            a = np.frombuffer(base64.b64decode(value["float64_base64"], validate=True), dtype="<f8")
            n = int(value["n"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"run record value {str(value)[:80]!r}: expected {{'n': count, 'float64_base64': str}} ({exc})"
            ) from None
        if a.size != n:
            raise ValueError(f"run record value: 'n'={n} but 'float64_base64' holds {a.size} values")
        return a.astype(float)
    a = np.asarray(value, dtype=float)
    return float(a) if a.ndim == 0 else a


def parameter_values(parameters) -> dict[str, dict]:
    """Every value of a :class:`moa.parameters.ParameterSet` with its unit: ``{name: {"value": number, or
    the per-sample values encoded as :func:`recorded_value` reads them, "unit": str}}``."""
    return {n: {"value": _recordable(parameters[n]), "unit": parameters.unit(n)} for n in parameters}


def simulation_record(
    *,
    model,
    parameters,
    regimen,
    times: np.ndarray,
    solver: str,
    rtol: float,
    atol: float,
    start: str,
    pre_equilibrate_days: float,
    keep: Sequence[str] | None,
) -> dict:
    """What :func:`moa.simulate` needs to repeat a run, as JSON-able data.

    ``parameters`` maps every parameter of the set (the model's and the patient values doses are scaled
    by) to ``{"value": number | {"n", "float64_base64"} (one per sample; decode with
    :func:`recorded_value`), "unit": str}`` in the unit the model declares;
    ``regimen`` holds the doses given (drug, amount, unit, time_days, route, duration_days); ``model`` is
    the model's name and ``n_states`` its state count.
    """
    names = list(parameters)
    return {
        "record_version": RECORD_VERSION,
        "model": model.name,
        "n_states": len(model.species),
        "parameters": parameter_values(parameters),
        "varying": [n for n in names if np.ndim(parameters[n])],
        "n_samples": parameters.batch_size,
        "regimen": None
        if regimen is None
        else {
            "name": regimen.name,
            "doses": [
                {
                    "drug": d.drug,
                    "amount": d.amount,
                    "unit": d.unit,
                    "time_days": d.time_days,
                    "route": d.route,
                    "duration_days": d.duration_days,
                }
                for d in regimen.doses
            ],
        },
        "times_days": np.asarray(times, dtype=float).tolist(),
        "solver": solver,
        "rtol": rtol,
        "atol": atol,
        "start": start,
        "pre_equilibrate_days": pre_equilibrate_days,
        "keep": None if keep is None else list(keep),
    }


def records_of(attrs: Mapping) -> list[dict]:
    """The run records in a dataset's (or provenance file's) ``attrs``: ``simulations`` (each with its
    ``label``) or the single ``simulation``; ``[]`` when there is none."""

    def parsed(value):
        return json.loads(value) if isinstance(value, str) else value

    if "simulations" in attrs:
        return list(parsed(attrs["simulations"]))
    if "simulation" in attrs:
        return [parsed(attrs["simulation"])]
    return []


def combine_simulations(parts: Sequence[tuple[Mapping, Mapping]]) -> str:
    """The ``simulations`` attribute of a dataset made of several: ``parts`` is ``(label, attrs)`` per part
    (label: which slice it is, e.g. ``{"arm": "bsab_2x2"}``); records already combined are relabelled
    with the outer label added."""
    out = []
    for label, attrs in parts:
        for record in records_of(attrs):
            out.append({**record, "label": {**dict(label), **record.get("label", {})}})
    return json.dumps(out)


def _label_value(value):
    value = (
        value.item() if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0) else value
    )
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def concat_runs(parts: Sequence, dim: str, labels: Sequence | None = None, **kwargs):
    """``xarray.concat(parts, dim, **kwargs)`` that keeps every part's run record: the result's ``simulations``
    attribute lists them, each labelled ``{dim: label}`` (``labels``, default each part's own ``dim``
    coordinate of length one, as ``expand_dims(dim=[value])`` makes). Use it wherever simulation results
    are combined, so that :func:`moa.report.results.rerun` finds all of them
    (``xarray.concat`` keeps one part's attrs)."""
    import xarray as xr

    parts = list(parts)
    if labels is None:
        labels = []
        for k, part in enumerate(parts):
            if dim not in part.coords or part.sizes.get(dim) != 1:
                raise ValueError(f"concat_runs: part {k} has no {dim!r} coordinate of length one; pass labels=")
            labels.append(part[dim].values[0])
    labels = list(labels)
    if len(labels) != len(parts):
        raise ValueError(f"concat_runs: {len(labels)} labels for {len(parts)} parts")
    out = xr.concat(parts, dim=dim, **kwargs)
    out.attrs = {k: v for k, v in out.attrs.items() if k not in ("simulation", "simulations")}
    out.attrs["simulations"] = combine_simulations(
        [({dim: _label_value(v)}, part.attrs) for v, part in zip(labels, parts)]
    )
    return out
