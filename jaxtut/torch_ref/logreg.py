"""PyTorch reference for ``logreg_breast_cancer``, with the tutorial's loop.

``sigmoid(Linear(30, 1))`` on the standardised breast-cancer table, ``BCELoss``, ``SGD(lr=0.01)``,
100 full-batch epochs: forward, loss, ``backward``, ``step``, ``zero_grad``, then the test accuracy
under ``no_grad`` (rounded probabilities compared with the labels, ``correct / len(y_test)``).

What differs from the source, and why:

* The accuracy is measured after every epoch, not only when ``epoch % 10 == 0``, so that the JAX
  run can be compared epoch by epoch; it never touches the parameters, so training is unchanged.
  ``extras["log"]`` holds the rows the source prints, every ``config.eval_every`` epochs.
* ``LogisticRegression`` takes its width as a default argument (30), so that it can be built
  without arguments like every model in ``MODELS``.
* The data arrive from :func:`jaxtut.data.breast_cancer` (the same split, ``random_state=42``, and
  a scaler fitted on the training rows), shared with JAX; the source's ``import sklearn`` followed
  by ``sklearn.datasets`` and ``sklearn.preprocessing`` relies on scikit-learn loading submodules
  lazily, which older releases do not.
* The source seeds nothing; here ``torch.manual_seed(config.seed)`` precedes the initial draw, and
  ``init_params`` (a NumPy ``state_dict``) can override it for parity runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn, optim

from jaxtut.configs import LogregBreastCancerConfig
from jaxtut.data.batching import BatchPlan
from jaxtut.result import RunResult
from jaxtut.torch_ref._common import (
    Stopwatch,
    build_model,
    make_result,
    state_dict_numpy,
    tensor,
    torch_runtime,
)
from jaxtut.tutorial_data import tutorial_data


class LogisticRegression(nn.Module):
    def __init__(self, num_features: int = 30):
        super().__init__()
        self.linear = nn.Linear(num_features, 1)

    def forward(self, x):
        return torch.sigmoid(self.linear(x))  # (B, 30) -> (B, 1) probabilities


MODELS = {"logreg_breast_cancer": LogisticRegression}
CRITERIA = {"logreg_breast_cancer": nn.BCELoss()}


def run(
    config: LogregBreastCancerConfig | None = None,
    init_params: Mapping[str, np.ndarray] | None = None,
    *,
    plan: BatchPlan | None = None,
) -> RunResult:
    """Trains the ``logreg_breast_cancer`` reference; ``plan`` overrides the full batch."""
    config = config or LogregBreastCancerConfig()
    data = tutorial_data(config)
    with torch_runtime(config) as device:
        x_train, y_train = (tensor(a, config, device=device) for a in data.train)
        x_test, y_test = (tensor(a, config, device=device) for a in data.eval)
        model = build_model(LogisticRegression, config, init_params, device)
        criterion = CRITERIA["logreg_breast_cancer"]
        optimizer = optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)

        if plan is None:
            steps = [[None]] * config.epochs
        else:
            steps = [plan.batches(epoch) for epoch in range(plan.epochs)]
        losses, accuracies = [], []
        clock = Stopwatch(device)
        for epoch_steps in steps:
            for idx in epoch_steps:
                if idx is None:
                    x, y = x_train, y_train
                else:
                    i = torch.from_numpy(idx).to(device)
                    x, y = x_train[i], y_train[i]
                y_pred = model(x)
                loss = criterion(y_pred, y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                losses.append(loss.item())
            with torch.no_grad():  # evaluation only: no graph, no gradients
                prediction = model(x_test).round()
                accuracies.append(prediction.eq(y_test).sum().item() / len(y_test))
        with torch.no_grad():
            final_loss = criterion(model(x_train), y_train).item()
        seconds = clock.stop()
    per_epoch = np.asarray(losses).reshape(len(steps), -1).mean(axis=1)
    log = [
        (epoch, float(per_epoch[epoch]), accuracies[epoch])
        for epoch in range(0, len(steps), config.eval_every)
    ]
    return make_result(
        "logreg_breast_cancer",
        config,
        losses=losses,
        epoch_metrics={"loss": per_epoch, "test_accuracy": accuracies},
        metrics={"test_accuracy": accuracies[-1], "final_loss": final_loss},
        params=state_dict_numpy(model),
        wall_time_s=seconds,
        device=device,
        extras={"log": log},
    )
