"""A damaged compiled-solver cache heals itself (moa.solvers.rodas4.numba_kernels): truncated numba cache files, a
truncated or hand-edited generated module, an empty index file and a full disk each give a
CacheWarning naming the bad file or folder, and the run still uses the compiled backend with results
equal to a clean-cache run.

Each "next run" is a fresh Python process (modules stay in sys.modules under their hash name, and
numba keeps compiled code in memory), on a copy of one clean cache built once for this file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from moa.errors import CacheWarning
from moa.solvers.rodas4 import numba_kernels as jit

pytestmark = pytest.mark.skipif(not jit.available(), reason="numba not installed (pip install 'moa[fast]')")

ROOT = Path(__file__).resolve().parents[1]

# One run of a small model (two-compartment PK, 42 days) with RodasSolver(backend="auto"); prints the
# solver used, the kernels' module path and every warning, saves the states to argv[1]. With
# MOA_TEST_FULL_DISK set, every write of data under that folder fails with ENOSPC (ours and numba's).
RUN = r"""
import builtins, errno, io, json, os, sys, warnings
full = os.environ.get("MOA_TEST_FULL_DISK")
if full:   # files open (and empty ones get made) but no byte can be written, as on a full disk
    real_open = io.open

    class FullDisk:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            if len(data):
                raise OSError(errno.ENOSPC, "No space left on device", self._f.name)
            return 0

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def open_on_full_disk(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if (isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+")
                and os.path.abspath(os.fspath(file)).startswith(full)):
            return FullDisk(f)
        return f

    io.open = builtins.open = open_on_full_disk
import numpy as np
import moa
from moa.symbolic.named_models import pk_model
from moa.parameters import load_parameters
from moa.regimen import every
from moa.solvers.rodas4 import numba_kernels as jit
from moa.solvers import RodasSolver
from moa.codegen import compile_model

model = pk_model("bsab")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ds = moa.simulate(model, load_parameters(), every("bsab", 3.0, "mg/kg", 21.0, 42.0), duration_days=42.0,
                      solver=RodasSolver())
np.save(sys.argv[1], np.stack([ds[v].values for v in sorted(ds.data_vars)
                               if ds[v].dtype == float and "time" in ds[v].dims]))
print(json.dumps({"solver": ds.attrs["solver"], "module": str(jit.kernels_for_model(compile_model(model)).path),
                  "warnings": [[w.category.__name__, str(w.message)] for w in caught]}))
"""


def run(tmp: Path, cache: Path, full_disk: Path | None = None) -> tuple[dict, np.ndarray]:
    """One fresh process on the cache folder ``cache`` (temporary files under ``tmp``)."""
    (tmp / "tmp").mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MOA_CACHE_DIR=str(cache), TMPDIR=str(tmp / "tmp"), MPLBACKEND="Agg")
    env.pop("MOA_NO_JIT", None)
    if full_disk is not None:
        env["MOA_TEST_FULL_DISK"] = str(full_disk)
    out = tmp / "y.npy"
    proc = subprocess.run([sys.executable, "-c", RUN, str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr}, np.load(out)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean cache and the results of a run that built it."""
    tmp = tmp_path_factory.mktemp("clean")
    info, y = run(tmp, tmp / "cache")
    assert info["solver"] == "moa-rodas4-numba" and info["warnings"] == [], info
    return tmp / "cache", y, info


@pytest.fixture
def cache(clean, tmp_path) -> Path:
    """This test's own copy of the clean cache (its ``jit`` folder)."""
    shutil.copytree(clean[0], tmp_path / "cache")
    return tmp_path / "cache" / "jit"


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def module_of(cache: Path) -> Path:
    (module,) = cache.glob("moa_rodas_*.py")
    return module


def assert_healed(info: dict, y: np.ndarray, clean_y: np.ndarray, bad: str, module_folder: Path) -> None:
    """A CacheWarning names the bad file, nothing fell back to numpy, results equal the clean run."""
    cache_warnings = [m for c, m in info["warnings"] if c == "CacheWarning"]
    assert any(bad in m for m in cache_warnings), (bad, info["warnings"])
    assert not [m for c, m in info["warnings"] if c == "RuntimeWarning"], info["warnings"]
    assert info["solver"] == "moa-rodas4-numba"
    assert Path(info["module"]).parent == module_folder
    np.testing.assert_array_equal(y, clean_y)


def test_first_compilation_is_announced_in_one_line_and_a_cached_run_is_silent(clean, cache, tmp_path):
    assert clean[2]["stderr"].count(jit.COMPILING_NOTICE) == 1  # the run that built the cache
    info, y = run(tmp_path, cache.parent)
    assert jit.COMPILING_NOTICE not in info["stderr"]
    np.testing.assert_array_equal(y, clean[1])


@pytest.mark.parametrize("suffix", [".nbi", ".nbc"])
def test_truncated_numba_cache_file_is_removed_and_compiled_again(clean, cache, tmp_path, suffix):
    (bad,) = (cache / "__pycache__").glob(f"*.integrate_all-*{suffix}")
    truncate(bad)
    info, y = run(tmp_path, cache.parent)
    assert_healed(info, y, clean[1], str(bad), cache)
    assert jit._pickles_intact(bad)  # written again whole by numba


def test_truncated_module_is_written_again(clean, cache, tmp_path):
    module = module_of(cache)
    truncate(module)
    info, y = run(tmp_path, cache.parent)
    assert_healed(info, y, clean[1], str(module), cache)
    assert jit._read_verified(module)


@pytest.mark.parametrize("content", ["", "moa_rodas_../../etc/passwd\n"])
def test_empty_or_garbage_index_is_rebuilt(clean, cache, tmp_path, content):
    (index,) = cache.glob("model_*.txt")
    index.write_text(content)
    info, y = run(tmp_path, cache.parent)
    assert_healed(info, y, clean[1], str(index), cache)
    assert index.read_text() == module_of(cache).name


def test_full_disk_compiles_in_a_temporary_folder_then_heals(clean, cache, tmp_path):
    """Module and index are cached, numba's machine code only in part (the disk filled up before the
    integrator's was saved): numba cannot save it, so the module is compiled in the temporary folder
    (still compiled) with a warning naming the cache folder and the fix; the next run, with space
    again, uses the cache folder."""
    for f in (cache / "__pycache__").glob("*.integrate_all-*"):
        f.unlink()
    before = sorted((cache / "__pycache__").iterdir())
    info, y = run(tmp_path, cache.parent, full_disk=cache)
    assert_healed(info, y, clean[1], str(cache), tmp_path / "tmp" / f"moa-jit-{os.getuid()}")
    assert any("MOA_CACHE_DIR" in m and "free space" in m for _, m in info["warnings"])
    assert sorted((cache / "__pycache__").iterdir()) == before  # nothing half-written by numba
    info, y = run(tmp_path, cache.parent)
    assert info["warnings"] == [] and info["solver"] == "moa-rodas4-numba", info
    assert Path(info["module"]).parent == cache
    np.testing.assert_array_equal(y, clean[1])


def test_module_written_to_temporary_folder_when_the_disk_is_full(tmp_path, monkeypatch):
    """In-process: writing a new module fails half-way (ENOSPC); the partial file is removed and the
    module goes to the fallback folder, with a warning naming the cache folder and the fix."""
    folder = tmp_path / "jit"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    real_write = Path.write_text

    def full_disk(self, data, *args, **kwargs):
        if self.parent == folder:
            real_write(self, data[:10], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    source = "# a module\n"
    with pytest.warns(CacheWarning, match=f"{folder}.*No space left.*MOA_CACHE_DIR"):
        path = jit._write_module(source, folder)
    assert path.parent == tmp_path / "tmp" / f"moa-jit-{os.getuid()}" and jit._read_verified(path) == source
    assert list(folder.iterdir()) == []


def test_unusable_cache_folder_falls_back_with_a_warning(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("MOA_CACHE_DIR", str(tmp_path / "a_file"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    with pytest.warns(CacheWarning, match=f"{tmp_path / 'a_file' / 'jit'}.*MOA_CACHE_DIR"):
        assert jit.cache_dir() == tmp_path / "tmp" / f"moa-jit-{os.getuid()}"


def test_hand_edited_module_is_detected_and_written_again(clean, cache, tmp_path):
    """Same name, changed content (a constant of the step-size controller), even with the original
    size and modification time: numba would happily load the old machine code, or compile the edit."""
    module = module_of(cache)
    text, stat = module.read_text(), module.stat()
    edited = text.replace("\nSAFE = 0.9\n", "\nSAFE = 0.5\n")
    assert edited != text and len(edited) == len(text)
    module.write_text(edited)
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    info, y = run(tmp_path, cache.parent)
    assert_healed(info, y, clean[1], str(module), cache)
    assert module.read_text() == text


def test_index_naming_another_models_module_is_rebuilt(tmp_path, monkeypatch):
    """In-process: an index whose module was built for another LU plan is reported and not used."""
    monkeypatch.setenv("MOA_CACHE_DIR", str(tmp_path))
    rob = jit.SparseLUPlan(3, [0, 0, 0, 1, 1, 1, 2], [0, 1, 2, 0, 1, 2, 1])
    other = jit.SparseLUPlan(2, [0, 1], [0, 1])
    y1, y2, y3, k1, k2, k3 = sp.symbols("y1 y2 y3 k1 k2 k3")
    k = jit.kernels(
        [-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2**2 - k3 * y2 * y3, k2 * y2**2], [y1, y2, y3], [k1, k2, k3], rob
    )
    index = k.path.parent / "model_0123456789abcdef0123.txt"
    index.write_text(k.path.name)
    assert jit._from_index(index, rob).path == k.path
    with pytest.warns(CacheWarning, match="built for another model"):
        assert jit._from_index(index, other) is None


def test_compilation_error_is_raised_not_healed(tmp_path, recwarn):
    """An error that does not come out of numba's cache (here: the integrator raises) propagates, so
    that RodasSolver(backend="auto") falls back to numpy; numba's intact cache files are kept."""
    import pickle
    import types

    path = tmp_path / "moa_rodas_0123456789abcdef0123.py"
    index = tmp_path / "__pycache__" / f"{path.stem}.integrate_all-1.py311.nbi"
    index.parent.mkdir()
    index.write_bytes(pickle.dumps("version") + pickle.dumps(("stamp", {})))

    def integrate_all(*args):
        raise RuntimeError("numba cannot type this model")

    k = jit.JitKernels(types.SimpleNamespace(integrate_all=integrate_all), jit.SparseLUPlan(1, [0], [0]), path)
    with pytest.raises(RuntimeError, match="cannot type"):
        jit._compile_healing(k, 1)
    assert index.exists() and jit._pickles_intact(index)
    assert not [w for w in recwarn if issubclass(w.category, CacheWarning)]
    index.write_bytes(index.read_bytes()[:-3])
    assert not jit._pickles_intact(index)
