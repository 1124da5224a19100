"""Every Python block of README.md runs as written: in a fresh interpreter, from an empty folder, with
the Agg backend (figures drawn, not shown) and only this checkout on the path."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(markdown: str) -> list[str]:
    """The body of every fenced ```python block, in order."""
    return BLOCK.findall(markdown)


def test_block_extraction_finds_each_block_and_nothing_else():
    text = "intro\n```python\nx = 1\n```\n\n```sh\nls\n```\n```python\ny = 2\nz = 3\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\nz = 3\n"]


BLOCKS = python_blocks(README.read_text())


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


def _environment() -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg")
    root = str(README.parent)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i + 1}")
def test_readme_block_runs_as_written(index, tmp_path):
    script = tmp_path / f"readme_block_{index + 1}.py"
    script.write_text(BLOCKS[index])
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=_environment(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (
        f"README block {index + 1} failed:\n{BLOCKS[index]}\n--- stderr ---\n{result.stderr[-3000:]}"
    )
