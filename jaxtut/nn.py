"""Flax NNX modules used functionally, with PyTorch's default initialisation.

The models are ordinary ``nnx.Module`` classes whose attribute names mirror the PyTorch reference
(``fc1``, ``fc2``, ``linear``), so the parameter trees map one-to-one onto ``state_dict`` keys. The
training code never holds a stateful module: :func:`init_params` draws a plain nested dict of arrays
(``nnx.split`` then ``to_pure_dict``) and :func:`apply` rebuilds the module from a cached graph
definition inside the traced function (``nnx.merge``), which costs nothing at run time.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

Params = dict[str, Any]


def torch_uniform(bound: float):
    """Initializer drawing U(-bound, bound), as ``torch.nn.Linear`` does for weights and biases."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def torch_linear(in_features: int, out_features: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    """An ``nnx.Linear`` initialised like ``torch.nn.Linear``.

    PyTorch draws the weight with kaiming-uniform (a = sqrt(5)), whose bound simplifies to
    1/sqrt(fan_in), and the bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Flax's defaults are
    lecun-normal weights and zero biases, which would make a standalone JAX run start somewhere the
    tutorial never does. Precision is pinned to highest so GPU float32 matmuls are true float32.
    """
    bound = 1.0 / math.sqrt(in_features)
    return nnx.Linear(
        in_features,
        out_features,
        param_dtype=dtype,
        precision=jax.lax.Precision.HIGHEST,
        kernel_init=torch_uniform(bound),
        bias_init=torch_uniform(bound),
        rngs=rngs,
    )


def init_params(module_cls: type[nnx.Module], key: jax.Array | int, *, dtype=jnp.float32) -> Params:
    """Draws a module's parameters and returns them as a plain nested dict of arrays."""
    model = module_cls(rngs=nnx.Rngs(key), dtype=dtype)
    return nnx.to_pure_dict(nnx.state(model))


@functools.cache
def _graphdef(module_cls: type[nnx.Module]):
    # Abstract construction: shapes only, no random numbers drawn, done once per class.
    return nnx.graphdef(nnx.eval_shape(lambda: module_cls(rngs=nnx.Rngs(0), dtype=jnp.float32)))


def apply(module_cls: type[nnx.Module], params: Params, *args):
    """Calls ``module_cls`` with ``params``: a pure function of ``params`` and ``args``."""
    return nnx.merge(_graphdef(module_cls), params)(*args)
