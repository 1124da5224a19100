"""Running a sweep: chunks of points simulated locally (in this process or a process pool) or on
a Dask cluster, checkpointed as they finish, gathered into one labelled Dataset.

A *chunk* is a run of consecutive points of one arm in one setting: one batched
:func:`moa.simulate` call (``start="quasi_steady"``, ``on_failure="record"``). Chunks are numbered
arm-major, then setting, then point, and their layout depends only on the spec, so a local run, a
Dask run and a resumed run compute the same chunks from the same samples and give bit-identical
results. (A point's quasi-steady start is relaxed as long as any point of its chunk still moves,
so a point's numbers can differ in the last digits with another ``chunk_size``; ``chunk_size`` is
part of the spec's digest.)

Each worker builds and compiles the model once (:func:`moa.symbolic.named_models.full_model` is cached per
process) and keeps it for every chunk it runs.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable

import numpy as np
import xarray as xr

from ..errors import BoundsWarning
from .sampling import parameter_values, unit_design
from .spec import SweepSpec
from .store import ChunkStore
from .summaries import SUMMARIES, compute_summaries, needed_variables

__all__ = ["run_sweep", "Chunk", "plan_chunks", "simulate_chunk", "sweep_times", "EXECUTORS"]

EXECUTORS = ("local", "dask")


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Points ``start..stop-1`` of ``arm`` in ``setting``; ``index`` numbers it in the sweep."""

    index: int
    arm: str
    setting: str
    start: int
    stop: int


def plan_chunks(spec: SweepSpec, n_points: int) -> list[Chunk]:
    """The chunks of ``spec`` (``n_points`` per arm and setting), in the order they are numbered."""
    edges = list(range(0, n_points, spec.chunk_size)) + [n_points]
    chunks = []
    for arm in spec.arms:
        for setting in spec.settings:
            for a, b in zip(edges[:-1], edges[1:]):
                chunks.append(Chunk(len(chunks), arm, setting, a, b))
    return chunks


def sweep_times(spec: SweepSpec) -> tuple[np.ndarray, np.ndarray]:
    """(solver output times, days at which observables are kept) [day]; the chosen days are added to
    the regular grid so that they are output times."""
    from ..simulate import output_times

    grid = output_times(spec.duration_days, spec.output_step_days)
    if isinstance(spec.days, str):
        return grid, grid
    kept = np.asarray(spec.days, dtype=float)
    return np.union1d(grid, kept), kept


def _expected_shapes(spec: SweepSpec, n: int, n_days: int) -> dict[str, tuple]:
    shapes = {name: (n,) for name in spec.summaries}
    shapes.update({name: (n, n_days) for name in spec.observables})
    shapes.update(status=(n,), message=(n,))
    return shapes


def simulate_chunk(spec: SweepSpec, arm: str, setting: str, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Simulate the points ``values`` (``{parameter: array}``, one length) of ``arm`` in ``setting``.

    Returns ``{output: array}``: each summary (points,), each observable (points, days), ``status``
    (points,) and ``message`` (points,) as fixed-width strings. Runs in a worker process.
    """
    from ..symbolic.named_models import full_model
    from ..scenarios import scenario
    from ..simulate import simulate

    times, kept = sweep_times(spec)
    params, regimen = scenario(arm, setting, spec.duration_days)
    with warnings.catch_warnings():
        # a setting's or format's own values may lie outside the sweep bounds; the sampled ones never do
        warnings.simplefilter("ignore", BoundsWarning)
        params = params.with_values(
            {**spec.overrides, **{k: np.asarray(v, dtype=float) for k, v in values.items()}},
            origin=f"sweep {spec.name!r}",
        )
    keep = list(dict.fromkeys([*spec.observables, *needed_variables(spec.summaries)]))
    ds = simulate(
        full_model(),
        params,
        regimen,
        times=times,
        solver=spec.solver,
        rtol=spec.rtol,
        atol=spec.atol,
        on_failure="record",
        start="quasi_steady",
        progress=False,
        keep=keep,
    )
    ds = ds.rename({"sample": "point"})
    out = compute_summaries(ds, spec.summaries)
    for name in spec.observables:
        out[name] = ds[name].sel(time=kept).transpose("point", "time").values.astype(float)
    out["status"] = ds["status"].values.astype(np.int64)
    out["message"] = np.array([str(m) for m in ds["message"].values], dtype=str)
    return out


def _run_task(spec: SweepSpec, chunk: Chunk, values: dict[str, np.ndarray]) -> tuple[int, dict]:
    """Worker entry point (local pool and Dask): the chunk's index and arrays; a worker exception is
    returned as the failure of each of its points, never raised."""
    try:
        return chunk.index, simulate_chunk(spec, chunk.arm, chunk.setting, values)
    except Exception as exc:  # noqa: BLE001 - recorded per point, the sweep goes on
        return chunk.index, _failed_chunk(spec, chunk, f"worker failed: {type(exc).__name__}: {exc}")


def _failed_chunk(spec: SweepSpec, chunk: Chunk, reason: str) -> dict[str, np.ndarray]:
    n, n_days = chunk.stop - chunk.start, len(sweep_times(spec)[1])
    out = {name: np.full(n, np.nan) for name in spec.summaries}
    out.update({name: np.full((n, n_days), np.nan) for name in spec.observables})
    out["status"] = np.full(n, 4, dtype=np.int64)  # moa.solvers.base.Status.SOLVER_FAILURE
    out["message"] = np.array([reason] * n, dtype=str)
    return out


def run_sweep(
    spec: SweepSpec,
    out_dir=None,
    *,
    executor: str = "local",
    client=None,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    progress=None,
    on_chunk: Callable[[Chunk, dict], None] | None = None,
) -> xr.Dataset:
    """Run ``spec`` and return its result as one Dataset.

    Parameters
    ----------
    spec: a validated :class:`SweepSpec` (:func:`moa.sweep.load_spec`).
    out_dir: checkpoint folder (see :mod:`moa.sweep.store`); None keeps everything in memory. Chunks
        already there for the same spec are reused (whether or not ``resume`` is set); a folder of
        another spec is refused.
    executor: "local" (``workers`` processes; 1, the default, runs in this process) or "dask"
        (``client``, a ``dask.distributed.Client``, or ``scheduler``, an address such as
        ``tcp://host:8786``; the ``cluster`` extra).
    resume: say that chunks from an earlier run are expected; with no checkpoint in ``out_dir``
        this only notes it in the result's attrs.
    progress: True for a tqdm bar (points done, failures, ETA), a callable ``progress(points_done,
        points_total, failures)``, or None/False.
    on_chunk: called as ``on_chunk(chunk, arrays)`` after each chunk is stored (an exception raised
        there stops the sweep, as a kill would: what was stored stays stored).

    Returns
    -------
    Dataset with dim ``point`` (plus ``arm``/``setting`` when the spec has several, ``time`` for
    kept observables): one variable per sampled parameter [its unit], ``unit_design`` (the design in
    the unit hypercube), each output, ``status``/``message`` per point; attrs ``sampling``,
    ``n_base`` (the spec's n), ``parameters`` (order of the design's columns), ``spec_hash``.
    """
    spec = spec.validate()
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r}: allowed executors are {list(EXECUTORS)}")
    if executor == "local" and (client is not None or scheduler is not None):
        raise ValueError("client/scheduler are for executor='dask'")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir: the folder holding the checkpoints of the earlier run")
    if workers is not None and not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers={workers!r}: must be an integer >= 1")
    if spec.solver == "auto":
        from ..solvers import auto_solver

        spec = dataclasses.replace(spec, solver=auto_solver(spec.chunk_size))  # every chunk the same solver
    unit = unit_design(spec)
    values = parameter_values(spec, unit)
    n = unit.shape[0]
    chunks = plan_chunks(spec, n)
    _, kept = sweep_times(spec)
    store = ChunkStore(out_dir, spec.as_dict(), spec.digest(), len(chunks)) if out_dir is not None else None

    results: dict[int, dict] = {}
    if store is not None:
        for c in chunks:
            arrays = store.load(c.index, _expected_shapes(spec, c.stop - c.start, len(kept)))
            if arrays is not None:
                results[c.index] = arrays
    reused = len(results)
    todo = [c for c in chunks if c.index not in results]
    bar = _Progress(
        progress,
        n * len(spec.arms) * len(spec.settings),
        sum(c.stop - c.start for c in chunks if c.index in results),
        sum(int(np.sum(r["status"] != 0)) for r in results.values()),
    )

    def finished(index: int, arrays: dict) -> None:
        chunk = chunks[index]
        results[index] = arrays
        if store is not None:
            store.save(index, arrays, {"arm": chunk.arm, "setting": chunk.setting, "points": [chunk.start, chunk.stop]})
        bar.update(chunk.stop - chunk.start, int(np.sum(arrays["status"] != 0)))
        if on_chunk is not None:
            on_chunk(chunk, arrays)

    def task_values(c: Chunk) -> dict[str, np.ndarray]:
        return {k: v[c.start : c.stop] for k, v in values.items()}

    started = time.perf_counter()
    try:
        if executor == "dask":
            _run_dask(spec, todo, task_values, finished, client, scheduler)
        elif (workers or 1) == 1 or len(todo) <= 1:
            for c in todo:
                finished(*_run_task(spec, c, task_values(c)))
        else:
            _run_pool(spec, todo, task_values, finished, workers)
    finally:
        bar.close()
    ds = _assemble(spec, chunks, results, values, unit, kept)
    ds.attrs.update(
        {
            "chunks": len(chunks),
            "chunks_reused": reused,
            "executor": executor,
            "wall_seconds": round(time.perf_counter() - started, 3),
            "resume": int(bool(resume)),
        }
    )
    if store is not None:
        _write_result(ds, store.root)
    return ds


def _run_pool(spec, todo, task_values, finished, workers: int) -> None:
    """Chunks over a pool of ``workers`` spawned processes, stored as they complete."""
    from ..parallel import check_main_guard, limit_blas_threads

    check_main_guard("run_sweep with workers > 1")
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        max_workers=min(workers, len(todo)), mp_context=ctx, initializer=limit_blas_threads, initargs=(1,)
    ) as pool:
        futures = [pool.submit(_run_task, spec, c, task_values(c)) for c in todo]
        try:
            for fut in cf.as_completed(futures):
                try:
                    index, arrays = fut.result()
                except cf.process.BrokenProcessPool as exc:
                    raise RuntimeError(
                        f"a worker process died ({exc}); the chunks finished so far are checkpointed: "
                        "run the sweep again with the same out_dir to resume"
                    ) from None
                finished(index, arrays)
        finally:
            for fut in futures:
                fut.cancel()


def _run_dask(spec, todo, task_values, finished, client, scheduler) -> None:
    """Chunks mapped over a dask.distributed cluster, stored as they complete."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ImportError("executor='dask' needs dask.distributed: pip install 'moa[cluster]'") from None
    own = client is None
    if own:
        if scheduler is None:
            raise ValueError("executor='dask' needs client= (a dask.distributed.Client) or scheduler= (an address)")
        client = Client(scheduler)
    try:
        futures = [
            client.submit(_run_task, spec, c, task_values(c), key=f"moa-sweep-{spec.digest()}-{c.index}", pure=False)
            for c in todo
        ]
        for _, (index, arrays) in as_completed(futures, with_results=True):
            finished(index, arrays)
    finally:
        if own:
            client.close()


def _assemble(spec: SweepSpec, chunks, results, values, unit, kept) -> xr.Dataset:
    """One Dataset from the chunks' arrays (dims arm, setting, point[, time])."""
    n = unit.shape[0]
    shape = (len(spec.arms), len(spec.settings), n)
    arm_i = {a: i for i, a in enumerate(spec.arms)}
    set_i = {s: i for i, s in enumerate(spec.settings)}
    names = [*spec.summaries, *spec.observables, "status"]
    data = {k: np.full(shape + ((len(kept),) if k in spec.observables else ()), np.nan) for k in names}
    data["status"] = np.zeros(shape, dtype=np.int64)
    message = np.full(shape, "", dtype=object)
    for c in chunks:
        r, at = results[c.index], (arm_i[c.arm], set_i[c.setting], slice(c.start, c.stop))
        for k in names:
            data[k][at] = r[k]
        message[at] = r["message"].astype(object)
    dims = ("arm", "setting", "point")
    ds_vars = {}
    for k in spec.summaries:
        s = SUMMARIES[k]
        ds_vars[k] = (dims, data[k], {"units": s.unit, "description": s.description})
    for k in spec.observables:
        ds_vars[k] = (dims + ("time",), data[k], {"description": f"{k} at the kept days"})
    ds_vars["status"] = (dims, data["status"], {"description": "0 ok; see moa.solvers.base.Status"})
    ds_vars["message"] = (dims, message)
    units = {p.name: p.unit for p in spec.parameters}
    for name, v in values.items():
        ds_vars[name] = (("point",), v, {"units": units[name], "description": f"sampled {name}"})
    ds_vars["unit_design"] = (
        ("point", "parameter"),
        unit,
        {"units": "1", "description": "the design in the unit hypercube"},
    )
    coords = {
        "arm": list(spec.arms),
        "setting": list(spec.settings),
        "point": np.arange(n),
        "parameter": spec.parameter_names,
    }
    if spec.observables:
        coords["time"] = ("time", kept, {"units": "day"})
    from ..report.provenance import base_provenance

    attrs = base_provenance()
    attrs.update(
        {
            "sweep": spec.name,
            "spec_hash": spec.digest(),
            "sampling": spec.sampling,
            "n_base": int(spec.n),
            "seed": int(spec.seed),
            "parameters": ",".join(spec.parameter_names),
            "duration_days": float(spec.duration_days),
            "solver": str(spec.as_dict()["solver"]),
            "rtol": float(spec.rtol),
            "atol": float(spec.atol),
            "chunk_size": int(spec.chunk_size),
            "failed_points": int(np.sum(data["status"] != 0)),
            # the exact recipe: with models/ (git_commit) the spec and seed give every point's parameter values
            "spec": json.dumps(spec.as_dict(), sort_keys=True, default=str),
        }
    )
    ds = xr.Dataset(ds_vars, coords=coords, attrs=attrs)
    for dim, labels in (("arm", spec.arms), ("setting", spec.settings)):
        if len(labels) == 1:
            ds = ds.squeeze(dim)  # one arm or setting: a scalar coordinate, not a dim
    return ds


def _write_result(ds: xr.Dataset, folder) -> None:
    """The whole result as ``sweep.nc`` with ``sweep.provenance.json``, atomically (moa.report.results.save_dataset)."""
    from ..report.results import save_dataset

    save_dataset(ds, folder, "sweep", csv_variables=[])


class _Progress:
    """Points done, failures and ETA: a tqdm bar, a callback, or nothing."""

    def __init__(self, progress, total: int, done: int, failures: int):
        self.callback = progress if callable(progress) and progress is not True else None
        self.total, self.done, self.failures = total, done, failures
        self.bar = None
        if progress is True or (progress is None and os.environ.get("MOA_PROGRESS")):
            from tqdm.auto import tqdm  # the progress extra

            self.bar = tqdm(total=total, initial=done, desc="sweep", unit="point")
            self.bar.set_postfix(failed=failures)
        if self.callback:
            self.callback(done, total, failures)

    def update(self, points: int, failures: int) -> None:
        self.done += points
        self.failures += failures
        if self.bar is not None:
            self.bar.update(points)
            self.bar.set_postfix(failed=self.failures)
        if self.callback:
            self.callback(self.done, self.total, self.failures)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
