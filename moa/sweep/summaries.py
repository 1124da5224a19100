"""Named per-point summaries of a trajectory, computed for a whole chunk at once (vectorised).

Each summary takes the chunk's simulated dataset (dims ``point``, ``time``) and returns one value
per point; a failed point (NaN trajectory) gives NaN. RECIST quantities use the one definition of
:mod:`moa.analysis` (scans every ``scan_interval_days`` of ``models/recist.toml``, best change up
to the first progression), so a sweep's ``best_change_pct`` is the number the experiments and
claims use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import xarray as xr

from ..analysis import recist

__all__ = ["Summary", "SUMMARIES", "needed_variables", "compute_summaries"]


@dataclasses.dataclass(frozen=True)
class Summary:
    """A per-point number: the variables it needs, its unit and how it is computed."""

    name: str
    needs: tuple[str, ...]
    unit: str
    description: str
    compute: Callable[[xr.Dataset, dict], np.ndarray]


def _recist(ds: xr.Dataset, cache: dict) -> xr.Dataset:
    if "recist" not in cache:
        cache["recist"] = recist(ds["tumour_diameter"])
    return cache["recist"]


def _best_change(ds, cache):
    return _recist(ds, cache)["best_percent_change"].values


def _progression_day(ds, cache):
    return _recist(ds, cache)["progression_day"].values


def _objective_response(ds, cache):
    best = _recist(ds, cache)["best_response"].values
    failed = ~np.isfinite(_best_change(ds, cache))
    return np.where(failed, np.nan, np.isin(best, ("CR", "PR")).astype(float))


def _peak(name: str):
    def compute(ds, cache):
        return _nanreduce(np.nanmax, ds[name])

    return compute


def _final(name: str):
    def compute(ds, cache):
        return ds[name].isel(time=-1).values.astype(float)

    return compute


def _nanreduce(fn, var: xr.DataArray) -> np.ndarray:
    """``fn`` over time per point; an all-NaN (failed) point gives NaN without a warning."""
    values = var.transpose("point", "time").values
    ok = np.isfinite(values).any(axis=1)
    out = np.full(values.shape[0], np.nan)
    if ok.any():
        out[ok] = fn(values[ok], axis=1)
    return out


def _log10_final_cells(ds, cache):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.maximum(ds["tumour_cells"].isel(time=-1).values.astype(float), 1.0))


SUMMARIES: dict[str, Summary] = {
    s.name: s
    for s in (
        Summary(
            "best_change_pct",
            ("tumour_diameter",),
            "%",
            "smallest tumour diameter at a RECIST scan after baseline, up to the first PD scan, as % change from "
            "baseline (moa.analysis.best_percent_change)",
            _best_change,
        ),
        Summary(
            "time_to_progression_days",
            ("tumour_diameter",),
            "day",
            "first RECIST scan with progressive disease (NaN: no progression by the end of the run)",
            _progression_day,
        ),
        Summary(
            "objective_response",
            ("tumour_diameter",),
            "1",
            "1 if the RECIST best overall response is CR or PR, else 0",
            _objective_response,
        ),
        Summary(
            "final_diameter_mm",
            ("tumour_diameter",),
            "mm",
            "tumour diameter at the last output time",
            _final("tumour_diameter"),
        ),
        Summary(
            "min_diameter_mm",
            ("tumour_diameter",),
            "mm",
            "smallest tumour diameter over the run",
            lambda ds, cache: _nanreduce(np.nanmin, ds["tumour_diameter"]),
        ),
        Summary(
            "log10_final_tumour_cells",
            ("tumour_cells",),
            "1",
            "log10 of the viable tumour cells at the last output time (floored at one cell)",
            _log10_final_cells,
        ),
        Summary(
            "peak_t_eff", ("t_eff",), "cell", "largest number of tumour effector T cells over the run", _peak("t_eff")
        ),
        Summary(
            "peak_cd137_signal",
            ("cd137_signal",),
            "1",
            "largest 4-1BB signal of tumour T cells over the run",
            _peak("cd137_signal"),
        ),
    )
}


def needed_variables(summaries) -> list[str]:
    """The model variables the named summaries read."""
    return list(dict.fromkeys(v for s in summaries for v in SUMMARIES[s].needs))


def compute_summaries(ds: xr.Dataset, summaries) -> dict[str, np.ndarray]:
    """``{name: values per point}`` for the named summaries of ``ds`` (dims ``point``, ``time``)."""
    cache: dict = {}
    return {name: np.asarray(SUMMARIES[name].compute(ds, cache), dtype=float) for name in summaries}
