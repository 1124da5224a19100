"""Generated documentation is current: regenerate in memory and compare with the committed files."""

from __future__ import annotations

import pathlib

import pytest
from baselines.generate import BASELINE_PATH, COMMAND, arm_setting_outcome, baselines_csv, read_baselines

from moa.report import docgen
from moa.symbolic.named_models import full_model
from moa.scenarios import load_arms, load_formats, load_settings


@pytest.fixture(scope="module")
def generated():
    return docgen.generated_docs()


@pytest.mark.parametrize("name", ["equations.md", "parameters.md", "model_diagram.md", "model.md"])
def test_generated_doc_is_not_stale(generated, name):
    path = docgen.DOCS_DIR / name
    assert path.exists(), f"{path} missing: run python -m moa.report.docgen"
    assert path.read_text() == generated[path], f"docs/{name} is stale: run python -m moa.report.docgen and commit"


def test_staleness_is_detected(generated, tmp_path):
    """The comparison above would fail on a changed model or a changed parameter file."""
    model = full_model()
    changed = docgen.equations_md(model, {"kdeg_pdl1": 123.0})
    assert changed != generated[docgen.DOCS_DIR / "equations.md"]
    with pytest.raises(ValueError, match="marker"):
        docgen.model_md("prose without the generated block", [])


def test_equations_list_every_species_term_and_parameter(generated):
    text = generated[docgen.DOCS_DIR / "equations.md"]
    model = full_model()
    for s in model.species:
        assert f"d{s.name}/dt =" in text, s.name
    for p in model.parameters:
        assert f"`{p.name}`" in text, p.name
    assert text.count("    # ") + text.count("    + infusion") >= len(model.terms)


def test_parameters_doc_covers_models_dir(generated):
    text = generated[docgen.DOCS_DIR / "parameters.md"]
    for f in sorted((docgen.ROOT / "models" / "parameters").glob("*.toml")):
        assert f"models/parameters/{f.name}" in text
    for name in list(load_settings()) + list(load_formats()) + list(load_arms()):
        assert name in text
    assert "calibrated:" in text


def test_model_doc_reports_the_format_comparison(generated):
    text = generated[docgen.DOCS_DIR / "model.md"]
    block = text[text.index(docgen.TABLE_BEGIN) : text.index(docgen.TABLE_END)]
    assert block.count("bsab_2x2") == 3 and block.count("bsab_1x1") == 3


def test_baseline_csv_says_how_it_was_made():
    header = pathlib.Path(BASELINE_PATH).read_text().splitlines()[:4]
    assert any("python tests/baselines/generate.py --write" in line for line in header)
    assert any("Tolerances" in line for line in header)


def test_baseline_generator_writes_the_committed_csv_and_docgen_reads_it():
    """The generator's CSV of the committed rows is the committed file, byte for byte (header, columns,
    number format); docgen's reader and the tests' read the same file the same way."""
    assert pathlib.Path(docgen.BASELINE_CSV).resolve() == BASELINE_PATH
    rows = read_baselines()
    assert len(rows) == 27 and rows == docgen.read_baseline_csv()
    assert baselines_csv(rows) == BASELINE_PATH.read_text()
    assert COMMAND in baselines_csv(rows)


def test_baseline_generator_reproduces_a_committed_row():
    """The moved generator (LSODA, one year) gives the committed untreated hot-TNBC row to the CSV's
    6 significant digits (measured: the formatted rows are identical; ~3 s)."""
    _, row = arm_setting_outcome("untreated", "hot_tnbc")
    want = next(r for r in read_baselines() if (r["arm"], r["setting"]) == ("untreated", "hot_tnbc"))
    assert row.keys() == want.keys()
    numbers = [k for k in want if k not in ("arm", "setting")]
    assert {k: row[k] for k in numbers} == pytest.approx({k: want[k] for k in numbers}, rel=1e-5)


def test_docgen_baselines_flag_says_where_they_moved(capsys):
    assert docgen.main(["--baselines"]) == 2
    assert "python tests/baselines/generate.py --write" in capsys.readouterr().err
