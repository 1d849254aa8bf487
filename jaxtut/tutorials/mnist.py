"""MNIST in JAX: multinomial logistic regression and the 784-128-64-10 ReLU network.

Two tutorials share this module because they share everything but the model:

* ``mnist_logreg``: ``ToTensor()`` pixels in [0, 1], ``Linear(784, 10)``, cross-entropy, SGD(0.001),
  batch 100, five epochs.
* ``mnist_mlp``: ``Normalize(0.5, 0.5)`` pixels in [-1, 1], ``fc1`` 784->128, ReLU, ``fc2`` 128->64,
  ReLU, ``fc3`` 64->10, ``LogSoftmax`` + ``NLLLoss``, SGD(0.003), batch 64, five epochs.

Batches come from one NumPy permutation per epoch (:func:`jaxtut.data.shuffled_batches`), which the
PyTorch reference consumes too. 60000 = 937 * 64 + 32, so the MLP's last batch is short, as with
``DataLoader(batch_size=64, shuffle=True)``; it is padded and masked so the run compiles once.

Example:
  >>> from jaxtut.configs import MnistMlpConfig
  >>> from jaxtut.train import train
  >>> from jaxtut.tutorials import mnist
  >>> result = train(mnist.mlp_experiment(MnistMlpConfig(epochs=1)))  # doctest: +SKIP
  >>> result.metrics["test_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxtut import nn
from jaxtut.configs import MnistLogregConfig, MnistMlpConfig
from jaxtut.experiment import Experiment, Trainer
from jaxtut.train import masked_mean
from jaxtut.tutorial_data import catalogue_experiment, reference, runner


class LogReg(nnx.Module):
    """``Linear(784, 10)``: logits of the ten digits."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.linear = nn.torch_linear(784, 10, rngs=rngs, dtype=dtype)

    def __call__(self, x):  # (B, 784) -> (B, 10) logits
        return self.linear(x)


class MLP(nnx.Module):
    """784-128-64-10 with ReLUs, ending in ``LogSoftmax``: log-probabilities of the digits."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.fc1 = nn.torch_linear(784, 128, rngs=rngs, dtype=dtype)
        self.fc2 = nn.torch_linear(128, 64, rngs=rngs, dtype=dtype)
        self.fc3 = nn.torch_linear(64, 10, rngs=rngs, dtype=dtype)

    def __call__(self, x):  # (B, 784) -> (B, 10) log-probabilities
        x = jax.nn.relu(self.fc1(x))
        x = jax.nn.relu(self.fc2(x))
        return jax.nn.log_softmax(self.fc3(x), axis=-1)


def nll(log_probs: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-sample negative log-likelihood, ``NLLLoss(reduction="none")``: ``-log_probs[i, y_i]``."""
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]


def logreg_forward(params, x):
    return nn.apply(LogReg, params, x)


def mlp_forward(params, x):
    return nn.apply(MLP, params, x)


def logreg_loss(params, batch, mask=None):
    """``CrossEntropyLoss``: LogSoftmax of the logits, then NLL, averaged over real samples."""
    x, y = batch
    return masked_mean(nll(jax.nn.log_softmax(logreg_forward(params, x), axis=-1), y), mask)


def mlp_loss(params, batch, mask=None):
    """``NLLLoss`` on the network's LogSoftmax output, averaged over real samples."""
    x, y = batch
    return masked_mean(nll(mlp_forward(params, x), y), mask)


def _accuracy(forward):
    def evaluate(params, eval_data):
        x, y = eval_data
        return {"test_accuracy": jnp.mean(jnp.argmax(forward(params, x), axis=-1) == y)}

    return evaluate


LOGREG = Trainer(
    tutorial="mnist_logreg",
    init=lambda key, dtype: nn.init_params(LogReg, key, dtype=dtype),
    loss=logreg_loss,
    forward=logreg_forward,
    evaluate=_accuracy(logreg_forward),
)
MLP_TRAINER = Trainer(
    tutorial="mnist_mlp",
    init=lambda key, dtype: nn.init_params(MLP, key, dtype=dtype),
    loss=mlp_loss,
    forward=mlp_forward,
    evaluate=_accuracy(mlp_forward),
)


def logreg_experiment(config: MnistLogregConfig | None = None) -> Experiment:
    """``mnist_logreg`` as an :class:`~jaxtut.experiment.Experiment` (data, plan, optimizer)."""
    return catalogue_experiment(
        LOGREG, config or MnistLogregConfig(), torch=reference("mnist_logreg", "mnist")
    )


def mlp_experiment(config: MnistMlpConfig | None = None) -> Experiment:
    """``mnist_mlp`` as an :class:`~jaxtut.experiment.Experiment` (data, plan, optimizer)."""
    return catalogue_experiment(
        MLP_TRAINER, config or MnistMlpConfig(), torch=reference("mnist_mlp", "mnist")
    )


TRAINERS = {"mnist_logreg": LOGREG, "mnist_mlp": MLP_TRAINER}
EXPERIMENTS = {"mnist_logreg": logreg_experiment, "mnist_mlp": mlp_experiment}
run_logreg = runner("mnist_logreg", "jax")
run_mlp = runner("mnist_mlp", "jax")
