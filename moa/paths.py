"""Where moa finds its data: the model files (``models/``) and the experiment scripts (``experiments/``).

Looked up in this order, the first folder that holds ``models/parameters/`` wins:

1. the folder named by the ``MOA_DATA_DIR`` environment variable (then only that one: a folder
   named on purpose is never silently replaced by another);
2. the checkout: ``models/`` and ``experiments/`` beside the ``moa`` package (a clone, or an
   editable install);
3. the installed package data: ``moa/_data/models`` and ``moa/_data/experiments``, which the
   wheel carries (copied there at build time by ``setup.py``).

When none holds the model files, reading them raises :class:`DataNotFoundError`, which names
every folder looked in; nothing reads an empty parameter set as if it were the model.
"""

from __future__ import annotations

import os
import pathlib

__all__ = ["ENV_VAR", "DataNotFoundError", "candidates", "data_dir", "require_models_dir", "require_experiments_dir"]

#: Environment variable naming a folder that holds ``models/`` (and optionally ``experiments/``).
ENV_VAR = "MOA_DATA_DIR"

_PACKAGE = pathlib.Path(__file__).resolve().parent


class DataNotFoundError(FileNotFoundError):
    """moa's model files (or experiment scripts) are in none of the places it looks."""


def candidates() -> list[tuple[str, pathlib.Path]]:
    """The folders that may hold ``models/`` and ``experiments/``, in lookup order, each with what it is."""
    named = os.environ.get(ENV_VAR, "").strip()
    if named:
        return [(f"{ENV_VAR}={named}", pathlib.Path(named).expanduser().absolute())]
    return [("checkout", _PACKAGE.parent), ("installed package data", _PACKAGE / "_data")]


def _holds_models(root: pathlib.Path) -> bool:
    return (root / "models" / "parameters").is_dir()


def data_dir() -> pathlib.Path:
    """The first candidate folder that holds ``models/parameters/``.

    When none does, the first candidate is returned (so that importing moa never fails); reading
    the model files from it then raises :class:`DataNotFoundError` through :func:`require_models_dir`.
    """
    found = candidates()
    return next((root for _, root in found if _holds_models(root)), found[0][1])


def _not_found(what: str, folder: pathlib.Path, sub: str, default: pathlib.Path, advice: str) -> DataNotFoundError:
    """The error for a missing ``folder``; for moa's own (``default``) it lists every place looked in."""
    if folder.absolute() != default.absolute():
        return DataNotFoundError(f"{what}: no folder {folder}; {advice}")
    looked = " or ".join(f"{where} ({root / sub})" for where, root in candidates())
    return DataNotFoundError(f"{what}: {sub}/ found in none of: {looked}; {advice}")


def require_models_dir(models_dir: pathlib.Path) -> pathlib.Path:
    """``models_dir`` if it holds ``parameters/``; else DataNotFoundError saying where moa looked."""
    if (models_dir / "parameters").is_dir():
        return models_dir
    raise _not_found(
        "moa's model files",
        models_dir / "parameters",
        "models/parameters",
        data_dir() / "models" / "parameters",
        f"set {ENV_VAR} to a folder holding models/parameters/*.toml, or install moa from a wheel or "
        "checkout that has them",
    )


def require_experiments_dir(experiments_dir: pathlib.Path) -> pathlib.Path:
    """``experiments_dir`` if it is a folder; else DataNotFoundError saying where moa looked."""
    if experiments_dir.is_dir():
        return experiments_dir
    raise _not_found(
        "moa's experiments",
        experiments_dir,
        "experiments",
        data_dir() / "experiments",
        f"give your own with --experiments DIR, or set {ENV_VAR} to a folder holding experiments/",
    )
