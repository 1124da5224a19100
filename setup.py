"""Build step that ships the data: ``models/`` and ``experiments/`` go into the wheel as ``moa/_data/``.

The repository keeps them as top-level folders (data beside the code, readable and editable in a
checkout); an installed moa finds them as package data (see ``moa/paths.py``). Everything else
about the package is declared in ``pyproject.toml``.
"""

import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).resolve().parent
DATA_FOLDERS = ("models", "experiments")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildPyWithData(build_py):
    """``build_py`` that also copies the data folders to ``<build>/moa/_data/<folder>``."""

    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's folders directly
            return
        target = pathlib.Path(self.build_lib) / "moa" / "_data"
        for name in DATA_FOLDERS:
            source = ROOT / name
            if not source.is_dir():
                raise FileNotFoundError(f"building moa: the data folder {source} is missing")
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(source, target / name, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyWithData})
