"""Logistic regression on the breast-cancer data in JAX: ``sigmoid(Linear(30, 1))`` and BCELoss.

``logreg_breast_cancer``: scikit-learn's Wisconsin breast-cancer table split 80/20
(``random_state=42``) and standardised on the training rows (:func:`jaxtut.data.breast_cancer`),
one linear unit (attribute ``linear``, keys ``linear.weight`` ``(1, 30)`` and ``linear.bias``
``(1,)``) squashed by a sigmoid, binary cross-entropy, full-batch SGD(0.01), 100 epochs.

After every epoch (after its update) the test accuracy is measured as the tutorial does it: round
the predicted probability to 0 or 1 and compare with the label. ``round`` is round-half-to-even in
both ``jnp.round`` and ``torch.round``, so a probability of exactly 0.5 is class 0 in both. The
source prints it every ``eval_every`` (10) epochs; here it is in ``epoch_metrics["test_accuracy"]``
for every epoch, and ``extras["log"]`` holds the rows the source prints, ``(epoch, loss,
accuracy)`` for ``epoch % eval_every == 0``. Accuracies are counted on the device and divided on
the host, so they are the same Python floats as the reference's ``correct / len(y_test)``.

:func:`bce_loss` is ``torch.nn.BCELoss()`` exactly, including its two safeguards (see there), so
the loss stays finite when the sigmoid saturates to exactly 0 or 1 (in float32 a logit above
about 17 already gives exactly 1).

Example:
  >>> from jaxtut.configs import LogregBreastCancerConfig
  >>> from jaxtut.tutorials import logreg
  >>> from jaxtut.train import train
  >>> result = train(logreg.experiment(LogregBreastCancerConfig()))  # doctest: +SKIP
  >>> round(result.metrics["test_accuracy"], 3)  # doctest: +SKIP
  0.947
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxtut import nn
from jaxtut.configs import LogregBreastCancerConfig
from jaxtut.experiment import Experiment, Trainer
from jaxtut.result import RunResult
from jaxtut.tutorial_data import catalogue_experiment, reference, runner

N_FEATURES = 30

# torch.nn.BCELoss's safeguards (aten/src/ATen/native/Loss.cpp): each log term is clamped from
# below at -100, and the backward pass divides by max(p (1 - p), EPSILON), where EPSILON is a C++
# float constant: 1e-12 rounded to float32 (9.99999996e-13), also in float64 runs.
LOG_CLAMP = -100.0
EPSILON = float(np.float32(1e-12))


class LogisticRegression(nnx.Module):
    """``sigmoid(Linear(30, 1))``: the probability of the positive class (benign)."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.linear = nn.torch_linear(N_FEATURES, 1, rngs=rngs, dtype=dtype)

    def __call__(self, x):  # (B, 30) -> (B, 1) probabilities
        return jax.nn.sigmoid(self.linear(x))


def forward(params, x):
    return nn.apply(LogisticRegression, params, x)


def _bce_terms(p, y):
    # (y - 1) * log(1 - p) - y * log(p), torch's expression and order, each log clamped at -100.
    log_p = jnp.maximum(jnp.log(p), LOG_CLAMP)
    log_1mp = jnp.maximum(jnp.log1p(-p), LOG_CLAMP)
    return (y - 1) * log_1mp - y * log_p


def _count(p, mask):
    return p.size if mask is None else jnp.sum(mask) * (p.size // mask.size)


def _weights(p, mask):
    if mask is None:
        return None
    return mask.astype(p.dtype).reshape(mask.shape + (1,) * (p.ndim - mask.ndim))


@jax.custom_vjp
def bce_loss(p: jax.Array, y: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """``torch.nn.BCELoss()`` (mean reduction) over the real samples, forward and backward.

    Forward: ``mean(-(y * max(log p, -100) + (1 - y) * max(log(1 - p), -100)))``, with ``log1p``
    for ``log(1 - p)`` as torch uses. The clamp makes ``p = 0`` with ``y = 1`` (or ``p = 1`` with
    ``y = 0``) cost exactly 100 instead of infinity.

    Backward (a custom VJP, as torch's kernel, not the derivative of the clamped expression):
    ``dL/dp = g * (p - y) / max(p (1 - p), EPSILON) / N`` with ``EPSILON`` torch's float32
    ``1e-12``. Differentiating the clamped forward instead would give zero where a log is clamped
    (``p < e^-100``) and NaN (``0 * inf``) at ``p`` exactly 0 or 1; torch's formula stays finite
    (at most about ``1e12 / N``) and points the right way.

    Rounding: the formula and its operation order are torch's, but XLA rewrites divisions by a
    broadcast count into multiplications by its reciprocal (and ``(a / b) / N`` into
    ``a / (b N)``), so gradient elements can differ from torch's by an ulp or two unless ``N`` is
    a power of two.

    Args:
      p: predicted probabilities in ``[0, 1]``, e.g. ``(B, 1)``.
      y: targets in ``[0, 1]``, shaped like ``p``.
      mask: optional ``(B,)`` padding mask; the mean is over real samples only.

    Returns:
      The scalar loss.
    """
    return _bce_value(p, y, mask)


def _bce_value(p, y, mask):
    terms = _bce_terms(p, y)
    w = _weights(p, mask)
    return (jnp.sum(terms) if w is None else jnp.sum(terms * w)) / _count(p, mask)


def _bce_fwd(p, y, mask=None):
    return _bce_value(p, y, mask), (p, y, mask)


def _bce_bwd(res, g):
    p, y, mask = res
    p = jnp.asarray(p)  # residuals may be NumPy arrays when called eagerly
    grad_p = g * (p - y) / jnp.maximum((1 - p) * p, EPSILON)
    w = _weights(p, mask)
    if w is not None:
        grad_p = grad_p * w
    grad_p = grad_p / _count(p, mask)
    # torch's gradient with respect to the target, -logit(p) (unclamped), for completeness.
    grad_y = -jnp.log(p / (1 - p)) * g
    grad_y = (grad_y if w is None else grad_y * w) / _count(p, mask)
    grad_mask = None if mask is None else np.zeros(mask.shape, jax.dtypes.float0)
    return grad_p, grad_y, grad_mask


bce_loss.defvjp(_bce_fwd, _bce_bwd)


def loss(params, batch, mask=None):
    """``BCELoss`` of the model's probabilities against the 0/1 labels."""
    x, y = batch
    return bce_loss(forward(params, x), y, mask)


def correct(params, x, y):
    """How many rounded predictions equal the labels (an integer count)."""
    return jnp.sum(jnp.round(forward(params, x)) == y)


def _epoch_eval(params, eval_data):
    return {"test_correct": correct(params, *eval_data["test"])}


def _evaluate(params, eval_data):
    return {
        "final_loss": loss(params, eval_data["train"], None),
        "test_correct": correct(params, *eval_data["test"]),
    }


TRAINERS = {
    "logreg_breast_cancer": Trainer(
        tutorial="logreg_breast_cancer",
        init=lambda key, dtype: nn.init_params(LogisticRegression, key, dtype=dtype),
        loss=loss,
        forward=forward,
        evaluate=_evaluate,
        epoch_eval=_epoch_eval,
    )
}


def training_log(
    losses: np.ndarray, accuracy: np.ndarray, every: int
) -> list[tuple[int, float, float]]:
    """The rows the source prints: ``(epoch, loss, test accuracy)`` every ``every`` epochs."""
    return [
        (epoch, float(losses[epoch]), float(accuracy[epoch]))
        for epoch in range(0, len(losses), every)
    ]


def experiment(config: LogregBreastCancerConfig | None = None) -> Experiment:
    """``logreg_breast_cancer`` as an :class:`~jaxtut.experiment.Experiment`.

    Every result has ``metrics`` ``test_accuracy`` (after the last epoch) and ``final_loss``
    (training BCE at the final parameters), ``epoch_metrics["test_accuracy"]`` after every epoch,
    and ``extras["log"]`` (see :func:`training_log`).
    """
    config = config or LogregBreastCancerConfig()
    base = catalogue_experiment(
        TRAINERS["logreg_breast_cancer"],
        config,
        eval=lambda data: {"train": data.train, "test": data.eval},
        torch=reference("logreg_breast_cancer", "logreg"),
    )
    n_test = len(base.eval["test"][1])

    def finish(result: RunResult) -> RunResult:
        # Counts -> fractions on the host, in double precision like the reference's division.
        accuracy = np.rint(result.epoch_metrics.pop("test_correct")) / n_test
        result.epoch_metrics["test_accuracy"] = accuracy
        result.metrics["test_accuracy"] = float(
            np.rint(result.metrics.pop("test_correct")) / n_test
        )
        result.extras["log"] = training_log(
            result.epoch_metrics["loss"], accuracy, config.eval_every
        )
        return result

    return base.replace(finish=finish)


EXPERIMENTS = {"logreg_breast_cancer": experiment}
run = runner("logreg_breast_cancer", "jax")
