"""Data parallelism: placing a run's arguments on a 1-D device mesh (axis ``"data"``).

The training program is the same with or without a mesh; only where its inputs live changes.
Parameters, optimizer state and evaluation data are replicated; every batch is split over the
devices (each gathers its slice of the global batch from the replicated data), or, for a
full-batch run, the samples themselves. Across processes (:mod:`jaxtut.distributed`) each process
feeds only its own block. See ``docs/scaling.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxtut.errors import ConfigError, DeviceError
from jaxtut.runtime import jax_runtime

DATA_AXIS = "data"


@contextlib.contextmanager
def runtime(dtype: str, device: str, mesh: Mesh | None) -> Iterator[jax.Device]:
    """:func:`jax_runtime` for one device; for a mesh, the same scopes on a device of this process.

    Under a mesh that spans processes, ``jax.devices()[0]`` may belong to another process, so the
    default device (where initial parameters are drawn before being replicated) is this process's
    first device of the mesh.
    """
    if mesh is None:
        with jax_runtime(dtype, device) as dev:
            yield dev
        return
    if mesh.axis_names != (DATA_AXIS,):
        raise ConfigError(
            f"a data-parallel mesh must be 1-D with the axis {DATA_AXIS!r}, got {mesh.axis_names}"
        )
    devices = list(mesh.devices.flat)
    platforms = sorted({d.platform for d in devices})
    if platforms != [device]:
        raise DeviceError(
            f"the mesh holds {', '.join(platforms)} devices but the run asks for {device}"
        )
    local = [d for d in devices if d.process_index == jax.process_index()]
    with (
        jax.enable_x64(dtype == "float64"),
        jax.default_device(local[0]),
        jax.default_matmul_precision("highest"),
    ):
        yield local[0]


def device_label(device: jax.Device, mesh: Mesh | None) -> str:
    """``cpu:0`` for one device; ``cpu x8 (mesh 'data')`` (and the process count) for a mesh."""
    if mesh is None:
        return f"{device.platform}:{device.id}"
    processes = len({d.process_index for d in mesh.devices.flat})
    where = f", {processes} processes" if processes > 1 else ""
    return f"{device.platform} x{mesh.size} (mesh {DATA_AXIS!r}{where})"


def check_split(mesh: Mesh, name: str, train_data: Any, idx, data_axis) -> None:
    """Fails with a clear message when the batches (or samples) do not split evenly over ``mesh``.

    Splitting unevenly would need padding that changes nothing of the loss but costs a masked
    slot per device; a clear error is simpler to reason about, and every default batch size
    (64, 100) splits over 1, 2 and 4 devices, 64 over 8 too.
    """
    n = mesh.size
    if idx is not None and idx.shape[-1] % n:
        size = idx.shape[-1]
        raise ConfigError(
            f"a batch of {size} samples does not split evenly over {n} devices; use a batch size "
            f"that is a multiple of {n} (e.g. --batch-size {-(-size // n) * n}) or "
            f"--devices dividing {size}"
        )
    if data_axis is not None:
        samples = len(jax.tree.leaves(train_data)[0])
        if samples % n:
            raise ConfigError(
                f"{name} trains on all {samples} samples in every step, which do not "
                f"split evenly over {n} devices; use --devices dividing {samples}"
            )


def placer(mesh: Mesh | None, device: jax.Device) -> Callable[..., Any]:
    """``put(tree, axis=None)``: places a pytree of host arrays for the run.

    Without a mesh, everything goes to ``device``. With one, ``axis=None`` replicates each leaf
    and an integer splits that axis over the mesh's ``"data"`` axis.
    """
    if mesh is None:
        return lambda tree, axis=None: jax.device_put(tree, device)

    def put(tree, axis=None):
        spec = P() if axis is None else P(*(None,) * axis, DATA_AXIS)
        sharding = NamedSharding(mesh, spec)
        return jax.tree.map(lambda x: _put(np.asarray(x), sharding), tree)

    return put


def _put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """``x`` (the same host array in every process) placed with ``sharding``.

    In one process this is ``jax.device_put``. Across processes, each process feeds only its own
    block (``jax.make_array_from_process_local_data``): its slice of every global batch, or the
    whole array when it is replicated.
    """
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    return jax.make_array_from_process_local_data(sharding, _process_block(x, sharding), x.shape)


def _process_block(x: np.ndarray, sharding: NamedSharding) -> np.ndarray:
    """The block of ``x`` that this process's devices hold (contiguous on a 1-D mesh)."""
    blocks = list(sharding.addressable_devices_indices_map(x.shape).values())
    index = []
    for axis, size in enumerate(x.shape):
        ranges = sorted({b[axis].indices(size)[:2] for b in blocks})
        lo, hi = ranges[0][0], ranges[-1][1]
        if sum(stop - start for start, stop in ranges) != hi - lo:
            raise ValueError(f"this process's devices hold a non-contiguous block of axis {axis}")
        index.append(slice(lo, hi))
    return x[tuple(index)]
