"""Layers beyond Linear that compute what their ``torch.nn`` namesakes compute, in NHWC.

Each class is a Flax NNX module named after the PyTorch layer it reproduces, with PyTorch's
constructor arguments, defaults and initialisation, so a model reads the same in both frameworks
and its parameters convert one-to-one (:mod:`jaxtut.convert`).

Layout. Activations are channels-last, XLA's natural layout: ``(N, L, C)`` where torch has
``(N, C, L)`` and ``(N, H, W, C)`` where torch has ``(N, C, H, W)``. Convolution kernels are
``(*kernel_size, in_channels // groups, out_channels)`` (WIO/HWIO) where torch stores
``(out_channels, in_channels // groups, *kernel_size)`` (OIW/OIHW). The converters permute kernels;
:func:`jaxtut.convert.to_channels_last` / :func:`~jaxtut.convert.to_channels_first` move
activations. One consequence is not local to a layer: flattening a feature map orders its features
H, W, C here and C, H, W in torch, so the first Linear after a Flatten sees its inputs permuted;
the converters fix that Linear's kernel rows when told the feature map's shape
(``flatten_chw=``, see :mod:`jaxtut.convert`).

Where Flax or JAX defaults differ from torch's (pinned in parity_tests/test_layers.py and listed in
docs/parity.md, "Layers: semantic differences"): convolution padding (torch 0, ``nnx.Conv``
``'SAME'``), initialisation (torch kaiming-uniform with a = sqrt(5) and uniform biases, Flax
lecun-normal and zeros), pooling strides (torch: the kernel size, ``flax.nnx.avg_pool``: 1), the
average-pool divisor with ``ceil_mode``, BatchNorm's momentum (torch weighs the *new* batch by 0.1,
``nnx.BatchNorm`` keeps 0.99 of the *old* value) and unbiased running variance, LayerNorm's eps
(torch 1e-5, ``nnx.LayerNorm`` 1e-6) and GELU (torch exact, ``jax.nn.gelu`` tanh-approximate).

State. BatchNorm's running statistics are ``nnx.BatchStat`` variables, never parameters. Use the
modules functionally with :func:`split` and :func:`apply`: ``apply`` takes the statistics as an
argument and returns the updated ones beside the output, so nothing is mutated behind a caller's
back. Training and evaluation modes are the NNX ones (``model.train()`` / ``model.eval()`` set
``use_running_average`` and ``deterministic``); :func:`apply` sets them from ``train=``.

Dropout. PyTorch's RNG cannot be reproduced in JAX (and JAX's counter-based ``threefry`` cannot be
reproduced in torch), so no seed makes the two frameworks drop the same units. :class:`Dropout`
therefore takes its keep-mask as an argument; :func:`dropout_mask` draws masks with NumPy from a
seed, and the torch side applies the same mask with
:class:`jaxtut.torch_ref.layers.SharedDropout`. With a ``key`` instead of a mask it draws its own
(for standalone JAX runs).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxtut.errors import ConfigError

HIGHEST = jax.lax.Precision.HIGHEST


def _tuple(value: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    """Expands an int to an n-tuple, as torch's ``_single``/``_pair`` do."""
    out = (int(value),) * n if isinstance(value, int) else tuple(int(v) for v in value)
    if len(out) != n:
        raise ConfigError(f"{name} must be an int or a {n}-tuple, got {value!r}")
    return out


def _uniform(bound: float):
    def init(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


# --- Convolutions --------------------------------------------------------------------------------


def conv_padding(
    padding: str | int | Sequence[int],
    kernel_size: tuple[int, ...],
    dilation: tuple[int, ...],
    stride: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    """torch's padding argument as explicit ``(low, high)`` pairs per spatial dimension.

    ``'same'`` follows torch (torch/nn/modules/conv.py): the total ``dilation * (kernel - 1)`` is
    split with the extra element on the high side (right/bottom) when it is odd, i.e. for even
    kernels. torch rejects ``'same'`` with strides other than 1, and so does this.
    """
    n = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding != "same":
            raise ConfigError(f"padding must be 'valid', 'same' or ints, got {padding!r}")
        if any(s != 1 for s in stride):
            raise ConfigError("padding='same' is not supported for strided convolutions (torch)")
        pads = []
        for k, d in zip(kernel_size, dilation, strict=True):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    return tuple((p, p) for p in _tuple(padding, n, "padding"))


class _ConvNd(nnx.Module):
    """A torch ``ConvNd`` on channels-last input; ``n`` spatial dimensions."""

    n: int = 0
    _dims: tuple[str, str, str] = ("", "", "")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        rngs: nnx.Rngs,
        dtype: Any = jnp.float32,
    ):
        if in_channels % groups or out_channels % groups:
            raise ConfigError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(kernel_size, self.n, "kernel_size")
        self.stride = _tuple(stride, self.n, "stride")
        self.dilation = _tuple(dilation, self.n, "dilation")
        self.padding = conv_padding(padding, self.kernel_size, self.dilation, self.stride)
        # torch: kaiming_uniform_(a=sqrt(5)) gives bound gain * sqrt(3 / fan_in) with
        # gain = sqrt(2 / (1 + 5)), i.e. 1 / sqrt(fan_in); the bias uses the same bound.
        fan_in = in_channels // groups * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        shape = (*self.kernel_size, in_channels // groups, out_channels)  # (*k, I, O)
        self.kernel = nnx.Param(_uniform(bound)(rngs.params(), shape, dtype))
        self.bias = (
            nnx.Param(_uniform(bound)(rngs.params(), (out_channels,), dtype)) if bias else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:  # (N, *spatial, C_in) -> (N, *spatial', C_out)
        y = jax.lax.conv_general_dilated(
            x,
            self.kernel[...],
            window_strides=self.stride,
            padding=self.padding,
            rhs_dilation=self.dilation,
            dimension_numbers=self._dims,
            feature_group_count=self.groups,
            precision=HIGHEST,
        )
        return y if self.bias is None else y + self.bias[...]


class Conv1d(_ConvNd):
    """``torch.nn.Conv1d`` on ``(N, L, C)`` input; kernel ``(k, C_in // groups, C_out)``.

    Args:
      in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as torch;
        ``padding`` may be an int, ``'valid'`` or ``'same'`` (extra element on the right).
      rngs: the NNX random streams for the initialisation (torch's law, Flax's generator).
      dtype: the parameters' dtype.
    """

    n = 1
    _dims = ("NWC", "WIO", "NWC")


class Conv2d(_ConvNd):
    """``torch.nn.Conv2d`` on ``(N, H, W, C)`` input; kernel ``(kh, kw, C_in // groups, C_out)``.

    Arguments as :class:`Conv1d`; ``padding='same'`` puts the odd element at the bottom/right.
    """

    n = 2
    _dims = ("NHWC", "HWIO", "NHWC")


# --- Pooling -------------------------------------------------------------------------------------


def pool_output_size(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """torch's pooled length (aten ``pooling_output_shape``).

    With ``ceil_mode`` the division rounds up, but a window that would start in the right-hand
    padding (or beyond) is dropped: the last window must start inside the input or left padding.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


class _Pool2d(nnx.Module):
    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode):
        self.kernel_size = _tuple(kernel_size, 2, "kernel_size")
        # torch: stride=None means stride = kernel_size (flax's pools default to 1).
        self.stride = self.kernel_size if stride is None else _tuple(stride, 2, "stride")
        self.padding = _tuple(padding, 2, "padding")
        self.dilation = _tuple(dilation, 2, "dilation")
        self.ceil_mode = ceil_mode
        for k, p, d in zip(self.kernel_size, self.padding, self.dilation, strict=True):
            if p > (d * (k - 1) + 1) // 2:
                raise ConfigError(
                    f"pad should be at most half of effective kernel size, got padding {p} "
                    f"for kernel {k} (torch rejects it too)"
                )

    def _geometry(self, spatial: tuple[int, int]):
        """Output sizes and the ``(low, high)`` padding that makes ``reduce_window`` yield them."""
        outs, pads = [], []
        for size, k, s, p, d in zip(
            spatial, self.kernel_size, self.stride, self.padding, self.dilation, strict=True
        ):
            out = pool_output_size(size, k, s, p, d, self.ceil_mode)
            # The last window ends at (out - 1) * s + d * (k - 1) + 1 in padded coordinates; pad
            # the high side just enough (ceil_mode may need more than p, floor mode less).
            high = max((out - 1) * s + d * (k - 1) + 1 - size - p, 0)
            outs.append(out)
            pads.append((p, high))
        return tuple(outs), tuple(pads)

    def _windows(self, x: jax.Array, pads, fill) -> jax.Array:
        """Every window element as one strided slice: ``(kh * kw, N, H', W', C)``.

        Window element (i, j) of output (a, b) is padded input (a * s + i * d, b * s + j * d),
        so each kernel tap is one strided slice of the padded input; the taps are stacked in
        row-major kernel order, the order in which torch's kernels scan a window. Written as
        slices rather than ``lax.reduce_window`` because JAX has no gradient for a dilated
        ``reduce_window`` max, and so that ties in a max go to the first element, as torch's.
        """
        x = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=fill)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        oh = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
        ow = (x.shape[2] - dw * (kw - 1) - 1) // sw + 1
        taps = [
            jax.lax.slice(
                x,
                (0, i * dh, j * dw, 0),
                (x.shape[0], i * dh + (oh - 1) * sh + 1, j * dw + (ow - 1) * sw + 1, x.shape[3]),
                (1, sh, sw, 1),
            )
            for i in range(kh)
            for j in range(kw)
        ]
        return jnp.stack(taps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool_tiles(x: jax.Array, window: tuple[int, int]) -> jax.Array:
    """Max over non-overlapping ``window`` tiles of ``(N, H, W, C)``; H and W divide exactly.

    ``torch.nn.MaxPool2d(k)`` (stride = kernel, no padding) where the tiles cover the map, with
    torch's gradient: a tied tile's gradient goes to its first maximum in row-major order. Written
    with its own VJP because ``jnp.max``'s gradient shares a tie among the tied elements, and a
    ReLU before the pool makes ties common (whole tiles of 0); and because that gradient (compare,
    count, divide) is several passes over the map where this one is a single select per tap:
    in the MNIST CNN's step on XLA:CPU the tie count alone was a 4.5 ms reduction, and the whole
    backward pass is now one ~1 ms fusion (docs/benchmarks.md).
    """
    n, h, w, c = x.shape
    kh, kw = window
    if h % kh or w % kw:
        raise ConfigError(f"max_pool_tiles: a {h}x{w} map is not tiled by {kh}x{kw} windows")
    return x.reshape(n, h // kh, kh, w // kw, kw, c).max(axis=(2, 4))


def _max_pool_tiles_fwd(x, window):
    y = max_pool_tiles(x, window)
    return y, (x, y)


def _max_pool_tiles_bwd(window, residuals, g):
    x, y = residuals
    n, h, w, c = x.shape
    kh, kw = window
    tiles = x.reshape(n, h // kh, kh, w // kw, kw, c)
    taken = jnp.zeros(y.shape, bool)  # a maximum already found earlier in the tile
    rows = []
    for i in range(kh):
        cols = []
        for j in range(kw):
            first = (tiles[:, :, i, :, j, :] == y) & ~taken
            taken = taken | first
            cols.append(jnp.where(first, g, jnp.zeros_like(g)))
        rows.append(jnp.stack(cols, axis=3))  # (N, H', W', kw, C)
    return (jnp.stack(rows, axis=2).reshape(n, h, w, c),)  # (N, H', kh, W', kw, C)


max_pool_tiles.defvjp(_max_pool_tiles_fwd, _max_pool_tiles_bwd)


class MaxPool2d(_Pool2d):
    """``torch.nn.MaxPool2d`` on ``(N, H, W, C)``: stride defaults to the kernel size, padding is
    ``-inf`` (never selected), ``ceil_mode`` and ``dilation`` as torch, and the gradient of a tied
    window goes to its first maximum, as torch's. ``return_indices`` is not offered."""

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        ceil_mode: bool = False,
    ):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)

    def __call__(self, x: jax.Array) -> jax.Array:  # (N, H, W, C) -> (N, H', W', C)
        outs, pads = self._geometry(x.shape[1:3])
        k = self.kernel_size
        if (
            self.stride == k
            and self.dilation == (1, 1)
            and all(p == (0, 0) for p in pads)  # no padding, no window past the edge
        ):
            return max_pool_tiles(x[:, : outs[0] * k[0], : outs[1] * k[1]], k)
        taps = self._windows(x, pads, -jnp.inf)[:, :, : outs[0], : outs[1]]  # (k*k, N, H', W', C)
        # The first maximum of each window gets the gradient (torch's argmax); jnp.max would
        # share it among ties, which a ReLU before the pool makes common.
        first = jnp.argmax(taps, axis=0)[None]
        return jnp.take_along_axis(taps, first, axis=0)[0]


class AvgPool2d(_Pool2d):
    """``torch.nn.AvgPool2d`` on ``(N, H, W, C)``.

    The divisor is torch's (aten ``avg_pool2d``): with ``count_include_pad`` the window clipped to
    the input plus its explicit padding (so a ``ceil_mode`` window hanging past the padding counts
    fewer elements), without it the window clipped to the input; ``divisor_override`` replaces
    both. ``flax.nnx.avg_pool`` divides by the full window size instead.
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def _divisor(self, spatial, outs) -> np.ndarray:
        """(H', W', 1) element counts; separable because the windows are rectangles."""
        counts = []
        for size, out, k, s, p in zip(
            spatial, outs, self.kernel_size, self.stride, self.padding, strict=True
        ):
            start = np.arange(out) * s - p
            end = np.minimum(start + k, size + p)
            if self.count_include_pad:
                counts.append(end - start)
            else:
                counts.append(np.minimum(end, size) - np.maximum(start, 0))
        return np.outer(counts[0], counts[1])[:, :, None]

    def __call__(self, x: jax.Array) -> jax.Array:  # (N, H, W, C) -> (N, H', W', C)
        outs, pads = self._geometry(x.shape[1:3])
        taps = self._windows(x, pads, 0)[:, :, : outs[0], : outs[1]]  # (k*k, N, H', W', C)
        total = jnp.sum(taps, axis=0)
        if self.divisor_override is not None:
            return total / jnp.asarray(self.divisor_override, x.dtype)
        return total / jnp.asarray(self._divisor(x.shape[1:3], outs), x.dtype)


# --- Normalisation -------------------------------------------------------------------------------


class _BatchNorm(nnx.Module):
    """Batch normalisation over every axis but the last (channels-last)."""

    ndims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        rngs: nnx.Rngs | None = None,
        dtype: Any = jnp.float32,
        use_running_average: bool = False,
    ):
        del rngs  # deterministic initialisation (ones, zeros), accepted for a uniform signature
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.track_running_stats = track_running_stats
        # torch modules start in training mode; NNX's train()/eval() toggle this attribute.
        self.use_running_average = use_running_average
        self.scale = nnx.Param(jnp.ones((num_features,), dtype)) if affine else None
        self.bias = nnx.Param(jnp.zeros((num_features,), dtype)) if affine else None
        if track_running_stats:
            self.running_mean = nnx.BatchStat(jnp.zeros((num_features,), dtype))
            self.running_var = nnx.BatchStat(jnp.ones((num_features,), dtype))
            # torch keeps an int64 counter; int32 here (x64 may be off), int64 in a state_dict.
            self.num_batches_tracked = nnx.BatchStat(jnp.zeros((), jnp.int32))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def __call__(self, x: jax.Array) -> jax.Array:  # (N, ..., C) -> same
        if x.ndim not in self.ndims or x.shape[-1] != self.num_features:
            raise ConfigError(
                f"{type(self).__name__}({self.num_features}) expects a channels-last input of "
                f"rank {self.ndims} with {self.num_features} channels, got shape {x.shape}"
            )
        axes = tuple(range(x.ndim - 1))
        if self.use_running_average and self.track_running_stats:
            mean, var = self.running_mean[...], self.running_var[...]
        else:
            n = math.prod(x.shape[:-1])
            if n < 2:
                raise ConfigError(
                    f"expected more than 1 value per channel when training, got input {x.shape}"
                )
            mean = jnp.mean(x, axis=axes)
            # Two passes, as torch: E[(x - mean)^2], not nnx's default E[x^2] - E[x]^2, which
            # cancels catastrophically on offset data. Biased: used to normalise.
            var = jnp.mean(jnp.square(x - mean), axis=axes)
            if self.track_running_stats and not self.use_running_average:
                self._update(mean, var * (n / (n - 1)))  # unbiased: what torch stores
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        if self.scale is not None:
            y = y * self.scale[...] + self.bias[...]
        return y

    def _update(self, mean: jax.Array, unbiased_var: jax.Array) -> None:
        count = self.num_batches_tracked[...] + 1
        if self.momentum is None:  # torch: cumulative moving average, factor 1 / count
            m = 1.0 / count.astype(mean.dtype)
        else:
            m = jnp.asarray(self.momentum, mean.dtype)
        # torch's convention: new = (1 - momentum) * old + momentum * batch statistic.
        old_mean, old_var = self.running_mean[...], self.running_var[...]
        self.running_mean[...] = jax.lax.stop_gradient((1 - m) * old_mean + m * mean)
        self.running_var[...] = jax.lax.stop_gradient((1 - m) * old_var + m * unbiased_var)
        self.num_batches_tracked[...] = count


class BatchNorm1d(_BatchNorm):
    """``torch.nn.BatchNorm1d`` on ``(N, C)`` or channels-last ``(N, L, C)``.

    Training mode normalises with the batch mean and *biased* variance and updates the running
    statistics as torch does: ``new = (1 - momentum) * old + momentum * batch`` with the *unbiased*
    batch variance, and ``num_batches_tracked += 1`` (``momentum=None``: cumulative average).
    Evaluation mode (``use_running_average=True``) normalises with the running statistics.

    Args:
      num_features, eps, momentum, affine, track_running_stats: as torch (eps 1e-5, momentum 0.1).
      rngs: unused (the initialisation is ones and zeros); accepted like other layers'.
      dtype: parameter and statistic dtype.
      use_running_average: evaluation mode; False (training) as a fresh torch module.
    """

    ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """``torch.nn.BatchNorm2d`` on ``(N, H, W, C)``; see :class:`BatchNorm1d`."""

    ndims = (4,)


class LayerNorm(nnx.Module):
    """``torch.nn.LayerNorm``: normalises the trailing ``normalized_shape`` axes, eps 1e-5.

    Flax's ``nnx.LayerNorm`` defaults to eps 1e-6; the difference is measurable (pinned in the
    parity tests). The axes are the input's own trailing axes: a LayerNorm over several axes of a
    torch NCHW feature map would see them in another order here, which the converters do not
    guess (:func:`jaxtut.torch_ref.layers.describe` refuses it).

    Args:
      normalized_shape: int or tuple, the trailing shape to normalise over.
      eps, elementwise_affine, bias: as torch.
      rngs: unused (ones and zeros); accepted like other layers'.
      dtype: parameter dtype.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        rngs: nnx.Rngs | None = None,
        dtype: Any = jnp.float32,
    ):
        del rngs
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = eps
        affine = elementwise_affine
        self.scale = nnx.Param(jnp.ones(self.normalized_shape, dtype)) if affine else None
        has_bias = affine and bias
        self.bias = nnx.Param(jnp.zeros(self.normalized_shape, dtype)) if has_bias else None

    def __call__(self, x: jax.Array) -> jax.Array:  # (..., *normalized_shape) -> same
        axes = tuple(range(x.ndim - len(self.normalized_shape), x.ndim))
        mean = jnp.mean(x, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)  # biased, as torch
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        if self.scale is not None:
            y = y * self.scale[...]
        if self.bias is not None:
            y = y + self.bias[...]
        return y


# --- Embedding, dropout, shape and activation ----------------------------------------------------


class Embedding(nnx.Module):
    """``torch.nn.Embedding``: weights N(0, 1); the ``padding_idx`` row starts at zero and gets
    no gradient (its lookups are ``stop_gradient``-ed), as torch's backward skips it.

    ``max_norm``, ``scale_grad_by_freq`` and ``sparse`` are not offered.

    Args:
      num_embeddings, embedding_dim, padding_idx: as torch (a negative index counts from the end).
      rngs: random streams for the N(0, 1) draw.
      dtype: parameter dtype.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        rngs: nnx.Rngs,
        dtype: Any = jnp.float32,
    ):
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ConfigError(
                    f"padding_idx must be within num_embeddings ({num_embeddings}), "
                    f"got {padding_idx}"
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        weight = jax.random.normal(rngs.params(), (num_embeddings, embedding_dim), dtype)
        if padding_idx is not None:
            weight = weight.at[padding_idx].set(0)
        self.embedding = nnx.Param(weight)

    def __call__(self, idx: jax.Array) -> jax.Array:  # (...) int -> (..., embedding_dim)
        rows = jnp.take(self.embedding[...], idx, axis=0)
        if self.padding_idx is None:
            return rows
        # The forward value is the row as stored (zero unless someone changed it); only the
        # gradient is cut, which is what torch's embedding_backward does.
        pad = (idx == self.padding_idx)[..., None]
        return jnp.where(pad, jax.lax.stop_gradient(rows), rows)


def dropout_mask(rng: np.random.Generator | int, shape: Sequence[int], p: float) -> np.ndarray:
    """A keep-mask (``True`` = keep, with probability ``1 - p``) drawn with NumPy.

    Both frameworks apply the same mask (JAX: :class:`Dropout` with ``mask=``; torch:
    :class:`jaxtut.torch_ref.layers.SharedDropout`), which is the only way their dropout can agree:
    their generators differ. Draw it in the layout of the side that consumes it and convert with
    :func:`jaxtut.convert.to_channels_first` for the other.
    """
    rng = np.random.default_rng(rng) if isinstance(rng, int) else rng
    return rng.random(tuple(shape)) >= p


def apply_dropout_mask(x: jax.Array, mask: jax.Array, p: float) -> jax.Array:
    """Inverted dropout with a given keep-mask: ``x * (mask / (1 - p))``, torch's arithmetic
    (aten scales the Bernoulli noise by ``1 / (1 - p)`` first, then multiplies; p = 1 gives 0)."""
    if p == 1:
        return x * jnp.zeros((), x.dtype)
    return x * (jnp.asarray(mask, x.dtype) / jnp.asarray(1 - p, x.dtype))


class Dropout(nnx.Module):
    """``torch.nn.Dropout`` (inverted scaling) whose mask can be given explicitly.

    In training mode (``deterministic=False``, the default as in torch) the call needs either
    ``mask`` (a keep-mask shaped like ``x``, e.g. from :func:`dropout_mask`) or ``key`` (a JAX
    PRNG key to draw one); evaluation mode is the identity.

    Args:
      p: the probability of dropping a unit.
      deterministic: evaluation mode; NNX's ``train()``/``eval()`` toggle it.
    """

    def __init__(self, p: float = 0.5, *, deterministic: bool = False):
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.deterministic = deterministic

    def __call__(
        self, x: jax.Array, mask: jax.Array | None = None, *, key: jax.Array | None = None
    ) -> jax.Array:
        if self.deterministic or self.p == 0:
            return x
        if mask is None:
            if key is None:
                raise ConfigError("Dropout in training mode needs a mask or a key")
            mask = jax.random.bernoulli(key, 1 - self.p, x.shape)
        elif tuple(mask.shape) != tuple(x.shape):
            raise ConfigError(f"dropout mask shape {tuple(mask.shape)} != input shape {x.shape}")
        return apply_dropout_mask(x, mask, self.p)


class Flatten(nnx.Module):
    """``torch.nn.Flatten`` (``start_dim=1``, ``end_dim=-1``) applied to the JAX layout.

    After a convolution the JAX input is NHWC, so the features come out ordered (H, W, C), not
    torch's (C, H, W). The next Linear's kernel must be permuted: pass ``flatten_chw`` to the
    converters or use :func:`jaxtut.convert.flatten_permutation`.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def __call__(self, x: jax.Array) -> jax.Array:
        start = self.start_dim % x.ndim
        end = self.end_dim % x.ndim
        return x.reshape(*x.shape[:start], -1, *x.shape[end + 1 :])


def gelu(x: jax.Array, approximate: str = "none") -> jax.Array:
    """torch's GELU: exact ``x/2 (1 + erf(x/√2))`` by default, ``'tanh'`` for the approximation.

    ``jax.nn.gelu`` defaults to the tanh approximation; its exact form uses ``erfc``, which equals
    torch's ``erf`` formula mathematically but not bit for bit. This uses torch's formulas.
    """
    if approximate == "none":
        return 0.5 * x * (1 + jax.scipy.special.erf(x * jnp.asarray(1 / math.sqrt(2), x.dtype)))
    if approximate == "tanh":
        beta = jnp.asarray(math.sqrt(2 / math.pi), x.dtype)
        return 0.5 * x * (1 + jnp.tanh(beta * (x + jnp.asarray(0.044715, x.dtype) * x * x * x)))
    raise ConfigError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


class GELU(nnx.Module):
    """``torch.nn.GELU`` (``approximate='none'`` by default); see :func:`gelu`."""

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ConfigError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def __call__(self, x: jax.Array) -> jax.Array:
        return gelu(x, self.approximate)


# --- Loss ----------------------------------------------------------------------------------------


def cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    *,
    weight: jax.Array | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> jax.Array:
    """``torch.nn.functional.cross_entropy`` with integer labels; the class axis is the LAST.

    With ``lp = log_softmax(logits)``, ``w`` the class weights (ones by default), ``ε`` the label
    smoothing, ``C`` the class count and the sums over non-ignored targets ``i``:

    - per target: ``(1 - ε) · (−w[y_i] lp[i, y_i]) + ε / C · (−Σ_c w[c] lp[i, c])``; ignored
      targets give 0 (``reduction='none'``);
    - ``'sum'``: the sum of those;
    - ``'mean'``: both terms divided by ``Σ_i w[y_i]`` (the target weights, not the count; the
      count when unweighted), as aten's ``cross_entropy_loss_label_smoothing`` does. All targets
      ignored gives nan (0/0), as torch.

    Args:
      logits: ``(..., C)`` unnormalised scores (torch's ``(N, C, d1, ...)`` moved channels-last).
      labels: ``(...)`` integer class indices, or ``ignore_index``.
      weight: optional ``(C,)`` class weights.
      ignore_index, label_smoothing, reduction: as torch.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ConfigError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    n_classes = logits.shape[-1]
    lp = jax.nn.log_softmax(logits, axis=-1)  # (..., C)
    valid = labels != ignore_index  # (...)
    safe = jnp.where(valid, labels, 0)
    picked = jnp.take_along_axis(lp, safe[..., None], axis=-1)[..., 0]  # (...)
    w_y = jnp.ones_like(picked) if weight is None else jnp.asarray(weight, lp.dtype)[safe]
    nll = jnp.where(valid, -w_y * picked, 0)
    if label_smoothing > 0:
        weighted = lp if weight is None else lp * jnp.asarray(weight, lp.dtype)
        smooth = jnp.where(valid, -jnp.sum(weighted, axis=-1), 0)
    else:
        smooth = jnp.zeros_like(nll)
    eps = label_smoothing
    if reduction == "none":
        return (1 - eps) * nll + eps / n_classes * smooth
    if reduction == "sum":
        return (1 - eps) * jnp.sum(nll) + eps / n_classes * jnp.sum(smooth)
    denom = jnp.sum(jnp.where(valid, w_y, 0))
    return (1 - eps) * (jnp.sum(nll) / denom) + eps / n_classes * (jnp.sum(smooth) / denom)


# --- Functional use ------------------------------------------------------------------------------


def split(model: nnx.Module) -> tuple[nnx.GraphDef, dict[str, Any], dict[str, Any]]:
    """``(graphdef, params, batch_stats)``: the module as a definition and two plain dicts.

    ``batch_stats`` holds every ``nnx.BatchStat`` (BatchNorm's running statistics); it is ``{}``
    for a model without them. Any other variable kind is an error (nothing may hide state).
    """
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(stats)


def apply(
    graphdef: nnx.GraphDef,
    params: dict[str, Any],
    batch_stats: dict[str, Any],
    *args: Any,
    train: bool,
    **kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    """Calls the model as a pure function: ``(output, new batch_stats)``.

    ``train`` selects torch's mode: batch statistics (and their running update) and active
    dropout, or running statistics and no dropout. In evaluation mode the returned statistics are
    the given ones. Safe to ``jit`` and differentiate (the statistics carry no gradient).
    """
    # Arrays, not NumPy buffers: the statistics' update assigns into them while tracing.
    params, batch_stats = jax.tree.map(jnp.asarray, (params, batch_stats))
    model = nnx.merge(graphdef, params, batch_stats)
    if train:
        model.train()
    else:
        model.eval()
    out = model(*args, **kwargs)
    return out, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
