"""Saving results: NetCDF, CSV of the main observables and provenance.json, written atomically.

Every file is written under a temporary name in the destination folder and renamed into
place, so a failure never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np
import xarray as xr

__all__ = ["atomic_write", "save_dataset", "write_json", "write_text", "staged_directory"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[pathlib.Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return pathlib.Path(path)


def write_json(path: str | os.PathLike, data: object) -> pathlib.Path:
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
            if not isinstance(v, (str, int, float, np.number)):
                obj.attrs[k] = json.dumps(v, default=_jsonable)
    return ds


def save_dataset(ds: xr.Dataset, out_dir: str | os.PathLike, stem: str, csv_variables: Iterable[str] | None = None) -> dict[str, pathlib.Path]:
    """Write ``<stem>.nc``, ``<stem>.csv`` (selected variables, long format) and ``<stem>.provenance.json``.

    All files are written to temporaries first and renamed together, so a failure (a missing
    CSV variable, a dataset NetCDF cannot hold) leaves none of them behind.
    """
    out_dir = pathlib.Path(out_dir)
    paths = {"netcdf": out_dir / f"{stem}.nc", "csv": out_dir / f"{stem}.csv", "provenance": out_dir / f"{stem}.provenance.json"}
    names = list(csv_variables) if csv_variables is not None else [v for v in ds.data_vars if "time" in ds[v].dims]
    missing = [n for n in names if n not in ds]
    if missing:
        raise ValueError(f"csv_variables: {missing} are not in the dataset; available: {sorted(ds.data_vars)}")
    if not names:
        paths.pop("csv")
    with contextlib.ExitStack() as stack:
        tmp = {key: stack.enter_context(atomic_write(path)) for key, path in paths.items()}
        _netcdf_ready(ds).to_netcdf(tmp["netcdf"], engine="scipy")
        if names:
            ds[names].to_dataframe().to_csv(tmp["csv"])
        tmp["provenance"].write_text(json.dumps(dict(ds.attrs), indent=2, sort_keys=True, default=_jsonable) + "\n")
    return paths


@contextlib.contextmanager
def staged_directory(final: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Build a folder under a temporary name and move it to ``final`` only on success.

    An existing ``final`` is replaced only after the new one is complete.
    """
    final = pathlib.Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield stage
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(stage, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, final)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
