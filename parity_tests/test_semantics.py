"""Where PyTorch and the JAX libraries differ *by definition*, pinned.

Each test shows the difference (so a library change that removes or moves it is noticed) and shows
what jaxtut does to match PyTorch. docs/parity.md explains each one. The tensor-level differences
(``from_numpy`` sharing memory and keeping float64, the ``abs`` gradient at 0) are pinned in
test_tensors.py and test_autograd.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats
import torch
from flax import nnx

from jaxtut import nn as jnn
from jaxtut.runtime import jax_runtime
from jaxtut.train import sgd
from jaxtut.tutorials import logreg, mnist

# --- BCELoss clamps each log at -100 ----------------------------------------------------------


def test_bce_clamps_log_at_minus_100(record):
    p = np.array([[0.0], [1.0], [0.3]], np.float32)
    y = np.array([[1.0], [0.0], [1.0]], np.float32)
    ref = torch.nn.BCELoss(reduction="none")(torch.from_numpy(p), torch.from_numpy(y)).numpy()
    # Saturated predictions cost exactly 100, not inf: the clamp, not an epsilon inside the log.
    np.testing.assert_array_equal(ref[:2, 0], [100.0, 100.0])
    with np.errstate(divide="ignore"):
        unclamped = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert np.isinf(unclamped[:2]).all()  # what a textbook formula gives
    ours = float(logreg.bce_loss(jnp.asarray(p), jnp.asarray(y)))
    expected = float(np.mean(ref))
    record(
        "logreg_breast_cancer",
        "semantics",
        "float32",
        check="BCELoss clamp at -100",
        max_abs=abs(ours - expected),
        tolerance=0.0,
        passed=ours == expected,
        note="p in {0, 1}: loss 100 per sample in both",
    )
    assert ours == expected


# --- SGD momentum: PyTorch's form equals optax's trace; dampening is not supported ---------------


def _torch_sgd_trajectory(momentum, dampening, grads, lr=0.1):
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum, dampening=dampening)
    out = []
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        out.append(p.detach().numpy().copy())
    return np.array(out)


def _optax_trajectory(momentum, grads, lr=0.1):
    with jax_runtime("float64"):
        opt = sgd(jnp.float64(lr), jnp.float64(momentum))
        p = jnp.zeros(3)
        state = opt.init(p)
        out = []
        for g in grads:
            updates, state = opt.update(jnp.asarray(g), state, p)
            p = optax.apply_updates(p, updates)
            out.append(np.asarray(p))
    return np.array(out)


def test_sgd_momentum_matches_torch_without_dampening(record):
    grads = np.random.default_rng(0).normal(size=(20, 3))
    torch_traj = _torch_sgd_trajectory(0.5, 0.0, grads)
    ours = _optax_trajectory(0.5, grads)
    diff = float(np.max(np.abs(torch_traj - ours)))
    record(
        "perceptron",
        "semantics",
        "float64",
        check="SGD momentum 0.5 (20 steps)",
        max_abs=diff,
        tolerance=1e-15,
        passed=diff <= 1e-15,
        note="torch buf = m*buf + g (first buf = g); optax trace = g + m*trace",
    )
    assert diff <= 1e-15
    # Dampening changes torch's buffer after the first step; jaxtut (like the tutorials) uses 0.
    damped = _torch_sgd_trajectory(0.5, 0.3, grads)
    assert np.array_equal(damped[0], torch_traj[0])  # torch skips dampening on the first step
    assert np.max(np.abs(damped - ours)) > 1e-3


# --- LogSoftmax + NLLLoss == CrossEntropyLoss == optax's integer-label cross-entropy -------------


def test_log_softmax_nll_equals_cross_entropy(record):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(64, 10)) * 5
    labels = rng.integers(0, 10, size=64)
    t_logits, t_labels = torch.from_numpy(logits), torch.from_numpy(labels)
    torch_nll = torch.nn.NLLLoss()(torch.log_softmax(t_logits, dim=1), t_labels).item()
    torch_ce = torch.nn.CrossEntropyLoss()(t_logits, t_labels).item()
    with jax_runtime("float64"):
        ours = float(jnp.mean(mnist.nll(jax.nn.log_softmax(jnp.asarray(logits)), labels)))
        optax_ce = float(
            jnp.mean(optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), labels))
        )
    worst = max(abs(ours - torch_nll), abs(ours - torch_ce), abs(ours - optax_ce))
    record(
        "mnist_mlp",
        "semantics",
        "float64",
        check="LogSoftmax+NLL vs CE vs optax CE",
        max_abs=worst,
        tolerance=1e-14,
        passed=worst <= 1e-14,
        note="the same function, computed in different orders",
    )
    assert worst <= 1e-14


# --- Default initialisers: torch.nn.Linear vs flax.nnx.Linear ------------------------------------


def test_default_initialisers_differ_and_torch_linear_matches_torch(record):
    fan_in, fan_out = 784, 128
    bound = 1 / np.sqrt(fan_in)
    torch.manual_seed(0)
    t = torch.nn.Linear(fan_in, fan_out)
    t_w, t_b = t.weight.detach().numpy().ravel(), t.bias.detach().numpy()

    flax_default = nnx.Linear(fan_in, fan_out, rngs=nnx.Rngs(0))
    f_w = np.asarray(flax_default.kernel[...]).ravel()
    assert np.all(np.asarray(flax_default.bias[...]) == 0)  # Flax: zero biases
    assert np.abs(f_w).max() > bound  # Flax: (truncated) lecun-normal, beyond torch's bound

    ours = jnn.torch_linear(fan_in, fan_out, rngs=nnx.Rngs(0))
    o_w = np.asarray(ours.kernel[...]).ravel()
    o_b = np.asarray(ours.bias[...])
    assert np.abs(o_w).max() <= bound and np.abs(o_b).max() <= bound
    # Same distribution as torch: two-sample Kolmogorov-Smirnov on 100k weights.
    ks = scipy.stats.ks_2samp(o_w, t_w)
    record(
        "mnist_mlp",
        "semantics",
        "float32",
        check="init: KS test jaxtut vs torch weights",
        max_abs=float(ks.statistic),
        passed=ks.pvalue > 0.001,
        note=f"p = {ks.pvalue:.3f}; Flax default max |w| {np.abs(f_w).max():.3f} "
        f"> bound {bound:.4f}",
    )
    assert ks.pvalue > 0.001
    assert scipy.stats.ks_2samp(f_w, t_w).pvalue < 1e-6  # Flax's default is a different law
    assert t_b.shape == o_b.shape


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_style_init_takes_the_run_dtype(dtype):
    with jax_runtime(dtype):
        params = jnn.init_params(mnist.MLP, jax.random.key(0), dtype=jnp.dtype(dtype))
    assert {str(leaf.dtype) for leaf in jax.tree.leaves(params)} == {dtype}
