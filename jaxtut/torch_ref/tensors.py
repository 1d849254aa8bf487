"""PyTorch reference for ``tensors``: the tensor tour of seeds 000, 001 and 004, recorded.

Every operation is recorded as a :class:`jaxtut.tutorials.tensors.Op` with the same name as its JAX
counterpart, so the parity suite compares the two one operation at a time. What differs from the
sources, and why:

* Random draws use a local ``torch.Generator`` seeded with ``config.seed`` instead of the global
  generator (unseeded in the sources), so a run is reproducible and leaves global state alone.
* The arithmetic, indexing and reshaping operations start from one shared NumPy draw
  (:func:`jaxtut.tutorials.tensors.numpy_inputs`) instead of ``torch.rand``: JAX cannot reproduce
  torch's random numbers, and with shared inputs those operations compare exactly.
* Seed 001 moves ``x`` to the device after ``x`` was rebound to the ``(5, 2)`` long zeros, yet
  prints the earlier ``rand(5, 3)``; the notebook cells ran out of order. Here ``to_device``
  moves the array the indexing section used.
* The ``from_numpy`` section also writes to the NumPy array afterwards, to show the shared memory
  that the source describes (``from_numpy_after_write``).

Bugs in the sources' tensor code, fixed here:

* 000: ``import Torch`` (the module is ``torch``; the name is case-sensitive), and ``time`` and
  ``numpy`` used without being imported.
* 004: ``torch.cuda.getDevice('cuda')`` does not exist; a device is ``torch.device('cuda')``.
  And ``sample_tensor.to(device)`` discards its result: ``to`` returns a new tensor rather than
  moving the old one, so the result must be bound to a name.
* 004: ``sample_tensor.view(16, 1)`` is commented as turning the 4x4 tensor into a 1-D tensor; it
  gives a 2-D ``(16, 1)`` column (``view(16)`` or ``view(-1)`` is 1-D). Recorded as ``view_16x1``.
* 003: ``torch.add(x, y)`` uses a ``y`` that was never defined (not part of this tour).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from jaxtut.configs import TensorsConfig
from jaxtut.result import RunResult
from jaxtut.runtime import versions
from jaxtut.torch_ref._common import torch_device
from jaxtut.tutorials.tensors import (
    DIFFERS,
    DTYPES,
    EXACT,
    RANDOM,
    UNSPECIFIED,
    Op,
    numpy_inputs,
    tour_result,
)

# torch.long, torch.bool, torch.float, torch.int, ..., torch.double: the source's list.
_TORCH_DTYPES = {name: getattr(torch, name) for name in DTYPES}


def dtype_name(dtype: torch.dtype) -> str:
    """NumPy-style name of a torch dtype: ``torch.int64`` -> ``"int64"``."""
    return str(dtype).removeprefix("torch.")


def device_name(device: torch.device) -> str:
    """``"cpu:0"`` / ``"gpu:0"``: torch's ``cuda`` spelled as JAX spells it."""
    kind = "gpu" if device.type == "cuda" else device.type
    return f"{kind}:{device.index or 0}"


def _record(name: str, code: str, x: Any, kind: str = EXACT) -> Op:
    """An :class:`Op` from a tensor, a Python scalar, a ``torch.Size`` or a NumPy array."""
    if isinstance(x, torch.Size):
        return Op(name, code, list(x), "shape", (), "", kind)
    if isinstance(x, bool | int | float):
        return Op(name, code, x, type(x).__name__, (), "", kind)
    if isinstance(x, np.ndarray):
        return Op(name, code, x.tolist(), str(x.dtype), x.shape, "", kind)
    value = None if kind == UNSPECIFIED else x.detach().cpu().tolist()
    return Op(name, code, value, dtype_name(x.dtype), tuple(x.shape), device_name(x.device), kind)


def operations(seed: int = 0, dtype: str = "float32", device: str = "cpu") -> list[Op]:
    """Performs the tensor tour in PyTorch and records every operation.

    Args:
      seed: seeds the local generator and the shared NumPy inputs.
      dtype: the default floating dtype (PyTorch's is float32); passed explicitly, so the global
        default is never changed.
      device: where ``to_device`` moves its tensor (``"cpu"`` or ``"gpu"``).

    Returns:
      The operations in tutorial order; names match :func:`jaxtut.tutorials.tensors.operations`.
    """
    inputs = numpy_inputs(seed, dtype)
    fdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    gen = torch.Generator().manual_seed(seed)
    ops: list[Op] = []

    # Creation.
    ops.append(_record("tensor", "torch.tensor([1, 2, 3])", torch.tensor([1, 2, 3])))
    ops.append(
        _record("zeros_plus_2", "torch.zeros((2, 3)) + 2", torch.zeros((2, 3), dtype=fdt) + 2)
    )
    ops.append(
        _record(
            "randn", "torch.randn(3, 3, 3)", torch.randn(3, 3, 3, generator=gen, dtype=fdt), RANDOM
        )
    )
    ops.append(
        _record("rand", "torch.rand(5, 3)", torch.rand(5, 3, generator=gen, dtype=fdt), RANDOM)
    )
    ops.append(
        _record(
            "randint",
            "torch.randint(low=0, high=5, size=(3, 3))",
            torch.randint(low=0, high=5, size=(3, 3), generator=gen),
            RANDOM,
        )
    )
    ops.append(_record("ones", "torch.ones(3, 1)", torch.ones(3, 1, dtype=fdt)))
    x = torch.zeros(5, 2, dtype=torch.long)
    ops.append(_record("zeros_long", "torch.zeros(5, 2, dtype=torch.long)", x))
    ops.append(_record("empty", "torch.empty(5, 2)", torch.empty(5, 2, dtype=fdt), UNSPECIFIED))
    for name, dt in _TORCH_DTYPES.items():
        ops.append(
            _record(
                f"dtype_{name}",
                f"torch.tensor([0, 1, 2], dtype=torch.{name})",
                torch.tensor([0, 1, 2], dtype=dt),
            )
        )

    # Sizes: .size() and .shape are the same torch.Size; numel() counts the elements.
    ops.append(_record("size", "x.size()", x.size()))
    ops.append(_record("shape", "x.shape", x.shape))
    ops.append(_record("numel", "x.numel()", x.numel()))

    # Arithmetic on the shared NumPy draw (a copy, so the NumPy array stays untouched).
    y = torch.tensor(inputs["y"])
    ops.append(_record("add_operator", "x + y", x + y))
    result = torch.add(x, y)
    ops.append(_record("add_function", "torch.add(x, y)", result))
    torch.add(x, y, out=result)  # writes into the existing tensor
    ops.append(_record("add_out", "torch.add(x, y, out=result)", result))
    y.add_(result)  # in place: y itself changes
    ops.append(_record("add_inplace", "y.add_(result)", y))

    # Indexing.
    ops.append(_record("index_chained", "y[0][0]", y[0][0]))
    ops.append(_record("index_tuple", "y[0, 0]", y[0, 0]))
    ops.append(_record("item", "y[0][0].item()", y[0][0].item()))
    ops.append(_record("column", "y[:, 0]", y[:, 0]))
    ops.append(_record("row", "y[1, :]", y[1, :]))

    # Reshaping: view shares y's storage.
    ops.append(_record("view_1x10", "y.view(1, 10)", y.view(1, 10)))
    ops.append(_record("view_2x5", "y.view(2, 5)", y.view(2, 5)))
    grid = torch.tensor(inputs["grid"])
    ops.append(_record("view_16x1", "sample_tensor.view(16, 1)", grid.view(16, 1)))

    # NumPy interop: from_numpy shares the buffer, so a write to g shows in the tensor.
    g = inputs["g"]
    gg = torch.from_numpy(g)
    ops.append(_record("from_numpy", "torch.from_numpy(g)", gg.clone()))
    g[0] = 1.0
    ops.append(_record("from_numpy_after_write", "g[0] = 1; gg", gg, DIFFERS))
    ops.append(_record("numpy", "y.numpy()", y.numpy()))

    # Devices.
    ops.append(_record("to_device", "y.to(device)", y.to(torch_device(device))))
    return ops


def run(config: TensorsConfig | None = None) -> RunResult:
    """Runs the tensor tour in PyTorch; the result has the shape of the JAX ``run``'s."""
    config = config or TensorsConfig()
    device = torch_device(config.device)  # fails early, and clearly, without CUDA
    start = time.perf_counter()
    ops = operations(config.seed, config.dtype, config.device)
    seconds = time.perf_counter() - start
    return tour_result(
        config,
        ops,
        seconds,
        framework="torch",
        device=f"{device.type}:{device.index or 0}",
        library_versions=versions(torch=True),
    )
