"""The host's work around the solver, kept cheap without changing answers: the parameter digest of a batch,
and inputs handed to the compiled backends without copies."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from moa.parameters import load_parameters
from moa.solvers.rodas4.numba_kernels import checked_batch


def _digest_as_json_lists(params) -> str:
    """The digest's original formula, every value as a JSON number or list (15 decimals)."""
    payload = {k: np.asarray(params[k]).round(15).tolist() for k in sorted(params)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def test_digest_of_single_values_is_the_original_json_formula():
    params = load_parameters()
    assert params.digest() == _digest_as_json_lists(params)
    changed = params.with_values({"kd_pdl1_bsab": float(params["kd_pdl1_bsab"]) * (1 + 1e-9)})
    assert changed.digest() != params.digest()


def test_batched_digest_sees_every_sample_and_ignores_noise_below_its_rounding():
    params = load_parameters()
    base = np.linspace(0.5, 1.5, 1000)
    digest = params.with_values({"kd_pdl1_bsab": base}).digest()
    assert digest == params.with_values({"kd_pdl1_bsab": base.copy()}).digest()  # stable
    bumped = base.copy()
    bumped[777] *= 1 + 1e-12
    assert params.with_values({"kd_pdl1_bsab": bumped}).digest() != digest  # one sample, 1e-12 relative
    assert params.with_values({"kd_pdl1_bsab": base[::-1].copy()}).digest() != digest  # sample order matters
    assert params.with_values({"kd_pdl1_bsab": base[:-1]}).digest() != digest  # and the batch size
    tiny = base.copy()
    tiny[0] = 0.5 + 2.0**-53  # below the 15 decimals the digest rounds to
    assert tiny[0] != base[0]
    assert params.with_values({"kd_pdl1_bsab": tiny}).digest() == digest


def test_compiled_backends_take_c_ordered_float_inputs_without_a_copy():
    Y = np.random.default_rng(0).random((4, 50))
    P = np.random.default_rng(1).random((3, 50))
    _, _, Y0, P0, t_out, atol, k0 = checked_batch(4, 0.0, 1.0, Y, P, [0.0, 0.5, 1.0], 1e-9)
    assert np.shares_memory(Y0, Y) and np.shares_memory(P0, P)
    assert k0 == 1 and atol.shape == (4,)
    # other layouts and dtypes are copied into C-ordered float64, values unchanged
    _, _, Yf, Pi, *_ = checked_batch(4, 0.0, 1.0, np.asfortranarray(Y), np.ones((3, 50), dtype=int), [1.0], 1e-9)
    assert Yf.flags.c_contiguous and not np.shares_memory(Yf, Y) and np.array_equal(Yf, Y)
    assert Pi.dtype == np.float64 and Pi.flags.c_contiguous
