"""Every experiment runs in quick mode (Agg backend) and writes figures, captions, data and provenance;
the index page links every figure, and every link resolves."""

import html.parser
import json
import pathlib

import matplotlib
import pytest
import xarray as xr
from PIL import Image

from moa.report import plots
from moa.experiment_runner import discover, run, write_index
from moa.report.provenance import records_of
from moa.report.results import read_csv, read_provenance

matplotlib.use("Agg")

EXPERIMENTS = {e.name: e for e in discover()}


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("href", "src") and value and not value.startswith(("http:", "https:", "#")):
                self.links.append(value)


@pytest.fixture(scope="module")
def out_root(tmp_path_factory):
    return tmp_path_factory.mktemp("results")


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_quick_writes_figures_data_provenance(name, out_root):
    summary = run(EXPERIMENTS[name], out_root, quick=True)
    folder = out_root / name
    assert isinstance(summary, dict) and summary
    pngs = sorted(folder.glob("*.png"))
    assert pngs, f"{name} wrote no figure"
    for png in pngs:
        assert png.stat().st_size > 10_000, f"{png.name} looks empty"
        assert png.with_suffix(".svg").exists()
        with Image.open(png) as image:  # the shared style: slide resolution, editable SVG text
            assert image.info["dpi"][0] >= plots.SAVE_DPI - 0.5, f"{png.name} saved at {image.info['dpi'][0]} dpi"
        assert "</text>" in png.with_suffix(".svg").read_text(), f"{png.stem}.svg has no editable text"
        caption = (folder / f"{png.stem}.caption.md").read_text()
        assert "moa version" in caption and "git commit" in caption
    datasets = sorted(folder.glob("*.nc"))
    assert datasets, f"{name} wrote no data"
    for nc in datasets:
        with xr.open_dataset(nc) as ds:  # scipy's NetCDF3, or NetCDF4 when netCDF4/h5netcdf is installed
            assert ds.data_vars and all(size > 0 for size in ds.sizes.values())
            assert {"status", "message"} <= set(ds.data_vars), f"{nc.name}: no status/message per sample"
        provenance = read_provenance(nc.with_suffix(".provenance.json"))
        assert provenance["experiment"] == name and provenance["quick"] is True
        assert records_of(provenance) or "parameters" in provenance, f"{nc.name}: no parameter values"
        if nc.with_suffix(".csv").exists():
            frame, _ = read_csv(nc.with_suffix(".csv"))
            assert "status" in frame and any(column.endswith("]") for column in frame), f"{nc.name}: CSV without units"
    record = json.loads((folder / "run.json").read_text())
    assert record["quick"] is True and record["experiment"] == name

    index = write_index(out_root)
    parser = _Links()
    parser.feed(pathlib.Path(index["html"]).read_text())
    for png in pngs:
        assert any(link.endswith(f"{name}/{png.name}") for link in parser.links), f"index does not link {png.name}"
    for link in parser.links:
        assert (out_root / link).exists(), f"broken link {link}"
