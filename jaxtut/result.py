"""The one result type that every tutorial returns, whichever framework ran it."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


@dataclasses.dataclass
class RunResult:
    """What a training run produced, in framework-neutral NumPy form.

    Attributes:
      tutorial: catalogue id, e.g. ``"mnist_mlp"``.
      framework: ``"jax"``, ``"torch"`` or ``"numpy"``.
      config: the run's configuration as a plain dict.
      losses: the training loss of every optimisation step, in step order, computed before that
        step's update (what ``loss.item()`` prints in the PyTorch loop); shape ``(num_steps,)``.
      epoch_metrics: per-epoch series, e.g. ``{"loss": (epochs,), "test_accuracy": (epochs,)}``.
      metrics: final scalar metrics (``test_accuracy``, ``prediction``, ...).
      params: the final parameters with PyTorch ``state_dict`` names and layouts, so two results
        compare leaf by leaf whichever framework produced them.
      wall_time_s: seconds of training, compilation excluded where it could be separated.
      compile_time_s: seconds spent tracing and compiling (JAX), else ``None``.
      versions: library versions (see :func:`jaxtut.runtime.versions`).
      device: the device the run used, e.g. ``"cpu:0"``.
      diverged_at: the first step whose loss was NaN or infinite, else ``None``.
      extras: tutorial-specific outputs (trajectories, predictions, ...).
    """

    tutorial: str
    framework: str
    config: dict[str, Any]
    losses: np.ndarray
    epoch_metrics: dict[str, np.ndarray]
    metrics: dict[str, float]
    params: dict[str, np.ndarray]
    wall_time_s: float
    compile_time_s: float | None = None
    versions: dict[str, str | None] = dataclasses.field(default_factory=dict)
    device: str = "cpu:0"
    diverged_at: int | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.diverged_at is None:
            self.diverged_at = first_nonfinite(self.losses)

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (arrays become lists; non-finite floats become strings)."""
        return _jsonable(dataclasses.asdict(self))


def first_nonfinite(losses: np.ndarray) -> int | None:
    """Index of the first NaN or infinite entry of ``losses``, or ``None``."""
    losses = np.asarray(losses)
    if losses.size == 0:
        return None
    bad = np.flatnonzero(~np.isfinite(losses.reshape(-1)))
    return int(bad[0]) if bad.size else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # JSON has no NaN/inf; keep them visible rather than invalid.
    return obj
