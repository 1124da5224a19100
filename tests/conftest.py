"""Fixtures shared by several test modules."""

from __future__ import annotations

import pathlib

import pytest


@pytest.fixture(scope="session")
def pk_run(tmp_path_factory) -> pathlib.Path:
    """A results folder written once per session by ``moa run pk_occupancy --quick`` (tests only read it)."""
    from moa.cli import main

    out = tmp_path_factory.mktemp("run") / "results"
    assert main(["run", "pk_occupancy", "--quick", "--out", str(out)]) == 0
    return out
