"""Experiments: one script per scientific question in the repository's ``experiments/`` folder.

The contract of an experiment ``experiments/<name>.py``:

- its module docstring's first line is the question it answers;
- it defines ``main(out_dir: pathlib.Path, quick: bool = False) -> dict`` that writes its
  figures (with caption files), data and provenance into ``out_dir`` and returns a small
  JSON-able summary of the numbers it found; an experiment whose summary :mod:`moa.report.claims`
  reads returns it through its contract in :mod:`moa.report.summaries`.

:func:`run` builds ``<out_root>/<name>/`` under a hidden name and makes it visible only when
``main`` returns, so a failed experiment leaves no partial folder; ``<out_root>/<name>`` is a
symbolic link to the hidden ``.<name>.<pid>-<random>`` version folder, swapped atomically, so a
kill at any instant leaves the old or the new folder visible, and the next run removes what a
killed run left (:func:`moa.report.results.staged_directory`).
:func:`write_index` writes ``index.md`` and a static ``index.html`` with every figure and caption
(:mod:`moa.report.index`).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import pathlib
import sys
import time
import types
from collections.abc import Iterable

from .paths import data_dir, require_experiments_dir
from .report.provenance import base_provenance, run_context
from .report.results import staged_directory, write_json

__all__ = ["EXPERIMENTS_DIR", "Experiment", "discover", "find", "load", "run", "write_index"]

#: The experiment scripts: ``experiments/`` of the checkout, of ``MOA_DATA_DIR`` or of the installed package.
EXPERIMENTS_DIR = data_dir() / "experiments"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An experiment script: its name (file stem), path and the question it answers."""

    name: str
    path: pathlib.Path
    question: str


def _question(path: pathlib.Path) -> str:
    """First line of the module docstring, read without importing the script."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(), filename=str(path)))
    except SyntaxError as exc:
        return f"(cannot parse: {exc.msg} at line {exc.lineno})"
    if not doc or not doc.strip():
        return "(no docstring: the first line should state the question)"
    return doc.strip().splitlines()[0].strip()


def discover(directory: str | pathlib.Path | None = None) -> list[Experiment]:
    """All experiments in ``directory`` (default: the repository's ``experiments/``), by name."""
    if directory is None:
        directory = require_experiments_dir(EXPERIMENTS_DIR)
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    return [Experiment(p.stem, p, _question(p)) for p in sorted(directory.glob("*.py")) if not p.name.startswith("_")]


def find(names: Iterable[str], directory: str | pathlib.Path | None = None) -> list[Experiment]:
    """The experiments called ``names`` ("all" for every one), refusing unknown names."""
    known = {e.name: e for e in discover(directory)}
    names = list(names)
    if not names:
        raise ValueError("experiment names: none given; name one or more experiments, or 'all'")
    unknown = [n for n in names if n != "all" and n not in known]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; known: {sorted(known)} (or 'all'); see `moa list`")
    if "all" in names:
        if not known:
            raise ValueError(f"no experiments found in {directory or EXPERIMENTS_DIR}")
        return list(known.values())
    return [known[n] for n in dict.fromkeys(names)]


def load(experiment: Experiment) -> types.ModuleType:
    """Import the experiment script by file path and check that it has ``main``."""
    module_name = f"moa_experiment_{experiment.name}"
    spec = importlib.util.spec_from_file_location(module_name, experiment.path)
    if spec is None or spec.loader is None:
        raise ImportError(f"experiment {experiment.name!r}: cannot import {experiment.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    if not callable(getattr(module, "main", None)):
        raise ImportError(f"experiment {experiment.name!r} ({experiment.path}) has no main(out_dir, quick=False)")
    return module


def run(experiment: Experiment, out_root: str | pathlib.Path, quick: bool = False) -> dict:
    """Run one experiment into ``<out_root>/<name>/``, atomically; return its summary.

    The folder also gets ``run.json``: the question, quick flag, run time, moa version, git
    commit and the summary ``main`` returned.
    """
    module = load(experiment)
    final = pathlib.Path(out_root) / experiment.name
    started = time.perf_counter()
    with staged_directory(final) as stage:
        with run_context(experiment=experiment.name, quick=quick):  # results files say which run and mode
            summary = module.main(stage, quick=quick)
        if summary is None:
            summary = {}
        if not isinstance(summary, dict):
            raise TypeError(
                f"experiment {experiment.name!r}: main() returned {type(summary).__name__}, expected a dict"
            )
        summary = _relative(summary, stage)
        record = {
            "experiment": experiment.name,
            "question": experiment.question,
            "quick": quick,
            "seconds": round(time.perf_counter() - started, 3),
            "summary": summary,
            **{
                k: v
                for k, v in base_provenance().items()
                if k in ("moa_version", "git_commit", "created_utc", "python", "caller_project", "caller_commit")
            },
        }
        write_json(stage / "run.json", record)
    return summary


def _relative(value, stage: pathlib.Path):
    """Paths inside the staging folder, made relative (the folder is renamed afterwards)."""
    if isinstance(value, dict):
        return {str(k): _relative(v, stage) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative(v, stage) for v in value]
    if isinstance(value, pathlib.PurePath):
        try:
            return str(pathlib.Path(value).relative_to(stage))
        except ValueError:
            return str(value)
    return value


def write_index(
    out_root: str | pathlib.Path, experiments: Iterable[Experiment] | None = None
) -> dict[str, pathlib.Path]:
    """Write ``index.html`` and ``index.md`` for the results under ``out_root`` (:mod:`moa.report.index`);
    ``experiments`` (default: :func:`discover`) supply questions that a folder's ``run.json`` lacks."""
    from .report.index import write_index as write_report

    questions = {e.name: e.question for e in (experiments if experiments is not None else discover())}
    return write_report(out_root, questions)
