"""The results page (moa.report.index): captions rendered from Markdown, provenance folded away, a table of
contents, links to claims, run.json, summary tables and data, a quick-mode banner, alt text from the
caption; every link resolves. The page is parsed with html.parser (a headless browser is too heavy for CI)."""

import html.parser
import json
import pathlib

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from moa.report import index, plots  # noqa: E402


class Page(html.parser.HTMLParser):
    """What a reader of the page gets: links, images with alt text, element ids, and the tags and text
    inside figure captions, the banner and <details>."""

    def __init__(self, text: str):
        super().__init__()
        self.links, self.images, self.ids, self.tags = [], [], set(), []
        self.stack: list[str] = []
        self.text_in: dict[str, list[str]] = {"figcaption": [], "details": [], "banner": [], "nav": [], "unfolded": []}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, tuple(self.stack)))
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])
        if tag == "img":
            self.images.append(attrs)
        marker = "banner" if "banner" in (attrs.get("class") or "") else tag
        self.stack.append(marker)

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self.stack.pop()

    def handle_data(self, data):
        for where in self.text_in:
            if where in self.stack:
                self.text_in[where].append(data)
        if "figcaption" in self.stack and "details" not in self.stack:
            self.text_in["unfolded"].append(data)

    def text(self, where: str) -> str:
        return " ".join(" ".join(self.text_in[where]).split())

    def inside(self, tag: str, container: str) -> bool:
        return any(t == tag and container in stack for t, stack in self.tags)


def assert_every_link_resolves(page: Page, root: pathlib.Path):
    for link in page.links:
        assert not link.startswith(("http:", "https:", "/")), f"not a relative link: {link}"
        if link.startswith("#"):
            assert link[1:] in page.ids, f"anchor {link} has no target"
        else:
            assert (root / link).is_file(), f"broken link {link}"


CAPTION = (
    "Plasma concentration of the **bispecific** at three doses. Second sentence with `code`.\n\n"
    "- first caveat\n- second caveat\n"
)


def _experiment(root: pathlib.Path, name: str, quick: bool, table: bool = True) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    with plots.style():
        fig, ax = plots.subplots()
        ax.plot([0, 1], [0, 1])
    plots.save_figure(fig, folder, "demo", CAPTION, {"parameter_set": "default", "git_commit": "deadbeef"})
    (folder / "run.json").write_text(
        json.dumps({"experiment": name, "question": f"What does {name} show?", "quick": quick, "summary": {}})
    )
    (folder / "demo.csv").write_text("time,value\n0,1\n")
    if table:
        (folder / "summary_table.md").write_text("| arm | change |\n|---|---|\n| untreated | +10% |\n")


@pytest.fixture
def results(tmp_path) -> pathlib.Path:
    _experiment(tmp_path, "alpha", quick=True)
    _experiment(tmp_path, "beta", quick=False, table=False)
    (tmp_path / ".alpha.123-hidden").mkdir()  # a staging folder: not an experiment
    (tmp_path / "claims.md").write_text("# claims\n")
    index.write_index(tmp_path)
    return tmp_path


def test_captions_are_rendered_from_markdown_not_shown_raw(results):
    page = Page((results / "index.html").read_text())
    caption = page.text("figcaption")
    assert "Plasma concentration of the bispecific" in caption and "**" not in caption and "`" not in caption
    assert page.inside("strong", "figcaption") and page.inside("code", "figcaption") and page.inside("li", "figcaption")
    assert not any(tag == "pre" for tag, _ in page.tags)


def test_provenance_is_folded_into_details(results):
    page = Page((results / "index.html").read_text())
    folded = page.text("details")
    assert "Provenance" in folded and "deadbeef" in folded and "parameter set: default" in folded
    assert "deadbeef" not in page.text("unfolded") and "Plasma concentration" in page.text("unfolded")


def test_quick_mode_banner_names_the_quick_experiments_only(results, tmp_path_factory):
    page = Page((results / "index.html").read_text())
    banner = page.text("banner")
    assert "Quick mode" in banner and "alpha" in banner and "beta" not in banner
    assert "Quick mode" in (results / "index.md").read_text()
    full = tmp_path_factory.mktemp("full")
    _experiment(full, "beta", quick=False)
    index.write_index(full)
    assert Page((full / "index.html").read_text()).text("banner") == ""
    assert "Quick mode" not in (full / "index.md").read_text()


def test_contents_claims_run_json_tables_and_data_are_linked_and_every_link_resolves(results):
    page = Page((results / "index.html").read_text())
    for target in (
        "claims.md",
        "alpha/run.json",
        "beta/run.json",
        "alpha/summary_table.md",
        "alpha/demo.csv",
        "alpha/demo.png",
        "alpha/demo.svg",
        "alpha/demo.caption.md",
        "#alpha",
        "#beta",
        "#alpha-demo",
    ):
        assert target in page.links, target
    assert "alpha" in page.text("nav") and "demo" in page.text("nav")
    assert not any("hidden" in link for link in page.links)
    assert_every_link_resolves(page, results)
    for link in __import__("re").findall(r"\]\(([^)\s]+)\)", (results / "index.md").read_text()):
        assert (results / link).is_file(), f"broken Markdown link {link}"


def test_alt_text_is_the_captions_first_sentence(results):
    page = Page((results / "index.html").read_text())
    assert [img["alt"] for img in page.images] == ["Plasma concentration of the bispecific at three doses."] * 2


def test_alt_text_and_caption_split():
    assert index.alt_text("See [the table](t.md) for *more*. Then more.", "x") == "See the table for more."
    assert index.alt_text("", "stem") == "figure stem"
    long = index.alt_text("word " * 100, "x")
    assert len(long) <= 250 and long.endswith("…")
    text, prov = index.split_caption("# stem\n\nWhat it shows.\n\n## Provenance\n\n- solver: rodas\n")
    assert text == "What it shows." and prov == "- solver: rodas"


def test_empty_results_folder_says_what_to_run(tmp_path):
    index.write_index(tmp_path)
    assert "moa run all --quick" in (tmp_path / "index.html").read_text()


def test_a_real_quick_run_page_shows_rendered_caption_banner_and_only_resolving_links(pk_run):
    page = Page((pk_run / "index.html").read_text())
    assert "Quick mode" in page.text("banner") and "pk_occupancy" in page.text("banner")
    assert "systemic PD-L1 pool" in page.text("figcaption") and page.inside("p", "figcaption")
    assert "claims.md" in page.links and "pk_occupancy/run.json" in page.links
    assert page.images and all(img["alt"].startswith("Free plasma concentration") for img in page.images)
    assert_every_link_resolves(page, pk_run)


def test_without_the_markdown_package_the_page_is_still_written_with_plain_captions_and_a_warning(
    tmp_path, monkeypatch
):
    import sys

    _experiment(tmp_path, "alpha", quick=True)
    monkeypatch.setitem(sys.modules, "markdown", None)  # import markdown -> ImportError
    with pytest.warns(index.MissingRendererWarning, match="pip install markdown"):
        index.write_index(tmp_path)
    page = Page((tmp_path / "index.html").read_text())
    assert "Plasma concentration of the **bispecific**" in page.text("unfolded")  # shown, not rendered
    assert "Quick mode" in page.text("banner")
    assert_every_link_resolves(page, tmp_path)
