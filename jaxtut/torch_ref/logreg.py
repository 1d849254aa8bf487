"""PyTorch reference for ``logreg_breast_cancer``, with the tutorial's loop.

``sigmoid(Linear(30, 1))`` on the standardised breast-cancer table, ``BCELoss``, ``SGD(lr=0.01)``,
100 full-batch epochs in the classic loop every reference shares (:mod:`jaxtut.torch_ref.train`),
then the test accuracy under ``no_grad`` (rounded probabilities compared with the labels; the
count is divided by ``len(y_test)`` on the host, as for JAX).

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

import torch
from torch import nn

from jaxtut.tutorial_data import runner


class LogisticRegression(nn.Module):
    def __init__(self, num_features: int = 30):
        super().__init__()
        self.linear = nn.Linear(num_features, 1)

    def forward(self, x):
        return torch.sigmoid(self.linear(x))  # (B, 30) -> (B, 1) probabilities


MODELS = {"logreg_breast_cancer": LogisticRegression}
CRITERIA = {"logreg_breast_cancer": nn.BCELoss()}


def test_correct(model: nn.Module, eval_data) -> dict[str, float]:
    """How many rounded test predictions equal the labels (the JAX side counts the same way)."""
    x_test, y_test = eval_data["test"]
    return {"test_correct": model(x_test).round().eq(y_test).sum().item()}


def final_metrics(model: nn.Module, eval_data) -> dict[str, float]:
    """The test count and the training loss at the final parameters."""
    x_train, y_train = eval_data["train"]
    loss = CRITERIA["logreg_breast_cancer"](model(x_train), y_train).item()
    return {"final_loss": loss, **test_correct(model, eval_data)}


EVALUATE = {"logreg_breast_cancer": final_metrics}
EPOCH_EVAL = {"logreg_breast_cancer": test_correct}
run = runner("logreg_breast_cancer", "torch")
