"""Parity of the normal equation: every method in every framework against ``numpy.linalg.lstsq``.

The yardstick is NumPy's ``lstsq`` in float64 on the data as the run sees them (see
:func:`jaxtut.tutorials.normal_equation.lstsq_reference`). Tolerances, absolute on ``beta``:
1e-5 in float32 and 1e-12 in float64, the acceptance bands. The data's ``X`` has condition number
about 3-5 for these seeds, so the measured errors are below 7e-7 and 2e-15 (CPU and H100 GPU): the
bands leave a factor of 15 and 500 for other BLAS/LAPACK builds. torch's CPU ``lstsq`` (gelsy) is
not bitwise reproducible from run to run (threaded BLAS), which is one more reason for bands
rather than equality.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from jaxtut.configs import NormalEquationConfig
from jaxtut.torch_ref import normal_equation as torch_ne
from jaxtut.tutorials import normal_equation as jax_ne

TOL = {"float32": 1e-5, "float64": 1e-12}
SEEDS = [0, 1, 2]
RUNNERS = {"jax": jax_ne.run, "numpy": jax_ne.run_numpy, "torch": torch_ne.run}


@functools.cache
def result(framework: str, dtype: str, seed: int):
    return RUNNERS[framework](NormalEquationConfig(dtype=dtype, seed=seed))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", jax_ne.METHODS)
@pytest.mark.parametrize("framework", list(RUNNERS))
def test_method_agrees_with_lstsq(framework, method, dtype, seed):
    r = result(framework, dtype, seed)
    beta = np.asarray(r.extras["betas"][method])
    reference = jax_ne.lstsq_reference(
        np.asarray(r.extras["x"], dtype), np.asarray(r.extras["y"], dtype)
    )
    assert beta.shape == (5,)
    # Tolerance: the acceptance band (module docstring): measured errors are 30-500x smaller.
    np.testing.assert_allclose(beta, reference, rtol=0, atol=TOL[dtype])
    assert r.metrics[f"max_abs_diff_{method}"] <= TOL[dtype]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", jax_ne.METHODS)
def test_jax_matches_torch_on_the_same_data(method, dtype):
    # Tolerance: the acceptance band; each side is within ~3e-7 (float32) / ~2e-15 (float64) of
    # the reference, so they agree with each other to twice that.
    rj, rt = result("jax", dtype, 0), result("torch", dtype, 0)
    assert rj.extras["x"] == rt.extras["x"] and rj.extras["y"] == rt.extras["y"]
    np.testing.assert_allclose(
        np.asarray(rj.extras["betas"][method]),
        np.asarray(rt.extras["betas"][method]),
        rtol=0,
        atol=TOL[dtype],
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_params_and_dtypes(dtype):
    for framework in RUNNERS:
        r = result(framework, dtype, 0)
        assert set(r.params) == {"beta"} and r.params["beta"].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(r.params["beta"], r.extras["betas"]["inverse"])
        assert r.framework == framework and r.losses.size == 0


def test_one_data_set_for_every_framework():
    x, y = jax_ne.normal_equation_data(NormalEquationConfig())
    assert x.shape == (10, 5) and y.shape == (10,) and x.dtype == np.float32
    assert np.all(x[:, 0] == 1.0)
    x64, y64 = jax_ne.normal_equation_data(NormalEquationConfig(dtype="float64"))
    np.testing.assert_array_equal(x, x64.astype(np.float32))  # float32 = float64 rounded once
    np.testing.assert_array_equal(y, y64.astype(np.float32))
    for framework in RUNNERS:
        assert result(framework, "float32", 0).extras["x"] == x.tolist()
