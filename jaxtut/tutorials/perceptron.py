"""The per-sample regressions in JAX: a one-weight perceptron and a linear 1-10-1 network.

Both learn ``y = 3x`` from the six pairs ``(1, 3), (2, 6), ..., (6, 18)``, one sample per update,
in the table's order, for 100 epochs (600 steps):

* ``perceptron``: ``fc1 = Linear(1, 1)``, loss ``(label - out) ** 2``,
  ``SGD(lr=0.01, momentum=0.5)``. It should end near weight 3, bias 0.
* ``mlp_1_10_1``: ``fc2(fc1(x))`` with ``Linear(1, 10)`` and ``Linear(10, 1)`` and no activation
  between them (so the network is still a linear function of ``x``), ``MSELoss``,
  ``SGD(lr=0.01, momentum=0.01)``.

Momentum is PyTorch's: a buffer ``b <- momentum * b + g`` that starts at the first gradient, and
``p <- p - lr * b``; :class:`jaxtut.experiment.SGD` explains why ``optax.sgd``'s trace is the same
update. The training schedule is :func:`jaxtut.data.sequential_batches` with one sample per step,
which the PyTorch reference reads too, and the whole run is one compiled program.

Compared with the source:

* The source's criterion returns the squared error with the sample's shape and relies on
  ``backward`` accepting a one-element tensor. Here both losses average over the batch: for one
  sample that is the same number (a mean over one element is exact) and ``batch_size > 1`` in the
  config still gives a well-defined scalar loss.
* Metrics are computed from the final parameters: ``prediction``, the network at ``x = 1`` (the
  source feeds a ``1`` through the trained network), and ``final_loss``, the mean squared error
  over the six pairs; for ``perceptron`` also the learned ``weight`` and ``bias``, for
  ``mlp_1_10_1`` also ``prediction_at_7``, a point outside the training range (a linear network
  that learned the line extrapolates it; one that memorised six points need not).

Numerics, measured against the PyTorch reference from the same initial parameters (float64): the
first 100 steps agree to < 1e-12 relative and the perceptron's whole run to ~1e-14 of its loss
scale. The two frameworks still round differently in the last bit (XLA fuses the 1x1 ``x * w + b``
into one fused multiply-add where ``addmm`` rounds twice; the 10-term dot sums in another order).
The perceptron damps those differences; the 1-10-1 network's oscillating late epochs amplify them
to ~1e-9 relative, exactly as much as a one-ulp change of its initial parameters does within JAX
alone. The 1-10-1 setup is also unstable for some initialisations (PyTorch's seed 5 overflows
within four epochs, at the same step in both frameworks): lr 0.01 is near the stability limit for
inputs up to 6.

Example:
  >>> from jaxtut.tutorials import perceptron
  >>> from jaxtut.train import train
  >>> result = train(perceptron.perceptron_experiment())  # doctest: +SKIP
  >>> round(result.metrics["weight"], 2)  # doctest: +SKIP
  3.0
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxtut import nn
from jaxtut.configs import Mlp1101Config, PerceptronConfig
from jaxtut.experiment import Experiment, Trainer
from jaxtut.train import masked_mean
from jaxtut.tutorial_data import catalogue_experiment, reference, runner


class Perceptron(nnx.Module):
    """``fc1 = Linear(1, 1)``: ``out = w * x + b``."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.fc1 = nn.torch_linear(1, 1, rngs=rngs, dtype=dtype)

    def __call__(self, x):  # (B, 1) -> (B, 1)
        return self.fc1(x)


class MLP(nnx.Module):
    """``fc2(fc1(x))`` with 10 hidden units and no activation: a linear map with 31 parameters."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.fc1 = nn.torch_linear(1, 10, rngs=rngs, dtype=dtype)
        self.fc2 = nn.torch_linear(10, 1, rngs=rngs, dtype=dtype)

    def __call__(self, x):  # (B, 1) -> (B, 10) -> (B, 1)
        return self.fc2(self.fc1(x))


def perceptron_forward(params, x):
    return nn.apply(Perceptron, params, x)


def mlp_forward(params, x):
    return nn.apply(MLP, params, x)


def _squared_error_loss(forward):
    def loss(params, batch, mask=None):
        """``(label - out) ** 2`` averaged over the batch's real samples (one sample by default).

        ``MSELoss`` is the same mean, so both tutorials share it.
        """
        x, y = batch  # (B, 1), (B, 1)
        return masked_mean((y - forward(params, x)) ** 2, mask)

    return loss


perceptron_loss = _squared_error_loss(perceptron_forward)
mlp_loss = _squared_error_loss(mlp_forward)


def _predict(forward, params, value: float) -> jax.Array:
    dtype = jax.tree.leaves(params)[0].dtype
    return forward(params, jnp.full((1, 1), value, dtype))[0, 0]


def _perceptron_metrics(params, eval_data):
    """Final metrics; ``eval_data`` is the training set ``(x, y)``."""
    return {
        "weight": params["fc1"]["kernel"][0, 0],
        "bias": params["fc1"]["bias"][0],
        "prediction": _predict(perceptron_forward, params, 1.0),
        "final_loss": perceptron_loss(params, eval_data),
    }


def _mlp_metrics(params, eval_data):
    """Final metrics; ``eval_data`` is the training set ``(x, y)``."""
    return {
        "prediction": _predict(mlp_forward, params, 1.0),
        "prediction_at_7": _predict(mlp_forward, params, 7.0),
        "final_loss": mlp_loss(params, eval_data),
    }


PERCEPTRON = Trainer(
    tutorial="perceptron",
    init=lambda key, dtype: nn.init_params(Perceptron, key, dtype=dtype),
    loss=perceptron_loss,
    forward=perceptron_forward,
    evaluate=_perceptron_metrics,
)
MLP_TRAINER = Trainer(
    tutorial="mlp_1_10_1",
    init=lambda key, dtype: nn.init_params(MLP, key, dtype=dtype),
    loss=mlp_loss,
    forward=mlp_forward,
    evaluate=_mlp_metrics,
    # Unrolled by 4: this loop's state is just over the size XLA:CPU runs as one kernel, so a
    # rolled loop costs ~4x a step (docs/benchmarks.md, "Loop strategy per tutorial").
    unroll=4,
)
TRAINERS = {"perceptron": PERCEPTRON, "mlp_1_10_1": MLP_TRAINER}


def perceptron_experiment(config: PerceptronConfig | None = None) -> Experiment:
    """``perceptron``; its final metrics (``weight``, ``bias``, ``prediction`` at ``x = 1``,
    ``final_loss``) are measured on the six training pairs."""
    return catalogue_experiment(
        PERCEPTRON,
        config or PerceptronConfig(),
        eval=lambda data: data.train,
        torch=reference("perceptron", "perceptron"),
    )


def mlp_experiment(config: Mlp1101Config | None = None) -> Experiment:
    """``mlp_1_10_1``; final metrics ``prediction`` (at ``x = 1``), ``prediction_at_7`` and
    ``final_loss``, measured on the six training pairs."""
    return catalogue_experiment(
        MLP_TRAINER,
        config or Mlp1101Config(),
        eval=lambda data: data.train,
        torch=reference("mlp_1_10_1", "perceptron"),
    )


EXPERIMENTS = {"perceptron": perceptron_experiment, "mlp_1_10_1": mlp_experiment}
run_perceptron = runner("perceptron", "jax")
run_mlp = runner("mlp_1_10_1", "jax")
