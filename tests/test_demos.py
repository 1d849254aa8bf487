"""The JAX demonstrations on their own: tensors, autograd and the normal equation.

What ``run()`` returns (metrics, params, extras), the exact gradients, the trajectory facts, the
normal equation's acceptance bands, and that each compiled program is traced once per signature.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtut import registry
from jaxtut.configs import AutogradConfig, NormalEquationConfig, TensorsConfig
from jaxtut.train import TRACE_COUNTS
from jaxtut.tutorials import autograd, normal_equation, tensors

# --- tensors ------------------------------------------------------------------------------------


def test_tensors_run_result():
    r = tensors.run()
    assert (r.tutorial, r.framework, r.device) == ("tensors", "jax", "cpu:0")
    assert r.params == {} and r.losses.shape == (0,) and not r.diverged
    ops = {op["name"]: op for op in r.extras["operations"]}
    assert r.metrics["operations"] == len(ops) == 36
    assert r.metrics["view_16x1_sum"] == 136.0
    assert set(ops["tensor"]) == {"name", "code", "value", "dtype", "shape", "device", "kind"}
    r.to_json()  # serialisable


def test_tensors_deterministic_values():
    ops = {op.name: op for op in tensors.operations(seed=3)}
    assert (ops["tensor"].value, ops["tensor"].dtype) == ([1, 2, 3], "int64")
    assert ops["zeros_plus_2"].value == [[2.0] * 3] * 2 and ops["zeros_plus_2"].dtype == "float32"
    assert ops["ones"].value == [[1.0]] * 3
    assert ops["zeros_long"].value == [[0, 0]] * 5 and ops["zeros_long"].dtype == "int64"
    assert ops["size"].value == ops["shape"].value == [5, 2] and ops["numel"].value == 10
    assert ops["view_16x1"].value == [[i] for i in range(1, 17)]
    assert ops["dtype_double"].dtype == "float64" and ops["dtype_int"].dtype == "int32"
    y = tensors.numpy_inputs(3)["y"]
    np.testing.assert_array_equal(np.asarray(ops["add_operator"].value, np.float32), y)
    np.testing.assert_array_equal(np.asarray(ops["add_inplace"].value, np.float32), y + y)
    assert ops["item"].value == float(2 * y[0, 0]) and ops["item"].dtype == "float"
    assert ops["view_2x5"].value == (y + y).reshape(2, 5).tolist()
    assert ops["from_numpy_after_write"].value == [0.0] * 5  # a copy


def test_tensors_random_ops_follow_the_seed():
    a = {op.name: op for op in tensors.operations(seed=0)}
    b = {op.name: op for op in tensors.operations(seed=0)}
    c = {op.name: op for op in tensors.operations(seed=1)}
    for name in ("randn", "rand", "randint"):
        assert a[name].value == b[name].value
        assert a[name].value != c[name].value
    assert np.min(a["rand"].value) >= 0 and np.max(a["rand"].value) < 1


def test_tensors_float64_default():
    ops = {op.name: op for op in tensors.operations(dtype="float64")}
    assert ops["zeros_plus_2"].dtype == ops["rand"].dtype == ops["add_inplace"].dtype == "float64"
    assert ops["dtype_float"].dtype == "float32"  # torch.float is float32 whatever the default


def test_tensors_outside_x64_truncate_64_bit_types():
    # What operations() avoids by running under x64.
    with jax.enable_x64(False):
        assert jnp.array([1, 2, 3]).dtype == jnp.int32
        with pytest.warns(UserWarning):
            assert jnp.zeros(2, dtype=jnp.int64).dtype == jnp.int32


# --- autograd -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_autograd_run_result(dtype):
    r = autograd.run(AutogradConfig(dtype=dtype))
    assert (r.tutorial, r.framework) == ("autograd", "jax")
    assert r.metrics["grad_x"] == 4.5 and r.extras["grad_x"] == [[4.5, 4.5], [4.5, 4.5]]
    assert r.metrics["grad_w"] == 10.0 and r.extras["grad_w"] == [10.0]
    assert r.losses.shape == (100,) and len(r.extras["y"]) == 101
    assert r.params["y"].shape == (1,) and r.params["y"].dtype == np.dtype(dtype)
    assert r.metrics["first_overshoot_step"] == 21.0 and r.metrics["hits_target"] == 0.0
    assert r.compile_time_s is not None and r.wall_time_s > 0
    r.to_json()


def test_autograd_float32_trajectory():
    r = autograd.run()
    assert r.metrics["y_final"] == 4.999998092651367  # 5 - 2**-19, never 5.0
    assert r.metrics["oscillation_low"] == 4.999998092651367
    assert r.metrics["oscillation_high"] == pytest.approx(5.1, abs=3e-6)
    assert r.losses[0] == 2.0 and np.all(np.diff(r.losses[:21]) < 0)
    np.testing.assert_array_equal(
        np.abs(np.float32(5.0) - np.asarray(r.extras["y"][:-1], np.float32)), r.losses
    )


def test_autograd_compiles_once_per_signature():
    autograd.run()
    before = TRACE_COUNTS["autograd"]
    autograd.run()
    autograd.run(AutogradConfig(seed=5))  # a new w, same program
    assert TRACE_COUNTS["autograd"] == before


def test_torch_abs_gradient_convention():
    assert float(jax.grad(autograd.torch_abs)(0.0)) == 0.0
    assert float(jax.grad(jnp.abs)(0.0)) == 1.0
    assert float(jax.grad(autograd.torch_abs)(-3.0)) == -1.0
    assert float(autograd.torch_abs(-3.0)) == 3.0


def test_trajectory_facts_without_overshoot():
    facts = autograd.trajectory_facts(np.array([4.0, 4.5, 5.0, 5.0]), 5.0)
    assert facts["hits_target"] == 1.0 and facts["first_overshoot_step"] == -1.0
    assert np.isnan(facts["oscillation_low"]) and facts["y_final"] == 5.0


# --- normal equation ----------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "band"), [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("runner", [normal_equation.run, normal_equation.run_numpy])
def test_normal_equation_acceptance(runner, dtype, band):
    r = runner(NormalEquationConfig(dtype=dtype))
    assert r.metrics["max_abs_diff_vs_lstsq"] <= band
    for method in normal_equation.METHODS:
        assert r.metrics[f"max_abs_diff_{method}"] <= band
    assert r.params["beta"].shape == (5,) and r.params["beta"].dtype == np.dtype(dtype)
    assert r.losses.size == 0 and r.metrics["cond"] < 10


def test_normal_equation_recovers_a_known_beta():
    # Noise-free y = X @ beta: every method returns beta.
    x, _ = normal_equation.normal_equation_data(NormalEquationConfig(dtype="float64"))
    beta = np.array([0.5, -1.0, 2.0, 0.0, 3.0])
    with jax.enable_x64(True):
        fits = jax.jit(normal_equation.fit)(x, x @ beta)
    for method in normal_equation.METHODS:
        np.testing.assert_allclose(np.asarray(fits[method]), beta, rtol=0, atol=1e-13)


def test_normal_equation_compiles_once_per_dtype():
    normal_equation.run()
    before = TRACE_COUNTS["normal_equation"]
    normal_equation.run(NormalEquationConfig(seed=7))
    assert TRACE_COUNTS["normal_equation"] == before


# --- catalogue ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tid", "config"),
    [("tensors", TensorsConfig()), ("autograd", AutogradConfig()), ("normal_equation", None)],
)
def test_catalogue_runs_the_jax_modules(tid, config):
    r = registry.get(tid).run("jax", config)
    assert r.tutorial == tid and r.framework == "jax"
