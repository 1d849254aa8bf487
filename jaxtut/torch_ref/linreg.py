"""PyTorch references for the linear-regression tutorials, with the tutorials' own loops.

* ``linreg_scratch`` (:func:`run_scratch`): ``w = torch.randn(1)`` after ``torch.manual_seed``,
  ``forward = x * w``, mean squared error, ``loss.backward()``, then ``w -= lr * w.grad`` under
  ``no_grad`` and ``w.grad.zero_()``. The NumPy version with the hand-written gradient lives in
  :func:`jaxtut.tutorials.linreg.run_scratch_numpy` (it needs neither framework).
* ``linreg_linear`` (:func:`run_linear`): ``Linear(1, 1)``, ``MSELoss``, ``SGD(lr=0.01)``, 2000
  full-batch epochs, prediction at ``x = 6``.
* ``linreg_make_regression`` (:func:`run_make_regression`): the same model on
  ``make_regression(20, 1, noise=20, random_state=1)`` for 1000 epochs, plus the fitted line.

Every loop is forward, loss, ``backward``, update, zero the gradients, and ``loss.item()`` each
epoch (the loss before that epoch's update, as the tutorial prints it). The ``nn.Linear``
tutorials run the classic loop every reference shares (:mod:`jaxtut.torch_ref.train`; zeroing
the gradients first or last is the same); the scratch tutorial keeps its manual update here.

What differs from the source, and why (each is a bug in the source or a change for parity):

* The bare weight is wrapped in a one-parameter module, ``Scratch`` (``self.w =
  nn.Parameter(torch.randn(1))``), so it has a ``state_dict`` key ``w`` that the JAX side can read
  and write; the update itself is the source's manual one, on that parameter.
* 4.1 (NumPy): ``backward`` computes ``np.dot(2*x, w*x - y).mean()``, which is the *sum* over the
  samples (the ``.mean()`` of a scalar is the scalar), i.e. 5x the mean-MSE gradient. Kept as
  written and documented in :func:`jaxtut.tutorials.linreg.numpy_gradient`; the source's printed
  log matches it. Also fixed there: ``forward(x_test, weights)`` (``weights`` is undefined; the
  weight is ``w``), and the final f-string, which is unterminated and formats an array with
  ``:.3f``.
* 4.2: the loop calls ``forward(X, weights)`` with an undefined ``weights``; it is ``w``. The
  final print formats a 1-element tensor with ``:.3f`` (a TypeError) and is unterminated; the
  prediction is reported as a float.
* 4.3/4.4: ``loss(Y, y_pred)`` passes the target as ``MSELoss``'s input; the squared difference is
  symmetric, so the loss and the gradient are the same, and here the call is the conventional
  ``criterion(y_pred, Y)``. The log prints ``weights[0]``, which is undefined (the source's log
  repeats one stale value); the weight is ``model.linear.weight``. ``mport torch`` is a typo.
* 4.3 uses a bare ``torch.nn.Linear`` (keys ``weight``/``bias``), 4.4/4.5 an attribute ``ll_1``;
  here one module, ``LinearRegression``, holds it as ``linear`` (keys ``linear.weight`` and
  ``linear.bias``, the JAX names too). Wrapping draws the same initial values as a bare
  ``nn.Linear(1, 1)`` after the same seed, so the starting point is the source's.
* 4.5: ``super(Model, self, input_size, output_size).__init__()`` is a TypeError (``super`` takes
  at most two arguments); ``Model(n_features, n_features)`` calls a constructor that takes no
  arguments; the override ``def parameters(self): return self.ll_1.parameters()`` is unnecessary
  (``nn.Module.parameters`` already recurses) and drops its ``recurse`` argument. All three are
  fixed by the plain module above.
* The source seeds nothing; here ``torch.manual_seed(config.seed)`` precedes the initial draw, and
  ``init_params`` (a NumPy ``state_dict``) can override it for parity runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from jaxtut.result import RunResult
from jaxtut.torch_ref._common import Stopwatch, make_result, state_dict_numpy, torch_runtime
from jaxtut.torch_ref.train import build, tensors
from jaxtut.tutorial_data import runner


class Scratch(nn.Module):
    """The scratch tutorial's single weight, ``w = torch.randn(1)``, as a parameter named ``w``."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(1))

    def forward(self, x):
        return x * self.w  # (N,) * (1,) -> (N,)


class LinearRegression(nn.Module):
    """``Linear(1, 1)`` held as ``linear``."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x):
        return self.linear(x)


def mse(y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The scratch tutorial's hand-written loss, the mean of ``(y - y_pred)^2``."""
    return ((y - y_pred) ** 2).mean()


MODELS = {
    "linreg_scratch": Scratch,
    "linreg_linear": LinearRegression,
    "linreg_make_regression": LinearRegression,
}
CRITERIA = {
    "linreg_scratch": mse,
    "linreg_linear": nn.MSELoss(),
    "linreg_make_regression": nn.MSELoss(),
}


def scratch_loop(experiment, init_params: Mapping[str, np.ndarray] | None = None) -> RunResult:
    """Trains the ``linreg_scratch`` reference: autograd gradient, manual update.

    Args:
      experiment: the tutorial's experiment (:func:`jaxtut.tutorials.linreg.scratch_experiment`):
        its data, batch plan (``None``: the full batch), learning rate, dtype and seed.
      init_params: ``{"w": (1,)}`` NumPy; ``None`` keeps ``torch.randn(1)`` after the seed.
    """
    lr = dict(experiment.optimizer.hyperparams)["lr"]  # the source's manual update: SGD only
    with torch_runtime(experiment) as device:
        X, Y = tensors(experiment.train, experiment.dtype, device)
        x_test = tensors(experiment.eval["x_test"], experiment.dtype, device)
        model = build(experiment, init_params, device)
        w = model.w
        plan = experiment.plan
        batches = [None] if plan is None else None

        losses = []
        clock = Stopwatch(device)
        for epoch in range(experiment.epochs):
            for idx in batches or plan.batches(epoch):
                if idx is None:
                    x, y = X, Y
                else:
                    idx = torch.from_numpy(idx).to(device)
                    x, y = X[idx], Y[idx]
                y_pred = model(x)
                loss = mse(y_pred, y)
                loss.backward()
                with torch.no_grad():
                    w -= lr * w.grad
                # Gradients accumulate across backward() calls unless cleared.
                w.grad.zero_()
                losses.append(loss.item())
        with torch.no_grad():
            prediction = model(x_test)[0].item()
            final_loss = mse(model(X), Y).item()
        seconds = clock.stop()
    return make_result(
        "linreg_scratch",
        experiment,
        losses=losses,
        epoch_metrics={"loss": np.asarray(losses).reshape(experiment.epochs, -1).mean(axis=1)},
        metrics={"prediction": prediction, "final_loss": final_loss},
        params=state_dict_numpy(model),
        wall_time_s=seconds,
        device=device,
    )


def prediction_and_loss(model: nn.Module, eval_data) -> dict[str, float]:
    """``linreg_linear``'s metrics: the prediction at ``x = 6`` and the final training loss."""
    x, y = eval_data["train"]
    return {
        "prediction": model(eval_data["x_test"]).item(),
        "final_loss": CRITERIA["linreg_linear"](model(x), y).item(),
    }


def fit_metrics(model: nn.Module, train) -> dict[str, float]:
    """``linreg_make_regression``'s metrics: the final training loss and the fitted line."""
    x, y = train
    return {
        "final_loss": CRITERIA["linreg_make_regression"](model(x), y).item(),
        "weight": model.linear.weight.item(),
        "bias": model.linear.bias.item(),
    }


EVALUATE = {"linreg_linear": prediction_and_loss, "linreg_make_regression": fit_metrics}
run_scratch = runner("linreg_scratch", "torch")
run_linear = runner("linreg_linear", "torch")
run_make_regression = runner("linreg_make_regression", "torch")
