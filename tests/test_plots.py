"""The shared figure style: fixed arm colours, units on axes, figures saved with captions, all or nothing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from moa.report import plots  # noqa: E402

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
    provenance = {
        "parameter_set": "default",
        "overlays": "hot_tnbc",
        "parameter_hash": "abc123",
        "git_commit": "deadbeef",
    }
    paths = plots.save_figure(_figure(), tmp_path, "demo", "What the demo shows.", provenance)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.caption.md", "demo.png", "demo.svg"]
    assert paths["png"].read_bytes().startswith(b"\x89PNG")
    assert "<svg" in paths["svg"].read_text()
    caption = paths["caption"].read_text()
    for text in (
        "What the demo shows.",
        "parameter set: default",
        "overlays: hot_tnbc",
        "abc123",
        "deadbeef",
        "moa version",
    ):
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


def _png_dpi(path) -> float:
    from PIL import Image

    with Image.open(path) as image:
        return float(image.info["dpi"][0])


def test_figure_drawn_and_saved_outside_the_style_block_still_gets_the_shared_dpi_and_editable_svg_text(tmp_path):
    fig, ax = plt.subplots()  # not plots.style(): the save itself applies what is read at save time
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("a label that stays text")
    with plt.rc_context({"savefig.dpi": 72, "svg.fonttype": "path"}):
        paths = plots.save_figure(fig, tmp_path, "outside", "A figure made outside the style block.")
    assert _png_dpi(paths["png"]) == pytest.approx(plots.SAVE_DPI, abs=0.5)
    assert ">a label that stays text</text>" in paths["svg"].read_text()


def test_multi_panel_figure_without_letters_is_refused_and_with_letters_is_saved(tmp_path):
    with plots.style():
        fig, axes = plots.subplots(1, 2)
        for ax in axes:
            ax.plot([0, 1], [1, 2])
    with pytest.raises(ValueError, match="panel letters"):
        plots.save_figure(fig, tmp_path, "two", "Two panels.", close=False)
    assert list(tmp_path.iterdir()) == []
    plots.panel_letters(axes)
    svg = plots.save_figure(fig, tmp_path, "two", "Two panels.")["svg"].read_text()
    assert 'id="panel-letter-a"' in svg and 'id="panel-letter-b"' in svg


def test_empty_panel_is_refused_and_a_colour_bar_is_not_a_panel(tmp_path):
    with plots.style():
        fig, (left, right) = plots.subplots(1, 2)
        image = left.imshow([[0.0, 1.0], [2.0, 3.0]])
        fig.colorbar(image, ax=left)
        plots.panel_letters([left, right])
    with pytest.raises(ValueError, match=r"panel\(s\) \[1\]"):
        plots.save_figure(fig, tmp_path, "empty", "One panel is empty.", close=False)
    right.set_visible(False)
    assert len(plots.panels(fig)) == 1
    plots.save_figure(fig, tmp_path, "empty", "The empty panel is hidden.")


@pytest.mark.parametrize(
    "background, text",
    [
        ("navy", "white"),
        ("#08306b", "white"),
        ("black", "white"),
        ("yellow", "black"),
        ("white", "black"),
        ("#f7f7f7", "black"),
        ("#b2182b", "white"),
        ("#fddbc7", "black"),
    ],
)
def test_text_colour_on_a_cell_contrasts_with_it(background, text):
    assert plots.text_colour_on(background) == text


def test_text_colour_is_readable_on_every_colour_of_the_heatmap_map():
    """WCAG: the chosen colour has a contrast ratio of at least 4.5 against every colour of RdBu_r."""
    cmap = plt.get_cmap("RdBu_r")
    for level in [i / 50 for i in range(51)]:
        background = cmap(level)
        lum = plots._relative_luminance(background)
        ink = plots._relative_luminance(plots.text_colour_on(background))
        ratio = (max(lum, ink) + 0.05) / (min(lum, ink) + 0.05)
        assert ratio >= 4.5, (level, background, ratio)


def test_symmetric_limit_fits_the_data():
    assert plots.symmetric_limit([-12.0, 3.0, float("nan")]) == 20.0
    assert plots.symmetric_limit([0.3, -0.04]) == 0.5
    assert plots.symmetric_limit([-100.0, 40.0]) == 100.0
    assert plots.symmetric_limit([0.0, 0.0]) == 1.0
    assert plots.symmetric_limit([0.2], minimum=1.0) == 1.0


def test_stacked_widths_decrease_so_earlier_lines_show_around_later_ones():
    widths = plots.stacked_widths(4)
    assert len(widths) == 4 and all(a > b for a, b in zip(widths, widths[1:])) and widths[-1] == pytest.approx(1.6)
    with pytest.raises(ValueError, match="n=0"):
        plots.stacked_widths(0)


@pytest.mark.parametrize("smallest, floored", [(3.0, True), (1e4, False)])
def test_cell_axis_is_floored_at_one_cell_only_when_extinction_is_in_view(smallest, floored):
    with plots.style():
        fig, ax = plots.subplots()
        ax.plot([0, 1], [smallest, 1e6])
        plots.log_axis_for_cells(ax, smallest)
    assert ax.get_yscale() == "log"
    assert bool(ax.get_ylim()[0] < 1.0) == floored
    plt.close(fig)


@pytest.mark.parametrize("quick", [True, False, None])
def test_figures_state_their_mode_version_and_parameter_set(tmp_path, quick):
    """Inside an experiment run the caption names the mode and the image's foot carries moa's version, the mode
    and the parameter set (text in the SVG); outside a run no mode is claimed. The stamp is not left on the
    figure object."""
    from moa.report.provenance import base_provenance, run_context

    fig = _figure()
    before = len(fig.texts)
    with run_context(**({} if quick is None else {"quick": quick})):
        paths = plots.save_figure(
            fig, tmp_path, "demo", "What it shows.", {"parameter_set": "default; arms x"}, close=False
        )
    caption, svg = paths["caption"].read_text(), paths["svg"].read_text()
    version = base_provenance()["moa_version"]
    mode = {True: "quick", False: "full", None: None}[quick]
    assert f"moa {version}" in svg and "parameters: default" in svg and "arms x" not in svg
    if mode is None:
        assert "- mode:" not in caption and " mode |" not in svg
    else:
        assert f"- mode: {mode}" in caption and f"{mode} mode" in svg
    assert ("do not present it" in caption) is (quick is True)
    assert len(fig.texts) == before
    assert plots.run_mode({"quick": "True"}) == "quick" and plots.run_mode({"quick": 0}) == "full"
