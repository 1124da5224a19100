"""Saving results: NetCDF, CSV of the main observables and provenance.json, written atomically.

Every file is written under a temporary name in the destination folder and renamed into
place, so a failure never leaves a half-written file behind. A folder of results is built under
a hidden name and published through a symbolic link swapped in atomically
(:func:`staged_directory`), so even a kill leaves the old or the new folder visible.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np
import xarray as xr

__all__ = ["atomic_write", "save_dataset", "write_json", "write_text", "staged_directory", "remove_stale"]


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
    process ``pid`` no longer runs (a link about to be swapped in does not count). A run in progress (its pid alive, this process included) is
    never touched. A reused pid, or a version orphaned by a kill just after its swap while the
    process that wrote it still runs, only delays the removal until that process ends; pids of
    another machine sharing the folder are not checked (run one ``moa run`` per folder there).
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
