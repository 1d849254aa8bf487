"""PyTorch references for ``perceptron`` and ``mlp_1_10_1``, trained one sample at a time.

Each keeps the source's shape: a ``Net(nn.Module)`` (``fc1``, or ``fc1`` and ``fc2``), a
criterion, ``optim.SGD`` with momentum, and the loop ``zero_grad``, forward, criterion,
``backward``, ``step`` over the six pairs for 100 epochs (the classic loop every reference shares,
:mod:`jaxtut.torch_ref.train`). What was broken or obsolete in the source,
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

import torch
from torch import nn

from jaxtut.tutorial_data import runner


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


def _predict(net: nn.Module, value: float) -> float:
    x = torch.full((1, 1), value, dtype=net.fc1.weight.dtype, device=net.fc1.weight.device)
    return net(x).item()


def perceptron_metrics(net: nn.Module, train) -> dict[str, float]:
    """Final metrics, as the JAX side defines them; ``train`` is the six training pairs."""
    x, y = train
    return {
        "weight": net.fc1.weight.item(),
        "bias": net.fc1.bias.item(),
        "prediction": _predict(net, 1.0),
        "final_loss": criterion(net(x), y).item(),
    }


def mlp_metrics(net: nn.Module, train) -> dict[str, float]:
    """Final metrics, as the JAX side defines them; ``train`` is the six training pairs."""
    x, y = train
    return {
        "prediction": _predict(net, 1.0),
        "prediction_at_7": _predict(net, 7.0),
        "final_loss": CRITERIA["mlp_1_10_1"](net(x), y).item(),
    }


EVALUATE = {"perceptron": perceptron_metrics, "mlp_1_10_1": mlp_metrics}
run_perceptron = runner("perceptron", "torch")
run_mlp = runner("mlp_1_10_1", "torch")
