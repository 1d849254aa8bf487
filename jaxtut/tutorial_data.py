"""The exact arrays and batch order of each training tutorial, shared by both frameworks.

Every training run, JAX or PyTorch, gets its inputs from :func:`tutorial_data`: NumPy arrays in the
run's dtype and a :class:`~jaxtut.data.BatchPlan` (or ``None`` for full-batch training). Neither
framework's loader decides anything, which is what lets the parity suite compare step by step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from jaxtut import configs as C
from jaxtut.data import (
    breast_cancer,
    linear_toy,
    load_mnist,
    make_regression_data,
    mnist_arrays,
    perceptron_toy,
    sequential_batches,
    shuffled_batches,
)
from jaxtut.data.batching import BatchPlan


@dataclasses.dataclass(frozen=True)
class TutorialData:
    """Inputs of one training run.

    Attributes:
      train: ``(x, y)`` training arrays; the leading axis indexes samples.
      eval: ``(x, y)`` held-out arrays for final metrics, or ``None``.
      plan: the samples of every step, or ``None`` when each step uses all of ``train``.
    """

    train: tuple[np.ndarray, np.ndarray]
    eval: tuple[np.ndarray, np.ndarray] | None
    plan: BatchPlan | None


def _mnist(config: C.MnistLogregConfig | C.MnistMlpConfig) -> TutorialData:
    # ToTensor() only for the logistic regression; ToTensor() + Normalize(0.5, 0.5) for the MLP.
    normalize = isinstance(config, C.MnistMlpConfig)
    x_train, y_train, x_test, y_test = mnist_arrays(
        load_mnist(config.data_dir), normalize=normalize, dtype=config.dtype
    )
    plan = shuffled_batches(
        len(x_train), config.batch_size, config.epochs, config.seed, drop_last=config.drop_last
    )
    return TutorialData((x_train, y_train), (x_test, y_test), plan)


def _linreg_scratch(config: C.LinregScratchConfig) -> TutorialData:
    # 1-D vectors, as the source writes them: forward is the elementwise w * x.
    x, y, x_test, y_test = linear_toy(config.dtype)
    return TutorialData((x, y), (x_test, y_test), None)


def _linreg_linear(config: C.LinregLinearConfig) -> TutorialData:
    # Columns (N, 1): nn.Linear(1, 1) takes one feature per row.
    x, y, x_test, y_test = linear_toy(config.dtype)
    return TutorialData((x[:, None], y[:, None]), (x_test[:, None], y_test[:, None]), None)


def _make_regression(config: C.LinregMakeRegressionConfig) -> TutorialData:
    return TutorialData(make_regression_data(config.dtype), None, None)


def _per_sample(config: C.PerceptronConfig | C.Mlp1101Config) -> TutorialData:
    # One sample per step, in the table's order, every epoch (the source loops over a list).
    x, y = perceptron_toy(config.dtype)
    plan = sequential_batches(len(x), config.batch_size or 1, config.epochs)
    return TutorialData((x[:, None], y[:, None]), None, plan)


def _breast_cancer(config: C.LogregBreastCancerConfig) -> TutorialData:
    x_train, y_train, x_test, y_test = breast_cancer(config.dtype)
    return TutorialData((x_train, y_train), (x_test, y_test), None)


_BUILDERS: dict[type, Any] = {
    C.LinregScratchConfig: _linreg_scratch,
    C.LinregLinearConfig: _linreg_linear,
    C.LinregMakeRegressionConfig: _make_regression,
    C.PerceptronConfig: _per_sample,
    C.Mlp1101Config: _per_sample,
    C.LogregBreastCancerConfig: _breast_cancer,
    C.MnistLogregConfig: _mnist,
    C.MnistMlpConfig: _mnist,
}


def tutorial_data(config: C.TrainConfig) -> TutorialData:
    """The arrays and batch plan for the training tutorial that ``config`` configures."""
    return _BUILDERS[type(config)](config)
