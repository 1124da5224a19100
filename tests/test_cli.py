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

from moa import experiment_runner
from moa.cli import main

GOOD = '''\
"""Does the good experiment write a figure?

A stand-in used by the tests.
"""
import pathlib
from moa.report import plots


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
    assert out == [
        "bad   Does a failing experiment leave anything behind?",
        "good  Does the good experiment write a figure?",
    ]


def test_every_repository_experiment_follows_the_contract():
    found = experiment_runner.discover()
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
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "claims.md",
        "good",
        "index.html",
        "index.md",
    ]
    assert {p.name for p in out.iterdir() if p.name.startswith(".")} == {
        os.readlink(out / "good")
    }  # no staging leftovers
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
    env = {
        **os.environ,
        "MOA_TEST_SLOW_STARTED": str(started),
        "MOA_NO_JIT": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(pathlib.Path(experiment_runner.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "moa.cli", "--experiments", str(experiments_dir), "run", "slow", "--out", str(out)],
        env=env,
    )
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
    assert (
        os.readlink(out / "slow") == first
        and json.loads((out / "slow" / "run.json").read_text())["experiment"] == "slow"
    )
    assert main(["--experiments", str(experiments_dir), "run", "slow", "--out", str(out)]) == 0
    assert not stage.exists()
    assert {p.name for p in out.iterdir() if p.name.startswith(".")} == {os.readlink(out / "slow")}


def test_pk_occupancy_writes_figure_data_and_provenance(pk_run):
    folder = pk_run / "pk_occupancy"
    for name in (
        "pk_occupancy.png",
        "pk_occupancy.svg",
        "pk_occupancy.caption.md",
        "pk_occupancy.nc",
        "pk_occupancy.csv",
        "pk_occupancy.provenance.json",
        "run.json",
    ):
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
    every_png = {
        p.relative_to(pk_run).as_posix() for p in pk_run.glob("*/*.png") if not p.parent.name.startswith(".")
    }  # hidden: the version folders behind the links
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

    with pytest.raises(SystemExit) as exit_info:
        main(["binding", "--pdl1-per-cell", "-5"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--pdl1-per-cell: '-5'" in err and "molecule/cell" in err


# --- command-line conventions (issue 11, item 2) ---


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--drug-nM", "1", "-1"], "--drug-nM"),
        (["--drug-nM", "ten"], "--drug-nM"),
        (["--pdl1-per-cell", "nan"], "--pdl1-per-cell"),
        (["--pdl1-cells-per-mL", "-1"], "--pdl1-cells-per-mL"),
        (["--cd137-per-cell", "inf"], "--cd137-per-cell"),
        (["--cd137-cells-per-mL", "-2"], "--cd137-cells-per-mL"),
        (["--kd-pdl1-nM", "0"], "--kd-pdl1-nM"),
        (["--kd-cd137-nM", "-3"], "--kd-cd137-nM"),
    ],
)
def test_binding_errors_name_the_command_line_option(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["binding", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"argument {option}: " in err
    assert "_nM=" not in err and "per_cell" not in err and "per_mL" not in err  # no internal field names


def test_binding_errors_from_the_library_are_put_in_option_terms(capsys):
    assert main(["binding", "--kd-pdl1-nM", "1e-300"]) == 2  # passes the parser, refused by moa.binding_equilibrium
    err = capsys.readouterr().err
    assert "--kd-pdl1-nM=1e-300" in err and "kd_pdl1" not in err
    assert main(["binding", "--pdl1-per-cell", "1e300"]) == 2  # overflows the receptor concentration
    assert "(from --pdl1-per-cell x --pdl1-cells-per-mL)" in capsys.readouterr().err


def test_version(capsys):
    import moa

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"moa {moa.__version__}"


def test_python_dash_m_moa_is_the_command():
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(pathlib.Path(experiment_runner.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    result = subprocess.run([sys.executable, "-m", "moa", "list"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0 and "pk_occupancy" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "moa", "simulate"], capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr  # the exit status comes through


def test_experiments_option_after_the_subcommand(experiments_dir, tmp_path, capsys):
    assert main(["list", "--experiments", str(experiments_dir)]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["bad", "good"]
    out = tmp_path / "results"
    assert main(["run", "good", "--experiments", str(experiments_dir), "--out", str(out)]) == 0
    assert (out / "good" / "good_figure.png").is_file()
    # before the subcommand still works, and a value given there is kept when none follows it
    assert main(["--experiments", str(experiments_dir), "run", "good", "--out", str(out)]) == 0
    assert main(["run", "good", "--experiments", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "--experiments=" in capsys.readouterr().err


SIMULATING = '''\
"""Does --progress show the simulations inside an experiment?"""
import os
import pathlib

import moa
from moa.symbolic.named_models import pk_model


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    regimen = moa.every("bsab", 3.0, "mg/kg", interval_days=21, until_days=42)
    moa.simulate(pk_model("bsab"), moa.load_parameters(), regimen, duration_days=42, solver="LSODA")
    return {"progress_env": os.environ.get("MOA_PROGRESS")}
'''


def test_progress_shows_each_simulation_inside_an_experiment(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MOA_PROGRESS", raising=False)
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "simulating.py").write_text(SIMULATING)
    out = tmp_path / "results"
    assert main(["run", "simulating", "--experiments", str(folder), "--out", str(out)]) == 0
    assert "segment" not in capsys.readouterr().err  # no bars unless asked
    assert main(["run", "simulating", "--progress", "--experiments", str(folder), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "simulate" in err and "segment" in err  # the bar of moa.simulate, inside the experiment
    assert json.loads((out / "simulating" / "run.json").read_text())["summary"]["progress_env"] == "1"
    assert "MOA_PROGRESS" not in os.environ  # restored after the run


def test_missing_data_is_a_clear_error_not_an_empty_model(tmp_path):
    """With MOA_DATA_DIR naming a folder without models/, nothing reads as 0 parameters or no experiments."""
    env = {
        **os.environ,
        "MOA_DATA_DIR": str(tmp_path / "empty"),
        "MOA_NO_JIT": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(pathlib.Path(experiment_runner.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    listed = subprocess.run([sys.executable, "-m", "moa", "list"], capture_output=True, text=True, timeout=60, env=env)
    assert listed.returncode == 1 and f"MOA_DATA_DIR={tmp_path / 'empty'}" in listed.stderr
    probe = (
        "import moa\nfrom moa.scenarios import scenario\n"
        "for call in (moa.load_parameters, lambda: scenario('untreated', 'hot_tnbc')):\n"
        "    try:\n        call()\n    except FileNotFoundError as exc:\n        print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and all(
        line.startswith("DataNotFoundError") and "models/parameters" in line for line in lines
    ), result


def test_moa_data_dir_is_used_before_the_checkout(tmp_path, monkeypatch):
    import shutil

    from moa import paths
    from moa.parameters import MODELS_DIR

    assert paths.data_dir() == MODELS_DIR.parent  # here: the checkout
    shutil.copytree(MODELS_DIR, tmp_path / "models")
    monkeypatch.setenv("MOA_DATA_DIR", str(tmp_path))
    assert paths.data_dir() == tmp_path
    monkeypatch.setenv("MOA_DATA_DIR", str(tmp_path / "elsewhere"))
    assert paths.data_dir() == tmp_path / "elsewhere"  # named on purpose: never replaced by the checkout
    with pytest.raises(paths.DataNotFoundError, match="elsewhere/models/parameters"):
        paths.require_models_dir(paths.data_dir() / "models")
