"""Saving results: NetCDF, CSV of the main observables and provenance.json, written atomically;
re-running a result from its provenance alone (:func:`rerun`).

Every file carries the provenance: the NetCDF in its global attributes, ``.provenance.json`` as
JSON, and the CSV in its first line (``# moa provenance (JSON): {...}``; :func:`read_csv` reads it
back). CSV columns say their units in the name, ``name [unit]`` (a column without a unit,
``sample``, ``arm``, ``status``, has none). NetCDF variables are compressed (zlib, level 4) when
netCDF4 or h5netcdf is installed; with only scipy's NetCDF3 writer they cannot be, and the file's
``netcdf_compression`` attribute says so.

Every file is written under a temporary name in the destination folder and renamed into
place, so a failure never leaves a half-written file behind. A folder of results is built under
a hidden name and published through a symbolic link swapped in atomically
(:func:`staged_directory`), so even a kill leaves the old or the new folder visible.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import io
import json
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np
import xarray as xr

from .provenance import READABLE_RECORD_VERSIONS, current_run, recorded_value, records_of

__all__ = [
    "atomic_write",
    "save_dataset",
    "write_json",
    "write_text",
    "staged_directory",
    "remove_stale",
    "rerun",
    "read_provenance",
    "read_csv",
    "with_status",
    "CSV_PROVENANCE_PREFIX",
    "COMPRESSION_LEVEL",
]

#: The CSV's first line starts with this, followed by the provenance as one line of JSON.
CSV_PROVENANCE_PREFIX = "# moa provenance (JSON): "
#: zlib level of NetCDF4 variables. assumed: 4 gives most of level 9's size at a fraction of its time.
COMPRESSION_LEVEL = 4


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[pathlib.Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = pathlib.Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results are for sharing
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`: the old file or the new, never half);
    return the path."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return pathlib.Path(path)


def write_json(path: str | os.PathLike, data: object) -> pathlib.Path:
    """Write ``data`` as indented JSON with sorted keys (numpy scalars and arrays as numbers and lists,
    anything else as its text), atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _netcdf_ready(ds: xr.Dataset) -> xr.Dataset:
    """NetCDF3 (scipy engine, no system library) takes no bools, int64 or nested attrs."""
    ds = ds.copy()
    for name, var in list(ds.variables.items()):
        if var.dtype == bool:
            ds[name] = var.astype("int8")
        elif var.dtype.kind in "iu" and var.dtype.itemsize > 4:
            ds[name] = var.astype("int32")
    for obj in [ds, *ds.variables.values()]:
        for k, v in list(obj.attrs.items()):
            if isinstance(v, bool) or not isinstance(v, (str, int, float, np.number)):
                obj.attrs[k] = json.dumps(v, default=_jsonable)
    return ds


def _netcdf_engine() -> str:
    """The NetCDF writer: netCDF4 or h5netcdf (both compress) when installed, else scipy (NetCDF3, cannot)."""
    for module, engine in (("netCDF4", "netcdf4"), ("h5netcdf", "h5netcdf")):
        if importlib.util.find_spec(module) is not None:
            return engine
    return "scipy"


def _write_netcdf(ds: xr.Dataset, path: pathlib.Path) -> None:
    engine = _netcdf_engine()
    ds = _netcdf_ready(ds)
    if engine == "scipy":
        ds.attrs["netcdf_compression"] = (
            "none: written by scipy's NetCDF3 backend, which cannot compress; install "
            "netCDF4 or h5netcdf for zlib-compressed NetCDF4"
        )
        ds.to_netcdf(path, engine="scipy")
        return
    ds.attrs["netcdf_compression"] = f"zlib level {COMPRESSION_LEVEL} ({engine})"
    encoding = {
        name: {"zlib": True, "complevel": COMPRESSION_LEVEL}
        for name, var in ds.variables.items()
        if var.dtype.kind in "biuf" and var.ndim > 0
    }
    ds.to_netcdf(path, engine=engine, encoding=encoding)


def _column(name: str, var: xr.DataArray) -> str:
    unit = var.attrs.get("units")
    return f"{name} [{unit}]" if unit else name


def _csv_text(ds: xr.Dataset, names: list[str], provenance: dict) -> str:
    """Long-format CSV of ``names``: the provenance line, then columns named ``name [unit]``."""
    frame = ds[names].to_dataframe()
    frame = frame.rename(columns={c: _column(c, ds[c]) for c in frame.columns})
    frame.index = frame.index.set_names([_column(n, ds[n]) if n in ds.coords else n for n in frame.index.names])
    buf = io.StringIO()
    buf.write(CSV_PROVENANCE_PREFIX + json.dumps(provenance, sort_keys=True, default=_jsonable) + "\n")
    frame.to_csv(buf)
    return buf.getvalue()


def _provenance(attrs: dict) -> dict:
    """The dataset's attrs as JSON-able data; the run records parsed (not JSON inside JSON)."""
    out = dict(attrs)
    for key in ("simulation", "simulations"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def with_status(table: xr.Dataset, source: xr.Dataset | None = None) -> xr.Dataset:
    """``table`` with ``status``/``message`` per sample, which every results file must carry (:func:`save_dataset`).

    ``source``: the simulation result ``table`` was computed from (a summary per sample); its
    ``status``/``message`` are copied, reduced over dims ``table`` lacks (the worst status, the
    distinct messages joined with "; "). Without ``source`` (values computed without a solver, such as
    exact equilibria) every entry gets status 0 and an empty message over ``table``'s dims other than
    ``time``. A table that already has both is returned as it is.
    """
    if "status" in table and "message" in table:
        return table
    if source is not None:
        missing = [n for n in ("status", "message") if n not in source]
        if missing:
            raise ValueError(f"with_status: source lacks {missing}; give the dataset moa.simulate or moa.runs returned")
        extra = [d for d in source["status"].dims if d not in table.dims]
        status = source["status"].max(extra) if extra else source["status"]
        message = source["message"]
        if extra:
            flat = message.stack(_gone=extra)
            message = xr.apply_ufunc(
                lambda m: "; ".join(dict.fromkeys(x for x in m if x)),
                flat,
                input_core_dims=[["_gone"]],
                vectorize=True,
                output_dtypes=[object],
            )
        return table.assign(status=status.assign_attrs(source["status"].attrs), message=message)
    dims = [d for d in table.dims if d != "time"]
    shape = tuple(table.sizes[d] for d in dims)
    return table.assign(
        status=(dims, np.zeros(shape, dtype=int), {"description": "0 ok (computed without a solver)"}),
        message=(dims, np.full(shape, "", dtype=object)),
    )


def save_dataset(
    ds: xr.Dataset, out_dir: str | os.PathLike, stem: str, csv_variables: Iterable[str] | None = None
) -> dict[str, pathlib.Path]:
    """Write ``<stem>.nc``, ``<stem>.csv`` (selected variables, long format) and ``<stem>.provenance.json``.

    Each file carries the dataset's provenance (``attrs``: the run records of :func:`moa.simulate`
    included), plus the fields of the enclosing :func:`moa.report.provenance.run_context` (``experiment``,
    ``quick`` when written by ``moa run``). A dataset without ``status``/``message`` is refused
    (add them with :func:`with_status`); the CSV always has them. All files are written to temporaries first and
    renamed together, so a failure (a missing CSV variable, a dataset NetCDF cannot hold) leaves
    none of them behind.
    """
    out_dir = pathlib.Path(out_dir)
    paths = {
        "netcdf": out_dir / f"{stem}.nc",
        "csv": out_dir / f"{stem}.csv",
        "provenance": out_dir / f"{stem}.provenance.json",
    }
    names = list(csv_variables) if csv_variables is not None else [v for v in ds.data_vars if "time" in ds[v].dims]
    missing = [n for n in names if n not in ds]
    if missing:
        raise ValueError(f"csv_variables: {missing} are not in the dataset; available: {sorted(ds.data_vars)}")
    if not names:
        paths.pop("csv")
    lacking = [n for n in ("status", "message") if n not in ds]
    if lacking:
        raise ValueError(
            f"{stem}: the dataset lacks {lacking}; every results file carries status/message per sample: "
            "add them with moa.report.results.with_status(table, source)"
        )
    ds = ds.copy()
    ds.attrs = {**ds.attrs, **current_run()}
    names += [n for n in ("status", "message") if n not in names]
    provenance = _provenance(ds.attrs)
    with contextlib.ExitStack() as stack:
        tmp = {key: stack.enter_context(atomic_write(path)) for key, path in paths.items()}
        _write_netcdf(ds, tmp["netcdf"])
        if "csv" in tmp:
            tmp["csv"].write_text(_csv_text(ds, names, provenance))
        tmp["provenance"].write_text(json.dumps(provenance, indent=2, sort_keys=True, default=_jsonable) + "\n")
    return paths


def read_csv(path: str | os.PathLike):
    """A results CSV as ``(pandas.DataFrame, provenance dict)``; columns keep their ``name [unit]`` names."""
    import pandas as pd

    path = pathlib.Path(path)
    with open(path) as fh:
        first = fh.readline()
    if not first.startswith(CSV_PROVENANCE_PREFIX):
        raise ValueError(
            f"{path}: first line does not start with {CSV_PROVENANCE_PREFIX.strip()!r}; not a moa results CSV"
        )
    return pd.read_csv(path, skiprows=1), json.loads(first[len(CSV_PROVENANCE_PREFIX) :])


def read_provenance(path: str | os.PathLike) -> dict:
    """The provenance a results file carries: ``.nc`` (global attributes), ``.csv`` (first line) or
    ``.provenance.json``."""
    path = pathlib.Path(path)
    if path.name.endswith(".provenance.json"):
        return json.loads(path.read_text())
    if path.suffix == ".csv":
        return read_csv(path)[1]
    if path.suffix == ".nc":
        with xr.open_dataset(path) as ds:
            return _provenance(dict(ds.attrs))
    raise ValueError(f"{path}: not a results file; allowed: <stem>.nc, <stem>.csv, <stem>.provenance.json")


def _model_named(name: str, n_states: int):
    """The model a run record names (``moa_pdl1_41bb``, ``moa_pdl1_41bb[<drug>,...]`` or ``pk_tmdd_<drug>``),
    checked against its state count."""
    from ..mechanisms.binding import DRUG_ARMS
    from ..symbolic.named_models import FULL_MODEL_NAME, full_model, pk_model

    if name == FULL_MODEL_NAME:
        model = full_model()
    elif name.startswith(FULL_MODEL_NAME + "[") and name.endswith("]"):
        model = full_model(tuple(name[len(FULL_MODEL_NAME) + 1 : -1].split(",")))  # names an unknown drug: ValueError
    elif name.startswith("pk_tmdd_") and name[len("pk_tmdd_") :] in {a.drug for a in DRUG_ARMS}:
        model = pk_model(name[len("pk_tmdd_") :])
    else:
        raise ValueError(
            f"model={name!r}: rerun knows 'moa_pdl1_41bb' and 'moa_pdl1_41bb[<drug>,...]' "
            "(moa.symbolic.named_models.full_model) and "
            f"'pk_tmdd_<drug>' for drugs {[a.drug for a in DRUG_ARMS]} (moa.symbolic.named_models.pk_model)"
        )
    if len(model.species) != n_states:
        raise ValueError(
            f"model {name!r}: the record has {n_states} states, this moa's model has {len(model.species)}; "
            "the model changed since the result was made (check out its git_commit to re-run it)"
        )
    return model


def _solver_named(name: str):
    """The solver argument that reproduces a backend name written by ``simulate`` (``attrs['solver']``)."""
    from ..solvers import RodasSolver

    if name == "moa-rodas4-numba":
        return RodasSolver(backend="numba")
    if name == "moa-rodas4":
        return RodasSolver(backend="numpy")
    if name.startswith("scipy-"):
        return name[len("scipy-") :]
    raise ValueError(f"solver={name!r}: rerun knows 'moa-rodas4-numba', 'moa-rodas4' and 'scipy-<method>'")


def _parameters_from(record: dict, origin: str):
    """A ParameterSet holding exactly the record's values and units (bounds: the values' own range)."""
    from ..parameters import ParameterSet, ParameterSpec

    specs, values = {}, {}
    for name, entry in record["parameters"].items():
        value = np.asarray(recorded_value(entry["value"]), dtype=float)
        specs[name] = ParameterSpec(
            name=name,
            value=float(value.ravel()[0]),
            unit=entry["unit"],
            lower=float(value.min()),
            upper=float(value.max()),
            source=f"results file {origin}",
            origin=origin,
        )
        if value.ndim:
            values[name] = value
    return ParameterSet(specs, values, name=f"rerun of {origin}")


def _regimen_from(record: dict):
    from ..regimen import Dose, Regimen

    regimen = record.get("regimen")
    if regimen is None:
        return None
    return Regimen(regimen["name"], tuple(Dose(**dose) for dose in regimen["doses"]))


def rerun(path: str | os.PathLike, *, solver=None) -> xr.Dataset | list[tuple[dict, xr.Dataset]]:
    """Simulate again what a results file (``.nc``, ``.csv`` or ``.provenance.json``) holds, from its
    provenance alone: parameter values and units, regimen, model, output times, solver, tolerances,
    start and kept variables.

    Returns the dataset of :func:`moa.simulate` for a file of one simulation, or ``[(label, dataset),
    ...]`` for a file made of several (``label`` says which slice, e.g. ``{"arm": ..., "dose": ...}``).
    ``solver`` replaces the recorded one (the recorded one reproduces the numbers bit for bit on the
    same machine and versions). Failed samples keep their status, as they were recorded.
    """
    from ..simulate import simulate

    path = pathlib.Path(path)
    records = records_of(read_provenance(path))
    if not records:
        raise ValueError(
            f"{path}: carries no run record ('simulation' or 'simulations' in its provenance); it was "
            "written by an older moa or is not the output of moa.simulate"
        )
    out = []
    for record in records:
        if record.get("record_version") not in READABLE_RECORD_VERSIONS:
            raise ValueError(
                f"{path}: record_version={record.get('record_version')!r}; this moa reads "
                f"{', '.join(map(str, READABLE_RECORD_VERSIONS))}"
            )
        ds = simulate(
            _model_named(record["model"], record["n_states"]),
            _parameters_from(record, str(path)),
            _regimen_from(record),
            times=record["times_days"],
            solver=solver if solver is not None else _solver_named(record["solver"]),
            rtol=record["rtol"],
            atol=record["atol"],
            start=record["start"],
            pre_equilibrate_days=record["pre_equilibrate_days"],
            on_failure="record",
            keep=record["keep"],
        )
        out.append((record.get("label", {}), ds))
    return out[0][1] if len(out) == 1 and not out[0][0] else out


#: Hidden entries that :func:`staged_directory` and :func:`atomic_write` make next to their
#: destination: ``.<name>.<pid>-<random>`` (a staging or version folder, or a temporary file
#: with ``.tmp``), and ``...<random>.link`` (a link about to be swapped in).
_STAGED_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[a-z0-9_]+(\.link|\.tmp)?$")


@contextlib.contextmanager
def staged_directory(final: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Build a folder under a hidden name and make it visible as ``final`` only on success.

    Crash safety (POSIX): ``final`` is a symbolic link to a hidden version folder
    ``.<name>.<pid>-<random>`` beside it. The new version is built in a folder of that form and
    published by one ``os.replace`` of a new link over ``final``; a rename is atomic, so a kill
    (SIGKILL included) at any instant leaves ``final`` naming either the complete old folder or
    the complete new one. The old version is removed after the swap. Readers go through the
    link (``final/run.json``); code that lists the parent folder must skip names starting with
    ``"."``.

    A real folder at ``final`` (written by moa before version links) is exchanged with the link
    in one ``renameat2(RENAME_EXCHANGE)`` on Linux. Where that call is missing it is renamed to
    ``.<name>.old`` first; a kill in that one-time window leaves ``final`` missing until the next
    ``staged_directory`` for it renames ``.<name>.old`` back.

    On entry, leftovers of killed runs in the parent folder are removed (:func:`remove_stale`).
    """
    final = pathlib.Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _restore_legacy_old(final)
    remove_stale(final.parent)
    stage = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}-", dir=final.parent))
    try:
        yield stage
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700
        _publish(stage, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            stage.with_name(stage.name + ".link").unlink()  # left only if the swap failed
        if _link_target(final) != stage.name:  # failed, or interrupted before the swap
            shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: pathlib.Path, final: pathlib.Path) -> None:
    """Point ``final`` at ``stage`` in one atomic step, then remove the version it replaced."""
    link = stage.with_name(stage.name + ".link")
    os.symlink(stage.name, link)  # relative: the results folder can be moved or copied whole
    if final.is_symlink() or not final.exists():
        old = _link_target(final)
        os.replace(link, final)
        if old is None or not _STAGED_NAME.match(old) or old == stage.name:
            return  # nothing replaced, or a link this module did not make
    else:  # a real folder from an older moa
        old = _exchange_with_folder(link, final)
    shutil.rmtree(final.parent / old, ignore_errors=True)


def _link_target(path: pathlib.Path) -> str | None:
    """The target of the link ``path`` (a name in the same folder), or None if it is no link."""
    try:
        return os.readlink(path)
    except OSError:  # missing, or not a link
        return None


def _exchange_with_folder(link: pathlib.Path, folder: pathlib.Path) -> str:
    """Swap the new ``link`` with the real ``folder``; return the hidden name the folder now has."""
    if _rename_exchange(link, folder):
        return link.name
    legacy = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(legacy, ignore_errors=True)
    os.replace(folder, legacy)
    os.replace(link, folder)  # a kill before this line is repaired by _restore_legacy_old
    return legacy.name


def _rename_exchange(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Exchange two names atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2  # from <fcntl.h> and <linux/fs.h>
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # old kernel or a file system without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def _restore_legacy_old(final: pathlib.Path) -> None:
    """``.<name>.old`` without ``<name>`` is the complete old folder of a swap that was killed."""
    legacy = final.with_name(f".{final.name}.old")
    if not legacy.is_dir() or legacy.is_symlink():
        return
    if os.path.lexists(final):
        shutil.rmtree(legacy, ignore_errors=True)
    else:
        os.replace(legacy, final)


def remove_stale(folder: str | os.PathLike) -> list[str]:
    """Remove hidden staging leftovers of killed runs in ``folder``; return their names.

    An entry named ``.<name>.<pid>-<random>`` (a staging or version folder, a temporary file
    or a link about to be swapped in) is stale when no link in ``folder`` points at it and the
    process ``pid`` no longer runs (a link about to be swapped in does not count). A run in progress
    (its pid alive, this process included) is never touched. A reused pid, or a version orphaned by a
    kill just after its swap while the process that wrote it still runs, only delays the removal until
    that process ends; pids of another machine sharing the folder are not checked (run one ``moa run``
    per folder there).
    """
    folder = pathlib.Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    in_use = {_link_target(p) for p in entries if p.is_symlink() and not _STAGED_NAME.match(p.name)}
    removed = []
    for path in entries:
        match = _STAGED_NAME.match(path.name)
        if not match or path.name in in_use or _process_alive(int(match["pid"])):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed.append(path.name)
    return removed


def _process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OverflowError:
        return False
    return True
