"""PyTorch references for ``mnist_logreg`` and ``mnist_mlp``, as the tutorials train them.

The loops are the tutorials' own: ``zero_grad``, forward, loss, ``backward``, ``step``, and
``loss.item()`` collected every step. What differs from the source, and why:

* Batches come from the shared :class:`~jaxtut.data.BatchPlan` indexing pre-built tensors, instead
  of ``DataLoader(shuffle=True)``, so that JAX sees the same samples in the same order. The plan
  keeps the last partial batch, as ``DataLoader`` does.
* The MNIST MLP source shows only its data loading; the network is the one the tutorial describes
  (784-128-64-10, ReLU, ``LogSoftmax(dim=1)``, ``NLLLoss``, ``SGD(lr=0.003)``), written as a
  module with ``fc1``..``fc3`` so its ``state_dict`` names match the JAX params.
* The logistic-regression source (FloydHub) ends before its training code; the model is the
  ``Linear(784, 10)`` + ``CrossEntropyLoss`` it introduces, with the issue's hyperparameters.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim

from jaxtut.configs import MnistLogregConfig, MnistMlpConfig
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


class LogReg(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(784, 10)

    def forward(self, x):
        return self.linear(x)  # logits; CrossEntropyLoss applies LogSoftmax itself


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


MODELS = {"mnist_logreg": LogReg, "mnist_mlp": Net}
CRITERIA = {"mnist_logreg": nn.CrossEntropyLoss(), "mnist_mlp": nn.NLLLoss()}


def _run(tutorial: str, config, init_params, plan, progress) -> RunResult:
    data = tutorial_data(config)
    plan = data.plan if plan is None else plan
    with torch_runtime(config) as device:
        x_train, y_train = (tensor(a, config, device=device) for a in data.train)
        x_test, y_test = (tensor(a, config, device=device) for a in data.eval)
        model = build_model(MODELS[tutorial], config, init_params, device)
        criterion = CRITERIA[tutorial]
        optimizer = optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)

        losses = []
        clock = Stopwatch(device)
        for epoch in range(plan.epochs):
            for idx in plan.batches(epoch):
                idx = torch.from_numpy(idx).to(device)
                images, labels = x_train[idx], y_train[idx]
                optimizer.zero_grad()
                output = model(images)
                loss = criterion(output, labels)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            if progress is not None:
                progress(epoch + 1, plan.epochs, float(np.mean(losses[-plan.steps_per_epoch :])))
        with torch.no_grad():
            accuracy = (model(x_test).argmax(dim=1) == y_test).double().mean().item()
        seconds = clock.stop()
    steps = plan.steps_per_epoch
    return make_result(
        tutorial,
        config,
        losses=losses,
        epoch_metrics={"loss": np.asarray(losses).reshape(plan.epochs, steps).mean(axis=1)},
        metrics={"test_accuracy": accuracy},
        params=state_dict_numpy(model),
        wall_time_s=seconds,
        device=device,
    )


def run_logreg(
    config: MnistLogregConfig | None = None,
    init_params: Mapping[str, np.ndarray] | None = None,
    *,
    plan=None,
    progress=None,
) -> RunResult:
    """Trains the ``mnist_logreg`` reference; ``plan`` overrides the shared batch order.

    ``progress(epochs done, epochs, mean loss of the epoch)`` is called after every epoch.
    """
    return _run("mnist_logreg", config or MnistLogregConfig(), init_params, plan, progress)


def run_mlp(
    config: MnistMlpConfig | None = None,
    init_params: Mapping[str, np.ndarray] | None = None,
    *,
    plan=None,
    progress=None,
) -> RunResult:
    """Trains the ``mnist_mlp`` reference; ``plan`` overrides the shared batch order.

    ``progress(epochs done, epochs, mean loss of the epoch)`` is called after every epoch.
    """
    return _run("mnist_mlp", config or MnistMlpConfig(), init_params, plan, progress)
