"""Checkpoints of a sweep: one file per finished chunk, written atomically, and a manifest.

Layout of ``out_dir``::

    spec.json       the spec (JSON) and its digest
    manifest.json   {"spec_hash", "code", "n_chunks", "chunks": {index: {"file", "sha256", "arm", "setting", "points"}}}
    chunks/chunk_000012.npz   one finished chunk: every output, status and message of its points
    sweep.nc        the whole result (written when every chunk is done), with sweep.provenance.json

A chunk file is written to a temporary name in ``chunks/`` and renamed into place (``os.replace``),
then the manifest is rewritten the same way, so a sweep killed at any moment leaves whole files
only. A chunk counts as done when its file exists, its sha256 equals the manifest's and it reads
back with the expected arrays; anything else (a missing manifest entry, a hash mismatch, a file
that cannot be read) is recomputed with a :class:`ChunkWarning`. An ``out_dir`` holding a sweep of
another spec is refused (:class:`SweepDirError`) rather than mixed.

Checkpoints also record the code that computed them (:func:`code_fingerprint`: the sources of ``moa/`` that
compute numbers and the data files in ``models/``). When the code or the parameter files have changed since,
every checkpointed chunk is recomputed, with a :class:`ChunkWarning`: a resumed sweep never mixes results of
two versions of the model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import tempfile
import warnings
import zipfile

import numpy as np

__all__ = ["ChunkStore", "ChunkWarning", "SweepDirError", "sha256_file", "code_fingerprint"]

_PACKAGE = pathlib.Path(__file__).resolve().parents[1]
#: Parts of ``moa/`` that only present results; a change there leaves checkpoints valid.
_PRESENTATION = ("report", "cli.py", "__main__.py")


class ChunkWarning(UserWarning):
    """A checkpointed chunk that could not be used (partial, corrupt or unrecorded) and is recomputed."""


class SweepDirError(ValueError):
    """An output folder that holds another sweep (a different spec) or cannot be used."""


def sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def code_fingerprint(package: pathlib.Path = _PACKAGE, models: pathlib.Path | None = None) -> str:
    """sha256 (first 16 hex digits) of every ``*.py`` under ``package`` except the presentation layer
    (:data:`_PRESENTATION`) and of every ``*.toml`` under ``models`` (default: ``models/`` beside the package,
    where the parameter values live), each with its relative path."""
    models = package.parent / "models" if models is None else models
    h = hashlib.sha256()
    files = [(f"moa/{p.relative_to(package)}", p) for p in package.rglob("*.py")]
    files += [(f"models/{p.relative_to(models)}", p) for p in models.rglob("*.toml")] if models.is_dir() else []
    for rel, path in sorted(files):
        if rel.split("/")[1] in _PRESENTATION:
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _replace_atomically(path: pathlib.Path, write) -> None:
    """``write(tmp_path)`` then rename over ``path`` (same folder, so the rename is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(pathlib.Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ChunkStore:
    """The checkpoint folder of one sweep (``spec_hash``) with ``n_chunks`` chunks."""

    def __init__(
        self, out_dir: str | os.PathLike, spec_dict: dict, spec_hash: str, n_chunks: int, code: str | None = None
    ):
        self.root = pathlib.Path(out_dir)
        self.chunks_dir = self.root / "chunks"
        self.spec_hash, self.n_chunks = spec_hash, n_chunks
        self.code = code_fingerprint() if code is None else code
        manifest = self.root / "manifest.json"
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise SweepDirError(
                    f"{manifest}: unreadable ({exc}); remove {self.root} or choose another output folder"
                ) from None
            if old.get("spec_hash") != spec_hash:
                raise SweepDirError(
                    f"{self.root} holds the checkpoints of another sweep (spec hash {old.get('spec_hash')}, "
                    f"this spec's is {spec_hash}); choose another output folder or remove that one, "
                    "so that results of two specs are never mixed"
                )
            self.entries = {int(k): v for k, v in old.get("chunks", {}).items()}
            if self.entries and old.get("code") != self.code:
                warnings.warn(
                    ChunkWarning(
                        f"{self.root}: its {len(self.entries)} checkpointed chunk(s) were computed by other code "
                        f"(fingerprint {old.get('code')}, now {self.code}: moa's sources or models/ changed); "
                        "recomputing them all"
                    ),
                    stacklevel=3,
                )
                for stale in self.chunks_dir.glob("chunk_*.npz"):
                    stale.unlink()
                self.entries = {}
        else:
            self.entries = {}
        self.chunks_dir.mkdir(parents=True, exist_ok=True)
        spec_path = self.root / "spec.json"
        if not spec_path.exists():
            text = json.dumps({"spec_hash": spec_hash, "spec": spec_dict}, indent=2, sort_keys=True, default=str) + "\n"
            _replace_atomically(spec_path, lambda p: p.write_text(text))
        self._write_manifest()

    def path(self, index: int) -> pathlib.Path:
        return self.chunks_dir / f"chunk_{index:06d}.npz"

    def load(self, index: int, expected: dict[str, tuple]) -> dict[str, np.ndarray] | None:
        """The arrays of chunk ``index`` if its file is whole (hash and contents as expected), else None
        (a ChunkWarning says why when a file or an entry was there)."""
        path, entry = self.path(index), self.entries.get(index)
        if not path.exists():
            if entry is not None:
                warnings.warn(
                    ChunkWarning(
                        f"chunk {index}: {path.name} is missing although the manifest lists it; recomputing it"
                    ),
                    stacklevel=3,
                )
            return None
        if entry is None:
            warnings.warn(
                ChunkWarning(
                    f"chunk {index}: {path.name} is not in the manifest (the sweep stopped between "
                    "writing it and recording it); recomputing it"
                ),
                stacklevel=3,
            )
            return None
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            warnings.warn(
                ChunkWarning(
                    f"chunk {index}: {path.name} has sha256 {digest[:12]}..., the manifest recorded "
                    f"{str(entry.get('sha256'))[:12]}... (partial or corrupt file); recomputing it"
                ),
                stacklevel=3,
            )
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            warnings.warn(
                ChunkWarning(f"chunk {index}: {path.name} cannot be read ({exc}); recomputing it"), stacklevel=3
            )
            return None
        for name, shape in expected.items():
            if name not in arrays or arrays[name].shape != shape:
                got = arrays[name].shape if name in arrays else "missing"
                warnings.warn(
                    ChunkWarning(
                        f"chunk {index}: {path.name}: array {name!r} is {got}, expected {shape}; recomputing it"
                    ),
                    stacklevel=3,
                )
                return None
        return arrays

    def save(self, index: int, arrays: dict[str, np.ndarray], info: dict) -> None:
        """Write chunk ``index`` atomically, then record it (with its sha256) in the manifest."""
        path = self.path(index)

        def write(tmp: pathlib.Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        _replace_atomically(path, write)
        self.entries[index] = {"file": f"chunks/{path.name}", "sha256": sha256_file(path), **info}
        self._write_manifest()

    def _write_manifest(self) -> None:
        data = {
            "spec_hash": self.spec_hash,
            "code": self.code,
            "n_chunks": self.n_chunks,
            "chunks": {str(k): v for k, v in sorted(self.entries.items())},
        }
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        _replace_atomically(self.root / "manifest.json", lambda p: p.write_text(text))
