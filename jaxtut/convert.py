"""Moving parameters between the JAX params tree and a PyTorch ``state_dict``.

Both sides are plain mappings of NumPy arrays here (the torch side converts tensors with
``.numpy()`` before calling in), so this module never imports torch. The mapping is mechanical
because the JAX modules mirror the torch modules' attribute names:

=====================  ======================  ===========================
JAX path               torch key               layout
=====================  ======================  ===========================
``fc1/kernel`` (in,out) ``fc1.weight`` (out,in)  transposed
``fc1/bias`` (out,)     ``fc1.bias`` (out,)      as is
``w`` (any)             ``w``                    as is (bare parameters)
=====================  ======================  ===========================

A round trip in either direction is exact: values are copied, never recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxtut.errors import ConfigError


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
    """The ``state_dict`` key for a JAX params path (``('fc1', 'kernel')`` -> ``'fc1.weight'``)."""
    *parents, leaf = path
    return ".".join([*parents, "weight" if leaf == "kernel" else leaf])


def to_state_dict(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """JAX params tree -> ``{torch key: array in torch layout}`` (NumPy, contiguous copies)."""
    out = {}
    for path, leaf in _flatten(params).items():
        arr = np.asarray(leaf)
        if path[-1] == "kernel":
            arr = arr.T  # Flax stores (in, out); torch stores (out, in).
        out[torch_key(path)] = np.ascontiguousarray(arr).copy()
    return out


def from_state_dict(state_dict: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    """``state_dict`` -> a JAX params tree shaped like ``template``, as NumPy arrays.

    Args:
      state_dict: torch keys to arrays in torch layout (tensors must be converted by the caller).
      template: a params tree (real or abstract arrays) giving the structure, shapes and dtypes.

    Raises:
      ConfigError: a key is missing or unexpected, or a shape does not match; the message names the
        key and both shapes.
    """
    flat = _flatten(template)
    wanted = {torch_key(path): path for path in flat}
    missing = sorted(set(wanted) - set(state_dict))
    extra = sorted(set(state_dict) - set(wanted))
    if missing or extra:
        raise ConfigError(
            f"parameters do not match the model: missing {missing or 'none'}, "
            f"unexpected {extra or 'none'}"
        )
    out: dict[str, Any] = {}
    for key, path in wanted.items():
        arr = np.asarray(state_dict[key])
        ref = flat[path]
        expected = tuple(ref.shape)[::-1] if path[-1] == "kernel" else tuple(ref.shape)
        if arr.shape != expected:
            raise ConfigError(f"parameter {key}: expected shape {expected}, got {arr.shape}")
        if path[-1] == "kernel":
            arr = arr.T
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = np.ascontiguousarray(arr, dtype=ref.dtype).copy()
    return out


def cast_state_dict(state_dict: Mapping[str, Any], dtype: str | np.dtype) -> dict[str, np.ndarray]:
    """Returns a copy of ``state_dict`` with every array cast to ``dtype``."""
    return {k: np.asarray(v).astype(dtype, copy=True) for k, v in state_dict.items()}
