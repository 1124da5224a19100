"""Large batches over several processes: split ``sample`` into chunks, simulate each chunk in a
worker process with :func:`moa.simulate`, concatenate the results along ``sample``.

::

    from moa.parallel import simulate_parallel
    ds = simulate_parallel("full_model", params, regimen, duration_days=365, workers=2, progress=True)

The model is named by its *builder* (``"full_model"`` = :func:`moa.symbolic.named_models.full_model`, or
``"package.module:function"``, or an importable module-level function) rather than passed as a
:class:`moa.Model`: each worker builds and compiles the model itself (a few seconds, once per
worker process) instead of receiving pickled generated code.

Failures are recorded per sample, never fatal for the other samples: every worker runs with
``on_failure="record"``; a chunk whose worker raises has each of its samples marked with status
4 and the exception in ``message``. ``on_failure="raise"`` raises a :class:`moa.SimulationError`
naming the first failed sample *after* all chunks have finished.

A worker process that dies (a crash in compiled code, the out-of-memory killer, a signal) breaks
its whole pool, and every chunk not finished by then is lost with it, although only one chunk
killed it. Retry policy: chunks that finished keep their results; the lost chunks are run again
in a new pool; if that pool breaks too, each chunk still lost runs alone in a pool of its own
(up to ``workers`` such pools at a time), so a death is traced to its chunk. A chunk whose
worker dies when it runs alone (at the latest its third run) is marked failed with the reason
("worker process died (killed by signal SIGKILL) while simulating samples a..b"); the others are
exact. ``attrs["parallel_chunk_retries"]`` counts the reruns.

Under ``spawn`` (the default) and ``forkserver`` each worker imports the script that called
:func:`simulate_parallel` again, as ``__mp_main__``: a script that calls it at module level must
do so under ``if __name__ == "__main__":``, or every worker would start the batch again. Such a
call is refused with a :class:`RuntimeError` that says so before any process starts.

When it pays: with the compiled Rodas4 one core runs about 55-60 one-year full-model simulations
a second, while a worker's start (interpreter and imports, model compilation ~2 s, kernel load)
and the transfer of its results (daily output of every species and observable: ~0.2 MB per
simulation-year) cost several seconds. Measured on 2 cores (2026-11-29, one-year
``nabp_bsab_2x2``, daily output): 1.3x over one process for 1,000 parameter sets, 1.5-1.6x for
4,000.

Results equal a single-process :func:`moa.simulate` of the whole batch: ``solver="auto"`` is
resolved on the whole batch size before splitting, and the batched Rodas4 solver integrates
every trajectory independently (its results do not depend on which other trajectories share a
batch).
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import importlib
import math
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable

import numpy as np
import xarray as xr

from .errors import SimulationError
from .parameters import ParameterSet
from .report.provenance import combine_simulations
from .solvers import auto_solver
from .solvers.base import Status

__all__ = [
    "simulate_parallel",
    "resolve_builder",
    "split_parameters",
    "check_main_guard",
    "limit_blas_threads",
    "available_cores",
]

#: Samples per chunk when ``chunks`` is not given: large enough that the batched solver's
#: per-step overhead is amortised, small enough that both cores get work and the progress bar moves.
DEFAULT_CHUNK_SAMPLES = 1000


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one, e.g. Linux; else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_builder(builder: str | Callable):
    """The model builder named by ``builder``: a name in :mod:`moa.symbolic.named_models` (``"full_model"``),
    ``"package.module:function"``, or a callable (returned unchanged)."""
    if callable(builder):
        return builder
    if not isinstance(builder, str) or not builder:
        raise ValueError(f"model={builder!r}: give a builder name such as 'full_model' or 'package.module:function'")
    module_name, _, func = builder.rpartition(":") if ":" in builder else ("moa.symbolic.named_models", ":", builder)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"model={builder!r}: cannot import module {module_name!r}: {exc}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        known = sorted(n for n in getattr(module, "__all__", dir(module)) if callable(getattr(module, n, None)))
        raise ValueError(f"model={builder!r}: {module_name} has no builder {func!r}; known: {known}")
    return fn


def split_parameters(parameters: ParameterSet, bounds) -> list[ParameterSet]:
    """One :class:`ParameterSet` per ``(start, stop)`` in ``bounds``, slicing every batched value."""
    out = []
    for a, b in bounds:
        values = {k: (v[a:b] if np.ndim(v) == 1 else v) for k, v in parameters.items()}
        out.append(ParameterSet(parameters.specs, values, name=parameters.name, overlays=parameters.overlays))
    return out


def limit_blas_threads(n: int) -> None:
    """Worker initializer: one BLAS thread per process (the processes are the parallelism)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional; env vars set by the parent then apply
        return
    threadpool_limits(n)


def _run_chunk(builder, parameters: ParameterSet, regimen, kwargs: dict):
    """Worker: build (cached per process) the model and simulate one chunk, recording failures."""
    model = resolve_builder(builder)()
    import moa

    return moa.simulate(
        model, parameters, regimen, on_failure="record", progress=False, **kwargs
    )  # the parent's bar counts chunks


_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def simulate_parallel(
    model: str | Callable,
    parameters: ParameterSet,
    regimen=None,
    *,
    workers: int | None = None,
    chunks: int | None = None,
    progress: bool | None = None,
    on_failure: str = "record",
    mp_context: str = "spawn",
    blas_threads: int = 1,
    **simulate_kwargs,
) -> xr.Dataset:
    """:func:`moa.simulate` of a batch of ``N`` parameter sets split over ``workers`` processes.

    Parameters
    ----------
    model: builder name (``"full_model"``, ``"pk_model"``, ``"package.module:function"``) or an
        importable module-level function returning a :class:`moa.Model`.
    parameters: a batched :class:`ParameterSet` (array values of length ``N``).
    regimen: as for :func:`moa.simulate`.
    workers: processes (default: the number of CPUs this process may use, at least 1).
    chunks: number of chunks the ``sample`` dimension is split into (default:
        ``max(workers, ceil(N / 1000))``, never more than ``N``); chunks are as equal as possible.
    progress: a tqdm progress bar over finished chunks (needs the ``progress`` extra); None (the
        default): only when the ``MOA_PROGRESS`` environment variable is set (``moa run --progress``).
    on_failure: ``"record"`` (default; failed samples have ``status`` != 0 and a ``message``) or
        ``"raise"`` (a :class:`moa.SimulationError` after all chunks finished).
    mp_context: ``"spawn"`` (default; a fresh interpreter per worker) or ``"fork"``/``"forkserver"``.
    blas_threads: BLAS threads per worker (1: the processes are the parallelism).
    simulate_kwargs: passed to :func:`moa.simulate` (``duration_days``, ``times``, ``solver``,
        ``rtol``, ``atol``, ``overrides``, ``pre_equilibrate_days``, ``keep``). ``progress`` is this
        function's own argument (per chunk), not passed on.

    Returns
    -------
    The concatenated dataset, with ``sample`` = 0..N-1 and attrs of the first chunk plus
    ``parallel_workers``/``parallel_chunks``, and ``parameter_hash`` of the whole batch; the run
    record of each chunk that ran is in ``simulations``, labelled ``{"samples": [first, end)}``
    (:func:`moa.report.results.rerun`).
    """
    if not isinstance(parameters, ParameterSet):
        raise ValueError(f"parameters={type(parameters).__name__}: must be a ParameterSet (moa.load_parameters())")
    if on_failure not in ("raise", "record"):
        raise ValueError(f"on_failure={on_failure!r}: allowed values are 'raise' and 'record'")
    for bad in ("on_failure", "progress"):
        simulate_kwargs.pop(bad, None)
    resolve_builder(model)  # fail early on a bad name, in this process
    if mp_context in ("spawn", "forkserver"):
        check_main_guard()
    overrides = simulate_kwargs.pop("overrides", None)
    if overrides:
        parameters = parameters.with_values(overrides)
    if not parameters.is_batched:
        raise ValueError(
            "simulate_parallel needs a batched ParameterSet (array values along 'sample'); "
            "use moa.simulate for one parameter set"
        )
    N = parameters.batch_size
    if workers is None:
        workers = available_cores()
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers={workers!r}: must be an integer >= 1")
    if chunks is None:
        chunks = max(workers, math.ceil(N / DEFAULT_CHUNK_SAMPLES))
    if not (isinstance(chunks, int) and chunks >= 1):
        raise ValueError(f"chunks={chunks!r}: must be an integer >= 1")
    chunks = min(chunks, N)
    # "auto" chooses by batch size: decide on the whole batch so chunks use the same solver.
    if simulate_kwargs.get("solver", "auto") == "auto":
        simulate_kwargs["solver"] = auto_solver(N)
    edges = np.linspace(0, N, chunks + 1).round().astype(int)
    bounds = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
    parts = split_parameters(parameters, bounds)

    results: list[xr.Dataset | None] = [None] * len(parts)
    errors: dict[int, str] = {}
    saved_env = {k: os.environ.get(k) for k in _BLAS_ENV}
    bar = None
    if progress or (progress is None and os.environ.get("MOA_PROGRESS")):
        from tqdm.auto import tqdm  # optional extra

        bar = tqdm(total=len(parts), desc=f"simulate {N} samples on {workers} processes", unit="chunk")
    chunk_runs = _ChunkRuns(
        model,
        parts,
        bounds,
        regimen,
        simulate_kwargs,
        multiprocessing.get_context(mp_context),
        blas_threads,
        results,
        errors,
        bar,
    )
    retries = 0
    try:
        for k in _BLAS_ENV:  # inherited by spawned workers before they import numpy
            os.environ[k] = str(blas_threads)
        lost = chunk_runs.in_one_pool(range(len(parts)), workers)
        if len(lost) > 1:
            retries += len(lost)
            lost = chunk_runs.in_one_pool(lost, workers)
        retries += len(lost)
        chunk_runs.each_alone(lost, workers)
    finally:
        if bar is not None:
            bar.close()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    template = next((r for r in results if r is not None), None)
    if template is None:
        raise SimulationError("every chunk failed: " + "; ".join(errors[i] for i in sorted(errors)))
    records = combine_simulations(
        [({"samples": list(bounds[i])}, r.attrs) for i, r in enumerate(results) if r is not None]
    )
    for i, msg in errors.items():
        results[i] = _failed_like(template, bounds[i], parts[i], msg)
    ds = xr.concat(
        results,
        dim="sample",
        data_vars="all",
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="override",
    )
    ds = ds.assign_coords(sample=np.arange(N))
    ds.attrs.pop("simulation", None)  # the first chunk's: each chunk's is in "simulations"
    ds.attrs.update(
        {
            "simulations": records,
            "parameter_hash": parameters.digest(),
            "parallel_workers": workers,
            "parallel_chunks": len(parts),
            "parallel_chunk_retries": retries,
        }
    )

    if on_failure == "raise":
        status = np.asarray(ds["status"])
        if np.any(status != Status.OK):
            k = int(np.nonzero(status != Status.OK)[0][0])
            raise SimulationError(
                f"parameter set {k} of {N} (hash {parameters.digest()}) failed: {ds['message'].values[k]}. "
                f"{int(np.sum(status != Status.OK))} of {N} failed; use on_failure='record' to keep the others."
            )
    return ds


class _ChunkRuns:
    """Runs chunks in worker pools, storing each chunk's dataset in ``results[i]`` or its failure
    in ``errors[i]``; a chunk lost to a pool that broke is returned to the caller to run again."""

    def __init__(self, model, parts, bounds, regimen, kwargs, ctx, blas_threads, results, errors, bar):
        self.model, self.parts, self.bounds, self.regimen, self.kwargs = model, parts, bounds, regimen, kwargs
        self.ctx, self.blas_threads, self.results, self.errors, self.bar = ctx, blas_threads, results, errors, bar

    def _pool(self, workers: int) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=self.ctx, initializer=limit_blas_threads, initargs=(self.blas_threads,)
        )

    def _submit(self, pool: cf.ProcessPoolExecutor, i: int) -> cf.Future:
        return pool.submit(_run_chunk, self.model, self.parts[i], self.regimen, self.kwargs)

    def _samples(self, i: int) -> str:
        return f"samples {self.bounds[i][0]}..{self.bounds[i][1] - 1}"

    def _store(self, i: int, fut: cf.Future) -> None:
        """The chunk's result, or the exception its worker raised (not a dead worker)."""
        try:
            self.results[i] = fut.result()
        except Exception as exc:  # noqa: BLE001 - recorded per sample
            self.errors[i] = f"worker failed on {self._samples(i)}: {type(exc).__name__}: {exc}"
        if self.bar is not None:
            self.bar.update(1)

    def in_one_pool(self, chunks, workers: int) -> list[int]:
        """Run ``chunks`` in one pool of up to ``workers`` processes; return those lost when it broke."""
        chunks = list(chunks)
        if not chunks:
            return []
        lost = []
        with self._pool(min(workers, len(chunks))) as pool:
            futures = {self._submit(pool, i): i for i in chunks}
            for fut in cf.as_completed(futures):
                if isinstance(fut.exception(), cf.process.BrokenProcessPool):
                    lost.append(futures[fut])
                else:
                    self._store(futures[fut], fut)
        return sorted(lost)

    def each_alone(self, chunks, workers: int) -> None:
        """Run each chunk in a pool of its own (``workers`` at a time); a chunk whose lone worker
        dies is marked failed with the worker's exit status."""
        queue = list(chunks)
        running: dict[cf.Future, tuple[int, cf.ProcessPoolExecutor, list]] = {}
        try:
            while queue or running:
                while queue and len(running) < workers:
                    i = queue.pop(0)
                    pool = self._pool(1)
                    fut = self._submit(pool, i)
                    # The pool's own process list (private; empty if it changes): for the exit status.
                    running[fut] = (i, pool, list(getattr(pool, "_processes", {}).values()))
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    i, pool, processes = running.pop(fut)
                    pool.shutdown(wait=True)
                    if isinstance(fut.exception(), cf.process.BrokenProcessPool):
                        self.errors[i] = (
                            f"worker process died ({_exit_status(processes)}) while simulating "
                            f"{self._samples(i)}, also when run alone; the other chunks are unaffected"
                        )
                        if self.bar is not None:
                            self.bar.update(1)
                    else:
                        self._store(i, fut)
        finally:
            for _, pool, _ in running.values():
                pool.shutdown(wait=False, cancel_futures=True)


def _exit_status(processes) -> str:
    """How the (single) worker process ended: ``killed by signal SIGKILL`` or ``exit code 1``."""
    codes = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
    if not codes:
        return "exit status unknown"
    code = codes[0]
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def check_main_guard(caller: str = "simulate_parallel") -> None:
    """Refuse a call made while the ``__main__`` script runs its top level outside
    ``if __name__ == "__main__":`` (spawned workers would import the script and run it again)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return  # an interactive session, a notebook or `python -c`: workers do not re-import it
    frame = sys._getframe(1)
    top = None
    while frame is not None:
        if frame.f_code.co_name == "<module>" and os.path.abspath(frame.f_code.co_filename) == os.path.abspath(path):
            top = frame  # the outermost frame of the script's top level
        frame = frame.f_back
    if top is None or _inside_main_guard(path, top.f_lineno):
        return
    raise RuntimeError(
        f"{caller} was called at the top level of {path} (line {top.f_lineno}) outside "
        "'if __name__ == \"__main__\":'. With mp_context='spawn' or 'forkserver' each worker process "
        "imports this script again and would start the batch again; put the call (or the code that "
        "leads to it) under 'if __name__ == \"__main__\":', or use mp_context='fork'."
    )


def _inside_main_guard(path: str, line: int) -> bool:
    """Whether ``line`` of the script ``path`` lies in the body of an ``if __name__ == "__main__":``."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return True  # cannot tell: let the call go ahead
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            first, last = node.body[0].lineno, max(getattr(n, "end_lineno", n.lineno) for n in node.body)
            if first <= line <= last:
                return True
    return False


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either order)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides) and any(
        isinstance(x, ast.Constant) and x.value == "__main__" for x in sides
    )


def _failed_like(template: xr.Dataset, bounds, part: ParameterSet, message: str) -> xr.Dataset:
    """A chunk result for a chunk whose worker failed: NaN values, status 4, the reason."""
    n = bounds[1] - bounds[0]
    data = {}
    for name, var in template.data_vars.items():
        shape = tuple(n if d == "sample" else template.sizes[d] for d in var.dims)
        if name == "status":
            values = np.full(shape, Status.SOLVER_FAILURE, dtype=var.dtype)
        elif name == "message":
            values = np.full(shape, message, dtype=object)
        else:
            values = np.full(shape, np.nan)
        data[name] = (var.dims, values, var.attrs)
    coords = {"time": template["time"], "sample": ("sample", np.arange(*bounds))}
    for name, coord in template.coords.items():
        if name not in coords and coord.dims == ("sample",):
            coords[name] = ("sample", np.asarray(part[name], dtype=float), coord.attrs)
    return xr.Dataset(data, coords=coords, attrs=template.attrs)
