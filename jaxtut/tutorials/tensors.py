"""Tensor basics in JAX: creation, dtypes, arithmetic, indexing, reshaping, NumPy, devices.

Every operation of the PyTorch tensor tour (seeds 000, 001, 004) is performed in ``jax.numpy`` and
recorded as an :class:`Op` (name, the code that produced it, value, dtype, shape, device), so the
parity suite compares it with the PyTorch reference (:mod:`jaxtut.torch_ref.tensors`) one operation
at a time. Where the two libraries differ, the JAX code says so in a comment; the differences:

* **Immutable arrays.** There is no in-place ``add_`` and no ``out=``: ``y.at[...].add(r)`` and
  ``jnp.add(x, y)`` return new arrays, and the old name is rebound. Item assignment raises.
* **Explicit random keys.** ``torch.manual_seed`` seeds a hidden global generator; JAX takes a
  ``key`` argument and the code splits one key per draw. Same seed, different numbers: random
  operations compare by shape, dtype and range only.
* **64-bit types need x64.** Under JAX's default configuration ``jnp.array([1, 2, 3])`` is int32,
  ``jnp.zeros(2, dtype=jnp.int64)`` warns and returns int32, and float64 NumPy data becomes
  float32. :func:`operations` therefore runs inside :func:`jaxtut.runtime.jax_runtime` with x64 on
  (``"float64"``) and names every floating dtype explicitly, because under x64 JAX's default float
  is float64 while PyTorch's stays float32.
* **Uninitialised memory depends on the JAX version.** ``torch.empty`` returns whatever the
  allocator held. ``jnp.empty`` returned zeros on every platform up to jax 0.10; from jax 0.11 it
  returns an uninitialised buffer where the backend can (measured on an H100: non-zero values), as
  ``jax.lax.empty`` always does. Only its shape and dtype are specified, in both frameworks.
* **NumPy interop copies.** ``torch.from_numpy`` shares the NumPy buffer (write one, the other
  changes). ``jnp.asarray`` copies, but asynchronously: write the NumPy array only once the JAX
  array is ready (``block_until_ready``), or the write can race the copy for large arrays. And
  ``jax.device_put`` of a 64-byte-aligned NumPy array on CPU may alias it outright
  (jax-ml/jax#37830), so never mutate a NumPy array JAX was handed.
* **Names.** ``torch.Tensor.view(shape)`` is ``reshape`` (``jax.Array.view`` reinterprets the
  dtype, as NumPy's does); ``x.size()`` is ``x.shape``, and JAX's ``x.size`` is the element
  count (``torch``'s ``numel()``).
* **Devices.** PyTorch creates tensors on the CPU and ``.to(device)`` moves them; JAX creates
  arrays on its default device, which is the first accelerator when there is one. To mirror the
  tutorial the operations run with the CPU as default device and ``jax.device_put`` moves one
  array to ``config.device``.

Example:
  >>> from jaxtut.tutorials import tensors
  >>> ops = {op.name: op for op in tensors.operations(seed=0)}
  >>> ops["view_16x1"].shape, ops["view_16x1"].dtype
  ((16, 1), 'int64')
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxtut.configs import TensorsConfig
from jaxtut.result import RunResult
from jaxtut.runtime import jax_runtime, resolve_jax_device, versions

# How the parity suite compares an operation across frameworks.
EXACT = "exact"  # values, dtype, shape and device must be identical
RANDOM = "random"  # drawn from each library's own generator: shape, dtype and range only
UNSPECIFIED = "unspecified"  # uninitialised memory (``empty``): shape and dtype only
DIFFERS = "differs"  # a documented semantic difference: each framework has its own expected value

# The dtypes of the source's list, by PyTorch name, with their JAX spelling.
DTYPES = {
    "long": "int64",
    "bool": "bool",
    "float": "float32",
    "int": "int32",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "double": "float64",
}


@dataclasses.dataclass(frozen=True)
class Op:
    """One recorded operation, in a form that compares across frameworks.

    Attributes:
      name: stable id shared by both frameworks, e.g. ``"view_2x5"``.
      code: the expression as this framework writes it.
      value: the result as nested Python lists (a Python scalar for 0-d results and ``.item()``),
        or ``None`` where the content is unspecified.
      dtype: NumPy-style dtype name (``"float32"``, ``"int64"``, ``"bool"``); ``"float"`` for a
        Python float, ``"shape"`` for a shape tuple, ``"int"`` for a Python int.
      shape: the result's shape (``()`` for scalars and shape tuples).
      device: ``"cpu:0"``, ``"gpu:0"`` (PyTorch's ``cuda`` is reported as ``gpu``); ``""`` for
        Python values and NumPy arrays.
      kind: how the parity suite compares it: :data:`EXACT`, :data:`RANDOM`,
        :data:`UNSPECIFIED` or :data:`DIFFERS`.
    """

    name: str
    code: str
    value: Any
    dtype: str
    shape: tuple[int, ...]
    device: str
    kind: str = EXACT

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def numpy_inputs(seed: int, dtype: str = "float32") -> dict[str, np.ndarray]:
    """The NumPy arrays both frameworks start from where the tutorial used random data.

    ``torch.rand`` and ``jax.random.uniform`` cannot produce the same numbers, so the arithmetic,
    indexing and reshaping operations run on one shared NumPy draw instead, and compare exactly.

    Returns:
      ``{"y": (5, 2) uniform [0, 1) in dtype, "grid": (4, 4) int64 1..16, "g": (5,) float64 zeros}``
    """
    rng = np.random.default_rng(seed)
    return {
        "y": rng.random((5, 2)).astype(dtype),
        "grid": np.arange(1, 17, dtype=np.int64).reshape(4, 4),
        "g": np.zeros(5),  # float64, NumPy's default: what from_numpy is shown converting
    }


def _device(x: jax.Array) -> str:
    (d,) = x.devices()
    return f"{d.platform}:{d.id}"


def _record(name: str, code: str, x: Any, kind: str = EXACT) -> Op:
    """An :class:`Op` from a JAX array, a Python scalar or a shape tuple."""
    if isinstance(x, tuple):
        return Op(name, code, list(x), "shape", (), "", kind)
    if isinstance(x, bool | int | float):
        return Op(name, code, x, type(x).__name__, (), "", kind)
    if isinstance(x, np.ndarray):  # host memory: no device
        return Op(name, code, x.tolist(), str(x.dtype), x.shape, "", kind)
    value = None if kind == UNSPECIFIED else np.asarray(x).tolist()
    return Op(name, code, value, str(x.dtype), tuple(x.shape), _device(x), kind)


def operations(seed: int = 0, dtype: str = "float32", device: str = "cpu") -> list[Op]:
    """Performs the tensor tour in JAX and records every operation.

    Args:
      seed: seeds the random draws (a JAX key) and the shared NumPy inputs.
      dtype: the default floating dtype, PyTorch's ``torch.get_default_dtype()`` (float32).
      device: where the ``to_device`` operation puts its array (``"cpu"`` or ``"gpu"``).

    Returns:
      The operations in tutorial order; names match :func:`jaxtut.torch_ref.tensors.operations`.
    """
    inputs = numpy_inputs(seed, dtype)
    target = resolve_jax_device(device)
    fdt = jnp.dtype(dtype)
    ops: list[Op] = []
    # x64 on so int64/float64 exist; CPU as default device, as PyTorch creates tensors there.
    with jax_runtime("float64", "cpu"):
        # Creation. Integer literals infer int64 under x64, as in PyTorch (int32 without x64).
        ops.append(_record("tensor", "jnp.array([1, 2, 3])", jnp.array([1, 2, 3])))
        ops.append(
            _record(
                "zeros_plus_2",
                "jnp.zeros((2, 3), dtype) + 2",
                jnp.zeros((2, 3), fdt) + 2,  # the Python 2 is weakly typed: stays float32
            )
        )
        # One key per draw, split from the seed: JAX has no hidden generator state.
        k_randn, k_rand, k_randint = jax.random.split(jax.random.key(seed), 3)
        ops.append(
            _record(
                "randn",
                "jax.random.normal(key, (3, 3, 3), dtype)",
                jax.random.normal(k_randn, (3, 3, 3), fdt),
                RANDOM,
            )
        )
        ops.append(
            _record(
                "rand",
                "jax.random.uniform(key, (5, 3), dtype)",
                jax.random.uniform(k_rand, (5, 3), fdt),
                RANDOM,
            )
        )
        ops.append(
            _record(
                "randint",
                "jax.random.randint(key, (3, 3), 0, 5, dtype=jnp.int64)",
                jax.random.randint(k_randint, (3, 3), 0, 5, dtype=jnp.int64),
                RANDOM,
            )
        )
        ops.append(_record("ones", "jnp.ones((3, 1), dtype)", jnp.ones((3, 1), fdt)))
        x = jnp.zeros((5, 2), dtype=jnp.int64)
        ops.append(_record("zeros_long", "jnp.zeros((5, 2), dtype=jnp.int64)", x))
        # Zeros up to jax 0.10, uninitialised from 0.11 where the backend allows: unspecified.
        ops.append(
            _record("empty", "jnp.empty((5, 2), dtype)", jnp.empty((5, 2), fdt), UNSPECIFIED)
        )
        for torch_name, jax_name in DTYPES.items():
            dt = jnp.dtype(jax_name)
            ops.append(
                _record(
                    f"dtype_{torch_name}",
                    f"jnp.array([0, 1, 2], dtype=jnp.{jax_name})",
                    jnp.array([0, 1, 2], dtype=dt),
                )
            )

        # Sizes: torch's x.size() is JAX's x.shape; JAX's x.size is torch's x.numel().
        ops.append(_record("size", "x.shape", tuple(x.shape)))
        ops.append(_record("shape", "x.shape", tuple(x.shape)))
        ops.append(_record("numel", "x.size", int(x.size)))

        # Arithmetic on the shared NumPy draw. int64 + float32 promotes to float32, as in PyTorch
        # (NumPy would give float64).
        y = jnp.asarray(inputs["y"])
        ops.append(_record("add_operator", "x + y", x + y))
        result = jnp.add(x, y)
        ops.append(_record("add_function", "jnp.add(x, y)", result))
        # No out=: the result is a new array, bound to the old name.
        result = jnp.add(x, y)
        ops.append(_record("add_out", "result = jnp.add(x, y)", result))
        # No add_: .at[...].add returns an updated copy and leaves the original alone.
        y = y.at[...].add(result)
        ops.append(_record("add_inplace", "y = y.at[...].add(result)", y))

        # Indexing.
        ops.append(_record("index_chained", "y[0][0]", y[0][0]))
        ops.append(_record("index_tuple", "y[0, 0]", y[0, 0]))
        ops.append(_record("item", "y[0, 0].item()", y[0, 0].item()))
        ops.append(_record("column", "y[:, 0]", y[:, 0]))
        ops.append(_record("row", "y[1, :]", y[1, :]))

        # Reshaping: torch's view(shape) is reshape here (Array.view(dtype) reinterprets bits).
        ops.append(_record("view_1x10", "y.reshape(1, 10)", y.reshape(1, 10)))
        ops.append(_record("view_2x5", "y.reshape(2, 5)", y.reshape(2, 5)))
        grid = jnp.asarray(inputs["grid"])
        ops.append(_record("view_16x1", "grid.reshape(16, 1)", grid.reshape(16, 1)))

        # NumPy interop. jnp.asarray copies (float64 stays float64 only because x64 is on).
        g = inputs["g"]
        a = jnp.asarray(g)
        ops.append(_record("from_numpy", "jnp.asarray(g)", a))
        # The copy may still be in flight: wait for it before writing to the NumPy array.
        a.block_until_ready()
        g[0] = 1.0
        ops.append(_record("from_numpy_after_write", "g[0] = 1; a", a, DIFFERS))
        ops.append(_record("numpy", "np.asarray(y)", np.asarray(y)))

        # Devices: put an array on the requested device explicitly.
        ops.append(_record("to_device", "jax.device_put(y, device)", jax.device_put(y, target)))
    return ops


def run(config: TensorsConfig | None = None) -> RunResult:
    """Runs the tensor tour in JAX.

    Args:
      config: ``seed`` (random draws and the shared inputs), ``dtype`` (the default floating
        dtype) and ``device`` (where ``to_device`` puts its array).

    Returns:
      A :class:`RunResult` with no losses or parameters; ``extras["operations"]`` holds every
      operation as a dict (see :class:`Op`) and ``metrics`` a few headline numbers.
    """
    config = config or TensorsConfig()
    start = time.perf_counter()
    ops = operations(config.seed, config.dtype, config.device)
    seconds = time.perf_counter() - start
    device = next(op.device for op in ops if op.name == "to_device")
    return tour_result(
        config, ops, seconds, framework="jax", device=device, library_versions=versions()
    )


def tour_result(
    config: TensorsConfig,
    ops: list[Op],
    seconds: float,
    *,
    framework: str,
    device: str,
    library_versions: dict,
) -> RunResult:
    """Packs a tensor tour (either framework's ``operations``) into a :class:`RunResult`."""
    return RunResult(
        tutorial="tensors",
        framework=framework,
        config=config.to_dict(),
        losses=np.zeros(0),
        epoch_metrics={},
        metrics=summary(ops),
        params={},
        wall_time_s=seconds,
        compile_time_s=None,
        versions=library_versions,
        device=device,
        extras={"operations": [op.to_dict() for op in ops]},
    )


def summary(ops: list[Op]) -> dict[str, float]:
    """Headline numbers of a tour: counts, and facts that are the same in every framework."""
    by_name = {op.name: op for op in ops}
    return {
        "operations": float(len(ops)),
        "exact_operations": float(sum(op.kind == EXACT for op in ops)),
        "item": float(by_name["item"].value),
        "view_16x1_sum": float(np.sum(by_name["view_16x1"].value)),
    }
