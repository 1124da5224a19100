"""One style for the repository: ruff at 120 columns (pyproject.toml [tool.ruff]), formatted and linted.

ruff comes with the ``dev`` extra (``make test`` installs it); run ``ruff format . && ruff check .`` to fix.
"""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff") or str(pathlib.Path(sys.executable).with_name("ruff"))
    if not pathlib.Path(exe).exists():
        pytest.fail("ruff is not installed: it is part of the dev extra (pip install -e '.[dev]')")
    return [exe]


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]], ids=["format", "lint"])
def test_repository_follows_the_ruff_rules(command):
    done = subprocess.run([*_ruff(), *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"ruff {' '.join(command)} found:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
