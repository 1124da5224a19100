"""Global sensitivity of a model output to its parameters: Sobol indices with bootstrap confidence
intervals, Morris elementary effects, and partial rank correlation coefficients (PRCC).

Each method pairs a *design* (points in the unit hypercube, which :mod:`moa.sweep` maps to parameter
values through each parameter's distribution) with an *analysis* of the outputs at those points,
as SALib pairs ``sample`` with ``analyze``::

    x_unit = saltelli_design(n_base=1024, n_params=len(names), seed=1)
    y = ...                                   # one output per row of x_unit, NaN where a point failed
    ds = sobol_indices(y, 1024, len(names), names=names)
    plot_sobol_bars(ax, ds)

* Sobol: first-order ``S1`` (Saltelli et al. 2010, Comput Phys Commun 181:259, Table 2 (b)) and
  total-order ``ST`` (Jansen 1999, Saltelli 2010 Table 2 (f)) from the A, B, AB_i design; confidence
  intervals by a percentile bootstrap over the base rows. Indices are fractions of the output's
  variance (unit "1").
* Morris: elementary effects along one-at-a-time trajectories on a ``levels``-point grid (Morris
  1991, Technometrics 33:161; ``mu_star`` from Campolongo et al. 2007, Environ Model Softw 22:1509).
* PRCC: the correlation of the ranks of one input and of the output once the ranks of the other
  inputs are regressed out of both (Marino et al. 2008, J Theor Biol 254:178); Fisher-z confidence
  interval (with Bonett & Wright's variance for rank correlations) and t-test p-value.

Failed points (NaN output) never stop an analysis: each function drops what a failed point
touches, says how in its docstring and counts it in ``attrs``. Everything here is pure
numpy/scipy and deterministic given its ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy import stats
from scipy.stats import qmc

from .report import plots

__all__ = [
    "saltelli_design",
    "sobol_indices",
    "morris_design",
    "morris_effects",
    "prcc",
    "plot_tornado",
    "plot_sobol_bars",
]

#: Bar colours of the sensitivity figures (Okabe-Ito; colour-blind safe): first vs total order,
#: positive vs negative correlation.
FIRST_ORDER_COLOUR = "#56b4e9"
TOTAL_ORDER_COLOUR = "#0072b2"
POSITIVE_COLOUR = "#d55e00"
NEGATIVE_COLOUR = "#0072b2"


# ---------------------------------------------------------------------------------------- checks


def _positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r}: must be an integer >= {minimum}")
    return int(value)


def _power_of_two(name: str, value) -> int:
    value = _positive_int(name, value)
    if value & (value - 1):
        raise ValueError(
            f"{name}={value}: must be a power of 2 (Sobol points are balanced only then), "
            f"e.g. {1 << (value.bit_length() - 1)} or {1 << value.bit_length()}"
        )
    return value


def _confidence(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < value < 1.0:
        raise ValueError(f"confidence={value!r}: must be a number strictly between 0 and 1, e.g. 0.95")
    return float(value)


def _names(names: Sequence[str] | None, n_params: int) -> list[str]:
    """Parameter names (``x0, x1, ...`` by default), one per parameter, unique."""
    if names is None:
        return [f"x{i}" for i in range(n_params)]
    names = [str(name) for name in names]
    if len(names) != n_params:
        raise ValueError(f"names: {len(names)} given, n_params={n_params}: need one name per parameter")
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"names: {duplicates} appear more than once: names must be unique")
    return names


def _vector(name: str, value, length: int | None = None) -> np.ndarray:
    """``value`` as a 1-D float array (of ``length`` rows when given)."""
    array = np.asarray(value, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name}: shape {array.shape}: must be one-dimensional (one value per design row)")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name}: {array.shape[0]} rows, expected {length}")
    return array


# ---------------------------------------------------------------------------------------- Sobol


def saltelli_design(n_base: int, n_params: int, seed: int) -> np.ndarray:
    """Points in the unit hypercube for :func:`sobol_indices`: shape ``(n_base * (n_params + 2), n_params)``.

    Rows are blocks ``[A, B, AB_1, ..., AB_d]`` of ``n_base`` rows each, where ``AB_i`` is ``A``
    with column ``i`` taken from ``B`` (Saltelli et al. 2010, section 3). ``A`` and ``B`` are the
    first and last ``d`` columns of one scrambled Sobol sequence of dimension ``2 d``
    (``scipy.stats.qmc.Sobol(2 * d, seed=seed)``), so all points lie in [0, 1) and the same seed
    gives the same design. ``n_base`` must be a power of 2.
    """
    n_base = _power_of_two("n_base", n_base)
    n_params = _positive_int("n_params", n_params)
    base = qmc.Sobol(2 * n_params, scramble=True, seed=seed).random(n_base)
    a, b = base[:, :n_params], base[:, n_params:]
    blocks = [a, b]
    for i in range(n_params):
        ab = a.copy()
        ab[:, i] = b[:, i]
        blocks.append(ab)
    return np.concatenate(blocks, axis=0)


def _saltelli_jansen(f_a: np.ndarray, f_b: np.ndarray, f_ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First- and total-order indices along the last axis (base rows).

    ``f_a``, ``f_b``: (..., n); ``f_ab``: (d, ..., n); outputs already centred. The variance is that of
    ``A`` and ``B`` together, as in ``scipy.stats.sobol_indices``. Zero variance gives NaN.
    """
    variance = np.var(np.concatenate([f_a, f_b], axis=-1), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.mean(f_b * (f_ab - f_a), axis=-1) / variance  # Saltelli 2010 Table 2 (b)
        total = 0.5 * np.mean((f_a - f_ab) ** 2, axis=-1) / variance  # Jansen 1999, Table 2 (f)
    return first, total


def sobol_indices(
    y: np.ndarray,
    n_base: int,
    n_params: int,
    *,
    names: Sequence[str] | None = None,
    n_bootstrap: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """First- and total-order Sobol indices (unit "1") of the output ``y`` of a :func:`saltelli_design`.

    ``y``: one value per design row, in the design's row order (``n_base * (n_params + 2)`` values).
    ``S1`` is the Saltelli 2010 estimator ``mean(f(B) (f(AB_i) - f(A))) / V``, ``ST`` the Jansen
    estimator ``mean((f(A) - f(AB_i))^2) / (2 V)``, with ``V`` the variance of ``f(A)`` and ``f(B)``
    together and outputs centred on their mean first (so the point estimates equal
    ``scipy.stats.sobol_indices`` on the same values). ``S1_low``/``S1_high`` and
    ``ST_low``/``ST_high`` bound the ``confidence`` percentile interval of ``n_bootstrap`` bootstrap
    resamples of the base rows (``seed`` seeds the resampling). A bootstrap treats the points as
    random, so for a scrambled Sobol design the intervals are conservative.

    Failed points: a base row ``i`` whose value is not finite (NaN, ±inf) in ``A``, ``B`` or any
    ``AB_j`` is dropped from every block, since each estimator term pairs row ``i`` across blocks.
    ``attrs`` report ``n_failed_points`` (design rows with a non-finite value), ``n_dropped_base_rows``
    and ``n_used_base_rows``. A constant output (zero variance) gives NaN indices, not an error.
    """
    n_base = _positive_int("n_base", n_base)
    n_params = _positive_int("n_params", n_params)
    n_bootstrap = _positive_int("n_bootstrap", n_bootstrap, minimum=2)
    confidence = _confidence(confidence)
    names = _names(names, n_params)
    y = _vector("y", y, n_base * (n_params + 2))

    blocks = y.reshape(n_params + 2, n_base)
    failed = ~np.isfinite(blocks)
    kept = ~failed.any(axis=0)
    n_used = int(kept.sum())
    if n_used < 2:
        raise ValueError(
            f"y: only {n_used} of {n_base} base rows are finite in every block; "
            "need at least 2 to estimate Sobol indices"
        )
    blocks = blocks[:, kept]
    blocks = blocks - blocks[:2].mean()
    f_a, f_b, f_ab = blocks[0], blocks[1], blocks[2:]

    first, total = _saltelli_jansen(f_a, f_b, f_ab)
    rng = np.random.default_rng(seed)
    resample = rng.integers(0, n_used, size=(n_bootstrap, n_used))
    f_a_boot, f_b_boot = f_a[resample], f_b[resample]
    first_boot = np.empty((n_params, n_bootstrap))
    total_boot = np.empty((n_params, n_bootstrap))
    for i in range(n_params):  # one parameter at a time: memory independent of n_params
        first_boot[i], total_boot[i] = _saltelli_jansen(f_a_boot, f_b_boot, f_ab[i][resample])
    tails = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
    first_low, first_high = np.quantile(first_boot, tails, axis=1)
    total_low, total_high = np.quantile(total_boot, tails, axis=1)

    def index(values, what):
        return xr.DataArray(values, dims="parameter", attrs={"units": "1", "long_name": what})

    return xr.Dataset(
        {
            "S1": index(first, "first-order Sobol index (Saltelli 2010)"),
            "S1_low": index(first_low, f"lower end of the {confidence:.0%} bootstrap interval of S1"),
            "S1_high": index(first_high, f"upper end of the {confidence:.0%} bootstrap interval of S1"),
            "ST": index(total, "total-order Sobol index (Jansen 1999)"),
            "ST_low": index(total_low, f"lower end of the {confidence:.0%} bootstrap interval of ST"),
            "ST_high": index(total_high, f"upper end of the {confidence:.0%} bootstrap interval of ST"),
        },
        coords={"parameter": names},
        attrs={
            "method": "sobol",
            "n_base": n_base,
            "n_params": n_params,
            "n_bootstrap": n_bootstrap,
            "confidence": confidence,
            "bootstrap_seed": seed,
            "n_failed_points": int(failed.sum()),
            "n_dropped_base_rows": n_base - n_used,
            "n_used_base_rows": n_used,
            "output_variance": float(np.var(blocks[:2])),
        },
    )


# ---------------------------------------------------------------------------------------- Morris


def _morris_step_levels(levels: int) -> int:
    """The Morris jump in grid steps: ``levels / 2``, i.e. ``delta = levels / (2 (levels - 1))`` in
    unit-cube coordinates (Morris 1991's recommended choice; each grid level is then equally likely)."""
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2 or levels % 2:
        raise ValueError(
            f"levels={levels!r}: must be an even integer >= 2 (so every grid point can move by "
            "delta = levels / (2 (levels - 1)) without leaving [0, 1])"
        )
    return int(levels) // 2


def morris_design(n_trajectories: int, n_params: int, *, levels: int = 4, seed: int = 0) -> np.ndarray:
    """Morris (1991) one-at-a-time trajectories in [0, 1]: shape ``(n_trajectories * (n_params + 1), n_params)``.

    Each trajectory is ``n_params + 1`` consecutive rows: a random start on the grid
    ``{0, 1/(levels-1), ..., 1}``, then each parameter in a random order moves once by
    ``delta = levels / (2 (levels - 1))``, up when that stays in [0, 1] and down otherwise (with an
    even number of levels exactly one of the two is possible). Same seed, same design.
    """
    n_trajectories = _positive_int("n_trajectories", n_trajectories)
    n_params = _positive_int("n_params", n_params)
    step = _morris_step_levels(levels)
    rng = np.random.default_rng(seed)
    grid = np.empty((n_trajectories, n_params + 1, n_params), dtype=np.int64)  # grid levels, exact integers
    grid[:, 0] = rng.integers(0, levels, size=(n_trajectories, n_params))
    order = np.argsort(rng.random((n_trajectories, n_params)), axis=1)  # a random permutation per trajectory
    rows = np.arange(n_trajectories)
    for k in range(n_params):
        grid[:, k + 1] = grid[:, k]
        moved = order[:, k]
        current = grid[rows, k, moved]
        grid[rows, k + 1, moved] = np.where(current + step <= levels - 1, current + step, current - step)
    return (grid / (levels - 1)).reshape(n_trajectories * (n_params + 1), n_params)


def morris_effects(
    x_unit: np.ndarray, y: np.ndarray, n_trajectories: int, n_params: int, *, names: Sequence[str] | None = None
) -> xr.Dataset:
    """Morris elementary-effect statistics of the output ``y`` at the rows of a :func:`morris_design`.

    An elementary effect is ``(y_after - y_before) / (x_after - x_before)`` for the one parameter
    that moved between two consecutive rows of a trajectory, in unit-cube coordinates: the change
    of ``y`` per full range of the parameter (units of ``y``). Per parameter: ``mu`` (mean effect,
    signed), ``mu_star`` (mean absolute effect, Campolongo 2007: the importance ranking),
    ``sigma`` (standard deviation, ddof 1: non-linearity or interaction; NaN with fewer than two
    effects) and ``n_effects``.

    Failed points: an effect whose ``y_before`` or ``y_after`` is not finite is left out, so a failed
    point costs at most two effects (the ones into and out of it); ``attrs["n_failed_points"]``
    counts the failed rows and ``n_effects`` how many effects each statistic rests on.
    """
    n_trajectories = _positive_int("n_trajectories", n_trajectories)
    n_params = _positive_int("n_params", n_params)
    names = _names(names, n_params)
    n_rows = n_trajectories * (n_params + 1)
    x_unit = np.asarray(x_unit, dtype=float)
    if x_unit.shape != (n_rows, n_params):
        raise ValueError(
            f"x_unit: shape {x_unit.shape}, expected (n_trajectories * (n_params + 1), n_params) = {(n_rows, n_params)}"
        )
    y = _vector("y", y, n_rows)

    steps = np.diff(x_unit.reshape(n_trajectories, n_params + 1, n_params), axis=1)  # (traj, step, param)
    moved = steps != 0
    if not (moved.sum(axis=2) == 1).all() or not (moved.sum(axis=1) == 1).all():
        bad = np.argwhere(moved.sum(axis=2) != 1)
        where = f"trajectory {bad[0][0]}, step {bad[0][1]}" if len(bad) else "a trajectory"
        raise ValueError(
            f"x_unit: {where} does not move exactly one parameter, or some parameter does not move "
            "exactly once per trajectory: not a morris_design in its row order"
        )
    changes = np.diff(y.reshape(n_trajectories, n_params + 1), axis=1)  # (traj, step)
    parameter_of_step = moved.argmax(axis=2)
    delta = np.take_along_axis(steps, parameter_of_step[..., None], axis=2)[..., 0]
    effects = np.empty((n_trajectories, n_params))
    np.put_along_axis(effects, parameter_of_step, changes / delta, axis=1)  # column j: parameter j's effect

    finite = np.isfinite(effects)
    counts = finite.sum(axis=0)
    masked = np.where(finite, effects, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = masked.sum(axis=0) / counts
        mu_star = np.abs(masked).sum(axis=0) / counts
        sigma = np.sqrt(np.where(finite, (effects - mu) ** 2, 0.0).sum(axis=0) / (counts - 1))
    sigma = np.where(counts >= 2, sigma, np.nan)
    mu = np.where(counts >= 1, mu, np.nan)
    mu_star = np.where(counts >= 1, mu_star, np.nan)

    def statistic(values, what):
        return xr.DataArray(
            values, dims="parameter", attrs={"units": "units of y per full parameter range", "long_name": what}
        )

    return xr.Dataset(
        {
            "mu": statistic(mu, "mean elementary effect"),
            "mu_star": statistic(mu_star, "mean absolute elementary effect (Campolongo 2007)"),
            "sigma": statistic(sigma, "standard deviation of the elementary effects"),
            "n_effects": xr.DataArray(
                counts, dims="parameter", attrs={"units": "1", "long_name": "finite elementary effects"}
            ),
        },
        coords={"parameter": names},
        attrs={
            "method": "morris",
            "n_trajectories": n_trajectories,
            "n_params": n_params,
            "n_failed_points": int((~np.isfinite(y)).sum()),
        },
    )


# ---------------------------------------------------------------------------------------- PRCC


def _residuals(targets: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Each column of ``targets`` less its least-squares fit on ``others`` and an intercept."""
    design = np.column_stack([np.ones(len(targets)), others])
    coefficients, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return targets - design @ coefficients


def prcc(x: np.ndarray, y: np.ndarray, *, names: Sequence[str] | None = None, confidence: float = 0.95) -> xr.Dataset:
    """Partial rank correlation coefficient (unit "1") of each input column of ``x`` (n, d) with ``y`` (n,).

    Inputs and output are rank-transformed (average ranks for ties); for input ``j`` the ranks of
    the other ``d - 1`` inputs are regressed out (least squares with intercept) of the ranks of
    ``x_j`` and of ``y``, and ``prcc`` is the correlation of the two residuals (Marino et al. 2008).
    With ``k = d - 1`` inputs controlled for: ``p_value`` is the two-sided t-test of zero correlation
    with ``n - 2 - k`` degrees of freedom; ``low``/``high`` bound the ``confidence`` Fisher-z interval
    ``tanh(atanh(r) -/+ z_q sqrt((1 + r^2 / 2) / (n - 3 - k)))``. The factor ``1 + r^2 / 2`` is Bonett &
    Wright's (2000, Psychometrika 65:23) variance of Fisher's z for a rank correlation: without it the
    interval of a strong PRCC is too narrow (measured: the 95% interval of a PRCC of 0.95 from 2,000
    Gaussian points missed the exact value in 10% of 400 seeds; with it in 5%).

    Failed points: rows with a non-finite ``y`` or ``x`` are dropped before ranking
    (``attrs["n_dropped_rows"]``). A constant ``y`` gives NaN coefficients; a constant input column
    is refused (its rank carries no information).
    """
    confidence = _confidence(confidence)
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"x: shape {x.shape}: must be two-dimensional (n points, d parameters)")
    y = _vector("y", y, x.shape[0])
    n_params = _positive_int("x columns", x.shape[1])
    names = _names(names, n_params)
    kept = np.isfinite(y) & np.isfinite(x).all(axis=1)
    x, y = x[kept], y[kept]
    n = int(kept.sum())
    controlled = n_params - 1
    dof = n - 2 - controlled
    if dof - 1 < 1:
        raise ValueError(
            f"x: {n} finite rows for {n_params} parameters: PRCC needs at least n_params + 3 = {n_params + 3}"
        )
    constant = [names[j] for j in range(n_params) if np.ptp(x[:, j]) == 0]
    if constant:
        raise ValueError(f"x: column(s) {constant} are constant over the finite rows: PRCC is undefined for them")

    x_rank = np.apply_along_axis(stats.rankdata, 0, x)
    y_rank = stats.rankdata(y)
    coefficient = np.empty(n_params)
    for j in range(n_params):
        others = np.delete(x_rank, j, axis=1)
        rx, ry = _residuals(np.column_stack([x_rank[:, j], y_rank]), others).T
        scale = np.sqrt(np.sum(rx * rx) * np.sum(ry * ry))
        coefficient[j] = np.sum(rx * ry) / scale if scale > 0 else np.nan
    coefficient = np.clip(coefficient, -1.0, 1.0)

    with np.errstate(divide="ignore", invalid="ignore"):
        t = coefficient * np.sqrt(dof / (1.0 - coefficient**2))
        z = np.arctanh(coefficient)
    p_value = 2.0 * stats.t.sf(np.abs(t), dof)
    half_width = stats.norm.ppf((1.0 + confidence) / 2.0) * np.sqrt((1.0 + coefficient**2 / 2.0) / (dof - 1))

    def column(values, what, units="1"):
        return xr.DataArray(values, dims="parameter", attrs={"units": units, "long_name": what})

    return xr.Dataset(
        {
            "prcc": column(coefficient, "partial rank correlation coefficient"),
            "low": column(np.tanh(z - half_width), f"lower end of the {confidence:.0%} Fisher-z interval"),
            "high": column(np.tanh(z + half_width), f"upper end of the {confidence:.0%} Fisher-z interval"),
            "p_value": column(p_value, "two-sided t-test of zero partial rank correlation"),
        },
        coords={"parameter": names},
        attrs={
            "method": "prcc",
            "n_points": n,
            "n_dropped_rows": int((~kept).sum()),
            "confidence": confidence,
            "degrees_of_freedom": dof,
            "interval": "Fisher z, Bonett-Wright variance (1 + r^2/2) / (n - 3 - k)",
        },
    )


# ---------------------------------------------------------------------------------------- figures


def _horizontal_bars(
    ax,
    values: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    positions: np.ndarray,
    height: float,
    colours,
    label: str | None = None,
):
    """Bars from 0 to ``values`` at ``positions`` with whiskers from ``low`` to ``high``."""
    whiskers = np.vstack([np.clip(values - low, 0, None), np.clip(high - values, 0, None)])
    return ax.barh(
        positions,
        values,
        height=height,
        color=colours,
        xerr=whiskers,
        label=label,
        error_kw={"ecolor": "0.2", "capsize": 3, "elinewidth": 1.2},
    )


def _interval_note(ds: xr.Dataset) -> str:
    """ ", 95% CI" for an axis label, from the dataset's ``confidence`` (empty when it has none)."""
    confidence = ds.attrs.get("confidence")
    return f", {confidence:.0%} CI" if confidence else ""


def plot_tornado(ax, prcc_ds: xr.Dataset):
    """PRCC tornado: one horizontal bar per parameter with its confidence interval as whiskers,
    largest ``|prcc|`` at the top, positive and negative bars in two colours. Returns ``ax``."""
    coefficient = prcc_ds["prcc"].values
    order = np.argsort(np.nan_to_num(np.abs(coefficient), nan=-1.0), kind="stable")  # ascending: top is last
    names = [str(name) for name in prcc_ds["parameter"].values[order]]
    values = coefficient[order]
    positions = np.arange(len(order))
    colours = [POSITIVE_COLOUR if value >= 0 else NEGATIVE_COLOUR for value in values]
    _horizontal_bars(ax, values, prcc_ds["low"].values[order], prcc_ds["high"].values[order], positions, 0.7, colours)
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set_yticks(positions, labels=names)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel(plots.label(f"PRCC{_interval_note(prcc_ds)}", "1"))
    return ax


def plot_sobol_bars(ax, sobol_ds: xr.Dataset):
    """Sobol bars: first-order ``S1`` and total-order ``ST`` per parameter as paired horizontal bars
    with their bootstrap intervals as whiskers, largest ``ST`` at the top. Returns ``ax``."""
    total = sobol_ds["ST"].values
    order = np.argsort(np.nan_to_num(total, nan=-np.inf), kind="stable")
    names = [str(name) for name in sobol_ds["parameter"].values[order]]
    positions = np.arange(len(order))
    height = 0.38
    _horizontal_bars(
        ax,
        total[order],
        sobol_ds["ST_low"].values[order],
        sobol_ds["ST_high"].values[order],
        positions + height / 2,
        height,
        TOTAL_ORDER_COLOUR,
        "total order $S_T$",
    )
    _horizontal_bars(
        ax,
        sobol_ds["S1"].values[order],
        sobol_ds["S1_low"].values[order],
        sobol_ds["S1_high"].values[order],
        positions - height / 2,
        height,
        FIRST_ORDER_COLOUR,
        "first order $S_1$",
    )
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set_yticks(positions, labels=names)
    ax.set_xlabel(plots.label(f"Sobol index{_interval_note(sobol_ds)}", "1"))
    ax.legend(loc="best")  # total order first, as its bar sits above the first-order one; placed where it hides least
    return ax
