"""The quasi-steady start (:func:`moa.steady_state.quasi_steady_state`): each parameter set relaxes on its own,
the compiled and numpy integrations agree, held states stay where they were, and it reaches a steady state."""

from __future__ import annotations

import numpy as np
import pytest

from moa.codegen import compile_model
from moa.mechanisms.tumour import CLONES
from moa.scenarios import scenario
from moa.solvers.rodas4 import numba_kernels
from moa.steady_state import quasi_steady_state
from moa.symbolic.named_models import full_model

needs_numba = pytest.mark.skipif(not numba_kernels.available(), reason="numba is not installed (or MOA_NO_JIT)")


@pytest.fixture(scope="module")
def patients():
    """Six full-model parameter sets of hot TNBC, differing in growth, priming and exhaustion."""
    model = full_model()
    c = compile_model(model)
    params, _ = scenario("untreated", "hot_tnbc", 28.0)
    rng = np.random.default_rng(7)
    params = params.with_values(
        {
            "tumour_growth_rate": rng.uniform(1e-3, 5e-3, 6),
            "priming_rate_max": params["priming_rate_max"] * rng.uniform(0.5, 2.0, 6),
            "exhaustion_rate": params["exhaustion_rate"] * rng.uniform(0.5, 2.0, 6),
        }
    )
    P = np.vstack([params.matrix(model.parameter_names), np.zeros((len(model.inputs), 6))])
    return model, c, P


def test_a_set_relaxes_the_same_alone_as_in_a_batch(patients):
    """A set's start depends only on its parameters: the whole batch and a sub-batch give identical states."""
    model, _, P = patients
    whole = quasi_steady_state(model, P, backend="numpy")
    part = quasi_steady_state(model, P[:, [4, 1]], backend="numpy")
    assert np.array_equal(part.y, whole.y[:, [4, 1]])
    assert np.array_equal(part.days_each, whole.days_each[[4, 1]])
    assert whole.converged.all()


def test_each_set_stops_at_the_first_chunk_where_it_is_steady(patients):
    """Sets stop at their own multiple of chunk_days, the longest one is ``days``; every relaxed state then
    changes by less than tol_per_day of itself per day, and the held tumour clones never moved."""
    model, c, P = patients
    q = quasi_steady_state(model, P, backend="numpy", chunk_days=10.0)
    assert np.all(q.days_each % 10.0 == 0) and q.days == q.days_each.max()
    assert np.all(q.max_relative_rate_per_day <= 1e-4)
    held = [c.species_names.index(s) for s in CLONES]
    np.testing.assert_array_equal(q.y[held], c.initial_T(P)[held])
    rate = c.rhs_T(0.0, q.y, P)
    free = np.setdiff1d(np.arange(c.n_species), held)
    assert np.all(np.abs(rate[free]) <= 1e-4 * (np.abs(q.y[free]) + 1e-9))


@needs_numba
def test_compiled_and_numpy_relaxations_agree(patients):
    """The compiled held-state kernels take the numpy Rodas4's steps: same days, states equal to rounding."""
    model, _, P = patients
    a = quasi_steady_state(model, P, backend="numba")
    b = quasi_steady_state(model, P, backend="numpy")
    assert a.backend == "numba" and b.backend == "numpy"
    np.testing.assert_array_equal(a.days_each, b.days_each)
    np.testing.assert_allclose(a.y, b.y, rtol=1e-8, atol=1e-12)


def test_bad_backend_is_refused_by_name(patients):
    model, _, P = patients
    with pytest.raises(ValueError, match=r"backend='gpu': allowed values are \('auto', 'numba', 'numpy', 'cuda'\)"):
        quasi_steady_state(model, P, backend="gpu")


def test_cuda_backend_without_a_gpu_names_the_missing_piece(patients):
    from moa.solvers.rodas4 import cuda

    if cuda.available():
        pytest.skip("this machine has a CUDA GPU (or the simulator is on)")
    model, _, P = patients
    with pytest.raises(RuntimeError, match="no CUDA driver or GPU|numba-cuda is not installed|numba is not installed"):
        quasi_steady_state(model, P, backend="cuda")


@needs_numba
def test_held_kernels_refuse_a_state_that_does_not_exist(patients):
    _, c, _ = patients
    with pytest.raises(ValueError, match="held=\\[999\\]"):
        numba_kernels.kernels_for_model(c, held=(999,))
