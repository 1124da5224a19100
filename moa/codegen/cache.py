"""The folder where generated code is kept between processes, and how files get there.

Both generated families live in one folder: the numpy source of :mod:`moa.codegen.compiled_model`
(``numpy_<key>.json``) and the numba kernel modules of :mod:`moa.solvers.rodas4.numba_kernels` with numba's
machine code beside them. ``$MOA_CACHE_DIR/jit`` if set, else ``~/.cache/moa/jit``; a per-user temporary
folder, with a :class:`~moa.errors.CacheWarning`, when that cannot be written (a full disk, a read-only folder).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

from ..errors import CacheWarning

__all__ = [
    "cache_dir",
    "fallback_dir",
    "fall_back",
    "warn",
    "atomic_write",
    "read_source_cache",
    "write_source_cache",
    "source_cache_file",
]


def cache_dir() -> Path:
    """Where generated code (and numba's machine code beside it) is kept: ``$MOA_CACHE_DIR/jit`` or
    ``~/.cache/moa/jit``; :func:`fallback_dir`, with a warning, when that folder cannot be created or written."""
    path = Path(os.environ.get("MOA_CACHE_DIR") or Path.home() / ".cache" / "moa") / "jit"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        return path
    except OSError as exc:
        return fall_back(path, exc)


def fallback_dir() -> Path:
    """A per-user temporary folder for the cache when the configured one cannot be written."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    path = Path(tempfile.gettempdir()) / f"moa-jit-{uid}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def fall_back(folder: Path, exc: OSError) -> Path:
    """The fallback folder, after a warning naming the folder that failed, why, and the fix."""
    fallback = fallback_dir()
    if folder == fallback:
        raise exc
    warn(
        f"cannot write to the compiled-solver cache {folder} ({exc}); compiling in {fallback} "
        "instead (still compiled, but not kept for later runs if that folder is cleared): free space "
        "there or set MOA_CACHE_DIR to a writable folder"
    )
    return fallback


def warn(message: str) -> None:
    """A :class:`~moa.errors.CacheWarning` (a repair or a fallback of the cache), attributed to the caller's caller."""
    warnings.warn(message, CacheWarning, stacklevel=3)


def atomic_write(path: Path, text: str) -> None:
    """Write through a process-specific temporary file renamed into place (a concurrent reader sees
    the old or the new file whole); on failure nothing is left behind."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def source_cache_file(key: str, part: str = "") -> Path | None:
    """``numpy_<key>[_<part>].json`` in :func:`cache_dir`, or None when there is no usable folder."""
    try:
        return cache_dir() / f"numpy_{key[:32]}{'_' + part if part else ''}.json"
    except OSError:
        return None


def read_source_cache(path: Path | None, key: str) -> dict | None:
    """The cached generation for ``key``, or None when absent, unreadable or not for this key."""
    if path is None or not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        body = json.dumps(record["generated"], sort_keys=True)
        if record["key"] != key or record["sha256"] != hashlib.sha256(body.encode("utf-8")).hexdigest():
            return None
        return record["generated"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_source_cache(path: Path | None, key: str, generated: dict) -> None:
    """Write atomically (a temporary renamed over the target); a cache that cannot be written is skipped."""
    if path is None:
        return
    body = json.dumps(generated, sort_keys=True)
    record = {"key": key, "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(), "generated": generated}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
