"""PyTorch references for ``perceptron`` and ``mlp_1_10_1``, trained one sample at a time.

Each keeps the source's shape: a ``Net(nn.Module)`` (``fc1``, or ``fc1`` and ``fc2``), a
criterion, ``optim.SGD`` with momentum, and the loop ``zero_grad``, forward, criterion,
``backward``, ``step`` over the six pairs for 100 epochs. What was broken or obsolete in the source,
and what else differs:

* ``loss.data[0]`` indexes a 0-d tensor in modern PyTorch (``IndexError``); the loss is read with
  ``loss.item()``, at every step rather than only where the source printed it, so the whole curve
  can be compared with JAX.
* ``Variable(...)`` is obsolete (tensors carry autograd themselves); plain tensors are used. The
  source also set ``requires_grad=True`` on the input, which only made autograd compute a gradient
  nobody reads; it is dropped.
* ``.cuda()`` was hard-coded; the model and data go to the config's device (``cpu`` or ``gpu``).
* ``torch.FloatTensor([X])`` built a fresh 1-element tensor per step; the samples are indexed out
  of pre-built ``(6, 1)`` tensors by the shared :class:`~jaxtut.data.BatchPlan` (one sample per
  step, in table order), so each step's input is a ``(1, 1)`` batch and JAX sees the same order.
* The perceptron's criterion ``(label - out) ** 2`` is averaged over the batch (``.mean()``). For
  the single sample of each step that is the identical number; it also keeps ``backward`` valid
  when ``batch_size > 1`` is configured (``backward()`` without arguments needs a one-element
  loss).
* The source reuses the name ``Net`` for the MLP (a notebook redefinition); here the two models
  are ``Net`` and ``MLPNet``.
* Predictions after training use a ``(1, 1)`` input (the source used ``ones(1, 1, 1)``; the extra
  axis changes nothing but the output's shape). The metrics are the JAX module's: ``prediction``
  at ``x = 1``, ``final_loss`` (the criterion over all six pairs at the final parameters), plus
  ``weight`` and ``bias`` or ``prediction_at_7``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn, optim

from jaxtut.configs import Mlp1101Config, PerceptronConfig
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


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(1, 1)

    def forward(self, x):
        return self.fc1(x)


class MLPNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(1, 10)
        self.fc2 = nn.Linear(10, 1)

    def forward(self, x):
        return self.fc2(self.fc1(x))  # no activation: the source's network is linear


def criterion(out, label):
    """The source's squared error, averaged over the batch (one sample per step by default)."""
    return ((label - out) ** 2).mean()


MODELS = {"perceptron": Net, "mlp_1_10_1": MLPNet}
CRITERIA = {"perceptron": criterion, "mlp_1_10_1": nn.MSELoss()}


def _metrics(tutorial: str, net: nn.Module, loss_fn, x, y, config, device) -> dict[str, float]:
    """Final metrics, as the JAX side defines them; ``x``, ``y`` are the six training pairs."""

    def predict(value: float) -> float:
        return net(tensor(np.full((1, 1), value), config, device=device)).item()

    with torch.no_grad():
        metrics = {"prediction": predict(1.0), "final_loss": loss_fn(net(x), y).item()}
        if tutorial == "perceptron":
            metrics |= {"weight": net.fc1.weight.item(), "bias": net.fc1.bias.item()}
        else:
            metrics["prediction_at_7"] = predict(7.0)
    return metrics


def _run(tutorial: str, config, init_params, plan: BatchPlan | None) -> RunResult:
    data = tutorial_data(config)
    plan = data.plan if plan is None else plan
    with torch_runtime(config) as device:
        x_train, y_train = (tensor(a, config, device=device) for a in data.train)  # (6, 1) each
        net = build_model(MODELS[tutorial], config, init_params, device)
        loss_fn = CRITERIA[tutorial]
        optimizer = optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)

        losses = []
        clock = Stopwatch(device)
        for epoch in range(plan.epochs):
            for idx in plan.batches(epoch):
                idx = torch.from_numpy(idx).to(device)
                x, y = x_train[idx], y_train[idx]  # (1, 1) each: one sample
                optimizer.zero_grad()
                outputs = net(x)
                loss = loss_fn(outputs, y)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        seconds = clock.stop()
        metrics = _metrics(tutorial, net, loss_fn, x_train, y_train, config, device)
    steps = plan.steps_per_epoch
    return make_result(
        tutorial,
        config,
        losses=losses,
        epoch_metrics={"loss": np.asarray(losses).reshape(plan.epochs, steps).mean(axis=1)},
        metrics=metrics,
        params=state_dict_numpy(net),
        wall_time_s=seconds,
        device=device,
    )


def run_perceptron(
    config: PerceptronConfig | None = None,
    init_params: Mapping[str, np.ndarray] | None = None,
    *,
    plan: BatchPlan | None = None,
) -> RunResult:
    """Trains the ``perceptron`` reference; ``plan`` overrides the shared sample order."""
    return _run("perceptron", config or PerceptronConfig(), init_params, plan)


def run_mlp(
    config: Mlp1101Config | None = None,
    init_params: Mapping[str, np.ndarray] | None = None,
    *,
    plan: BatchPlan | None = None,
) -> RunResult:
    """Trains the ``mlp_1_10_1`` reference; ``plan`` overrides the shared sample order."""
    return _run("mlp_1_10_1", config or Mlp1101Config(), init_params, plan)
