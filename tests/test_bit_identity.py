"""Full-model trajectories are bit-identical to the stored reference (``tests/baselines/trajectory_reference.py``):
numba and numpy Rodas4, three parameter sets, 60 days. Stored before the engine and solvers were moved (issue 15)
and stored again once, deliberately, when the quasi-steady start changed (each set relaxes on its own, compiled;
states moved by up to 2.5e-3 relative)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.baselines.trajectory_reference import REFERENCE_PATH, trajectories

REFERENCE = dict(np.load(REFERENCE_PATH))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_full_model_trajectories_are_bit_identical_to_the_reference(backend):
    if backend == "numba":
        from moa.solvers.rodas4 import numba_kernels as jit

        if not jit.available():
            pytest.skip("numba is not installed (or MOA_NO_JIT is set)")
    got = trajectories(backend)
    assert (REFERENCE[f"{backend}_status"] == 0).all()  # the reference is a run that succeeded
    np.testing.assert_array_equal(got["time"], REFERENCE[f"{backend}_time"])
    np.testing.assert_array_equal(got["status"], REFERENCE[f"{backend}_status"])
    assert np.array_equal(got["states"], REFERENCE[f"{backend}_states"]), (
        f"{backend}: largest difference {np.nanmax(np.abs(got['states'] - REFERENCE[backend + '_states'])):.3g}"
    )


def test_the_reference_is_a_real_run_and_the_two_backends_agree_to_rounding():
    """The comparison above can fail: the stored states move, and the backends differ only by rounding."""
    a, b = REFERENCE["numba_states"], REFERENCE["numpy_states"]
    assert a.shape == b.shape == (3, a.shape[1], 61)  # (sample, species, time)
    assert np.isfinite(a).all() and not np.array_equal(a[..., 0], a[..., -1])
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
