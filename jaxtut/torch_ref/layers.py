"""The torch side of :mod:`jaxtut.layers`: shared-mask dropout and mapping a model's layers.

:class:`SharedDropout` applies a keep-mask given from outside, so a torch run drops exactly the
units a JAX run drops (the two frameworks' generators cannot be made equal by seeding).
:func:`describe` walks a ``torch.nn.Module``, names the jaxtut equivalent of each leaf layer,
refuses (with :class:`~jaxtut.errors.ConfigError`) the first one it cannot map, and, given an
example input, finds the Linears that follow a flattened feature map, whose kernels the
converters must permute (:func:`jaxtut.convert.from_state_dict` ``flatten_chw=``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from jaxtut import layers
from jaxtut.errors import ConfigError
from jaxtut.nn import torch_uniform


class SharedDropout(torch.nn.Module):
    """``nn.Dropout`` whose keep-mask is set from outside before each forward.

    ``set_mask(mask)`` gives the mask for the next training-mode forward (``True`` = keep, shaped
    like the input, e.g. from :func:`jaxtut.layers.dropout_mask` moved channels-first); the output
    is ``x * (mask / (1 - p))``, aten's arithmetic. A mask is used once: a second training forward
    without a new one raises, so a stale mask can never be reused silently. Evaluation mode is the
    identity, as ``nn.Dropout``.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self._mask: torch.Tensor | None = None

    def set_mask(self, mask: Any) -> None:
        self._mask = torch.as_tensor(np.asarray(mask, dtype=bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self._mask is None:
            raise ConfigError("SharedDropout in training mode needs set_mask() before forward")
        mask, self._mask = self._mask.to(x.device), None
        if tuple(mask.shape) != tuple(x.shape):
            raise ConfigError(f"dropout mask shape {tuple(mask.shape)} != input {tuple(x.shape)}")
        if self.p == 1:
            return x * torch.zeros((), dtype=x.dtype, device=x.device)
        return x * mask.to(x.dtype).div(1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One leaf layer of a torch model and its jaxtut equivalent.

    Attributes:
      path: the module path (``state_dict`` prefix), ``""`` for the root.
      torch_class: the torch class name.
      jax: what the JAX side uses (``"jaxtut.layers.Conv2d"``, ``"jax.nn.relu"``...).
      kwargs: the JAX constructor's arguments (empty for functions).
      note: what differs in use (layout of the input, an axis to translate).
    """

    path: str
    torch_class: str
    jax: str
    kwargs: dict[str, Any]
    note: str = ""


@dataclasses.dataclass(frozen=True)
class ModelMap:
    """What :func:`describe` found: the leaf layers in order, and the flattened feature maps.

    Attributes:
      layers: one :class:`LayerSpec` per leaf module, in ``named_modules`` order.
      flatten_chw: Linear path -> the torch ``(C, H, W)``/``(C, L)`` shape flattened into it (for
        the converters' ``flatten_chw=``); empty without an example input.
    """

    layers: tuple[LayerSpec, ...]
    flatten_chw: dict[str, tuple[int, ...]]


def _linear_kwargs(m: torch.nn.Linear) -> dict[str, Any]:
    return dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None)


def _conv_kwargs(m: torch.nn.Module) -> dict[str, Any]:
    if m.padding_mode != "zeros":
        raise _unmappable(m, f"padding_mode={m.padding_mode!r} (only 'zeros' is mapped)")
    return dict(
        in_channels=m.in_channels,
        out_channels=m.out_channels,
        kernel_size=tuple(m.kernel_size),
        stride=tuple(m.stride),
        padding=m.padding if isinstance(m.padding, str) else tuple(m.padding),
        dilation=tuple(m.dilation),
        groups=m.groups,
        bias=m.bias is not None,
    )


def _bn_kwargs(m: torch.nn.Module) -> dict[str, Any]:
    return dict(
        num_features=m.num_features,
        eps=m.eps,
        momentum=m.momentum,
        affine=m.affine,
        track_running_stats=m.track_running_stats,
    )


def _layer_norm_kwargs(m: torch.nn.LayerNorm) -> dict[str, Any]:
    if len(m.normalized_shape) != 1:
        raise _unmappable(
            m,
            f"normalized_shape={tuple(m.normalized_shape)} spans several axes, whose order "
            "differs between NCHW and NHWC (only a single trailing axis is mapped)",
        )
    return dict(
        normalized_shape=tuple(m.normalized_shape),
        eps=m.eps,
        elementwise_affine=m.elementwise_affine,
        bias=m.bias is not None,
    )


def _embedding_kwargs(m: torch.nn.Embedding) -> dict[str, Any]:
    if m.max_norm is not None or m.scale_grad_by_freq or m.sparse:
        raise _unmappable(m, "max_norm, scale_grad_by_freq and sparse are not mapped")
    return dict(
        num_embeddings=m.num_embeddings, embedding_dim=m.embedding_dim, padding_idx=m.padding_idx
    )


def _max_pool_kwargs(m: torch.nn.MaxPool2d) -> dict[str, Any]:
    if m.return_indices:
        raise _unmappable(m, "return_indices=True is not mapped")
    return dict(
        kernel_size=m.kernel_size,
        stride=m.stride,
        padding=m.padding,
        dilation=m.dilation,
        ceil_mode=m.ceil_mode,
    )


def _avg_pool_kwargs(m: torch.nn.AvgPool2d) -> dict[str, Any]:
    return dict(
        kernel_size=m.kernel_size,
        stride=m.stride,
        padding=m.padding,
        ceil_mode=m.ceil_mode,
        count_include_pad=m.count_include_pad,
        divisor_override=m.divisor_override,
    )


def _flatten_kwargs(m: torch.nn.Flatten) -> dict[str, Any]:
    if (m.start_dim, m.end_dim) != (1, -1):
        raise _unmappable(m, "only Flatten(start_dim=1, end_dim=-1) is mapped")
    return {}


def _softmax_kwargs(m: torch.nn.Module) -> dict[str, Any]:
    if m.dim not in (1, -1):
        raise _unmappable(m, f"dim={m.dim} (only the class axis, 1 or -1, is mapped)")
    return {}


_CHANNELS = "input channels-last: torch (N, C, *spatial) is (N, *spatial, C) here"

# torch class -> (jax equivalent, kwargs extractor, note). Checked with isinstance in this order.
_TABLE: tuple[tuple[type, str, Callable[[Any], dict[str, Any]], str], ...] = (
    (
        torch.nn.Linear,
        "flax.nnx.Linear",
        _linear_kwargs,
        "kernel (in, out): torch weight transposed",
    ),
    (torch.nn.Conv1d, "jaxtut.layers.Conv1d", _conv_kwargs, _CHANNELS),
    (torch.nn.Conv2d, "jaxtut.layers.Conv2d", _conv_kwargs, _CHANNELS),
    (torch.nn.MaxPool2d, "jaxtut.layers.MaxPool2d", _max_pool_kwargs, _CHANNELS),
    (torch.nn.AvgPool2d, "jaxtut.layers.AvgPool2d", _avg_pool_kwargs, _CHANNELS),
    (torch.nn.BatchNorm1d, "jaxtut.layers.BatchNorm1d", _bn_kwargs, _CHANNELS),
    (torch.nn.BatchNorm2d, "jaxtut.layers.BatchNorm2d", _bn_kwargs, _CHANNELS),
    (torch.nn.LayerNorm, "jaxtut.layers.LayerNorm", _layer_norm_kwargs, ""),
    (torch.nn.Embedding, "jaxtut.layers.Embedding", _embedding_kwargs, ""),
    (torch.nn.Dropout, "jaxtut.layers.Dropout", lambda m: {"p": m.p}, "mask shared explicitly"),
    (SharedDropout, "jaxtut.layers.Dropout", lambda m: {"p": m.p}, "mask shared explicitly"),
    (torch.nn.Flatten, "jaxtut.layers.Flatten", _flatten_kwargs, "flattens H, W, C here"),
    (torch.nn.GELU, "jaxtut.layers.GELU", lambda m: {"approximate": m.approximate}, ""),
    (torch.nn.ReLU, "jax.nn.relu", lambda m: {}, ""),
    (torch.nn.Tanh, "jax.numpy.tanh", lambda m: {}, ""),
    (torch.nn.Sigmoid, "jax.nn.sigmoid", lambda m: {}, ""),
    (torch.nn.Identity, "identity", lambda m: {}, ""),
    (torch.nn.LogSoftmax, "jax.nn.log_softmax(axis=-1)", _softmax_kwargs, "class axis last"),
    (torch.nn.Softmax, "jax.nn.softmax(axis=-1)", _softmax_kwargs, "class axis last"),
)


class _Unmappable(Exception):
    def __init__(self, module: torch.nn.Module, why: str):
        super().__init__(why)
        self.module = module


def _unmappable(module: torch.nn.Module, why: str) -> _Unmappable:
    return _Unmappable(module, why)


def _spec(path: str, module: torch.nn.Module) -> LayerSpec:
    label = path or "(root)"
    for cls, jax_name, kwargs, note in _TABLE:
        if isinstance(module, cls):
            try:
                return LayerSpec(path, type(module).__name__, jax_name, kwargs(module), note)
            except _Unmappable as e:
                raise ConfigError(
                    f"layer {label} ({type(module).__name__}) cannot be mapped to jaxtut: {e}"
                ) from None
    raise ConfigError(
        f"layer {label} ({type(module).__name__}) cannot be mapped to jaxtut: no equivalent "
        "layer (mapped: " + ", ".join(sorted({c.__name__ for c, *_ in _TABLE})) + ")"
    )


def describe(model: torch.nn.Module, example_input: Any = None) -> ModelMap:
    """Maps each leaf layer of ``model`` to its jaxtut equivalent.

    Containers (modules with children: ``Sequential``, a user's ``nn.Module``) are walked, not
    mapped; their own forward code (functional calls such as ``F.relu`` or ``torch.flatten``) is
    the user's to write in JAX. Their direct parameters, if any, convert as is.

    Args:
      model: the torch model.
      example_input: optional input (tensor or tuple of tensors) to run once (no gradient; the
        model's training/eval mode and buffers are restored) to find each Linear fed by a flattened
        feature map: it is either right after a ``Flatten`` module of a map of rank >= 3, or right
        after a leaf whose output has rank >= 3 and exactly ``in_features`` features per sample
        (a functional ``torch.flatten``/``view`` in between).

    Returns:
      A :class:`ModelMap`.

    Raises:
      ConfigError: naming the first leaf layer (module path and class) that cannot be mapped and
        why, or a Linear fed by a flattened map whose shape cannot be told from the run.
    """
    specs = tuple(
        _spec(path, module)
        for path, module in model.named_modules()
        if next(module.children(), None) is None
    )
    flatten_chw = {} if example_input is None else _find_flattens(model, example_input)
    return ModelMap(specs, flatten_chw)


def _find_flattens(model: torch.nn.Module, example_input: Any) -> dict[str, tuple[int, ...]]:
    """Runs ``model`` once with hooks and returns Linear path -> flattened (C, H, W)."""
    calls: list[tuple[str, torch.nn.Module, tuple[int, ...], tuple[int, ...]]] = []

    def hook(path, module, args, output):
        in_shape = tuple(args[0].shape) if args and torch.is_tensor(args[0]) else ()
        out_shape = tuple(output.shape) if torch.is_tensor(output) else ()
        calls.append((path, module, in_shape, out_shape))

    leaves = [(p, m) for p, m in model.named_modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(functools.partial(hook, p)) for p, m in leaves]
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()  # no batch statistics updated, no dropout mask needed
        with torch.no_grad():
            args = example_input if isinstance(example_input, tuple) else (example_input,)
            model(*args)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
        model.load_state_dict(buffers)
    found: dict[str, tuple[int, ...]] = {}
    for i, (path, module, in_shape, _) in enumerate(calls):
        if not isinstance(module, torch.nn.Linear) or i == 0 or len(in_shape) != 2:
            continue
        _, prev, prev_in, prev_out = calls[i - 1]
        if isinstance(prev, torch.nn.Flatten) and len(prev_in) >= 3:
            found[path] = prev_in[1:]
        elif len(prev_out) >= 3:
            if int(np.prod(prev_out[1:])) != module.in_features:
                raise ConfigError(
                    f"layer {path} (Linear, {module.in_features} inputs) follows a feature map "
                    f"of shape {prev_out[1:]} through code jaxtut cannot see (a functional pool "
                    "or reshape); give flatten_chw explicitly"
                )
            found[path] = prev_out[1:]
    return found


def jax_layer(spec: LayerSpec, *, rngs: nnx.Rngs, dtype: Any = jnp.float32) -> Any:
    """Builds the JAX equivalent of one :class:`LayerSpec`: a jaxtut/NNX module or a function.

    Parameters are freshly drawn (torch's law); load the torch values with
    :func:`jaxtut.convert.from_state_dict` to start where the torch model is.
    """
    functions: dict[str, Callable[[jax.Array], jax.Array]] = {
        "jax.nn.relu": jax.nn.relu,
        "jax.numpy.tanh": jnp.tanh,
        "jax.nn.sigmoid": jax.nn.sigmoid,
        "identity": lambda x: x,
        "jax.nn.log_softmax(axis=-1)": functools.partial(jax.nn.log_softmax, axis=-1),
        "jax.nn.softmax(axis=-1)": functools.partial(jax.nn.softmax, axis=-1),
    }
    if spec.jax in functions:
        return functions[spec.jax]
    if spec.jax == "flax.nnx.Linear":
        # jaxtut.nn.torch_linear's law (U(+-1/sqrt(fan_in))), with the bias optional.
        k = spec.kwargs
        init = torch_uniform(1.0 / math.sqrt(k["in_features"]))
        return nnx.Linear(
            k["in_features"],
            k["out_features"],
            use_bias=k["bias"],
            param_dtype=dtype,
            precision=jax.lax.Precision.HIGHEST,
            kernel_init=init,
            bias_init=init,
            rngs=rngs,
        )
    cls = getattr(layers, spec.jax.removeprefix("jaxtut.layers."))
    if cls in (layers.Conv1d, layers.Conv2d, layers.Embedding):
        return cls(**spec.kwargs, rngs=rngs, dtype=dtype)
    if cls in (layers.BatchNorm1d, layers.BatchNorm2d, layers.LayerNorm):
        return cls(**spec.kwargs, dtype=dtype)
    return cls(**spec.kwargs)
