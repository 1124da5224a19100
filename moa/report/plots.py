"""The shared figure style: fixed arm colours, slide-size fonts, labelled axes with units,
and saving a figure together with a caption file that says what it shows and where it came from.

Usage in an experiment::

    from moa.report import plots

    with plots.style():
        fig, ax = plots.subplots()
        ax.plot(t, conc, color=plots.arm_colour("bsab_2x2"))
        ax.set_ylabel(plots.label("plasma concentration", "nM"))
        plots.save_figure(fig, out_dir, "pk_occupancy", caption, provenance=ds.attrs)
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import textwrap
import zlib
from collections.abc import Iterator, Mapping

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np

from .provenance import base_provenance, current_run, version
from .results import atomic_write

__all__ = [
    "ARM_COLOURS",
    "ARM_LABELS",
    "SAVE_DPI",
    "arm_colour",
    "arm_label",
    "dose_colours",
    "style",
    "subplots",
    "label",
    "save_figure",
    "caption_text",
    "one_cell_diameter_mm",
    "floor_at_one_cell",
    "panel_letters",
    "panels",
    "text_colour_on",
    "symmetric_limit",
    "stacked_widths",
    "log_axis_for_cells",
]

#: One colour per arm, the same in every figure (colour-blind-safe Okabe-Ito / Tol hues).
#: Combinations share the hue family of their main component.
ARM_COLOURS: dict[str, str] = {
    "untreated": "#6e6e6e",  # grey
    "apdl1": "#0072b2",  # blue: PD-L1 blockade
    "a41bb": "#e69f00",  # orange: 4-1BB agonism
    "apdl1_a41bb": "#56b4e9",  # light blue: the two mAbs together
    "bsab_1x1": "#cc79a7",  # pink: 1:1 bispecific
    "bsab_2x2": "#d55e00",  # vermillion: 2:2 bispecific (the drug of the press release)
    "nabp": "#009e73",  # green: nab-paclitaxel
    "nabp_apdl1": "#117733",  # dark green
    "nabp_bsab_2x2": "#882255",  # wine
}

ARM_LABELS: dict[str, str] = {
    "untreated": "untreated",
    "apdl1": "anti-PD-L1",
    "a41bb": "anti-4-1BB",
    "apdl1_a41bb": "anti-PD-L1 + anti-4-1BB",
    "bsab_1x1": "bispecific 1:1",
    "bsab_2x2": "bispecific 2:2",
    "nabp": "nab-paclitaxel",
    "nabp_apdl1": "nab-paclitaxel + anti-PD-L1",
    "nabp_bsab_2x2": "nab-paclitaxel + bispecific 2:2",
}

# Arms outside ARM_COLOURS get one of these, chosen from the name so it is stable across runs.
_FALLBACK = ("#332288", "#44aa99", "#999933", "#aa4499", "#88ccee", "#ddcc77", "#661100", "#6699cc")

#: Resolution of every saved PNG (dots per inch): sharp on a projected slide at full width.
SAVE_DPI = 150

#: Settings read when a figure is written, not when it is drawn: :func:`save_figure` applies them
#: itself, so a figure saved outside :func:`style` gets them too.
_SAVE_RC = {
    "savefig.dpi": SAVE_DPI,
    "savefig.bbox": "tight",
    "svg.fonttype": "none",  # text stays text in SVG (editable on slides)
    "svg.hashsalt": "moa",  # deterministic SVG ids
}

_PANEL_LETTER_GID = "panel-letter-"

_SLIDE_RC = {
    "figure.figsize": (10.0, 6.0),
    "figure.dpi": 100,
    "font.size": 14,
    "axes.titlesize": 16,
    "axes.labelsize": 15,
    "xtick.labelsize": 13,
    "ytick.labelsize": 13,
    "legend.fontsize": 12,
    "legend.frameon": False,
    "lines.linewidth": 2.2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    **_SAVE_RC,
}


def arm_colour(arm: str) -> str:
    """The fixed colour of ``arm``; unknown arms get a stable fallback colour."""
    if arm in ARM_COLOURS:
        return ARM_COLOURS[arm]
    return _FALLBACK[zlib.crc32(arm.encode()) % len(_FALLBACK)]


def arm_label(arm: str) -> str:
    """Readable name of an arm for legends."""
    return ARM_LABELS.get(arm, arm.replace("_", " "))


def dose_colours(n: int, cmap: str = "viridis") -> list:
    """``n`` colours from light-to-dark for ordered levels such as doses (low dose lightest)."""
    if n < 1:
        raise ValueError(f"n={n}: need at least one colour")
    colormap = plt.get_cmap(cmap)
    return [colormap(0.85 - 0.75 * i / max(n - 1, 1)) for i in range(n)]


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Slide-size fonts and clean axes, for the figures made inside the block."""
    with plt.rc_context(_SLIDE_RC):
        yield


def subplots(*args, **kwargs):
    """``plt.subplots`` with constrained layout (call inside :func:`style`)."""
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(*args, **kwargs)


def label(name: str, unit: str | None) -> str:
    """Axis label with its unit: ``label("plasma concentration", "nM") -> "plasma concentration (nM)"``.

    A dimensionless quantity passes ``unit="1"`` (labelled "dimensionless") or a word such as
    ``"%"`` or ``"fraction"``; ``unit=None`` is refused: every axis says its unit.
    """
    if unit is None:
        raise ValueError(f"label({name!r}, unit=None): every axis needs a unit; use '1' for a dimensionless quantity")
    pretty = {
        "1": "",
        "dimensionless": "",
        "ug/mL": "µg/mL",
        "um": "µm",
        "uM": "µM",
        "m^2": "m²",
        "mm^3": "mm³",
        "mg/m^2": "mg/m²",
    }.get(unit, unit)
    return f"{name} ({pretty})" if pretty else f"{name} (dimensionless)"


def run_mode(provenance: Mapping[str, object] | None = None) -> str | None:
    """ "quick" or "full": the mode of the experiment run the figure belongs to (its provenance's ``quick``, else
    the enclosing :func:`moa.report.provenance.run_context`'s); None outside a run."""
    for quick in ((provenance or {}).get("quick"), current_run().get("quick")):
        if isinstance(quick, (bool, np.bool_, int, np.integer)) and quick in (0, 1):
            return "quick" if bool(quick) else "full"
        if isinstance(quick, str) and quick.lower() in ("true", "false"):  # as read back from a file's attributes
            return "quick" if quick.lower() == "true" else "full"
    return None


#: What a caption says of each mode.
MODE_NOTE = {
    "quick": "quick (short horizons, coarse grids: check the figure, do not present it)",
    "full": "full",
}


def stamp_text(provenance: Mapping[str, object] | None = None) -> str:
    """The line at a figure's foot: moa version, mode (when known) and parameter set (its first clause), so
    that a figure cut out of its caption still says where it came from (the caption has the commit)."""
    prov = dict(provenance or {})
    parts = [f"moa {prov.get('moa_version') or version()}"]
    mode = run_mode(provenance)
    if mode:
        parts.append(f"{mode} mode")
    parameter_set = str(prov.get("parameter_set", "default")).split(";")[0].strip()
    parts.append(f"parameters: {textwrap.shorten(parameter_set, 80, placeholder=' ...')}")
    return " | ".join(parts)


def caption_text(stem: str, caption: str, provenance: Mapping[str, object] | None = None) -> str:
    """The caption file's Markdown: what the figure shows, then where it came from."""
    if not caption or not caption.strip():
        raise ValueError(f"caption for {stem!r} is empty: say what the figure shows")
    prov = {**base_provenance(), **dict(provenance or {})}
    lines = [f"# {stem}", "", caption.strip(), "", "## Provenance", ""]
    mode = run_mode(provenance)
    fields = [
        ("mode", MODE_NOTE.get(mode) if mode else None),
        ("parameter set", prov.get("parameter_set", "default")),
        ("overlays", prov.get("overlays") or "none"),
        ("parameter hash", prov.get("parameter_hash")),
        ("solver", prov.get("solver")),
        ("tolerances", f"rtol={prov['rtol']}, atol={prov['atol']}" if "rtol" in prov and "atol" in prov else None),
        ("moa version", prov.get("moa_version")),
        ("git commit", prov.get("git_commit")),
        ("created (UTC)", prov.get("created_utc")),
    ]
    lines += [f"- {key}: {value}" for key, value in fields if value not in (None, "")]
    return "\n".join(lines) + "\n"


def save_figure(
    fig,
    out_dir: str | os.PathLike,
    stem: str,
    caption: str,
    provenance: Mapping[str, object] | None = None,
    close: bool = True,
) -> dict[str, pathlib.Path]:
    """Write ``<stem>.png``, ``<stem>.svg`` and ``<stem>.caption.md`` into ``out_dir``, all or nothing.

    The PNG at :data:`SAVE_DPI` and the SVG with editable text, whether or not the figure was drawn
    inside :func:`style`. A figure with an empty panel, or with several panels and no
    :func:`panel_letters`, is refused (nothing written).

    ``caption`` says what the figure shows (and its caveats); ``provenance`` (usually the
    dataset's ``attrs``) supplies the parameter set, overlays, hash, solver and moa version. The figure
    carries :func:`stamp_text` at its foot (moa version, quick or full mode inside an experiment run, parameter
    set) in the saved files only; the caption names the mode too.
    """
    out_dir = pathlib.Path(out_dir)
    paths = {"png": out_dir / f"{stem}.png", "svg": out_dir / f"{stem}.svg", "caption": out_dir / f"{stem}.caption.md"}
    text = caption_text(stem, caption, provenance)
    stamp = None
    try:
        _check_panels(fig, stem)
        with contextlib.ExitStack() as stack:
            tmp = {key: stack.enter_context(atomic_write(path)) for key, path in paths.items()}
            # the stamp sits just below the figure (the tight bounding box takes it in), over nothing drawn
            stamp = fig.text(0.995, -0.005, stamp_text(provenance), ha="right", va="top", fontsize=7, color="0.4")
            with plt.rc_context(_SAVE_RC):
                fig.savefig(tmp["png"], format="png", dpi=SAVE_DPI)
                fig.savefig(tmp["svg"], format="svg", metadata={"Date": None})
            tmp["caption"].write_text(text)
    finally:
        if stamp is not None:
            stamp.remove()
        if close:
            plt.close(fig)
    return paths


def one_cell_diameter_mm(cells_per_ml: float) -> float:
    """Diameter (mm) of a sphere holding one tumour cell at ``cells_per_ml`` (1 mL = 1000 mm^3)."""
    if not cells_per_ml > 0:
        raise ValueError(f"cells_per_ml={cells_per_ml!r}: must be > 0")
    return (6.0 * 1000.0 / (3.141592653589793 * cells_per_ml)) ** (1.0 / 3.0)


def floor_at_one_cell(ax, one_cell: float, what: str = "below one cell") -> None:
    """Log y axis floored at ``one_cell`` (in the axis' unit: 1 cell, or a one-cell diameter in mm),
    with the floor drawn and labelled: values there are extinct populations, not biology.
    Plot data clipped at the floor (``np.maximum(y, one_cell)``) so nothing is drawn below it."""
    ax.set_yscale("log")
    top = ax.get_ylim()[1]
    ax.set_ylim(one_cell / 1.5, max(top, one_cell * 10))
    ax.axhspan(one_cell / 1.5, one_cell, color="0.88", zorder=0, lw=0)
    ax.axhline(one_cell, color="0.45", lw=0.8, ls=":")
    ax.text(0.01, one_cell, what, transform=ax.get_yaxis_transform(), fontsize=9, color="0.35", va="top")


def panels(fig) -> list:
    """The figure's visible data panels, in reading order (colour bars are not panels)."""
    return [ax for ax in fig.axes if ax.get_visible() and not hasattr(ax, "_colorbar")]


def panel_letters(axes) -> None:
    """Mark multi-panel figures a, b, c... in reading order (row by row), bold, above each panel's top-left
    corner, so a slide or a caption can point at one panel. ``axes``: an axes, a list or an array of them;
    hidden axes are skipped."""
    flat = [ax for ax in np.ravel(np.asarray(axes, dtype=object)) if ax.get_visible()]
    for i, ax in enumerate(flat):
        letter = "abcdefghijklmnopqrstuvwxyz"[i]
        ax.annotate(
            letter,
            xy=(0.0, 1.0),
            xycoords="axes fraction",
            xytext=(-8, 10),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=18,
            fontweight="bold",
            gid=f"{_PANEL_LETTER_GID}{letter}",
        )


def _has_letter(ax) -> bool:
    return any((t.get_gid() or "").startswith(_PANEL_LETTER_GID) for t in ax.texts)


def _check_panels(fig, stem: str) -> None:
    """Refuse a figure with an empty panel, or with several panels and no panel letters."""
    shown = panels(fig)
    empty = [i for i, ax in enumerate(shown) if not ax.has_data()]
    if empty:
        raise ValueError(f"figure {stem!r}: panel(s) {empty} (reading order) carry no data; remove or hide them")
    if len(shown) > 1 and not all(_has_letter(ax) for ax in shown):
        raise ValueError(
            f"figure {stem!r} has {len(shown)} panels without panel letters; call plots.panel_letters(axes)"
        )


def _relative_luminance(colour) -> float:
    """WCAG 2.x relative luminance of a matplotlib colour (0 black to 1 white)."""

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in mcolors.to_rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_colour_on(background) -> str:
    """ "black" or "white", whichever contrasts more with ``background`` (WCAG contrast ratio), for
    annotations on coloured cells such as heatmaps."""
    lum = _relative_luminance(background)
    on_black = (lum + 0.05) / 0.05
    on_white = 1.05 / (lum + 0.05)
    return "black" if on_black >= on_white else "white"


def symmetric_limit(values, minimum: float = 0.0) -> float:
    """A colour-scale limit for a diverging map centred on 0 that fits the data: the largest finite
    ``|value|`` rounded up to 1, 2, 2.5 or 5 times a power of ten (at least ``minimum``; 1 if all are 0)."""
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite)]
    top = max(float(finite.max()) if finite.size else 0.0, minimum)
    if top <= 0:
        return 1.0
    decade = 10.0 ** np.floor(np.log10(top))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if top <= step * decade * (1 + 1e-12):
            return float(step * decade)
    return float(10 * decade)


def stacked_widths(n: int, thinnest: float = 1.6, step: float = 0.9) -> list[float]:
    """Line widths for ``n`` lines drawn in order, thickest first: where lines coincide, each one drawn
    earlier shows as a coloured edge around the later ones, so no legend entry hides behind another."""
    if n < 1:
        raise ValueError(f"n={n}: need at least one line")
    return [thinnest + step * (n - 1 - i) for i in range(n)]


def log_axis_for_cells(ax, smallest: float, one_cell: float = 1.0, what: str = "below one cell") -> None:
    """Log y axis for a population: floored at ``one_cell`` (:func:`floor_at_one_cell`) when the data come
    within a decade of it (extinction is in view), otherwise fitted to the data, so that differences between
    large populations are not squeezed into the top of an axis that reaches down to one cell."""
    if smallest < 10.0 * one_cell:
        floor_at_one_cell(ax, one_cell, what)
        return
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    if high < 100.0 * low:  # on a short log axis the labelled minor ticks read better as 40 than as 4 x 10^1
        ax.yaxis.set_major_formatter(mticker.LogFormatter())
        ax.yaxis.set_minor_formatter(mticker.LogFormatter(labelOnlyBase=False))
