"""Sweeps as data: a spec names arms, settings, sampled parameters, outputs and chunking;
:func:`run_sweep` runs it locally or on a Dask cluster, checkpointing each chunk, and returns one
labelled Dataset (dim ``point``). See docs/sweeps.md.

::

    from moa.sweep import load_spec, run_sweep
    spec = load_spec("models/sweeps/example.toml")
    ds = run_sweep(spec, "results/sweeps/example", workers=2, progress=True)
"""

from .execute import Chunk, plan_chunks, run_sweep, simulate_chunk
from .sampling import parameter_values, unit_design
from .spec import (
    DISTRIBUTIONS,
    SAMPLING_METHODS,
    ParameterDistribution,
    SpecError,
    SweepSpec,
    load_spec,
    spec_from_dict,
)
from .store import ChunkWarning, SweepDirError
from .summaries import SUMMARIES

__all__ = [
    "SweepSpec",
    "ParameterDistribution",
    "SpecError",
    "load_spec",
    "spec_from_dict",
    "run_sweep",
    "unit_design",
    "parameter_values",
    "plan_chunks",
    "simulate_chunk",
    "Chunk",
    "ChunkWarning",
    "SweepDirError",
    "SUMMARIES",
    "DISTRIBUTIONS",
    "SAMPLING_METHODS",
]
