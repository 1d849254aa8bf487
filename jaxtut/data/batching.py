"""Mini-batch schedules computed up front, shared by the JAX and PyTorch training loops.

A :class:`BatchPlan` holds every sample index of every step of every epoch. Both frameworks read
the same plan, so a parity run sees identical batches without either side's data loader.

The order reproduces ``DataLoader(shuffle=True)`` in spirit (a fresh permutation per epoch) but is
drawn from NumPy: ONE ``np.random.default_rng(seed)`` and ``rng.permutation(n)`` per epoch, so a
seed fixes the whole schedule.

A short last batch is padded to the full batch size (index 0, ``mask=False``) so that a jit-compiled
step always sees one static shape and never recompiles; the JAX loss averages over the masked-in
samples only, and :meth:`BatchPlan.batches` gives the PyTorch loop the real, unpadded indices.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from jaxtut.errors import ConfigError

__all__ = ["BatchPlan", "full_batch", "sequential_batches", "shuffled_batches"]


@dataclass(frozen=True)
class BatchPlan:
    """Sample indices for every step, padded to one static batch shape.

    Attributes:
        idx: int64 ``(epochs, steps_per_epoch, batch_size)`` sample indices (padding is index 0).
        mask: bool, same shape; ``False`` marks padding. Padding only ever ends an epoch's last
            batch.
    """

    idx: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        if self.idx.ndim != 3 or self.idx.dtype != np.int64:
            raise ValueError(f"idx must be 3-D int64, got {self.idx.dtype} {self.idx.shape}")
        if self.mask.shape != self.idx.shape or self.mask.dtype != np.bool_:
            raise ValueError(f"mask must be bool {self.idx.shape}, got {self.mask.dtype}")
        # The plan is shared by both loops; nobody should be able to edit it in place.
        self.idx.flags.writeable = False
        self.mask.flags.writeable = False

    @property
    def epochs(self) -> int:
        """Number of epochs."""
        return self.idx.shape[0]

    @property
    def steps_per_epoch(self) -> int:
        """Number of steps (batches) in each epoch."""
        return self.idx.shape[1]

    @property
    def batch_size(self) -> int:
        """The static (padded) batch size."""
        return self.idx.shape[2]

    @property
    def num_steps(self) -> int:
        """Total number of steps over all epochs."""
        return self.epochs * self.steps_per_epoch

    @property
    def counts(self) -> np.ndarray:
        """int64 ``(epochs, steps_per_epoch)``: the number of real samples in each batch."""
        return self.mask.sum(axis=2, dtype=np.int64)

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The real (unpadded) index arrays of one epoch, in order, for the PyTorch loop.

        Args:
            epoch: 0-based epoch number.

        Returns:
            One new, writable int64 array per step; the last may be shorter than ``batch_size``.
        """
        if not 0 <= epoch < self.epochs:
            raise IndexError(f"epoch {epoch} out of range for a plan of {self.epochs} epochs")
        counts = self.counts[epoch]
        # Padding is only at the end of a batch, so the real indices are a prefix.
        return [self.idx[epoch, s, : counts[s]].copy() for s in range(self.steps_per_epoch)]


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value}")
    return value


def _plan(orders: np.ndarray, batch_size: int, drop_last: bool) -> BatchPlan:
    """Cuts each row of ``orders`` (epochs, n) into batches, padding or dropping the remainder."""
    epochs, n = orders.shape
    if drop_last:
        steps = n // batch_size
        if steps == 0:
            raise ConfigError(
                f"batch_size {batch_size} is larger than the {n} samples and drop_last is set, "
                "so there would be no batches; lower batch_size or keep the last batch"
            )
    else:
        steps = -(-n // batch_size)  # ceil
    slots = steps * batch_size
    idx = np.zeros((epochs, slots), dtype=np.int64)
    mask = np.zeros((epochs, slots), dtype=bool)
    used = min(n, slots)
    idx[:, :used] = orders[:, :used]
    mask[:, :used] = True
    shape = (epochs, steps, batch_size)
    return BatchPlan(idx=idx.reshape(shape), mask=mask.reshape(shape))


def shuffled_batches(
    n: int, batch_size: int, epochs: int, seed: int, *, drop_last: bool = False
) -> BatchPlan:
    """A fresh random order each epoch, cut into batches.

    One ``np.random.default_rng(seed)`` draws ``rng.permutation(n)`` for each epoch in turn, so
    the same arguments always give the same plan. MNIST with ``batch_size=64`` has
    ``60000 = 937 * 64 + 32``: 938 steps with 32 real samples in the last, or 937 with
    ``drop_last``.

    Args:
        n: Number of samples.
        batch_size: Samples per step.
        epochs: Number of epochs.
        seed: Seed for ``np.random.default_rng`` (an integer >= 0).
        drop_last: Drop a final partial batch instead of padding it.

    Returns:
        The plan.

    Raises:
        ConfigError: If an argument is out of range.
    """
    n = _positive("n", n)
    batch_size = _positive("batch_size", batch_size)
    epochs = _positive("epochs", epochs)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(seed)
    orders = np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)
    return _plan(orders, batch_size, drop_last)


def sequential_batches(n: int, batch_size: int, epochs: int) -> BatchPlan:
    """Samples in their stored order every epoch (no shuffle); a short last batch is padded.

    Used for the per-sample tutorials (``batch_size=1``) and for full-batch training.

    Args:
        n: Number of samples.
        batch_size: Samples per step.
        epochs: Number of epochs.

    Returns:
        The plan.

    Raises:
        ConfigError: If an argument is out of range.
    """
    n = _positive("n", n)
    batch_size = _positive("batch_size", batch_size)
    epochs = _positive("epochs", epochs)
    orders = np.broadcast_to(np.arange(n, dtype=np.int64), (epochs, n))
    return _plan(orders, batch_size, drop_last=False)


def full_batch(n: int, epochs: int) -> BatchPlan:
    """One step per epoch holding all ``n`` samples: ``sequential_batches(n, n, epochs)``.

    Args:
        n: Number of samples.
        epochs: Number of epochs.

    Returns:
        The plan.
    """
    return sequential_batches(n, n, epochs)
