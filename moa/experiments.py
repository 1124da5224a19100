"""Experiments: one script per scientific question in the repository's ``experiments/`` folder.

The contract of an experiment ``experiments/<name>.py``:

- its module docstring's first line is the question it answers;
- it defines ``main(out_dir: pathlib.Path, quick: bool = False) -> dict`` that writes its
  figures (with caption files), data and provenance into ``out_dir`` and returns a small
  JSON-able summary of the numbers it found.

:func:`run` builds ``<out_root>/<name>/`` under a hidden name and makes it visible only when
``main`` returns, so a failed experiment leaves no partial folder; ``<out_root>/<name>`` is a
symbolic link to the hidden ``.<name>.<pid>-<random>`` version folder, swapped atomically, so a
kill at any instant leaves the old or the new folder visible, and the next run removes what a
killed run left (:func:`moa.results.staged_directory`).
:func:`write_index` writes ``index.md`` and a static ``index.html`` with every figure and caption.
"""

from __future__ import annotations

import ast
import dataclasses
import html
import importlib.util
import json
import pathlib
import sys
import time
import types
from collections.abc import Iterable

from .paths import data_dir, require_experiments_dir
from .provenance import base_provenance, run_context
from .results import staged_directory, write_json, write_text

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
            raise TypeError(f"experiment {experiment.name!r}: main() returned {type(summary).__name__}, expected a dict")
        summary = _relative(summary, stage)
        record = {
            "experiment": experiment.name,
            "question": experiment.question,
            "quick": quick,
            "seconds": round(time.perf_counter() - started, 3),
            "summary": summary,
            **{k: v for k, v in base_provenance().items()
               if k in ("moa_version", "git_commit", "created_utc", "python", "caller_project", "caller_commit")},
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


def _figures(out_root: pathlib.Path) -> list[tuple[str, pathlib.Path, str]]:
    """(experiment, png path relative to out_root, caption markdown) for every figure, sorted."""
    out = []
    for png in sorted(out_root.glob("*/*.png")):
        if png.parent.name.startswith("."):
            continue  # a hidden version or staging folder (moa.results.staged_directory)
        caption_file = png.with_name(f"{png.stem}.caption.md")
        caption = caption_file.read_text() if caption_file.exists() else "(no caption file)"
        out.append((png.parent.name, png.relative_to(out_root), caption))
    return out


def _questions(out_root: pathlib.Path, experiments: Iterable[Experiment]) -> dict[str, str]:
    questions = {e.name: e.question for e in experiments}
    for run_json in out_root.glob("*/run.json"):
        if run_json.parent.name.startswith("."):
            continue  # a hidden version or staging folder
        try:
            questions.setdefault(run_json.parent.name, json.loads(run_json.read_text()).get("question", ""))
        except (OSError, ValueError):
            pass
    return questions


def write_index(out_root: str | pathlib.Path, experiments: Iterable[Experiment] | None = None) -> dict[str, pathlib.Path]:
    """Write ``index.md`` and a static ``index.html`` listing every figure under ``out_root`` with its caption."""
    out_root = pathlib.Path(out_root)
    figures = _figures(out_root)
    questions = _questions(out_root, experiments if experiments is not None else discover())
    by_experiment: dict[str, list] = {}
    for name, png, caption in figures:
        by_experiment.setdefault(name, []).append((png, caption))
    prov = base_provenance()
    stamp = f"moa {prov['moa_version']}, git commit {prov['git_commit']}, written {prov['created_utc']}"

    md = ["# moa results", "", f"_{stamp}_", ""]
    body = ["<h1>moa results</h1>", f"<p><em>{html.escape(stamp)}</em></p>"]
    if not by_experiment:
        md.append("No figures yet: run `moa run all --quick`.")
        body.append("<p>No figures yet: run <code>moa run all --quick</code>.</p>")
    for name in sorted(by_experiment):
        question = questions.get(name, "")
        md += [f"## {name}", "", f"**Question:** {question}", ""] if question else [f"## {name}", ""]
        body.append(f'<section id="{html.escape(name)}"><h2>{html.escape(name)}</h2>')
        if question:
            body.append(f"<p><strong>Question:</strong> {html.escape(question)}</p>")
        for png, caption in by_experiment[name]:
            svg = png.with_suffix(".svg")
            caption_md = png.with_name(f"{png.stem}.caption.md")
            links = [f"[PNG]({png.as_posix()})"]
            html_links = [f'<a href="{html.escape(png.as_posix())}">PNG</a>']
            if (out_root / svg).exists():
                links.append(f"[SVG]({svg.as_posix()})")
                html_links.append(f'<a href="{html.escape(svg.as_posix())}">SVG</a>')
            if (out_root / caption_md).exists():
                links.append(f"[caption]({caption_md.as_posix()})")
                html_links.append(f'<a href="{html.escape(caption_md.as_posix())}">caption</a>')
            md += [f"![{png.stem}]({png.as_posix()})", "", " · ".join(links), "", _demote_headings(caption), ""]
            body += [
                "<figure>",
                f'<a href="{html.escape(png.as_posix())}"><img src="{html.escape(png.as_posix())}" alt="{html.escape(png.stem)}"></a>',
                f"<figcaption><pre>{html.escape(caption)}</pre><p>{' · '.join(html_links)}</p></figcaption>",
                "</figure>",
            ]
        body.append("</section>")
    page = "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>moa results</title>',
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "img{max-width:100%;border:1px solid #ddd}pre{white-space:pre-wrap;font-size:0.9em;background:#f7f7f7;padding:0.6em}"
        "figure{margin:1.5em 0}</style></head><body>",
        *body, "</body></html>", "",
    ])
    return {"md": write_text(out_root / "index.md", "\n".join(md) + "\n"), "html": write_text(out_root / "index.html", page)}


def _demote_headings(markdown: str) -> str:
    """Caption files start at '#'; inside the index they sit under '##'."""
    return "\n".join("###" + line[1:] if line.startswith("#") else line for line in markdown.splitlines())
