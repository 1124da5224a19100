"""Where a result came from: moa version, git commit, machine, time."""

from __future__ import annotations

import datetime
import functools
import pathlib
import platform
import subprocess

import numpy as np
import scipy

__all__ = ["version", "git_commit", "base_provenance"]

_REPO = pathlib.Path(__file__).resolve().parent.parent


def version() -> str:
    from . import __version__

    return __version__


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The repository's HEAD commit, with '+dirty' if the work tree has changes; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO, capture_output=True,
                               text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def base_provenance() -> dict[str, str]:
    return {
        "moa_version": version(),
        "git_commit": git_commit(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "machine": f"{platform.machine()} {platform.system()}",
    }
