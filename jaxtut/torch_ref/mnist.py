"""PyTorch references for ``mnist_logreg`` and ``mnist_mlp``, as the tutorials train them.

The loop is the tutorials' own, shared by every reference (:mod:`jaxtut.torch_ref.train`):
``zero_grad``, forward, loss, ``backward``, ``step``, and ``loss.item()`` collected every step.
What differs from the source, and why:

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

import torch.nn.functional as F
from torch import nn

from jaxtut.tutorial_data import runner


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


def accuracy(model: nn.Module, eval_data) -> dict[str, float]:
    """Test accuracy: the fraction of test images whose arg-max class is the label."""
    x_test, y_test = eval_data
    return {"test_accuracy": (model(x_test).argmax(dim=1) == y_test).double().mean().item()}


EVALUATE = {"mnist_logreg": accuracy, "mnist_mlp": accuracy}


run_logreg = runner("mnist_logreg", "torch")
run_mlp = runner("mnist_mlp", "torch")
