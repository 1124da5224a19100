"""The experiment runner and the ``moa`` command (issue 5, runner contract and bad arguments)."""

from __future__ import annotations

import html.parser
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
import xarray as xr

from moa import experiments
from moa.cli import main

GOOD = '''\
"""Does the good experiment write a figure?

A stand-in used by the tests.
"""
import pathlib
from moa import plots


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    with plots.style():
        fig, ax = plots.subplots()
        ax.plot([0, 1], [0, 1])
        ax.set_xlabel(plots.label("time", "day"))
        ax.set_ylabel(plots.label("signal", "1"))
    paths = plots.save_figure(fig, out_dir, "good_figure", "A straight line.", {"parameter_set": "test"})
    return {"quick": quick, "figure": paths["png"]}
'''

BAD = '''\
"""Does a failing experiment leave anything behind?"""
import pathlib


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    (out_dir / "half_written.csv").write_text("a,b\\n1,")
    raise RuntimeError("deliberate failure after writing a file")
'''


@pytest.fixture()
def experiments_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "good.py").write_text(GOOD)
    (folder / "bad.py").write_text(BAD)
    (folder / "_helper.py").write_text('"""Not an experiment."""\n')
    return folder


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        # in-page anchors (the table of contents) are checked in tests/test_report.py
        self.links += [value for key, value in attrs if key in ("href", "src") and value and not value.startswith("#")]


def html_links(path: pathlib.Path) -> list[str]:
    parser = _Links()
    parser.feed(path.read_text())
    return parser.links


def markdown_links(path: pathlib.Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", path.read_text())


def test_list_prints_name_and_question(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("pk_occupancy"))
    assert "How do plasma concentration and systemic PD-L1 occupancy" in line


def test_list_reads_the_question_without_running_the_script(experiments_dir, capsys):
    assert main(["--experiments", str(experiments_dir), "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["bad   Does a failing experiment leave anything behind?", "good  Does the good experiment write a figure?"]


def test_every_repository_experiment_follows_the_contract():
    found = experiments.discover()
    assert "pk_occupancy" in [e.name for e in found]
    for e in found:
        assert e.question.endswith("?"), f"{e.name}: first docstring line should be the question, got {e.question!r}"


def test_unknown_experiment_exits_non_zero_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["run", "pk_occupancy", "no_such_experiment", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no_such_experiment" in err and "pk_occupancy" in err and "moa list" in err
    assert not out.exists()


def test_output_folder_under_a_file_exits_non_zero_and_writes_nothing(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "results"
    assert main(["run", "pk_occupancy", "--quick", "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_read_only_output_folder_exits_non_zero(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["run", "pk_occupancy", "--quick", "--out", str(locked / "results")]) == 2
        assert "cannot write" in capsys.readouterr().err
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_failing_experiment_leaves_no_folder_and_others_still_run(experiments_dir, tmp_path, capsys):
    out = tmp_path / "results"
    code = main(["--experiments", str(experiments_dir), "run", "all", "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "bad: FAILED" in err and "deliberate failure" in err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["claims.md", "good", "index.html", "index.md"]
    assert {p.name for p in out.iterdir() if p.name.startswith(".")} == {os.readlink(out / "good")}  # no staging leftovers
    assert (out / "good" / "good_figure.png").stat().st_size > 0


def test_only_failures_leave_no_results_folder(experiments_dir, tmp_path):
    out = tmp_path / "new" / "results"
    assert main(["--experiments", str(experiments_dir), "run", "bad", "--out", str(out)]) == 1
    assert not (tmp_path / "new").exists()


def test_rerun_replaces_the_folder_and_progress_bar_runs(experiments_dir, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["--experiments", str(experiments_dir), "run", "good", "--out", str(out)]) == 0
    (out / "good" / "stale.txt").write_text("from an older run")
    assert main(["--experiments", str(experiments_dir), "run", "good", "--quick", "--progress", "--out", str(out)]) == 0
    assert not (out / "good" / "stale.txt").exists()
    assert '"quick": true' in (out / "good" / "run.json").read_text()
    assert "experiment" in capsys.readouterr().err  # tqdm writes its bar to stderr


SLOW = '''\
"""Does a killed run leave the previous results visible?"""
import json
import os
import pathlib
import time


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    (out_dir / "version.txt").write_text("slow")
    if os.environ.get("MOA_TEST_SLOW_STARTED"):
        pathlib.Path(os.environ["MOA_TEST_SLOW_STARTED"]).write_text(str(out_dir))
        time.sleep(120)  # killed long before
    return {"quick": quick}
'''


def test_sigkill_during_moa_run_keeps_the_old_folder_and_the_rerun_cleans_up(experiments_dir, tmp_path, monkeypatch):
    (experiments_dir / "slow.py").write_text(SLOW)
    out = tmp_path / "results"
    assert main(["--experiments", str(experiments_dir), "run", "slow", "--out", str(out)]) == 0
    first = os.readlink(out / "slow")
    started = tmp_path / "started.txt"
    env = {**os.environ, "MOA_TEST_SLOW_STARTED": str(started), "MOA_NO_JIT": "1",
           "PYTHONPATH": os.pathsep.join([str(pathlib.Path(experiments.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "moa.cli", "--experiments", str(experiments_dir), "run", "slow",
                             "--out", str(out)], env=env)
    try:
        for _ in range(600):  # up to 60 s for the interpreter to start and reach main()
            if started.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert started.exists(), "the experiment never started"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    stage = pathlib.Path(started.read_text())
    assert stage.parent == out and stage.name.startswith(".slow.") and stage.is_dir()  # left behind by the kill
    assert os.readlink(out / "slow") == first and json.loads((out / "slow" / "run.json").read_text())["experiment"] == "slow"
    assert main(["--experiments", str(experiments_dir), "run", "slow", "--out", str(out)]) == 0
    assert not stage.exists()
    assert {p.name for p in out.iterdir() if p.name.startswith(".")} == {os.readlink(out / "slow")}


@pytest.fixture(scope="module")
def pk_run(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("run") / "results"
    assert main(["run", "pk_occupancy", "--quick", "--out", str(out)]) == 0
    return out


def test_pk_occupancy_writes_figure_data_and_provenance(pk_run):
    folder = pk_run / "pk_occupancy"
    for name in ("pk_occupancy.png", "pk_occupancy.svg", "pk_occupancy.caption.md", "pk_occupancy.nc",
                 "pk_occupancy.csv", "pk_occupancy.provenance.json", "run.json"):
        assert (folder / name).stat().st_size > 0, name
    caption = (folder / "pk_occupancy.caption.md").read_text()
    assert "0.2, 3, 15 mg/kg" in caption and "parameter set: default" in caption and "git commit" in caption
    with xr.open_dataset(folder / "pk_occupancy.nc", engine="scipy") as ds:
        assert ds.sizes["dose_mg_per_kg"] == 3
        assert list(ds["dose_mg_per_kg"].values) == [0.2, 3.0, 15.0]
        assert ds["time"].values[-1] == 63.0  # quick mode
        occupancy = ds["pdl1_systemic_occupancy_bsab"].isel(time=-1).values
    # Direction, not frozen numbers: more drug, more occupancy.
    assert occupancy[0] < occupancy[1] < occupancy[2]


def test_index_links_every_figure_and_all_links_resolve(pk_run):
    index_html, index_md = pk_run / "index.html", pk_run / "index.md"
    links = html_links(index_html)
    assert "pk_occupancy/pk_occupancy.png" in links and "pk_occupancy/pk_occupancy.svg" in links
    for link in links + markdown_links(index_md):
        assert (pk_run / link).is_file(), f"broken link {link}"
    every_png = {p.relative_to(pk_run).as_posix() for p in pk_run.glob("*/*.png")
                 if not p.parent.name.startswith(".")}  # hidden: the version folders behind the links
    assert every_png <= set(links)
    assert "systemic PD-L1" in index_html.read_text()  # the caption is on the page


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "moa.cli", "list"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "pk_occupancy" in result.stdout


def test_missing_experiment_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--quick"])
    assert exit_info.value.code == 2 and "NAME" in capsys.readouterr().err


def test_binding_command_prints_a_bell(capsys):
    from moa.cli import main

    assert main(["binding", "--drug-nM", "0.00001", "1", "1000000"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("drug_nM,")
    ternary = [float(r.split(",")[-1]) for r in rows[1:]]
    assert ternary[1] > ternary[0] and ternary[1] > ternary[2]


def test_binding_command_refuses_bad_input(capsys):
    from moa.cli import main

    assert main(["binding", "--pdl1-per-cell", "-5"]) == 2
    err = capsys.readouterr().err
    assert "pdl1_per_cell=-5.0" in err and "molecule/cell" in err
