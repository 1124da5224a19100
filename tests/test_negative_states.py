"""``moa.simulate.negative_states``: the samples with a species below solver noise, found without copies of the
outputs (it runs on every simulation), against a direct reading of its rule."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from moa.simulate import NEGATIVE_NOISE_ATOL, NEGATIVE_NOISE_REL, NOISE_ATOL_FLOOR, negative_states


def _by_the_rule(model, t_out, Y_out, atol):
    """The rule read literally: NaN counts as 0 for the test and is left out of max_t |y|."""
    out = {}
    T, n, N = Y_out.shape
    for k in range(N):
        for j in range(n):
            y = Y_out[:, j, k]
            finite = y[~np.isnan(y)]
            scale = float(np.max(np.abs(finite))) if finite.size else 0.0
            limit = -(NEGATIVE_NOISE_ATOL * max(atol, NOISE_ATOL_FLOOR) + NEGATIVE_NOISE_REL * scale)
            if np.any(np.nan_to_num(y, nan=0.0) < limit):
                i = int(np.nanargmin(y))
                s = model.species[j]
                out[k] = (
                    f"species {s.name} = {y[i]:.6g} {s.unit} at t={t_out[i]:g} day is negative beyond solver "
                    f"noise (tolerance {-limit:.3g} {s.unit}); check the rate terms and parameters"
                )
                break
    return out


def test_negative_states_match_the_rule():
    rng = np.random.default_rng(5)
    model = SimpleNamespace(species=[SimpleNamespace(name=f"s{j}", unit=u) for j, u in enumerate(["nM", "cell", "1"])])
    T, n, N = 9, 3, 40
    t_out = np.arange(T, dtype=float)
    Y = rng.lognormal(0.0, 3.0, (T, n, N))
    Y[rng.random((T, n, N)) < 0.15] = np.nan  # failed outputs
    noise = -1e-12 * rng.random((T, n, N))  # within solver noise: not reported
    Y = np.where(rng.random((T, n, N)) < 0.1, noise, Y)
    Y[:, 1, 7] = np.nan  # a species with no finite output at all
    Y[4, 2, 3] = -0.5 * np.nanmax(np.abs(Y[:, 2, 3]))  # beyond noise: reported
    Y[2, 0, 11], Y[6, 1, 11] = -0.25 * np.nanmax(np.abs(Y[:, 0, 11])), -2e3  # two species below: s0 is named
    Y[:, 0, 20] = -1.0  # only negative values, all below
    for atol in (1e-9, 1e-3):
        found = negative_states(model, t_out, Y, atol)
        assert found == _by_the_rule(model, t_out, Y, atol)
        assert {3, 11, 20} <= set(found)
        assert found[11].startswith("species s0 = -") and " nM at t=2 day" in found[11]
    assert negative_states(model, t_out, np.abs(np.nan_to_num(Y)), 1e-9) == {}
