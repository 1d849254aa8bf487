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

from jaxtut.errors import DataError
from jaxtut.io import atomic_path


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
      DataError: the file is missing or is not a valid safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(f"parameter file {path} does not exist")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as err:
        raise DataError(f"{path} is not a valid safetensors parameter file ({err})") from None
    return tensors, metadata
