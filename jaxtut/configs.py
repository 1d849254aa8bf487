"""Frozen configuration dataclasses, one per tutorial, whose defaults are the source's values.

Kept free of JAX and torch imports so that the CLI can list and validate tutorials instantly.
Override with :meth:`Config.replace`, which re-validates (``dataclasses.replace`` would too, since
validation lives in ``__post_init__``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Self

import numpy as np

from jaxtut.errors import ConfigError
from jaxtut.runtime import DEVICES, DTYPES, check_seed


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _check_types(config: Config) -> None:
    """Checks every field against its annotation and normalises NumPy scalars to Python ones.

    Annotations are read as strings (this module uses postponed evaluation); ``int``, ``float``,
    ``bool`` and ``str``, each optionally ``| None``, are checked. A field of any other type is
    left to its class's own checks, so new configs with richer fields still construct.
    """
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        kinds = {k.strip() for k in str(field.type).split("|")}
        if "None" in kinds and value is None:
            continue
        kinds.discard("None")
        if kinds == {"int"}:
            ok, normal, expected = _is_int(value), int, "an integer"
        elif kinds == {"float"}:
            ok, normal, expected = _is_real(value), float, "a number"
        elif kinds == {"bool"}:
            ok, normal, expected = isinstance(value, bool | np.bool_), bool, "True or False"
        elif kinds == {"str"}:  # a path (data_dir) may come as a pathlib.Path
            ok, normal, expected = isinstance(value, str | os.PathLike), os.fspath, "a string"
        else:
            continue
        if not ok:
            none = " or None" if "None" in str(field.type) else ""
            raise ConfigError(
                f"{type(config).__name__}.{field.name} must be {expected}{none}, got {value!r}"
            )
        if normal is float and not math.isfinite(float(value)):
            raise ConfigError(f"{type(config).__name__}.{field.name} must be finite, got {value!r}")
        # Frozen dataclass: NumPy scalars become Python ones so that configs compare, hash and
        # serialise to JSON the same way whichever kind of number they were given.
        object.__setattr__(config, field.name, normal(value))


def _check_in_dtype(config: Config, name: str, value: float) -> None:
    """Refuses a nonzero value that the run's dtype turns into 0 or infinity."""
    with np.errstate(over="ignore", under="ignore"):  # the outcome is checked, not warned
        cast = np.asarray(value, dtype=config.dtype)
    if value != 0 and not (np.isfinite(cast) and cast != 0):
        what = "overflows to infinity" if not np.isfinite(cast) else "underflows to 0"
        raise ConfigError(
            f"{name} {value!r} {what} in {config.dtype}, so the run would "
            f"{'diverge at once' if what.startswith('over') else 'train nothing'}; "
            f"use a value representable in {config.dtype}"
            + (" or dtype float64" if config.dtype == "float32" else "")
        )


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
        check_seed(self.seed)
        _check_types(self)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (``None`` values are ignored), validated.

        Raises:
          ConfigError: an unknown option, or a value the config refuses.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no option {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The torch optimizers and schedulers jaxtut.optim reproduces (names in lower case; torch's own
# spelling is accepted too). Kept here as names so that configs never import JAX.
OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad", "rmsprop", "adadelta")
SCHEDULERS = (
    "step", "multistep", "exponential", "cosine", "linear", "onecycle",
    "steplr", "multisteplr", "exponentiallr", "cosineannealinglr", "linearlr", "onecyclelr",
)  # fmt: skip


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
      optimizer: the torch optimizer, by name (:data:`OPTIMIZERS`; ``jaxtut.optim`` reproduces it
        in Optax); ``momentum`` is SGD's.
      optimizer_options: its other arguments with torch's names, ``(("weight_decay", 0.01),)``.
      scheduler: a torch learning-rate scheduler stepped once per epoch, by name
        (:data:`SCHEDULERS`), or ``None``.
      scheduler_options: its arguments with torch's names (``T_max`` defaults to the epochs,
        ``step_size`` to 1, ``max_lr`` to ``lr``).
    """

    epochs: int = 1
    lr: float = 0.01
    momentum: float = 0.0
    batch_size: int | None = None
    drop_last: bool = False
    optimizer: str = "sgd"
    optimizer_options: tuple[tuple[str, Any], ...] = ()
    scheduler: str | None = None
    scheduler_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 1:
            raise ConfigError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be a positive finite number, got {self.lr!r}")
        _check_in_dtype(self, "lr", self.lr)
        if not (0 <= self.momentum < 1):
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum!r}")
        _check_in_dtype(self, "momentum", self.momentum)
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.optimizer.lower() not in OPTIMIZERS:
            raise ConfigError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.scheduler is not None and self.scheduler.lower() not in SCHEDULERS:
            raise ConfigError(
                f"scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}"
            )
        for name in ("optimizer_options", "scheduler_options"):
            options = getattr(self, name)
            if not isinstance(options, tuple) or not all(
                isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str) for o in options
            ):
                raise ConfigError(f"{name} must be a tuple of (name, value) pairs, got {options!r}")
        if self.scheduler is None and self.scheduler_options:
            raise ConfigError("scheduler_options are given but no scheduler")


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

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lr > 0:
            raise ConfigError(f"lr must be a positive finite number, got {self.lr!r}")
        _check_in_dtype(self, "lr", self.lr)
        if self.steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {self.steps!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NormalEquationConfig(Config):
    """Closed-form least squares: X = randn(10, 5) with a column of ones, y = randn(10)."""

    n_samples: int = 10
    n_features: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_features < 1 or self.n_samples < self.n_features:
            raise ConfigError(
                "normal_equation needs n_features >= 1 and n_samples >= n_features (else X^T X "
                f"is singular), got n_samples={self.n_samples}, n_features={self.n_features}"
            )


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
        if self.eval_every < 1:
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


# --- Checking the arguments of a run ------------------------------------------------------------

FRAMEWORKS = ("jax", "torch", "numpy")


def check_run(tutorial: Any, framework: object, config: object, **kwargs: Any) -> None:
    """Checks the arguments of ``Tutorial.run`` as strictly as the CLI checks its options.

    Args:
      tutorial: the :class:`jaxtut.registry.Tutorial` about to run.
      framework: must be one of :data:`FRAMEWORKS`.
      config: ``None`` (the tutorial's defaults) or an instance of the tutorial's own config
        class; a config of another tutorial would run with the wrong hyperparameters, and a dict
        would fail deep inside the run.
      **kwargs: the run function's keyword arguments; ``init_params`` must be a mapping of
        finite floating-point arrays.

    Raises:
      ConfigError: any of the above does not hold.
    """
    if not isinstance(framework, str) or framework not in FRAMEWORKS:
        raise ConfigError(
            f"framework must be one of {', '.join(map(repr, FRAMEWORKS))}, got {framework!r}"
        )
    expected = tutorial.config
    if config is not None and not isinstance(config, expected):
        got = type(config).__name__ if isinstance(config, Config) else repr(config)
        if len(got) > 80:
            got = got[:77] + "..."
        raise ConfigError(
            f"{tutorial.id} takes a {expected.__name__} (e.g. registry.get({tutorial.id!r})"
            f".default_config(**overrides)), got {got}"
        )
    init = kwargs.get("init_params")
    if init is not None:
        from jaxtut.checkpoint import check_state_dict

        check_state_dict(init)  # names and shapes are checked by each side against its model


@dataclasses.dataclass(frozen=True, kw_only=True)
class MnistCnnConfig(TrainConfig):
    """pytorch/examples ``mnist/main.py``: the CNN, NLLLoss, Adadelta(1.0) with StepLR(1, 0.7).

    One epoch by default (the example trains 14; ``epochs=14`` reproduces it); batch 64, test
    batch 1000, ``Normalize((0.1307,), (0.3081,))``.
    """

    epochs: int = 1
    lr: float = 1.0
    batch_size: int | None = 64
    optimizer: str = "adadelta"
    scheduler: str | None = "step"
    scheduler_options: tuple[tuple[str, Any], ...] = (("step_size", 1), ("gamma", 0.7))
    data_dir: str | None = None
