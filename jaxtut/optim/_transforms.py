"""The three torch.optim updates that no stock Optax transformation computes.

Everything else in :mod:`jaxtut.optim` is a chain of Optax's own transformations; these are the
exceptions, each found by reading ``torch/optim`` and ``optax/_src/transform.py`` side by side:

* SGD with ``dampening != 0``: torch's first momentum step is ``buf = g`` (undamped), later ones
  ``buf = m * buf + (1 - d) * g``. ``optax.trace`` has no dampening and ``optax.ema`` damps the
  first step too.
* Adam/AdamW with ``amsgrad=True``: torch keeps the maximum of the *raw* second moment and divides
  by the current ``sqrt(1 - b2**t)``; ``optax.scale_by_amsgrad`` keeps the maximum of the
  *bias-corrected* moment, a different optimizer whenever ``v`` shrinks.
* Adagrad: torch adds ``eps`` outside the square root and decays the learning rate as
  ``lr / (1 + (t - 1) * lr_decay)``; ``optax.scale_by_rss`` adds it inside (``rsqrt(s + eps)``)
  and has no decay.

Each is an Optax ``GradientTransformation`` with a ``NamedTuple`` state, written in the order of
torch's single-tensor kernels (``_single_tensor_sgd``, ``_single_tensor_adam``,
``_single_tensor_adagrad``) so float64 runs round as torch does.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree as otu


class DampedTraceState(NamedTuple):
    """State of :func:`dampened_trace`."""

    count: jax.Array  # () int32: updates seen so far
    trace: optax.Updates


def dampened_trace(momentum, dampening, nesterov: bool = False) -> optax.GradientTransformation:
    """torch's SGD momentum buffer, dampening included.

    With ``t`` counting updates from 1::

        buf_1 = g_1                                   # no dampening on the first step
        buf_t = momentum * buf_{t-1} + (1 - dampening) * g_t
        out_t = g_t + momentum * buf_t   if nesterov else   buf_t

    With ``dampening = 0`` this is ``optax.trace(momentum, nesterov)`` (whose zero-started trace
    gives ``buf_1 = g_1`` too); jaxtut uses ``optax.trace`` then and this only when dampening is
    non-zero.

    Args:
      momentum: The momentum factor (a scalar or a traced array).
      dampening: The dampening of every step but the first.
      nesterov: Return the Nesterov look-ahead ``g + momentum * buf`` instead of ``buf``.

    Returns:
      An ``optax.GradientTransformation``.
    """

    def init_fn(params):
        return DampedTraceState(count=jnp.zeros([], jnp.int32), trace=otu.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        first = state.count == 0
        trace = jax.tree.map(
            lambda g, b: jnp.where(first, g, momentum * b + (1 - dampening) * g),
            updates,
            state.trace,
        )
        # Nesterov: torch's grad.add(buf, alpha=momentum).
        look_ahead = jax.tree.map(lambda g, b: g + momentum * b, updates, trace)
        updates = look_ahead if nesterov else trace
        return updates, DampedTraceState(count=optax.safe_increment(state.count), trace=trace)

    return optax.GradientTransformation(init_fn, update_fn)


class TorchAmsgradState(NamedTuple):
    """State of :func:`scale_by_torch_amsgrad`."""

    count: jax.Array  # () int32
    mu: optax.Updates
    nu: optax.Updates
    nu_max: optax.Updates  # running maximum of the raw (not bias-corrected) nu


def scale_by_torch_amsgrad(b1, b2, eps) -> optax.GradientTransformation:
    """Adam's direction with torch's AMSGrad.

    With ``t`` counting updates from 1 (moments start at zero)::

        m_t     = b1 * m_{t-1} + (1 - b1) * g_t
        v_t     = b2 * v_{t-1} + (1 - b2) * g_t**2
        vmax_t  = max(vmax_{t-1}, v_t)                          # raw v, as torch keeps it
        out_t   = (m_t / (1 - b1**t)) / (sqrt(vmax_t) / sqrt(1 - b2**t) + eps)

    ``optax.scale_by_amsgrad`` instead takes ``max(vmax, v_t / (1 - b2**t))``: as ``1 - b2**t``
    grows, the two maxima differ and so do the steps.

    Args:
      b1: Decay of the first moment (``betas[0]``).
      b2: Decay of the second moment (``betas[1]``).
      eps: Added to the denominator, outside the square root.

    Returns:
      An ``optax.GradientTransformation`` (multiply by ``-lr`` afterwards).
    """

    def init_fn(params):
        zeros = otu.zeros_like(params)
        return TorchAmsgradState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros, nu_max=zeros)

    def update_fn(updates, state, params=None):
        del params
        mu = otu.update_moment(updates, state.mu, b1, 1)
        nu = otu.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = optax.safe_increment(state.count)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
        bc1 = 1 - b1**count
        bc2_sqrt = jnp.sqrt(1 - b2**count)
        updates = jax.tree.map(
            lambda m, v: (m / bc1.astype(m.dtype)) / (jnp.sqrt(v) / bc2_sqrt.astype(v.dtype) + eps),
            mu,
            nu_max,
        )
        return updates, TorchAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)

    return optax.GradientTransformation(init_fn, update_fn)


class TorchAdagradState(NamedTuple):
    """State of :func:`torch_adagrad_step`."""

    count: jax.Array  # () int32
    sum_of_squares: optax.Updates


def torch_adagrad_step(
    learning_rate, lr_decay, eps, initial_accumulator_value
) -> optax.GradientTransformation:
    """torch's Adagrad step, learning rate included (it is decayed per step).

    With ``t`` counting updates from 1::

        s_t   = s_{t-1} + g_t**2,      s_0 = initial_accumulator_value
        clr_t = lr / (1 + (t - 1) * lr_decay)
        out_t = -clr_t * g_t / (sqrt(s_t) + eps)              # eps outside the square root

    ``optax.adagrad`` computes ``-lr * g * rsqrt(s + eps)`` with ``s_0 = 0.1`` and ``eps = 1e-7``
    by default, and no ``lr_decay``. The learning rate is applied here, not by a following
    ``scale_by_learning_rate``, so that ``clr`` is formed exactly as torch forms it.

    Args:
      learning_rate: ``lr``.
      lr_decay: The learning rate's per-step decay.
      eps: Added to ``sqrt(s)``.
      initial_accumulator_value: ``s_0``.

    Returns:
      An ``optax.GradientTransformation`` whose output is the parameter change itself.
    """

    def init_fn(params):
        return TorchAdagradState(
            count=jnp.zeros([], jnp.int32),
            sum_of_squares=otu.full_like(params, initial_accumulator_value),
        )

    def update_fn(updates, state, params=None):
        del params
        sums = jax.tree.map(lambda g, s: s + g * g, updates, state.sum_of_squares)
        clr = learning_rate / (1 + state.count * lr_decay)
        updates = jax.tree.map(
            lambda g, s: (-clr).astype(g.dtype) * (g / (jnp.sqrt(s) + eps)), updates, sums
        )
        count = optax.safe_increment(state.count)
        return updates, TorchAdagradState(count=count, sum_of_squares=sums)

    return optax.GradientTransformation(init_fn, update_fn)
