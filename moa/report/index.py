"""The results report: ``<out_root>/index.html`` and ``index.md``, the page a scientist opens after ``moa run``.

The HTML page has a table of contents, one section per experiment (its question, links to its
``run.json``, summary tables and data), every figure with its caption rendered from Markdown
(Python-Markdown) and alt text taken from the caption's first sentence, the provenance of each
figure folded away in a ``<details>`` element, a link to ``claims.md``, and a banner at the top
when any figure comes from quick mode (short horizons, coarse grids: not for a slide).
Every link is relative to ``out_root``, so the folder can be copied whole.

The page is a pure function of the files under ``out_root`` (:func:`collect` reads them,
:func:`index_html` and :func:`index_markdown` print them); :func:`write_index` writes both files
atomically.
"""

from __future__ import annotations

import dataclasses
import html
import json
import pathlib
import re
import warnings
from collections.abc import Iterable, Mapping

from .provenance import base_provenance
from .results import write_text

__all__ = [
    "Figure",
    "ExperimentResults",
    "collect",
    "split_caption",
    "alt_text",
    "render_markdown",
    "index_html",
    "index_markdown",
    "write_index",
    "MissingRendererWarning",
]

_PROVENANCE_HEADING = "## Provenance"
_ALT_TEXT_MAX_CHARS = 250


@dataclasses.dataclass(frozen=True)
class Figure:
    """One figure: paths relative to the results folder, its caption split into text and provenance."""

    stem: str
    png: str
    svg: str | None
    caption_file: str | None
    caption: str  # Markdown: what the figure shows
    provenance: str  # Markdown: the caption file's provenance list ("" if none)


@dataclasses.dataclass(frozen=True)
class ExperimentResults:
    """What one experiment left in ``<out_root>/<name>/`` (paths relative to ``out_root``)."""

    name: str
    question: str
    quick: bool | None  # None: no run.json says
    run_json: str | None
    tables: tuple[str, ...]  # Markdown summary tables
    data: tuple[str, ...]  # CSV files
    figures: tuple[Figure, ...]


def split_caption(markdown: str) -> tuple[str, str]:
    """``(caption, provenance)`` from a caption file (:func:`moa.report.plots.caption_text`): the text between
    the ``# <stem>`` title and ``## Provenance``, and the list below it."""
    lines = markdown.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    text = "\n".join(lines)
    head, _, prov = text.partition(_PROVENANCE_HEADING)
    return head.strip(), prov.strip()


def alt_text(caption: str, stem: str) -> str:
    """Alternative text for a figure: the caption's first sentence as plain text (Markdown marks removed),
    at most 250 characters; the figure's name when there is no caption."""
    plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", caption)  # links: keep their text
    plain = re.sub(r"[*_`#>]", "", plain)
    plain = " ".join(plain.split())
    if not plain:
        return f"figure {stem}"
    match = re.search(r"(?<=[.!?])\s+(?=[A-Z(])", plain)
    sentence = plain[: match.start()] if match else plain
    if len(sentence) > _ALT_TEXT_MAX_CHARS:
        sentence = sentence[: _ALT_TEXT_MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return sentence


def render_markdown(text: str) -> str:
    """HTML from Markdown (Python-Markdown with tables), for captions, provenance and summary tables.

    ``markdown`` is a declared dependency; where an environment lacks it (an install without
    dependencies), the page is still written, with the text escaped in paragraphs and a
    :class:`MissingRendererWarning`, rather than losing the index after a long run."""
    try:
        import markdown
    except ImportError:
        warnings.warn(
            "the results page renders captions with the 'markdown' package, which is not installed "
            "(pip install markdown); captions are shown as plain text",
            MissingRendererWarning,
            stacklevel=2,
        )
        return "".join(f"<p>{html.escape(part.strip())}</p>" for part in re.split(r"\n\s*\n", text) if part.strip())
    return markdown.markdown(text, extensions=["tables"], output_format="html")


class MissingRendererWarning(UserWarning):
    """The ``markdown`` package is missing: the results page shows captions as plain text."""


def _read_run_json(path: pathlib.Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _experiment(folder: pathlib.Path, out_root: pathlib.Path, question: str) -> ExperimentResults:
    rel = lambda p: p.relative_to(out_root).as_posix()  # noqa: E731
    run_json = folder / "run.json"
    record = _read_run_json(run_json) if run_json.is_file() else {}
    figures = []
    for png in sorted(folder.glob("*.png")):
        svg, caption_file = png.with_suffix(".svg"), png.with_name(f"{png.stem}.caption.md")
        caption, provenance = (
            split_caption(caption_file.read_text()) if caption_file.is_file() else ("(no caption file)", "")
        )
        figures.append(
            Figure(
                png.stem,
                rel(png),
                rel(svg) if svg.is_file() else None,
                rel(caption_file) if caption_file.is_file() else None,
                caption,
                provenance,
            )
        )
    quick = record.get("quick")
    return ExperimentResults(
        name=folder.name,
        question=question or str(record.get("question", "")),
        quick=quick if isinstance(quick, bool) else None,
        run_json=rel(run_json) if run_json.is_file() else None,
        tables=tuple(rel(p) for p in sorted(folder.glob("*.md")) if not p.name.endswith(".caption.md")),
        data=tuple(rel(p) for p in sorted(folder.glob("*.csv"))),
        figures=tuple(figures),
    )


def collect(out_root: str | pathlib.Path, questions: Mapping[str, str] | None = None) -> list[ExperimentResults]:
    """Every experiment folder under ``out_root`` with a figure or a ``run.json``, by name; hidden version
    and staging folders (:func:`moa.report.results.staged_directory`) are left out."""
    out_root = pathlib.Path(out_root)
    questions = dict(questions or {})
    found = []
    for folder in sorted(p for p in out_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (folder / "run.json").is_file() or any(folder.glob("*.png")):
            found.append(_experiment(folder, out_root, questions.get(folder.name, "")))
    return found


def _anchor(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_-]+", "-", p) for p in parts)


def _quick_names(results: Iterable[ExperimentResults]) -> list[str]:
    return [r.name for r in results if r.quick]


def _a(href: str, text: str) -> str:
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
    "img{max-width:100%;border:1px solid #ddd}figure{margin:1.5em 0}figcaption{font-size:0.95em}"
    ".banner{background:#fff3cd;border:2px solid #b45309;color:#5c2d00;padding:0.8em 1em;margin:1em 0;"
    "font-weight:bold}.tag{background:#b45309;color:#fff;font-size:0.7em;padding:0.1em 0.5em;margin-left:0.5em;"
    "vertical-align:middle}details{margin:0.4em 0;color:#444}summary{cursor:pointer}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:0.2em 0.5em}.links{color:#555}"
)


def index_html(results: list[ExperimentResults], stamp: str, claims: str | None) -> str:
    """The page's HTML (links relative to the results folder; ``claims``: the claims file's path, if any)."""
    body = ["<h1>moa results</h1>", f"<p><em>{html.escape(stamp)}</em></p>"]
    quick = _quick_names(results)
    if quick:
        body.append(
            '<div class="banner" id="quick-mode" role="alert">Quick mode: the figures of '
            f"{html.escape(', '.join(quick))} come from short horizons and coarse grids (<code>--quick</code>). "
            "Check them, do not present them: run <code>moa run all</code> for the full results.</div>"
        )
    top_links = [_a("index.md", "this page as Markdown")]
    if claims:
        top_links.insert(0, _a(claims, "the press release's claims, checked by the model (claims.md)"))
    body.append(f'<p class="links">{" · ".join(top_links)}</p>')
    if not results:
        body.append("<p>No results yet: run <code>moa run all --quick</code>.</p>")
    else:
        toc = ['<nav id="contents"><h2>Contents</h2><ol>']
        for r in results:
            subs = "".join(
                f'<li><a href="#{_anchor(r.name, f.stem)}">{html.escape(f.stem)}</a></li>' for f in r.figures
            )
            toc.append(
                f'<li><a href="#{_anchor(r.name)}">{html.escape(r.name)}</a>'
                + (" (quick)" if r.quick else "")
                + (f"<ol>{subs}</ol>" if subs else "")
                + "</li>"
            )
        toc.append("</ol></nav>")
        body += toc
    for r in results:
        tag = '<span class="tag">quick mode</span>' if r.quick else ""
        body.append(f'<section id="{_anchor(r.name)}"><h2>{html.escape(r.name)}{tag}</h2>')
        if r.question:
            body.append(f"<p><strong>Question:</strong> {html.escape(r.question)}</p>")
        links = (
            ([_a(r.run_json, "run.json (summary numbers, mode, run time)")] if r.run_json else [])
            + [_a(t, pathlib.PurePosixPath(t).name) for t in r.tables]
            + [_a(d, pathlib.PurePosixPath(d).name) for d in r.data]
        )
        if links:
            body.append(f'<p class="links">{" · ".join(links)}</p>')
        for f in r.figures:
            alt = alt_text(f.caption, f.stem)
            file_links = (
                [_a(f.png, "PNG")]
                + ([_a(f.svg, "SVG (editable text)")] if f.svg else [])
                + ([_a(f.caption_file, "caption")] if f.caption_file else [])
            )
            body += [
                f'<figure id="{_anchor(r.name, f.stem)}">',
                f'<a href="{html.escape(f.png)}"><img src="{html.escape(f.png)}" alt="{html.escape(alt)}"></a>',
                f"<figcaption><p><strong>{html.escape(f.stem)}</strong></p>{render_markdown(f.caption)}",
            ]
            if f.provenance:
                body.append(f"<details><summary>Provenance</summary>{render_markdown(f.provenance)}</details>")
            body += [f'<p class="links">{" · ".join(file_links)}</p></figcaption>', "</figure>"]
        body.append("</section>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1"><title>moa results</title>',
            f"<style>{_CSS}</style></head><body>",
            *body,
            "</body></html>",
            "",
        ]
    )


def index_markdown(results: list[ExperimentResults], stamp: str, claims: str | None) -> str:
    """The same page as Markdown (for reading on a forge or in an editor)."""
    md = ["# moa results", "", f"_{stamp}_", ""]
    quick = _quick_names(results)
    if quick:
        md += [
            f"> **Quick mode:** the figures of {', '.join(quick)} come from short horizons and coarse grids "
            "(`--quick`). Check them, do not present them: run `moa run all` for the full results.",
            "",
        ]
    if claims:
        md += [f"[The press release's claims, checked by the model]({claims})", ""]
    if not results:
        md.append("No results yet: run `moa run all --quick`.")
    for r in results:
        md += [f"## {r.name}" + (" (quick mode)" if r.quick else ""), ""]
        if r.question:
            md += [f"**Question:** {r.question}", ""]
        links = ([f"[run.json]({r.run_json})"] if r.run_json else []) + [
            f"[{pathlib.PurePosixPath(p).name}]({p})" for p in r.tables + r.data
        ]
        if links:
            md += [" · ".join(links), ""]
        for f in r.figures:
            file_links = (
                [f"[PNG]({f.png})"]
                + ([f"[SVG]({f.svg})"] if f.svg else [])
                + ([f"[caption]({f.caption_file})"] if f.caption_file else [])
            )
            alt = alt_text(f.caption, f.stem).replace("[", "(").replace("]", ")")
            md += [f"### {f.stem}", "", f"![{alt}]({f.png})", "", " · ".join(file_links), "", f.caption, ""]
            if f.provenance:
                md += ["<details><summary>Provenance</summary>", "", f.provenance, "", "</details>", ""]
    return "\n".join(md) + "\n"


def write_index(out_root: str | pathlib.Path, questions: Mapping[str, str] | None = None) -> dict[str, pathlib.Path]:
    """Write ``index.html`` and ``index.md`` into ``out_root`` (each atomically); return their paths.
    ``questions``: experiment name -> question, for folders whose ``run.json`` lacks one."""
    out_root = pathlib.Path(out_root)
    results = collect(out_root, questions)
    prov = base_provenance()
    stamp = f"moa {prov['moa_version']}, git commit {prov['git_commit']}, written {prov['created_utc']}"
    claims = "claims.md" if (out_root / "claims.md").is_file() else None
    page = index_html(results, stamp, claims)  # rendered before anything is written
    return {
        "md": write_text(out_root / "index.md", index_markdown(results, stamp, claims)),
        "html": write_text(out_root / "index.html", page),
    }
