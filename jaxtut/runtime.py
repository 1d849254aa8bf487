"""Where and in what precision a run executes: dtype, device and the versions that shaped it.

JAX's float64 is a process-wide switch unless it is scoped; ``jax.enable_x64`` is a context
manager in the JAX versions this project supports, so every run enters :func:`jax_runtime`, which
scopes x64, the default device and the matmul precision together. Precision is pinned to
``highest`` because JAX's float32 matmul on GPU otherwise runs in reduced precision (TF32/bf16
passes), which would make the GPU parity figures meaningless.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import platform
from collections.abc import Iterator

import numpy as np

from jaxtut.errors import ConfigError, DeviceError

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "gpu")

# Seeds are unsigned 32-bit integers: the most that every consumer takes in full. PyTorch's CPU
# generator (mt19937) keeps only the low 32 bits of ``torch.manual_seed``'s argument, so seeds
# 2**32 apart drew the very same torch parameters (measured: seed 2**32 == seed 0); JAX's key keeps
# 32 bits too when x64 is off. A seed that a framework would alias is refused, not folded down.
MAX_SEED = 2**32 - 1


def check_seed(seed: object, what: str = "seed") -> int:
    """Returns ``seed`` as an int if it is an integer in ``[0, MAX_SEED]``, else raises ConfigError.

    Booleans are refused (``True`` is an ``int`` to Python but never a seed a user meant).
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"{what} must be an integer in [0, 2**32 - 1], got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(
            f"{what} must be an integer in [0, 2**32 - 1] (PyTorch's CPU generator and a float32 "
            f"JAX key keep 32 bits, so larger seeds would repeat smaller ones), got {seed}"
        )
    return seed


def prng_key(seed: int):
    """The JAX PRNG key of ``seed``, the same whatever the x64 setting, after checking the seed.

    ``jax.random.key(seed)`` silently keeps only the low 32 bits when x64 is off (float32 runs),
    and so aliased seed ``2**32`` with seed ``0``; this refuses such a seed instead
    (:func:`check_seed`). For every valid seed the key is exactly ``jax.random.key(seed)``'s, in
    float32 and float64 runs alike.

    Args:
      seed: an integer in ``[0, MAX_SEED]``.

    Raises:
      ConfigError: ``seed`` is not such an integer.
    """
    return prng_keys([seed])[0]


def prng_keys(seeds) -> object:
    """A batch of :func:`prng_key` keys, shape ``(len(seeds),)``, built in one host-side step.

    Building K keys one by one and stacking them costs K dispatches and a K-operand concatenate
    that XLA compiles for each K (about 80 s for K = 10000); this is one NumPy computation and one
    transfer, linear in K.
    """
    import jax

    seeds = np.asarray([check_seed(s) for s in seeds], dtype=np.uint32).reshape(-1)
    if str(jax.random.key_impl(jax.random.key(0))) == "threefry2x32":
        # Threefry key data is [high word, low word] of the seed; the high word of a 32-bit seed
        # is 0 (what jax.random.key writes in either x64 mode).
        data = np.stack([np.zeros_like(seeds), seeds], axis=-1)
        return jax.random.wrap_key_data(data, impl="threefry2x32")
    return jax.vmap(jax.random.key)(seeds)  # another default PRNG (e.g. rbg): its own layout


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

    Returns:
      A new dict on every call (callers may edit it).
    """
    return dict(_versions(torch))


@functools.cache
def _versions(torch: bool) -> tuple[tuple[str, str | None], ...]:
    # Cached: each lookup parses package metadata (about 1 ms), and a run of 10000 seeds asks
    # once per seed, which cost 34 s. Installed versions cannot change under a running process.
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
    return tuple(out.items())
