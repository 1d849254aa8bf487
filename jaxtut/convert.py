"""Moving parameters between the JAX params tree and a PyTorch ``state_dict``.

Both sides are plain mappings of NumPy arrays here (the torch side converts tensors with
``.numpy()`` before calling in), so this module never imports torch. The JAX modules mirror the
torch modules' attribute names, so a path maps to a key mechanically; the layout of each leaf is
chosen by one explicit rule per leaf name (and, for kernels, rank):

===========================  ==============================  ======================================
JAX leaf (layout)            torch key (layout)              rule
===========================  ==============================  ======================================
``kernel`` (in, out)         ``weight`` (out, in)            transposed (Linear)
``kernel`` (k, I, O)         ``weight`` (O, I, k)            axes (2, 1, 0) (Conv1d, WIO -> OIW)
``kernel`` (kh, kw, I, O)    ``weight`` (O, I, kh, kw)       axes (3, 2, 0, 1) (Conv2d, HWIO->OIHW)
``scale`` (n,)               ``weight``                      renamed (BatchNorm, LayerNorm)
``embedding`` (num, dim)     ``weight``                      renamed (Embedding)
``num_batches_tracked`` ()   ``num_batches_tracked``         int64 on the torch side (int32 here)
anything else (``bias``,     the same name                   as is (``running_mean``,
``w``...)                                                    ``running_var``, bare parameters)
===========================  ==============================  ======================================

A kernel's rule generalises to any rank ``n >= 2``: JAX keeps ``(*spatial, in, out)`` and torch
``(out, in, *spatial)``. A Linear that follows a Flatten of a convolutional feature map needs one
more, non-local rule: NHWC flattens a ``(C, H, W)`` map in H, W, C order, so that Linear's kernel
rows are permuted (``flatten_chw={"fc1": (C, H, W)}``; :func:`flatten_permutation`).

A round trip in either direction is exact: values are copied or permuted, never recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxtut.errors import ConfigError

_RENAMED = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat = {}
    for key, value in tree.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path))
        else:
            flat[path] = value
    return flat


def torch_key(path: tuple[str, ...]) -> str:
    """The ``state_dict`` key for a JAX params path (``('fc1', 'kernel')`` -> ``'fc1.weight'``).

    ``kernel``, ``scale`` and ``embedding`` become ``weight``; every other name is kept.
    """
    *parents, leaf = path
    return ".".join([*parents, _RENAMED.get(leaf, leaf)])


def _kernel_axes_to_torch(ndim: int) -> tuple[int, ...]:
    # (*spatial, in, out) -> (out, in, *spatial); for ndim 2 this is the plain transpose.
    return (ndim - 1, ndim - 2, *range(ndim - 2))


def _kernel_axes_from_torch(ndim: int) -> tuple[int, ...]:
    # (out, in, *spatial) -> (*spatial, in, out); the inverse of _kernel_axes_to_torch.
    return (*range(2, ndim), 1, 0)


def flatten_permutation(chw: tuple[int, ...]) -> np.ndarray:
    """Where each channels-last flattened feature sits in torch's flattened order.

    For a torch feature map of shape ``(N, *chw)`` (``chw = (C, H, W)`` or ``(C, L)``),
    ``x_nhwc.reshape(N, -1) == x_nchw.reshape(N, -1)[:, perm]``.
    """
    idx = np.arange(int(np.prod(chw))).reshape(chw)  # torch's flat index of each element
    return np.moveaxis(idx, 0, -1).reshape(-1)


def linear_weight_to_channels_last(weight: np.ndarray, chw: tuple[int, ...]) -> np.ndarray:
    """A torch Linear weight ``(out, C*H*W)`` whose input came from ``Flatten`` of an NCHW map,
    with its columns reordered for an NHWC flatten (still in torch's ``(out, in)`` layout)."""
    return np.asarray(weight)[:, flatten_permutation(chw)]


def linear_weight_to_channels_first(weight: np.ndarray, chw: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`linear_weight_to_channels_last`."""
    return np.asarray(weight)[:, np.argsort(flatten_permutation(chw))]


def to_channels_last(x: Any) -> np.ndarray:
    """torch's ``(N, C, *spatial)`` activation as JAX's ``(N, *spatial, C)`` (a copy)."""
    x = np.asarray(x)
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if x.ndim > 2 else x.copy()


def to_channels_first(x: Any) -> np.ndarray:
    """JAX's ``(N, *spatial, C)`` activation as torch's ``(N, C, *spatial)`` (a copy)."""
    x = np.asarray(x)
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) if x.ndim > 2 else x.copy()


def _check_flatten_chw(flatten_chw: Mapping[str, tuple[int, ...]], keys: set[str]) -> None:
    for module in flatten_chw:
        if f"{module}.weight" not in keys:
            raise ConfigError(f"flatten_chw names {module!r}, which has no weight to permute")


def to_state_dict(
    params: Mapping[str, Any], *, flatten_chw: Mapping[str, tuple[int, ...]] | None = None
) -> dict[str, np.ndarray]:
    """JAX params tree -> ``{torch key: array in torch layout}`` (NumPy, contiguous copies).

    Args:
      params: a params tree; BatchNorm statistics may be merged in (:func:`merge_trees`).
      flatten_chw: torch module path of each Linear fed by a Flatten of a ``(C, H, W)`` (or
        ``(C, L)``) torch feature map -> that shape; its weight columns are put back in torch's
        C, H, W order.

    Raises:
      ConfigError: two leaves map to the same key, or ``flatten_chw`` names no Linear.
    """
    out: dict[str, np.ndarray] = {}
    for path, leaf in _flatten(params).items():
        arr = np.asarray(leaf)
        if path[-1] == "kernel" and arr.ndim >= 2:
            arr = arr.transpose(_kernel_axes_to_torch(arr.ndim))
        elif path[-1] == "num_batches_tracked":
            arr = arr.astype(np.int64)  # torch's counter dtype
        key = torch_key(path)
        if key in out:
            raise ConfigError(f"two parameters map to the torch key {key!r}")
        out[key] = np.array(arr, order="C", copy=True)
    flatten_chw = flatten_chw or {}
    _check_flatten_chw(flatten_chw, set(out))
    for module, chw in flatten_chw.items():
        key = f"{module}.weight"
        out[key] = np.ascontiguousarray(linear_weight_to_channels_first(out[key], chw))
    return out


def from_state_dict(
    state_dict: Mapping[str, Any],
    template: Mapping[str, Any],
    *,
    flatten_chw: Mapping[str, tuple[int, ...]] | None = None,
) -> dict[str, Any]:
    """``state_dict`` -> a JAX params tree shaped like ``template``, as NumPy arrays.

    Args:
      state_dict: torch keys to arrays in torch layout (tensors must be converted by the caller).
      template: a params tree (real or abstract arrays) giving the structure, shapes and dtypes;
        merge BatchNorm statistics in (:func:`merge_trees`) to convert buffers too.
      flatten_chw: as in :func:`to_state_dict`: Linears fed by a flattened ``(C, H, W)`` map get
        their weight columns reordered for the channels-last flatten.

    Raises:
      ConfigError: a key is missing or unexpected, two leaves map to one key, a shape does not
        match (the message names the key and both shapes), or ``flatten_chw`` names no Linear.
    """
    flat = _flatten(template)
    wanted: dict[str, tuple[str, ...]] = {}
    for path in flat:
        key = torch_key(path)
        if key in wanted:
            raise ConfigError(f"two parameters map to the torch key {key!r}")
        wanted[key] = path
    missing = sorted(set(wanted) - set(state_dict))
    extra = sorted(set(state_dict) - set(wanted))
    if missing or extra:
        raise ConfigError(
            f"parameters do not match the model: missing {missing or 'none'}, "
            f"unexpected {extra or 'none'}"
        )
    flatten_chw = flatten_chw or {}
    _check_flatten_chw(flatten_chw, set(wanted))
    out: dict[str, Any] = {}
    for key, path in wanted.items():
        arr = np.asarray(state_dict[key])
        ref = flat[path]
        shape = tuple(ref.shape)
        is_kernel = path[-1] == "kernel" and len(shape) >= 2
        axes = _kernel_axes_to_torch(len(shape)) if is_kernel else tuple(range(len(shape)))
        expected = tuple(shape[a] for a in axes)
        if arr.shape != expected:
            raise ConfigError(f"parameter {key}: expected shape {expected}, got {arr.shape}")
        module = key.rsplit(".", 1)[0]
        if is_kernel and module in flatten_chw:
            chw = tuple(flatten_chw[module])
            if int(np.prod(chw)) != arr.shape[1]:
                raise ConfigError(
                    f"parameter {key}: flatten_chw {chw} has {int(np.prod(chw))} features, "
                    f"the weight has {arr.shape[1]}"
                )
            arr = linear_weight_to_channels_last(arr, chw)
        if is_kernel:
            arr = arr.transpose(_kernel_axes_from_torch(arr.ndim))
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = np.array(arr, dtype=ref.dtype, order="C", copy=True)
    return out


def merge_trees(*trees: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merges nested dicts with disjoint leaves (params and batch statistics, say)."""
    out: dict[str, Any] = {}
    for tree in trees:
        for path, leaf in _flatten(tree).items():
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            if path[-1] in node:
                raise ConfigError(f"leaf {'/'.join(path)} is in more than one tree")
            node[path[-1]] = leaf
    return out


def split_tree(tree: Mapping[str, Any], like: Mapping[str, Any]) -> tuple[dict, dict]:
    """Splits ``tree`` into (the leaves not in ``like``, the leaves at ``like``'s paths).

    The inverse of :func:`merge_trees` for two trees: ``split_tree(merged, batch_stats)``.
    """
    take = set(_flatten(like))
    rest: dict[str, Any] = {}
    picked: dict[str, Any] = {}
    for path, leaf in _flatten(tree).items():
        node = picked if path in take else rest
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = leaf
    return rest, picked


def cast_state_dict(state_dict: Mapping[str, Any], dtype: str | np.dtype) -> dict[str, np.ndarray]:
    """Returns a copy of ``state_dict`` with every floating array cast to ``dtype``.

    Integer buffers (BatchNorm's ``num_batches_tracked``) keep their dtype.
    """
    out = {}
    for k, v in state_dict.items():
        arr = np.asarray(v)
        out[k] = arr.astype(dtype if np.issubdtype(arr.dtype, np.floating) else arr.dtype)
    return out
