"""A normal install works (issue 11, item 1): a wheel built from the checkout, installed into a fresh
virtual environment, finds its shipped model files and experiments from any folder.

No network: the wheel is built with this environment's setuptools (``--no-build-isolation``, which
needs setuptools >= 77 here, as ``make`` installs), installed without its dependencies, and the
fresh environment borrows this one's installed packages through a ``.pth`` file. A path line in a
``.pth`` file does not run that folder's own ``.pth`` files, so the editable moa of this environment
is not picked up there; the test checks that ``moa`` is imported from the fresh environment.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import site
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: What a source distribution of moa holds: enough to build the wheel.
SOURCE_FILES = ("pyproject.toml", "setup.py", "README.md", "LICENSE")
SOURCE_FOLDERS = ("moa", "models", "experiments")

USER_EXPERIMENT = '''\
"""Does a user's own experiment run beside the shipped model files, with a parameter file of its own?"""
import pathlib

from moa.parameters import MODELS_DIR, load_parameters


def main(out_dir: pathlib.Path, quick: bool = False) -> dict:
    mine = pathlib.Path(__file__).with_name("my_parameters.toml")
    params = load_parameters([*sorted((MODELS_DIR / "parameters").glob("*.toml")), mine])
    (out_dir / "note.txt").write_text("user experiment ran")
    return {"n_parameters": len(params), "my_rate_per_day": float(params["my_rate"])}
'''

USER_PARAMETERS = """\
[my_rate]
value = 0.25
unit = "1/day"
lower = 0.1
upper = 1.0
source = "assumed: a user's own parameter for the install test"
description = "a rate that only the user's experiment reads"
"""

PROBE = """
import json, moa, moa.paths
from moa.scenarios import scenario
params, regimen = scenario("bsab_2x2", "hot_tnbc")
print(json.dumps({"moa": moa.__file__, "data": str(moa.paths.data_dir()), "n_parameters": len(moa.load_parameters()),
                  "regimen_doses": len(regimen.doses)}))
"""


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def _source_copy(target: pathlib.Path) -> pathlib.Path:
    """The files a wheel is built from, copied (a build leaves build/ and *.egg-info beside them)."""
    target.mkdir()
    for name in SOURCE_FILES:
        shutil.copy2(ROOT / name, target / name)
    for name in SOURCE_FOLDERS:
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[pathlib.Path, str]:
    """The wheel built from a copy of the checkout, and the build's output."""
    tmp = tmp_path_factory.mktemp("build")
    source = _source_copy(tmp / "src")
    try:
        proc = _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-v",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "-w",
                tmp / "dist",
                source,
            ]
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n(building moa needs setuptools>=77 and wheel in this environment: "
            "`make` installs them, or pip install 'setuptools>=77' wheel)"
        ) from None
    (built,) = (tmp / "dist").glob("moa-*.whl")
    return built, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def fresh_env(wheel, tmp_path_factory) -> dict:
    """A fresh virtual environment with the wheel installed, borrowing this environment's packages."""
    tmp = tmp_path_factory.mktemp("venv")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MOA_DATA_DIR", "MOA_PROGRESS")}
    # without PYTHONPATH: a checkout on it would make pip think moa is installed already and skip the wheel
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel[0]],
        env=clean,
    )
    purelib = pathlib.Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    (purelib / "_moa_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    elsewhere = tmp / "elsewhere"  # a working folder outside the checkout
    elsewhere.mkdir()
    env = dict(clean)
    env.update(MPLBACKEND="Agg", MOA_NO_JIT="1")  # numpy backend: no compilation in the fresh environment
    return {"venv": venv, "python": python, "moa": venv / "bin" / "moa", "cwd": elsewhere, "env": env}


def test_wheel_carries_the_data_and_builds_without_deprecation_warnings(wheel):
    import zipfile

    built, log = wheel
    names = set(zipfile.ZipFile(built).namelist())
    shipped = {
        p.relative_to(ROOT).as_posix()
        for folder in ("models", "experiments")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert {f"moa/_data/{name}" for name in shipped} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = next(zipfile.ZipFile(built).read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: MIT" in metadata
    complaints = [
        line
        for line in log.splitlines()
        if "deprecat" in line.lower() or ("warn" in line.lower() and "licen" in line.lower())
    ]
    assert not complaints, complaints


def test_installed_moa_finds_its_shipped_data_outside_the_checkout(fresh_env):
    probe = json.loads(_run([fresh_env["python"], "-c", PROBE], cwd=fresh_env["cwd"], env=fresh_env["env"]).stdout)
    venv = fresh_env["venv"].resolve()
    assert pathlib.Path(probe["moa"]).resolve().is_relative_to(venv), probe  # not the checkout's editable moa
    assert pathlib.Path(probe["data"]).resolve().is_relative_to(venv) and probe["data"].endswith("_data")
    here = subprocess.run(
        [sys.executable, "-c", "import moa; print(len(moa.load_parameters()))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe["n_parameters"] == int(here.stdout) > 0 and probe["regimen_doses"] > 0


def test_installed_command_lists_and_runs_the_shipped_experiments(fresh_env):
    version = _run([fresh_env["moa"], "--version"], cwd=fresh_env["cwd"], env=fresh_env["env"]).stdout
    from moa import __version__

    assert version.strip() == f"moa {__version__}"
    listed = _run([fresh_env["moa"], "list"], cwd=fresh_env["cwd"], env=fresh_env["env"]).stdout
    shipped = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if not p.name.startswith("_"))
    assert [line.split()[0] for line in listed.strip().splitlines()] == shipped
    out = fresh_env["cwd"] / "results"
    _run(
        [fresh_env["moa"], "run", "pk_occupancy", "--quick", "--out", "results"],
        cwd=fresh_env["cwd"],
        env=fresh_env["env"],
    )
    folder = out / "pk_occupancy"
    for name in (
        "pk_occupancy.png",
        "pk_occupancy.svg",
        "pk_occupancy.nc",
        "pk_occupancy.csv",
        "pk_occupancy.provenance.json",
        "run.json",
    ):
        assert (folder / name).stat().st_size > 0, name
    assert json.loads((folder / "run.json").read_text())["quick"] is True
    assert (out / "index.html").is_file()


def test_a_users_experiments_folder_and_parameter_file_work_beside_the_shipped_ones(fresh_env):
    mine = fresh_env["cwd"] / "my_experiments"
    mine.mkdir()
    (mine / "mine.py").write_text(USER_EXPERIMENT)
    (mine / "my_parameters.toml").write_text(USER_PARAMETERS)
    listed = _run([fresh_env["moa"], "list", "--experiments", mine], cwd=fresh_env["cwd"], env=fresh_env["env"]).stdout
    assert listed.split()[0] == "mine"
    _run(
        [fresh_env["moa"], "run", "mine", "--experiments", "my_experiments", "--out", "mine_results"],
        cwd=fresh_env["cwd"],
        env=fresh_env["env"],
    )
    summary = json.loads((fresh_env["cwd"] / "mine_results" / "mine" / "run.json").read_text())
    import moa

    assert summary["summary"]["n_parameters"] == len(moa.load_parameters()) + 1
    assert summary["summary"]["my_rate_per_day"] == 0.25
