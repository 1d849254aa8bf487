"""The one place that turns a user's ``dtype`` option into a NumPy dtype.

The tutorials run in float32 by default (as PyTorch does) and in float64 for the parity suite, so
only those two are accepted: anything else is almost certainly a typo in an option.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxtut.errors import ConfigError

_ALLOWED = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype: Any) -> np.dtype:
    """Turns ``"float32"``/``"float64"`` or a NumPy (or JAX) float dtype into a ``np.dtype``.

    Args:
        dtype: A dtype name, a scalar type such as ``np.float32``, or a ``np.dtype``.

    Returns:
        The matching ``np.dtype`` (float32 or float64).

    Raises:
        ConfigError: If ``dtype`` is not float32 or float64.
    """
    # np.dtype(None) is float64; a missing option should not silently mean double precision.
    if dtype is None:
        raise ConfigError("dtype must be 'float32' or 'float64', not None")
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise ConfigError(f"dtype must be 'float32' or 'float64', not {dtype!r}") from None
    if result not in _ALLOWED:
        raise ConfigError(f"dtype must be 'float32' or 'float64', not {dtype!r}")
    return result
