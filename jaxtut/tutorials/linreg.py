"""Linear regression in JAX: one weight from scratch, ``Linear(1, 1)``, and a noisy data set.

Three tutorials share this module because they share the model family and the loss (mean squared
error, full-batch SGD, one step per epoch):

* ``linreg_scratch``: ``y = 2x`` on ``x = 1..5``, a single weight ``w`` of shape ``(1,)`` and no
  bias, ``forward(x) = w * x``, lr 0.01, 100 epochs. The tutorial shows it three times:

  - :func:`run_scratch_numpy`: NumPy with the hand-written gradient **exactly as the source writes
    it**, ``np.dot(2 * x, w * x - y).mean()``. The dot product is already a scalar, so ``.mean()``
    does nothing: the "gradient" is the *sum* of the per-sample gradients, ``N = 5`` times the
    gradient of the mean squared error. With lr 0.01 that is an effective step of 0.05 on the
    mean-MSE, i.e. ``w <- w + 1.1 * (2 - w)`` on this data: each step overshoots 2 and flips sides,
    shrinking the error tenfold (``|1 - 0.01 * 2 * sum(x**2)| = 0.1``). The source's printed log
    (loss 24.130 then ``w = 2.148`` after one step) is exactly this trajectory. Kept on purpose;
    :func:`numpy_gradient` documents it, and ``lr > 2 / 110 ~ 0.018`` would make it diverge.
  - the PyTorch autograd version (``jaxtut.torch_ref.linreg.run_scratch``) differentiates the true
    mean, so it contracts by ``1 - 0.01 * 2 * mean(x**2) = 0.78`` per step, without overshoot.
  - :func:`run_scratch` (this JAX version): ``jax.grad`` of the same mean, compiled once.

* ``linreg_linear``: the same data as columns ``(5, 1)``, ``Linear(1, 1)``, ``MSELoss``, SGD 0.01,
  2000 epochs; it predicts 12.000 at ``x = 6``.
* ``linreg_make_regression``: ``make_regression(n_samples=20, n_features=1, noise=20,
  random_state=1)``, ``Linear(1, 1)``, ``MSELoss``, SGD 0.01, 1000 epochs, and a plot of the
  fitted line (:func:`jaxtut.plots.plot_fit`).

Parameter names: the source uses a bare ``torch.nn.Linear`` as the model (keys ``weight``/``bias``)
in 4.3 and a module attribute ``ll_1`` in 4.4-4.5. Both frameworks here use one module with the
attribute ``linear``, so the keys are ``linear.weight`` and ``linear.bias`` on both sides; the
scratch model's single parameter is ``w``.

Metrics: ``prediction`` (the model at ``x = 6``; scratch and linear tutorials), ``final_loss`` (the
training loss at the final parameters, one forward pass after the last update: ``losses[-1]`` is
the loss *before* the last update), and for ``linreg_make_regression`` the fitted ``weight`` and
``bias``, plus ``extras["line"]`` (inputs sorted and the fitted predictions) for plotting.

Example:
  >>> from jaxtut.configs import LinregLinearConfig
  >>> from jaxtut.tutorials import linreg
  >>> result = linreg.run_linear(LinregLinearConfig())  # doctest: +SKIP
  >>> round(result.metrics["prediction"], 3)  # doctest: +SKIP
  12.0
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxtut import nn
from jaxtut.configs import LinregLinearConfig, LinregMakeRegressionConfig, LinregScratchConfig
from jaxtut.experiment import Experiment, Trainer
from jaxtut.result import RunResult
from jaxtut.runtime import np_dtype, versions
from jaxtut.train import masked_mean
from jaxtut.tutorial_data import catalogue_experiment, reference, runner, tutorial_data

# --- linreg_scratch: one bare weight ----------------------------------------------------------


def scratch_init(key: jax.Array, dtype: Any) -> dict[str, jax.Array]:
    """``w ~ N(0, 1)`` of shape ``(1,)``, as ``torch.randn(1)`` (different random numbers)."""
    return {"w": jax.random.normal(key, (1,), dtype)}


def scratch_forward(params, x):
    """``w * x``: (1,) broadcast against (N,) -> (N,)."""
    return params["w"] * x


def scratch_loss(params, batch, mask=None):
    """Mean of ``(y - w x)^2`` over the (real) samples, the source's ``mse(y, y_pred)``."""
    x, y = batch
    return masked_mean((y - scratch_forward(params, x)) ** 2, mask)


# --- linreg_linear and linreg_make_regression: Linear(1, 1) ---------------------------------


class LinearRegression(nnx.Module):
    """``Linear(1, 1)`` held as ``linear`` (state_dict keys ``linear.weight``, ``linear.bias``)."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.linear = nn.torch_linear(1, 1, rngs=rngs, dtype=dtype)

    def __call__(self, x):  # (B, 1) -> (B, 1)
        return self.linear(x)


def linear_init(key: jax.Array, dtype: Any):
    return nn.init_params(LinearRegression, key, dtype=dtype)


def linear_forward(params, x):
    return nn.apply(LinearRegression, params, x)


def mse_loss(params, batch, mask=None):
    """``MSELoss()``: mean of ``(prediction - y)^2`` over the (real) samples."""
    x, y = batch
    return masked_mean((linear_forward(params, x) - y) ** 2, mask)


def _predict_and_loss(forward, loss):
    """Final metrics: the prediction at the test input and the training loss at the end."""

    def evaluate(params, eval_data):
        return {
            "prediction": forward(params, eval_data["x_test"]).reshape(-1)[0],
            "final_loss": loss(params, eval_data["train"], None),
        }

    return evaluate


def _fit_metrics(params, eval_data):
    return {
        "final_loss": mse_loss(params, eval_data, None),
        "weight": params["linear"]["kernel"][0, 0],
        "bias": params["linear"]["bias"][0],
    }


TRAINERS = {
    "linreg_scratch": Trainer(
        tutorial="linreg_scratch",
        init=scratch_init,
        loss=scratch_loss,
        forward=scratch_forward,
        evaluate=_predict_and_loss(scratch_forward, scratch_loss),
    ),
    "linreg_linear": Trainer(
        tutorial="linreg_linear",
        init=linear_init,
        loss=mse_loss,
        forward=linear_forward,
        evaluate=_predict_and_loss(linear_forward, mse_loss),
    ),
    "linreg_make_regression": Trainer(
        tutorial="linreg_make_regression",
        init=linear_init,
        loss=mse_loss,
        forward=linear_forward,
        evaluate=_fit_metrics,
    ),
}


def fitted_line(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> dict[str, np.ndarray]:
    """The fitted line at the sorted inputs, for plotting: ``{"x": (N,), "prediction": (N,)}``.

    Sorting makes the line a single left-to-right stroke (the source plots the unsorted inputs,
    which draws the same segment back and forth).
    """
    xs = np.sort(np.asarray(x).reshape(-1))
    weight, bias = np.asarray(weight).reshape(()), np.asarray(bias).reshape(())
    return {"x": xs, "prediction": xs * weight + bias}


def _with_test_input(data):
    return {"train": data.train, "x_test": data.eval[0]}


def scratch_experiment(config: LinregScratchConfig | None = None) -> Experiment:
    """``linreg_scratch``: ``jax.grad`` of the mean squared error of ``w * x``.

    Its JAX initialisation draws ``w`` from ``N(0, 1)``, like the source's ``torch.randn(1)``.
    The torch reference updates the weight by hand, so its torch side names its own loop
    (:func:`jaxtut.torch_ref.linreg.scratch_loop`).
    """
    return catalogue_experiment(
        TRAINERS["linreg_scratch"],
        config or LinregScratchConfig(),
        eval=_with_test_input,
        torch=reference("linreg_scratch", "linreg", loop="scratch_loop"),
    )


def linear_experiment(config: LinregLinearConfig | None = None) -> Experiment:
    """``linreg_linear``: ``Linear(1, 1)`` on ``y = 2x`` (``linear.weight``, ``linear.bias``)."""
    return catalogue_experiment(
        TRAINERS["linreg_linear"],
        config or LinregLinearConfig(),
        eval=_with_test_input,
        torch=reference("linreg_linear", "linreg"),
    )


def make_regression_experiment(config: LinregMakeRegressionConfig | None = None) -> Experiment:
    """``linreg_make_regression``; every result carries ``extras["line"]`` to plot."""
    config = config or LinregMakeRegressionConfig()
    experiment = catalogue_experiment(
        TRAINERS["linreg_make_regression"],
        config,
        eval=lambda data: data.train,
        torch=reference("linreg_make_regression", "linreg"),
    )
    x = experiment.train[0]

    def finish(result):  # the fitted line over the sorted training inputs, for plotting
        params = result.params
        result.extras["line"] = fitted_line(x, params["linear.weight"], params["linear.bias"])
        return result

    return experiment.replace(finish=finish)


EXPERIMENTS = {
    "linreg_scratch": scratch_experiment,
    "linreg_linear": linear_experiment,
    "linreg_make_regression": make_regression_experiment,
}
run_scratch = runner("linreg_scratch", "jax")
run_linear = runner("linreg_linear", "jax")
run_make_regression = runner("linreg_make_regression", "jax")


# --- linreg_scratch in NumPy, as the source writes it -----------------------------------------


def numpy_gradient(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The source's hand-written gradient, kept as written: ``np.dot(2 x, w x - y).mean()``.

    ``np.dot`` of two vectors is a scalar, so ``.mean()`` returns it unchanged: this is
    ``sum_i 2 x_i (w x_i - y_i)``, the gradient of the *summed* squared error, ``N`` times the
    gradient of the mean that the loss reports. See the module docstring for what that does to the
    trajectory (a tenfold-shrinking oscillation around ``w = 2`` at lr 0.01).
    """
    return np.dot(2 * x, w * x - y).mean()


def run_scratch_numpy(
    config: LinregScratchConfig | None = None,
    init_params: Mapping[str, np.ndarray] | None = None,
) -> RunResult:
    """Trains ``linreg_scratch`` in NumPy with the source's hand-written gradient.

    Args:
      config: the run's options; ``device`` is ignored (NumPy runs on the host).
      init_params: ``{"w": (1,)}`` to start from; ``None`` draws ``w`` from ``U[0, 1)``, as the
        source's ``np.random.rand()`` does, with ``np.random.default_rng(config.seed)``.

    Returns:
      A :class:`RunResult` with ``framework="numpy"``; ``extras["weights"]`` is the trajectory of
      ``w`` (``epochs + 1`` values, starting with the initial one).
    """
    config = config or LinregScratchConfig()
    dtype = np_dtype(config.dtype)
    data = tutorial_data(config)
    x, y = data.train
    x_test, _ = data.eval
    if init_params is None:
        w = np.random.default_rng(config.seed).random(1).astype(dtype)
    else:
        w = np.array(init_params["w"], dtype=dtype).reshape(1)
    lr = dtype.type(config.lr)  # NumPy keeps the weight's dtype only if lr has it too

    def mse(y, y_pred):
        return np.mean(np.square(y - y_pred))

    losses, weights = [], [w.copy()]
    start = time.perf_counter()
    for _ in range(config.epochs):
        y_pred = w * x  # forward
        losses.append(mse(y, y_pred))
        dw = numpy_gradient(x, y, w)  # "backward": the summed, not mean, gradient
        w = w - lr * dw
        weights.append(w.copy())
    seconds = time.perf_counter() - start
    losses = np.asarray(losses, dtype=np.float64)
    return RunResult(
        tutorial="linreg_scratch",
        framework="numpy",
        config=config.to_dict(),
        losses=losses,
        epoch_metrics={"loss": losses.copy()},
        metrics={
            "prediction": float((w * x_test)[0]),
            "final_loss": float(mse(y, w * x)),
        },
        params={"w": w.copy()},
        wall_time_s=seconds,
        compile_time_s=None,
        versions=versions(),
        device="cpu:0",
        extras={"weights": np.concatenate(weights).astype(np.float64)},
    )
