"""Framework-neutral parameter files: safetensors with PyTorch's names and layouts.

A file written by ``jaxtut run --save`` loads into the torch reference as a ``state_dict``
(``load_state_dict(safetensors.torch.load_file(path))``) and into the JAX side through
:func:`jaxtut.convert.from_state_dict`. safetensors stores raw tensors and a JSON header, so
loading never unpickles anything (unlike ``torch.load`` of an untrusted file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jaxtut.errors import ConfigError, DataError
from jaxtut.io import atomic_path

# PyTorch's one integer entry in a state_dict (BatchNorm's step counter); every other tensor of a
# model these tutorials build is floating point.
INTEGER_BUFFERS = ("num_batches_tracked",)


def check_state_dict(
    state_dict: object,
    like: Mapping[str, object] | None = None,
    *,
    source: str = "init_params",
) -> None:
    """Checks starting parameters before a run uses them, on either framework's side.

    A run would otherwise cast an integer tensor to float silently, or start from NaN weights and
    then report a divergence that it blames on the learning rate.

    Args:
      state_dict: names mapped to arrays (a PyTorch-style ``state_dict`` of NumPy arrays).
      like: the model's own ``state_dict`` (anything with ``.shape`` and ``.dtype`` per name);
        when given, names and shapes must match it and a tensor is integer exactly where the
        model's is. Without it, only :data:`INTEGER_BUFFERS` may be integer.
      source: how to name the parameters in messages (e.g. the file they came from).

    Raises:
      ConfigError: not a mapping, a tensor of the wrong kind (integer for floating or the
        reverse) or not finite, or (with ``like``) a missing, unexpected or misshapen tensor.
    """
    if not isinstance(state_dict, Mapping):
        raise ConfigError(f"{source} must map parameter names to arrays, got {type(state_dict)}")
    if like is not None:
        missing = sorted(set(like) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(like))
        if missing or unexpected:
            parts = [f"missing {', '.join(missing)}"] if missing else []
            parts += [f"unexpected {', '.join(map(str, unexpected))}"] if unexpected else []
            raise ConfigError(
                f"{source} does not match the model ({'; '.join(parts)}); it expects "
                f"{', '.join(sorted(like))}"
            )
    for name, value in state_dict.items():
        try:
            array = np.asarray(value)
        except Exception:  # any object: report it, whatever numpy raises
            raise ConfigError(f"{source}: {name!r} is not an array") from None
        if like is not None:
            want_float = _is_floating(like[name])
        else:
            want_float = not str(name).endswith(INTEGER_BUFFERS)
        if want_float and not np.issubdtype(array.dtype, np.floating):
            raise ConfigError(
                f"{source}: tensor {name!r} is {array.dtype}, not floating point; parameters are "
                "never cast silently, so save them as float32 or float64"
            )
        if not want_float and not np.issubdtype(array.dtype, np.integer):
            raise ConfigError(f"{source}: tensor {name!r} is {array.dtype}, expected an integer")
        if want_float and not np.isfinite(array).all():
            raise ConfigError(
                f"{source}: tensor {name!r} holds NaN or infinite values; a run cannot start "
                "from them"
            )
        if like is not None:
            shape = tuple(like[name].shape)
            if array.shape != shape:
                raise ConfigError(
                    f"{source}: tensor {name!r} has shape {array.shape}, the model needs {shape}"
                )


def _is_floating(reference: object) -> bool:
    """Whether a reference tensor (NumPy, JAX or torch) is floating point."""
    floating = getattr(reference, "is_floating_point", None)  # torch
    if callable(floating):
        return bool(floating())
    return bool(np.issubdtype(np.dtype(reference.dtype), np.floating))


def save_params(
    path: str | os.PathLike,
    state_dict: Mapping[str, np.ndarray],
    *,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Atomically writes a NumPy ``state_dict`` (plus string metadata) as safetensors."""
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v) for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=dict(metadata or {}))
    return Path(path)


def load_params(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Reads a safetensors file; returns ``(state_dict, metadata)``.

    Raises:
      DataError: the file is missing or is not a valid safetensors file, or a tensor in it is
        not floating point or not finite (see :func:`check_state_dict`).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise DataError(f"parameter file {path} does not exist")
    if not path.is_file():
        raise DataError(f"parameter file {path} is not a regular file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path} is not a valid safetensors parameter file ({reason})") from None
    except Exception as err:  # a crafted file (e.g. bf16) may trip the reader anywhere
        raise DataError(
            f"{path} is not a readable safetensors parameter file ({type(err).__name__})"
        ) from None
    try:
        check_state_dict(tensors, source=str(path))
    except ConfigError as err:
        raise DataError(str(err)) from None
    return tensors, metadata
