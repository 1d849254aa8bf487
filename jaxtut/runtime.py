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

# Seeds are unsigned 64-bit integers: the most that every consumer takes in full. PyTorch's
# ``manual_seed`` rejects larger ones, and a JAX threefry key holds exactly 64 bits. A larger seed
# could only be folded (hashed) down, so two seeds could meet; it is rejected instead.
MAX_SEED = 2**64 - 1


def check_seed(seed: object, what: str = "seed") -> int:
    """Returns ``seed`` as an int if it is an integer in ``[0, MAX_SEED]``, else raises ConfigError.

    Booleans are refused (``True`` is an ``int`` to Python but never a seed a user meant).
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"{what} must be an integer in [0, 2**64 - 1], got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(
            f"{what} must be an integer in [0, 2**64 - 1] (64 bits, what PyTorch and a JAX key "
            f"hold), got {seed}"
        )
    return seed


def _key_data(seeds: np.ndarray) -> np.ndarray:
    """``(..., 2)`` uint32 threefry key data ``[high 32 bits, low 32 bits]`` of uint64 seeds."""
    seeds = seeds.astype(np.uint64)
    return np.stack([seeds >> np.uint64(32), seeds & np.uint64(0xFFFFFFFF)], axis=-1).astype(
        np.uint32
    )


def prng_key(seed: int):
    """A JAX PRNG key that uses all 64 bits of ``seed``, whatever the x64 setting.

    ``jax.random.key(seed)`` keeps only the low 32 bits when x64 is off (float32 runs), so seed
    ``2**32`` drew the same parameters as seed ``0``; with x64 on it rejects seeds of 2**63 and
    more. Threefry's key is two 32-bit words, and JAX with x64 on fills them with the seed's
    high and low halves; this builds that very key in either mode. Hence for every seed below
    ``2**32`` (all seeds a run used before) the key, and so the initial parameters, are exactly
    those of ``jax.random.key(seed)``, float32 and float64 runs of one seed start from the same
    key, and distinct seeds never share a key.

    Args:
      seed: an integer in ``[0, 2**64 - 1]``.

    Raises:
      ConfigError: ``seed`` is not such an integer (see :func:`check_seed`).
    """
    return prng_keys([seed])[0]


def prng_keys(seeds) -> object:
    """A batch of :func:`prng_key` keys, shape ``(len(seeds),)``, built in one host-side step.

    Building K keys one by one and stacking them costs K dispatches and a K-operand concatenate
    that XLA compiles for each K (about 80 s for K = 10000); this is one NumPy computation and one
    transfer, linear in K.
    """
    import jax

    seeds = [check_seed(s) for s in seeds]
    data = _key_data(np.asarray(seeds, dtype=np.uint64).reshape(-1))
    impl = jax.random.key_impl(jax.random.key(0))
    if str(impl) == "threefry2x32":
        return jax.random.wrap_key_data(data, impl="threefry2x32")
    # Another default PRNG (e.g. rbg): its key layout differs, so fold the high word in.
    keys = jax.vmap(jax.random.key)(data[:, 1])
    return jax.vmap(jax.random.fold_in)(keys, data[:, 0])


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
