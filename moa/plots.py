"""The shared figure style: fixed arm colours, slide-size fonts, labelled axes with units,
and saving a figure together with a caption file that says what it shows and where it came from.

Usage in an experiment::

    from moa import plots

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
import zlib
from collections.abc import Iterator, Mapping

import matplotlib.pyplot as plt

from .provenance import base_provenance
from .results import atomic_write

__all__ = ["ARM_COLOURS", "ARM_LABELS", "arm_colour", "arm_label", "dose_colours", "style", "subplots", "label",
           "save_figure", "caption_text", "one_cell_diameter_mm", "floor_at_one_cell"]

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

_SLIDE_RC = {
    "figure.figsize": (10.0, 6.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
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
    "svg.fonttype": "none",  # text stays text in SVG (editable on slides)
    "svg.hashsalt": "moa",  # deterministic SVG ids
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
    pretty = {"1": "", "dimensionless": "", "ug/mL": "µg/mL", "um": "µm", "uM": "µM", "m^2": "m²", "mm^3": "mm³",
              "mg/m^2": "mg/m²"}.get(unit, unit)
    return f"{name} ({pretty})" if pretty else f"{name} (dimensionless)"


def caption_text(stem: str, caption: str, provenance: Mapping[str, object] | None = None) -> str:
    """The caption file's Markdown: what the figure shows, then where it came from."""
    if not caption or not caption.strip():
        raise ValueError(f"caption for {stem!r} is empty: say what the figure shows")
    prov = {**base_provenance(), **dict(provenance or {})}
    lines = [f"# {stem}", "", caption.strip(), "", "## Provenance", ""]
    fields = [
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


def save_figure(fig, out_dir: str | os.PathLike, stem: str, caption: str,
                provenance: Mapping[str, object] | None = None, close: bool = True) -> dict[str, pathlib.Path]:
    """Write ``<stem>.png``, ``<stem>.svg`` and ``<stem>.caption.md`` into ``out_dir``, all or nothing.

    ``caption`` says what the figure shows (and its caveats); ``provenance`` (usually the
    dataset's ``attrs``) supplies the parameter set, overlays, hash, solver and moa version.
    """
    out_dir = pathlib.Path(out_dir)
    paths = {"png": out_dir / f"{stem}.png", "svg": out_dir / f"{stem}.svg", "caption": out_dir / f"{stem}.caption.md"}
    text = caption_text(stem, caption, provenance)
    try:
        with contextlib.ExitStack() as stack:
            tmp = {key: stack.enter_context(atomic_write(path)) for key, path in paths.items()}
            fig.savefig(tmp["png"], format="png")
            fig.savefig(tmp["svg"], format="svg", metadata={"Date": None})
            tmp["caption"].write_text(text)
    finally:
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

