"""Parity of the autograd demonstrations: exact gradients and the SGD-on-abs trajectory.

All comparisons are exact. The gradients 4.5 and 10 are sums and products of small binary
fractions, representable at every intermediate step. The trajectory adds ``-lr * (+-1)`` to ``y``
each step: one rounding per step, the same in both frameworks (``optax.sgd``'s ``y + (-lr) * g``
is ``torch.optim.SGD``'s ``y.add_(g, alpha=-lr)``), so float32 agrees bit for bit, not just to
1e-7.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxtut.configs import AutogradConfig
from jaxtut.runtime import jax_runtime
from jaxtut.torch_ref import autograd as torch_autograd
from jaxtut.tutorials import autograd as jax_autograd

DTYPES = ["float32", "float64"]


@functools.cache
def runs(dtype: str, **overrides):
    config = AutogradConfig(dtype=dtype, **overrides)
    return jax_autograd.run(config), torch_autograd.run(config)


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_x_is_exactly_4_5_in_both(dtype):
    # Tolerance: none. 0.25 * 3 * 2 * 3 = 4.5 exactly in binary.
    for r in runs(dtype):
        assert np.asarray(r.extras["grad_x"]).tolist() == [[4.5, 4.5], [4.5, 4.5]]
        assert r.metrics["grad_x"] == 4.5


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_w_is_exactly_10_in_both(dtype):
    # Tolerance: none. 1 + 2 + 3 + 4, whatever w was drawn (w differs between the frameworks).
    for r in runs(dtype):
        assert r.extras["grad_w"] == [10.0] and r.metrics["grad_w"] == 10.0
        assert len(r.extras["w"]) == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_on_abs_trajectory_is_identical_step_by_step(dtype):
    # Tolerance: none (bitwise); see the module docstring.
    rj, rt = runs(dtype)
    assert rj.losses.shape == rt.losses.shape == (100,)
    np.testing.assert_array_equal(rj.losses, rt.losses)
    assert rj.extras["y"] == rt.extras["y"] and len(rj.extras["y"]) == 101
    assert rj.extras["grad_y"] == rt.extras["grad_y"]
    assert rj.params["y"].dtype == rt.params["y"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(rj.params["y"], rt.params["y"])
    assert rj.metrics == pytest.approx(rt.metrics, nan_ok=True)


def test_float32_trajectory_facts():
    rj, rt = runs("float32")
    y = np.asarray(rj.extras["y"], np.float32)
    low, high = np.float32(5 - 2**-19), np.float32(5.0999979972839355)
    # Twenty steps of +0.1 reach 4.999998 (5 - 2**-19), not 5.0.
    assert y[20] == low and float(low) == 4.999998092651367
    assert np.all(np.diff(y[:21]) > 0)
    # Step 21 starts beyond the target; from there y alternates between the two values.
    assert rj.metrics["first_overshoot_step"] == 21.0
    assert np.all(y[21::2] == high) and np.all(y[20::2] == low)
    assert not np.any(y == 5.0) and rj.metrics["hits_target"] == 0.0
    assert rj.metrics["y_final"] == float(low)
    # Losses: 2.0, 1.9, ... then alternating 1.9073486e-06 (= 2**-19) and 0.099998.
    assert rj.losses[0] == 2.0 and rj.losses[20] == 2**-19
    assert rj.losses[21] == pytest.approx(0.1, abs=3e-6)
    grads = np.asarray(rt.extras["grad_y"])
    assert np.all(grads[:21] == -1) and np.all(grads[21::2] == 1) and np.all(grads[22::2] == -1)


def test_float64_trajectory_never_hits_the_target_either():
    rj, _ = runs("float64")
    assert rj.metrics["hits_target"] == 0.0 and rj.metrics["first_overshoot_step"] == 21.0
    assert rj.metrics["y_final"] == 4.999999999999997


def test_abs_subgradient_at_zero():
    # torch: abs backward is sign(x), 0 at 0.
    t = torch.tensor(0.0, requires_grad=True)
    t.abs().backward()
    assert t.grad.item() == 0.0
    # JAX: jnp.abs's derivative is 1 at 0 (at -0.0 too).
    assert float(jax.grad(jnp.abs)(0.0)) == 1.0
    assert float(jax.grad(jnp.abs)(-0.0)) == 1.0
    # jaxtut's torch_abs follows torch, and agrees with both elsewhere.
    assert float(jax.grad(jax_autograd.torch_abs)(0.0)) == 0.0
    for v in (-2.0, 3.0):
        assert float(jax.grad(jax_autograd.torch_abs)(v)) == float(jax.grad(jnp.abs)(v))


def test_landing_exactly_on_the_target_stops_in_both():
    # 4.0 -> 4.5 -> 5.0 exactly; then torch's gradient is 0 and y stays. So does jaxtut's.
    rj, rt = runs("float32", y_start=4.0, lr=0.5, steps=6)
    assert rt.extras["y"] == rj.extras["y"] == [4.0, 4.5, 5.0, 5.0, 5.0, 5.0, 5.0]
    assert rt.extras["grad_y"] == rj.extras["grad_y"] == [-1.0, -1.0, 0.0, 0.0, 0.0, 0.0]
    assert rj.metrics["hits_target"] == rt.metrics["hits_target"] == 1.0


def test_plain_jnp_abs_would_leave_the_target():
    # Why the tutorial uses torch_abs: with jnp.abs, y = 5.0 gets slope -1 and moves on to 5.5.
    with jax_runtime("float32"):
        out = jax.jit(functools.partial(jax_autograd.sgd_on_abs, steps=6, abs_fn=jnp.abs))(
            jnp.array([4.0]), jnp.array([5.0]), jnp.float32(0.5)
        )
    assert np.asarray(out["y"]).reshape(-1).tolist() == [4.0, 4.5, 5.0, 5.5, 5.0, 5.5, 5.0]


def test_source_optimizer_with_x_moves_x():
    # The source passes [x, y] to SGD; x still holds its 4.5 gradient from out.backward(), so the
    # first step moves it. The reference optimises y alone.
    x = torch.ones(2, 2, requires_grad=True)
    ((x + 2) * (x + 2) * 3).mean().backward()
    y = torch.tensor([3.0], requires_grad=True)
    optimizer = torch.optim.SGD([x, y], lr=0.1)
    for _ in range(3):
        (torch.tensor([5.0]) - y).abs().backward()
        optimizer.step()
        optimizer.zero_grad()
    assert torch.allclose(x, torch.full((2, 2), 0.55))  # 1 - 0.1 * 4.5, once


def test_source_keyword_require_gradients_is_not_a_torch_argument():
    with pytest.raises(TypeError):
        torch.randn(1, require_gradients=True)
