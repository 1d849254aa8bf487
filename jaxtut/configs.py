"""Frozen configuration dataclasses, one per tutorial, whose defaults are the source's values.

Kept free of JAX and torch imports so that the CLI can list and validate tutorials instantly.
Override with :meth:`Config.replace`, which re-validates (``dataclasses.replace`` would too, since
validation lives in ``__post_init__``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Self

from jaxtut.errors import ConfigError
from jaxtut.runtime import DEVICES, DTYPES


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Options shared by every tutorial.

    Attributes:
      seed: seeds the initial parameters and, where there is shuffling, the batch order.
      dtype: ``"float32"`` (the tutorials' dtype) or ``"float64"``.
      device: ``"cpu"`` or ``"gpu"``.
    """

    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (``None`` values are ignored), validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no option {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(Config):
    """Options of every training tutorial.

    Attributes:
      epochs: passes over the training data.
      lr: SGD learning rate.
      momentum: SGD momentum (PyTorch form, no dampening, no Nesterov).
      batch_size: samples per step; ``None`` means the tutorial's own scheme (full batch or one
        sample per step), which the tutorial documents.
      drop_last: drop a final partial batch instead of training on it (PyTorch's DataLoader keeps
        it by default, and so do the tutorials).
    """

    epochs: int = 1
    lr: float = 0.01
    momentum: float = 0.0
    batch_size: int | None = None
    drop_last: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr!r}")
        if not (0 <= self.momentum < 1):
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")


# --- Demonstrations (no training loop of their own) -------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class TensorsConfig(Config):
    """Tensor basics: creation, dtypes, arithmetic, indexing, reshaping, NumPy interop, devices."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class AutogradConfig(Config):
    """Autograd: d(mean(3(x+2)^2))/dx, d(sum(x*w))/dw, and SGD on |y_ - y|."""

    lr: float = 0.1
    steps: int = 100
    y_start: float = 3.0
    target: float = 5.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class NormalEquationConfig(Config):
    """Closed-form least squares: X = randn(10, 5) with a column of ones, y = randn(10)."""

    n_samples: int = 10
    n_features: int = 5


# --- Training tutorials -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class LinregScratchConfig(TrainConfig):
    """y = 2x on x = 1..5, one weight, no bias, hand-written / autograd / grad updates."""

    epochs: int = 100
    lr: float = 0.01


@dataclasses.dataclass(frozen=True, kw_only=True)
class LinregLinearConfig(TrainConfig):
    """y = 2x on x = 1..5 with ``Linear(1, 1)``, MSE, full-batch SGD."""

    epochs: int = 2000
    lr: float = 0.01


@dataclasses.dataclass(frozen=True, kw_only=True)
class LinregMakeRegressionConfig(TrainConfig):
    """``make_regression(20, 1, noise=20, random_state=1)`` with ``Linear(1, 1)``, MSE, SGD."""

    epochs: int = 1000
    lr: float = 0.01


@dataclasses.dataclass(frozen=True, kw_only=True)
class PerceptronConfig(TrainConfig):
    """y = 3x from six pairs, ``Linear(1, 1)``, squared error, per-sample SGD with momentum."""

    epochs: int = 100
    lr: float = 0.01
    momentum: float = 0.5


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mlp1101Config(TrainConfig):
    """y = 3x from six pairs, ``fc2(fc1(x))`` 1-10-1 without activation, per-sample SGD."""

    epochs: int = 100
    lr: float = 0.01
    momentum: float = 0.01


@dataclasses.dataclass(frozen=True, kw_only=True)
class LogregBreastCancerConfig(TrainConfig):
    """Standardised breast-cancer data, ``sigmoid(Linear(30, 1))``, BCELoss, full-batch SGD."""

    epochs: int = 100
    lr: float = 0.01
    eval_every: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise ConfigError(f"eval_every must be a positive integer, got {self.eval_every!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MnistLogregConfig(TrainConfig):
    """MNIST, ``ToTensor()`` only, ``Linear(784, 10)``, cross-entropy, SGD, batch 100."""

    epochs: int = 5
    lr: float = 0.001
    batch_size: int | None = 100
    data_dir: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class MnistMlpConfig(TrainConfig):
    """MNIST, Normalize(0.5, 0.5), 784-128-64-10 ReLU, LogSoftmax + NLLLoss, SGD, batch 64."""

    epochs: int = 5
    lr: float = 0.003
    batch_size: int | None = 64
    data_dir: str | None = None
