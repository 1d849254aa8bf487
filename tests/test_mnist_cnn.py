"""``mnist_cnn``: the custom-VJP convolution, the converters, and parity with the torch ``Net``.

Tolerances, each set above a difference measured on this machine; differences are relative to
the largest magnitude of each compared array:

* float64: forward and gradients within 1e-12 (measured: 5e-16 and 4.4e-15); a 20-step SGD
  trajectory with dropout on 240 MNIST samples within 1e-13 per step, loss and every parameter
  (measured: 1.6e-15 at worst; reduction order only, which grows along a run, hence the margin).
* float32: forward within 16 ulps, gradients within 64 ulps (measured: 1.6 and 12 ulps; the
  9216-term sums of fc1 and the convolutions' sums run in another order than torch's).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax import lax

from jaxtut.data import ENV_VAR
from jaxtut.loops import LoopStrategy, fit_epochs
from jaxtut.runtime import jax_runtime
from jaxtut.torch_ref import mnist_cnn as torch_ref
from jaxtut.tutorials import mnist_cnn as cnn

from mnist_dir import find_mnist_dir

MNIST_DIR = find_mnist_dir()
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}
ULP32 = float(np.finfo(np.float32).eps)


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _torch_eval(state_dict, x_nhwc, y, masks, dtype):
    """torch's log-probabilities, loss and gradients (state_dict layout) on one batch."""
    model = torch_ref.build(state_dict, TORCH_DTYPE[dtype])
    if masks is None:
        model.eval()  # no dropout at all
    x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
    tmasks = None if masks is None else torch_ref.masks_to_torch(masks, TORCH_DTYPE[dtype])
    out = model(x, tmasks)
    loss = torch.nn.functional.nll_loss(out, torch.from_numpy(y.astype(np.int64)))
    loss.backward()
    grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    return out.detach().numpy(), loss.item(), grads


def _jax_eval(state_dict, x, y, masks, dtype):
    with jax_runtime(dtype, "cpu"):
        params = jax.tree.map(jnp.asarray, cnn.from_torch(state_dict))
        x, y = jnp.asarray(x), jnp.asarray(y, jnp.int32)
        if masks is None:
            out = jax.jit(cnn.forward)(params, x)
            loss, grads = jax.jit(jax.value_and_grad(_eval_loss))(params, x, y)
        else:
            masks = tuple(jnp.asarray(m) for m in masks)
            out = jax.jit(lambda p, x, m: cnn.nn.apply(cnn.Net, p, x, m))(params, x, masks)
            loss, grads = jax.jit(jax.value_and_grad(cnn.loss))(params, (x, y, masks))
        return np.asarray(out), float(loss), cnn.to_torch(grads)


def _eval_loss(params, x, y):
    return jnp.mean(cnn.nll(cnn.forward(params, x), y))


def _batch(n: int, dtype: str, seed: int = 0):
    """Random normalised-looking images (B, 28, 28, 1) and labels, in ``dtype``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 28, 28, 1)).astype(dtype), rng.integers(0, 10, n)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_matches_lax_convolution(dtype):
    # The custom VJP computes the same function and gradients as XLA's convolution.
    rng = np.random.default_rng(1)
    with jax_runtime(dtype, "cpu"):
        x = jnp.asarray(rng.standard_normal((3, 9, 8, 4)).astype(dtype))
        w = jnp.asarray(rng.standard_normal((3, 3, 4, 5)).astype(dtype))

        def ref(x, w):
            return lax.conv_general_dilated(
                x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )

        def objective(conv):
            return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))

        tol = 1e-13 if dtype == "float64" else 32 * ULP32
        assert _rel(cnn.conv2d(x, w), ref(x, w)) < tol
        for got, want in zip(
            jax.grad(objective(cnn.conv2d), (0, 1))(x, w),
            jax.grad(objective(ref), (0, 1))(x, w),
            strict=True,
        ):
            assert _rel(got, want) < tol


def test_converters_round_trip_exactly():
    sd = torch_ref.initial_state_dict(seed=3)
    back = cnn.to_torch(cnn.from_torch(sd))
    assert back.keys() == sd.keys()
    for key, value in sd.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    # And the JAX init has the torch shapes (the converter's layouts are right).
    template = cnn.init(jax.random.key(0))
    shapes = {k: v.shape for k, v in cnn.to_torch(template).items()}
    assert shapes == {k: v.shape for k, v in sd.items()}


def test_init_follows_torch_bounds():
    params = cnn.init(jax.random.key(0))
    for name, fan_in in [("conv1", 9), ("conv2", 288), ("fc1", 9216), ("fc2", 128)]:
        for leaf in params[name].values():
            bound = np.float32(1 / np.sqrt(fan_in))  # the bound as the float32 draw sees it
            assert np.max(np.abs(leaf)) <= bound
            assert np.max(np.abs(leaf)) > 0.9 * bound  # drawn over the whole range


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "dropout"])
def test_forward_and_gradients_match_torch(dtype, train_mode):
    sd = {k: v.astype(dtype) for k, v in torch_ref.initial_state_dict(seed=0).items()}
    x, y = _batch(16, dtype)
    masks = cnn.numpy_dropout_masks(seed=0, step=0, batch=16, dtype=dtype) if train_mode else None
    out_t, loss_t, grads_t = _torch_eval(sd, x, y, masks, dtype)
    out_j, loss_j, grads_j = _jax_eval(sd, x, y, masks, dtype)
    f_tol, g_tol = (1e-12, 1e-12) if dtype == "float64" else (16 * ULP32, 64 * ULP32)
    assert _rel(out_j, out_t) < f_tol
    assert abs(loss_j - loss_t) / abs(loss_t) < f_tol
    for key, grad in grads_t.items():
        assert _rel(grads_j[key], grad) < g_tol, key


def test_masks_are_torch_dropout_values():
    m1, m2 = cnn.numpy_dropout_masks(seed=0, step=5, batch=64)
    assert m1.shape == (64, 12, 12, 64) and m2.shape == (64, 128)
    assert set(np.unique(m1)) == {0.0, np.float32(1) / np.float32(0.75)}
    assert set(np.unique(m2)) == {0.0, 2.0}
    # Keep rates near 1 - p (590k and 8k draws: 5 sigma bands).
    assert abs(np.mean(m1 > 0) - 0.75) < 0.003 and abs(np.mean(m2 > 0) - 0.5) < 0.03
    # Reproducible per (seed, step), different across steps.
    np.testing.assert_array_equal(m2, cnn.numpy_dropout_masks(seed=0, step=5, batch=64)[1])
    assert not np.array_equal(m2, cnn.numpy_dropout_masks(seed=0, step=6, batch=64)[1])


def test_device_masks_have_the_same_values_and_rates():
    m1, m2 = cnn.jax_dropout_masks(jax.random.key(0), 64)
    assert m1.shape == (64, 12, 12, 64) and m2.shape == (64, 128)
    assert set(np.unique(np.asarray(m1))) == {0.0, np.float32(1) / np.float32(0.75)}
    assert set(np.unique(np.asarray(m2))) == {0.0, 2.0}
    assert abs(float(jnp.mean(m1 > 0)) - 0.75) < 0.003
    assert abs(float(jnp.mean(m2 > 0)) - 0.5) < 0.03
    # Each 32-bit word carries 16 elements' 2-bit fields, element i * words + w in field i of
    # word w: neighbours in memory and fields of one word must be independent (|r| < 5 sigma).
    keep = np.asarray(m1 > 0).ravel().astype(float)
    for lag in (1, keep.size // 16):
        assert abs(np.corrcoef(keep[:-lag], keep[lag:])[0, 1]) < 5 / np.sqrt(keep.size)
    # Any batch size (a padded last batch is still 64; tests use small ones) gets its own masks.
    short1, short2 = cnn.jax_dropout_masks(jax.random.key(1), 7)
    assert short1.shape == (7, 12, 12, 64) and short2.shape == (7, 128)


@pytest.mark.skipif(MNIST_DIR is None, reason=f"MNIST files not found: set {ENV_VAR}")
def test_float64_trajectory_with_dropout_matches_torch():
    steps, batch, lr = 20, 12, 0.05
    x_train, y_train, _, _ = cnn.mnist_cnn_arrays(MNIST_DIR, "float64")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x_train))[: steps * batch].reshape(steps, batch)  # 240 samples
    xb, yb = x_train[idx], y_train[idx]  # (steps, B, 28, 28, 1), (steps, B)
    masks = [cnn.numpy_dropout_masks(0, s, batch, np.float64) for s in range(steps)]
    sd = {k: v.astype(np.float64) for k, v in torch_ref.initial_state_dict(seed=1).items()}

    model = torch_ref.build(sd, torch.float64)
    batches = [(xb[s].transpose(0, 3, 1, 2), yb[s]) for s in range(steps)]
    losses_t, params_t = torch_ref.sgd_steps(model, batches, lambda s: masks[s], lr=lr)

    def step(carry, xs):
        x, y, m1, m2 = xs
        value, grads = jax.value_and_grad(cnn.loss)(carry, (x, y, (m1, m2)))
        return jax.tree.map(lambda p, g: p - lr * g, carry, grads), (value, carry)

    with jax_runtime("float64", "cpu"):
        m1 = np.stack([m[0] for m in masks])[None]
        m2 = np.stack([m[1] for m in masks])[None]
        xs = (xb[None], yb[None].astype(np.int32), m1, m2)  # leading (epochs=1, steps)
        run = jax.jit(lambda p, xs: fit_epochs(step, p, xs, strategy=LoopStrategy()))
        final, (losses_j, before), _ = run(cnn.from_torch(sd), xs)
        losses_j = np.asarray(losses_j)[0]
        # Parameters after step s: the carry before step s + 1, and the final carry.
        after = [jax.tree.map(lambda a, s=s: np.asarray(a[0, s]), before) for s in range(1, steps)]
        after.append(jax.tree.map(np.asarray, final))

    assert losses_t[0] > losses_t[-1]  # it learns
    for s in range(steps):
        assert abs(losses_j[s] - losses_t[s]) / abs(losses_t[s]) < 1e-13, f"loss at step {s}"
        got = cnn.to_torch(after[s])
        for key, value in params_t[s].items():
            assert _rel(got[key], value) < 1e-13, f"{key} after step {s}"


@pytest.mark.skipif(MNIST_DIR is None, reason=f"MNIST files not found: set {ENV_VAR}")
def test_evaluate_counts_the_whole_test_set():
    _, _, x_test, y_test = cnn.mnist_cnn_arrays(MNIST_DIR, "float32")
    x, y = x_test[:1200], y_test[:1200]  # a full batch of 1000 and a partial one
    params = cnn.init(jax.random.key(0))
    metrics = jax.jit(cnn.evaluate)(params, (x, y))
    log_probs = np.asarray(jax.jit(cnn.forward)(params, x))
    expect_acc = np.mean(np.argmax(log_probs, -1) == y)
    expect_loss = -np.mean(log_probs[np.arange(len(y)), y])
    assert float(metrics["test_accuracy"]) == pytest.approx(expect_acc, abs=1e-7)  # a float32 ratio
    assert float(metrics["test_loss"]) == pytest.approx(expect_loss, rel=1e-5)
