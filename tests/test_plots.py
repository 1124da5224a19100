"""The shared figure style: fixed arm colours, units on axes, figures saved with captions, all or nothing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from moa import plots  # noqa: E402

ARMS = ("untreated", "apdl1", "a41bb", "apdl1_a41bb", "bsab_1x1", "bsab_2x2", "nabp", "nabp_apdl1", "nabp_bsab_2x2")


def test_every_arm_has_its_own_fixed_colour_and_label():
    colours = [plots.arm_colour(arm) for arm in ARMS]
    assert len(set(colours)) == len(ARMS)
    assert all(arm in plots.ARM_LABELS for arm in ARMS)
    assert plots.arm_label("bsab_2x2") == "bispecific 2:2"


def test_unknown_arm_gets_a_stable_fallback_colour():
    assert plots.arm_colour("new_arm") == plots.arm_colour("new_arm")
    assert plots.arm_colour("new_arm") not in plots.ARM_COLOURS.values()


def test_label_carries_the_unit_and_refuses_none():
    assert plots.label("plasma concentration", "nM") == "plasma concentration (nM)"
    assert plots.label("concentration", "ug/mL") == "concentration (µg/mL)"
    assert plots.label("occupancy", "1") == "occupancy (dimensionless)"
    with pytest.raises(ValueError, match="unit=None"):
        plots.label("occupancy", None)


def test_style_sets_slide_size_fonts_only_inside_the_block():
    before = plt.rcParams["font.size"]
    with plots.style():
        assert plt.rcParams["font.size"] >= 14
    assert plt.rcParams["font.size"] == before


def _figure():
    with plots.style():
        fig, ax = plots.subplots()
        ax.plot([0, 1, 2], [1, 10, 100])
        ax.set_yscale("log")
    return fig


def test_save_figure_writes_png_svg_and_caption_with_provenance(tmp_path):
    provenance = {"parameter_set": "default", "overlays": "hot_tnbc", "parameter_hash": "abc123", "git_commit": "deadbeef"}
    paths = plots.save_figure(_figure(), tmp_path, "demo", "What the demo shows.", provenance)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.caption.md", "demo.png", "demo.svg"]
    assert paths["png"].read_bytes().startswith(b"\x89PNG")
    assert "<svg" in paths["svg"].read_text()
    caption = paths["caption"].read_text()
    for text in ("What the demo shows.", "parameter set: default", "overlays: hot_tnbc", "abc123", "deadbeef", "moa version"):
        assert text in caption


def test_save_figure_with_empty_caption_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="caption"):
        plots.save_figure(_figure(), tmp_path, "demo", "  ")
    assert list(tmp_path.iterdir()) == []


def test_save_figure_failing_half_way_leaves_no_files(tmp_path, monkeypatch):
    fig = _figure()
    real = fig.savefig

    def fail_on_svg(path, format=None, **kwargs):
        if format == "svg":
            raise OSError("disk full")
        return real(path, format=format, **kwargs)

    monkeypatch.setattr(fig, "savefig", fail_on_svg)
    with pytest.raises(OSError, match="disk full"):
        plots.save_figure(fig, tmp_path, "demo", "A caption.")
    assert list(tmp_path.iterdir()) == []  # not the PNG, not a temporary
