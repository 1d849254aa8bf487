"""Where and in what precision a run executes: dtype, device and the versions that shaped it.

JAX's float64 is a process-wide switch unless it is scoped; ``jax.enable_x64`` is a context
manager in the JAX versions this project supports, so every run enters :func:`jax_runtime`, which
scopes x64, the default device and the matmul precision together. Precision is pinned to
``highest`` because JAX's float32 matmul on GPU otherwise runs in reduced precision (TF32/bf16
passes), which would make the GPU parity figures meaningless.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
from collections.abc import Iterator

import numpy as np

from jaxtut.errors import ConfigError, DeviceError

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "gpu")


def check_dtype(dtype: str) -> str:
    """Returns ``dtype`` if it is one of :data:`DTYPES`, else raises :class:`ConfigError`."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def np_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype for a dtype name (``"float32"`` or ``"float64"``)."""
    return np.dtype(check_dtype(dtype))


def resolve_jax_device(device: str):
    """Returns the first JAX device of the requested kind.

    Args:
      device: ``"cpu"`` or ``"gpu"``.

    Raises:
      DeviceError: if no such device exists; the message lists the devices that do.
    """
    import jax

    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    try:
        devices = jax.devices(device)
    except RuntimeError:
        devices = []
    if not devices:
        have = ", ".join(sorted({f"{d.platform}:{d.id}" for d in jax.devices()}))
        raise DeviceError(f"no JAX {device} device is available (JAX sees: {have})")
    return devices[0]


@contextlib.contextmanager
def jax_runtime(dtype: str = "float32", device: str = "cpu") -> Iterator:
    """Scopes x64, the default device and the highest matmul precision for one run.

    Yields:
      The ``jax.Device`` that the run uses.
    """
    import jax

    check_dtype(dtype)
    dev = resolve_jax_device(device)
    with (
        jax.enable_x64(dtype == "float64"),
        jax.default_device(dev),
        jax.default_matmul_precision("highest"),
    ):
        yield dev


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(*, torch: bool = False) -> dict[str, str | None]:
    """Versions of everything a parity or timing figure depends on.

    Args:
      torch: also report torch's version (imports torch only if asked).
    """
    out = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "flax": _version("flax"),
        "optax": _version("optax"),
        "numpy": np.__version__,
    }
    if torch:
        out["torch"] = _version("torch")
    return out
