"""moa.sensitivity against known answers: Ishigami Sobol indices, PRCC of a Gaussian linear model,
Morris effects of a linear and of an interacting function; failed points, bad input, reproducible designs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.stats import qmc  # noqa: E402

from moa import sensitivity
from moa.report import plots  # noqa: E402

# ------------------------------------------------------------------------------------ Ishigami
# f(x) = sin x1 + a sin^2 x2 + b x3^4 sin x1, x_i ~ U(-pi, pi) (Ishigami & Homma 1990). Partial variances
# (Sobol' & Levitan 1999; Saltelli et al. 2010 Comput Phys Commun 181:259, section 5):
#   V1 = (1 + b pi^4 / 5)^2 / 2,  V2 = a^2 / 8,  V3 = 0,  V13 = 8 b^2 pi^8 / 225,
#   V  = a^2 / 8 + b pi^4 / 5 + b^2 pi^8 / 18 + 1/2,
#   S1 = (V1, V2, 0) / V,  ST = (V1 + V13, V2, V13) / V.
A_ISHIGAMI, B_ISHIGAMI = 7.0, 0.1
N_BASE = 4096


def ishigami(x_unit: np.ndarray, a: float = A_ISHIGAMI, b: float = B_ISHIGAMI) -> np.ndarray:
    """The Ishigami function of unit-cube points (rows), each input mapped to U(-pi, pi)."""
    x = -np.pi + 2.0 * np.pi * np.asarray(x_unit)
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def ishigami_indices(a: float = A_ISHIGAMI, b: float = B_ISHIGAMI) -> tuple[np.ndarray, np.ndarray]:
    """Analytic (S1, ST) of the Ishigami function."""
    v1 = 0.5 * (1.0 + b * np.pi**4 / 5.0) ** 2
    v2 = a**2 / 8.0
    v13 = 8.0 * b**2 * np.pi**8 / 225.0
    variance = a**2 / 8.0 + b * np.pi**4 / 5.0 + b**2 * np.pi**8 / 18.0 + 0.5
    return np.array([v1, v2, 0.0]) / variance, np.array([v1 + v13, v2, v13]) / variance


@pytest.fixture(scope="module")
def ishigami_run():
    x_unit = sensitivity.saltelli_design(N_BASE, 3, seed=1)
    y = ishigami(x_unit)
    return x_unit, y, sensitivity.sobol_indices(y, N_BASE, 3, names=["x1", "x2", "x3"])


def test_analytic_ishigami_values_are_what_the_literature_tabulates():
    first, total = ishigami_indices()
    np.testing.assert_allclose(first, [0.3139, 0.4424, 0.0], atol=1e-4)
    np.testing.assert_allclose(total, [0.5576, 0.4424, 0.2437], atol=1e-4)


def test_ishigami_analytic_indices_lie_inside_narrow_bootstrap_intervals(ishigami_run):
    _, _, ds = ishigami_run
    first, total = ishigami_indices()
    for name, exact in (("S1", first), ("ST", total)):
        low, high = ds[f"{name}_low"].values, ds[f"{name}_high"].values
        assert np.all(low <= exact) and np.all(exact <= high), (name, low, exact, high)
        assert np.all(high - low < 0.1), f"{name} intervals too wide to test anything: {high - low}"
        assert np.all(low <= ds[name].values) and np.all(ds[name].values <= high)
    assert ds["S1"].attrs["units"] == "1"
    assert list(ds["parameter"].values) == ["x1", "x2", "x3"]
    assert ds.attrs["n_dropped_base_rows"] == 0 and ds.attrs["n_used_base_rows"] == N_BASE


def test_point_estimates_equal_scipy_on_the_same_design(ishigami_run):
    _, y, ds = ishigami_run
    blocks = y.reshape(5, N_BASE)
    scipy_result = stats.sobol_indices(
        func={"f_A": blocks[0][None], "f_B": blocks[1][None], "f_AB": blocks[2:, None]}, n=N_BASE
    )
    np.testing.assert_allclose(ds["S1"].values, scipy_result.first_order, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds["ST"].values, scipy_result.total_order, rtol=0, atol=1e-12)


def test_scipy_on_its_own_samples_agrees_within_the_intervals(ishigami_run):
    """Two independent estimates agree when their 95% intervals overlap."""
    _, _, ds = ishigami_run
    uniform = stats.uniform(loc=-np.pi, scale=2 * np.pi)

    def vectorised(x):  # scipy passes (d, n) in the model's own coordinates
        return ishigami((x.T + np.pi) / (2 * np.pi))

    scipy_result = stats.sobol_indices(func=vectorised, n=N_BASE, dists=[uniform] * 3, rng=7)
    interval = scipy_result.bootstrap(confidence_level=0.95, n_resamples=200)
    for name, theirs, their_ci in (
        ("S1", scipy_result.first_order, interval.first_order.confidence_interval),
        ("ST", scipy_result.total_order, interval.total_order.confidence_interval),
    ):
        assert np.all(ds[f"{name}_low"].values <= their_ci.high), name
        assert np.all(their_ci.low <= ds[f"{name}_high"].values), name
        assert np.all(np.abs(ds[name].values - theirs) < 0.05), name


# ------------------------------------------------------------------------------------ design


def test_saltelli_design_is_a_b_and_ab_blocks_from_one_sobol_sequence():
    n_base, d = 16, 4
    design = sensitivity.saltelli_design(n_base, d, seed=5)
    assert design.shape == (n_base * (d + 2), d)
    assert design.min() >= 0.0 and design.max() < 1.0
    base = qmc.Sobol(2 * d, seed=5).random(n_base)
    a, b = design[:n_base], design[n_base : 2 * n_base]
    np.testing.assert_array_equal(a, base[:, :d])
    np.testing.assert_array_equal(b, base[:, d:])
    for i in range(d):
        ab = design[(2 + i) * n_base : (3 + i) * n_base]
        np.testing.assert_array_equal(ab[:, i], b[:, i])
        others = [j for j in range(d) if j != i]
        np.testing.assert_array_equal(ab[:, others], a[:, others])
        assert np.all(ab[:, i] != a[:, i])


def test_same_seed_same_design_other_seed_other_design():
    for design in (
        lambda seed: sensitivity.saltelli_design(32, 3, seed=seed),
        lambda seed: sensitivity.morris_design(5, 3, seed=seed),
    ):
        np.testing.assert_array_equal(design(2), design(2))
        assert not np.array_equal(design(2), design(3))


def test_bootstrap_is_reproducible_for_a_seed():
    y = ishigami(sensitivity.saltelli_design(64, 3, seed=0))
    first = sensitivity.sobol_indices(y, 64, 3, n_bootstrap=50, seed=4)
    again = sensitivity.sobol_indices(y, 64, 3, n_bootstrap=50, seed=4)
    other = sensitivity.sobol_indices(y, 64, 3, n_bootstrap=50, seed=5)
    assert first.identical(again)
    assert not np.array_equal(first["S1_low"].values, other["S1_low"].values)


# ------------------------------------------------------------------------------------ failed points


def test_failed_points_drop_their_base_row_from_every_block_and_are_counted():
    n_base, d = 256, 3
    y = ishigami(sensitivity.saltelli_design(n_base, d, seed=1))
    failed_rows = {0: 3, 1: 10, 2: 3, 4: 77}  # block -> base row: A row 3, B row 10, AB_1 row 3, AB_3 row 77
    broken = y.copy()
    for block, row in failed_rows.items():
        broken[block * n_base + row] = np.nan
    broken[3 * n_base + 200] = np.inf  # AB_2 row 200: an infinite output counts as failed too
    ds = sensitivity.sobol_indices(broken, n_base, d, n_bootstrap=100)
    dropped = sorted({3, 10, 77, 200})
    assert ds.attrs["n_failed_points"] == 5
    assert ds.attrs["n_dropped_base_rows"] == len(dropped)
    assert ds.attrs["n_used_base_rows"] == n_base - len(dropped)
    kept = np.setdiff1d(np.arange(n_base), dropped)
    blocks = y.reshape(d + 2, n_base)[:, kept]
    blocks = blocks - blocks[:2].mean()
    f_a, f_b, f_ab = blocks[0], blocks[1], blocks[2:]
    variance = np.var(blocks[:2])
    np.testing.assert_allclose(ds["S1"].values, np.mean(f_b * (f_ab - f_a), axis=1) / variance, atol=1e-12)
    np.testing.assert_allclose(ds["ST"].values, 0.5 * np.mean((f_a - f_ab) ** 2, axis=1) / variance, atol=1e-12)
    assert np.all(np.isfinite(ds["S1_low"].values))


def test_all_failed_is_an_error_and_a_constant_output_gives_nan():
    with pytest.raises(ValueError, match="y: only 0 of 8 base rows"):
        sensitivity.sobol_indices(np.full(8 * 5, np.nan), 8, 3)
    ds = sensitivity.sobol_indices(np.ones(8 * 5), 8, 3, n_bootstrap=10)
    assert np.all(np.isnan(ds["S1"].values)) and ds.attrs["output_variance"] == 0.0


def test_prcc_drops_failed_rows_and_counts_them():
    rng = np.random.default_rng(3)
    x = rng.random((200, 3))
    y = x @ np.array([1.0, -2.0, 0.5])
    broken = y.copy()
    broken[[5, 17, 90]] = np.nan
    ds = sensitivity.prcc(x, broken)
    assert ds.attrs["n_dropped_rows"] == 3 and ds.attrs["n_points"] == 197
    clean = sensitivity.prcc(np.delete(x, [5, 17, 90], axis=0), np.delete(y, [5, 17, 90]))
    np.testing.assert_allclose(ds["prcc"].values, clean["prcc"].values, atol=1e-12)


def test_morris_leaves_out_the_effects_a_failed_point_touches():
    n_traj, d = 6, 3
    x_unit = sensitivity.morris_design(n_traj, d, seed=1)
    y = x_unit @ np.array([1.0, 2.0, 3.0])
    y[1] = np.nan  # trajectory 0, second row: its two effects (into and out of it) are lost
    ds = sensitivity.morris_effects(x_unit, y, n_traj, d)
    assert ds.attrs["n_failed_points"] == 1
    assert int(ds["n_effects"].sum()) == n_traj * d - 2
    np.testing.assert_allclose(ds["mu"].values, [1.0, 2.0, 3.0], rtol=1e-12)


# ------------------------------------------------------------------------------------ PRCC


def population_prcc(coefficients: np.ndarray, noise_sd: float) -> np.ndarray:
    """PRCC of y = sum b_i x_i + e with independent standard-normal x_i and e ~ N(0, noise_sd^2).

    PRCC is the partial correlation computed from the rank (Spearman) correlation matrix. For jointly
    normal variables with Pearson correlation r the Spearman correlation is (6 / pi) asin(r / 2)
    (Pearson 1907; Kruskal 1958, J Am Stat Assoc 53:814); the inputs are mutually uncorrelated, each
    correlates with y by r_i = b_i / sd(y); the partial correlations follow from the inverse matrix.
    """
    d = len(coefficients)
    r_xy = coefficients / np.sqrt(np.sum(coefficients**2) + noise_sd**2)
    spearman = np.eye(d + 1)
    spearman[:d, d] = spearman[d, :d] = 6.0 / np.pi * np.arcsin(r_xy / 2.0)
    precision = np.linalg.inv(spearman)
    return -precision[:d, d] / np.sqrt(np.diag(precision)[:d] * precision[d, d])


def test_prcc_of_a_linear_model_matches_the_analytic_partial_rank_correlation():
    coefficients, noise_sd, n = np.array([2.0, -1.0, 0.5, 0.0]), 0.5, 2000
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, 4))
    y = x @ coefficients + noise_sd * rng.standard_normal(n)
    ds = sensitivity.prcc(x, y, names=["strong", "negative", "weak", "none"])
    exact = population_prcc(coefficients, noise_sd)
    assert np.all(ds["low"].values <= exact) and np.all(exact <= ds["high"].values), (ds, exact)
    assert np.all(ds["high"].values - ds["low"].values < 0.1)
    np.testing.assert_array_equal(np.sign(ds["prcc"].values[:3]), [1, -1, 1])
    assert ds["low"].sel(parameter="none") < 0 < ds["high"].sel(parameter="none")
    assert np.all(ds["p_value"].values[:3] < 1e-6) and ds["p_value"].sel(parameter="none") > 0.01
    # the rank correlation is not the Pearson one: the analytic value above is the right target
    pearson_partial = coefficients[0] / np.sqrt(coefficients[0] ** 2 + noise_sd**2)
    assert abs(exact[0] - pearson_partial) > 0.01


def test_prcc_equals_the_partial_correlation_from_the_inverse_rank_correlation_matrix():
    rng = np.random.default_rng(2)
    x = rng.random((300, 5))
    y = np.exp(3 * x[:, 0]) - x[:, 1] * x[:, 2] + 0.3 * rng.standard_normal(300)
    ranks = np.column_stack([stats.rankdata(c) for c in np.column_stack([x, y]).T])
    precision = np.linalg.inv(np.corrcoef(ranks, rowvar=False))
    expected = -precision[:5, 5] / np.sqrt(np.diag(precision)[:5] * precision[5, 5])
    ds = sensitivity.prcc(x, y)
    np.testing.assert_allclose(ds["prcc"].values, expected, atol=1e-10)
    dof = 300 - 2 - 4
    t = expected * np.sqrt(dof / (1 - expected**2))
    np.testing.assert_allclose(ds["p_value"].values, 2 * stats.t.sf(np.abs(t), dof), rtol=1e-8)
    half = stats.norm.ppf(0.975) * np.sqrt((1 + expected**2 / 2) / (300 - 3 - 4))
    np.testing.assert_allclose(ds["high"].values, np.tanh(np.arctanh(expected) + half), atol=1e-10)


# ------------------------------------------------------------------------------------ Morris


def test_morris_design_moves_one_parameter_by_delta_per_step_on_the_grid():
    n_traj, d, levels = 20, 5, 6
    design = sensitivity.morris_design(n_traj, d, levels=levels, seed=0)
    assert design.shape == (n_traj * (d + 1), d)
    grid = design * (levels - 1)
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-12)
    assert design.min() >= 0.0 and design.max() <= 1.0
    steps = np.diff(design.reshape(n_traj, d + 1, d), axis=1)
    moved = steps != 0
    assert np.all(moved.sum(axis=2) == 1) and np.all(moved.sum(axis=1) == 1)
    np.testing.assert_allclose(np.abs(steps[moved]), levels / (2 * (levels - 1)), rtol=1e-12)


def test_morris_on_a_linear_function_gives_mu_star_equal_to_slope_times_range():
    lower, upper = np.array([0.0, 10.0, -1.0, 1e-3]), np.array([2.0, 50.0, 1.0, 5e-3])
    slopes = np.array([1.5, -0.25, 4.0, 0.0])  # output units per parameter unit
    n_traj = 8
    x_unit = sensitivity.morris_design(n_traj, 4, seed=3)
    values = lower + x_unit * (upper - lower)
    ds = sensitivity.morris_effects(x_unit, values @ slopes + 7.0, n_traj, 4, names=["a", "b", "c", "d"])
    np.testing.assert_allclose(ds["mu_star"].values, np.abs(slopes) * (upper - lower), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds["mu"].values, slopes * (upper - lower), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds["sigma"].values, 0.0, atol=1e-12)
    assert np.all(ds["n_effects"].values == n_traj)


def test_morris_sigma_is_positive_only_for_interacting_inputs():
    n_traj = 12
    x_unit = sensitivity.morris_design(n_traj, 4, seed=4)
    y = 2.0 * x_unit[:, 0] + 5.0 * x_unit[:, 1] * x_unit[:, 2]  # x4 has no effect
    ds = sensitivity.morris_effects(x_unit, y, n_traj, 4)
    sigma = ds["sigma"].values
    assert sigma[1] > 0.1 and sigma[2] > 0.1
    np.testing.assert_allclose(sigma[[0, 3]], 0.0, atol=1e-12)
    np.testing.assert_allclose(ds["mu_star"].values[[0, 3]], [2.0, 0.0], atol=1e-12)


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: sensitivity.saltelli_design(100, 3, seed=0), "n_base=100"),
        (lambda: sensitivity.saltelli_design(0, 3, seed=0), "n_base=0"),
        (lambda: sensitivity.saltelli_design(8, 0, seed=0), "n_params=0"),
        (lambda: sensitivity.sobol_indices(np.zeros(39), 8, 3), "y: 39 rows, expected 40"),
        (lambda: sensitivity.sobol_indices(np.zeros((8, 5)), 8, 3), "y: shape"),
        (lambda: sensitivity.sobol_indices(np.zeros(40), 8, 3, confidence=0.0), "confidence=0.0"),
        (lambda: sensitivity.sobol_indices(np.zeros(40), 8, 3, confidence=1.0), "confidence=1.0"),
        (lambda: sensitivity.sobol_indices(np.zeros(40), 8, 3, confidence=95), "confidence=95"),
        (lambda: sensitivity.sobol_indices(np.zeros(40), 8, 3, names=["a", "b"]), "names"),
        (lambda: sensitivity.sobol_indices(np.zeros(40), 8, 3, names=["a", "b", "a"]), "names"),
        (lambda: sensitivity.sobol_indices(np.zeros(40), 8, 3, n_bootstrap=1), "n_bootstrap=1"),
        (lambda: sensitivity.prcc(np.zeros(10), np.zeros(10)), "x: shape"),
        (lambda: sensitivity.prcc(np.random.default_rng(0).random((10, 2)), np.zeros(9)), "y: 9 rows, expected 10"),
        (lambda: sensitivity.prcc(np.random.default_rng(0).random((4, 2)), np.arange(4.0)), "x: 4 finite rows"),
        (
            lambda: sensitivity.prcc(
                np.column_stack([np.arange(9.0), np.ones(9)]), np.arange(9.0), names=["k", "flat"]
            ),
            "flat",
        ),
        (
            lambda: sensitivity.prcc(np.random.default_rng(0).random((10, 2)), np.arange(10.0), confidence=-1),
            "confidence=-1",
        ),
        (lambda: sensitivity.morris_design(4, 3, levels=5), "levels=5"),
        (lambda: sensitivity.morris_design(0, 3), "n_trajectories=0"),
        (lambda: sensitivity.morris_effects(np.zeros((7, 3)), np.zeros(7), 2, 3), "x_unit: shape"),
        (
            lambda: sensitivity.morris_effects(sensitivity.saltelli_design(2, 3, 0)[:8], np.zeros(8), 2, 3),
            "x_unit: trajectory",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument.replace("(", r"\(").replace(")", r"\)")):
        call()


# ------------------------------------------------------------------------------------ figures


def test_tornado_and_sobol_bars_render_sorted_with_whiskers_and_labels(tmp_path, ishigami_run):
    _, _, sobol = ishigami_run
    rng = np.random.default_rng(0)
    x = rng.random((300, 3))
    tornado_data = sensitivity.prcc(
        x, -3 * x[:, 0] + x[:, 2] + 0.1 * rng.standard_normal(300), names=["strong_negative", "none", "positive"]
    )
    with plots.style():
        fig, (left, right) = plots.subplots(1, 2)
        sensitivity.plot_tornado(left, tornado_data)
        sensitivity.plot_sobol_bars(right, sobol)
        plots.panel_letters([left, right])
    # largest at the top (the last tick), whiskers drawn, units on the axis
    assert [t.get_text() for t in left.get_yticklabels()] == ["none", "positive", "strong_negative"]
    assert [t.get_text() for t in right.get_yticklabels()] == ["x3", "x2", "x1"]
    assert "(dimensionless)" in left.get_xlabel() and "(dimensionless)" in right.get_xlabel()
    assert len(left.patches) == 3 and len(right.patches) == 6
    assert sum(isinstance(c, ErrorbarContainer) for c in left.containers) == 1
    assert sum(isinstance(c, ErrorbarContainer) for c in right.containers) == 2
    assert left.patches[-1].get_width() < 0  # strongest PRCC is negative and drawn to the left
    paths = plots.save_figure(fig, tmp_path, "sensitivity_demo", "PRCC tornado and Sobol bars of test functions.")
    assert paths["png"].read_bytes().startswith(b"\x89PNG")
    plt.close("all")
