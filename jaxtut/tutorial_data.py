"""The exact arrays and batch order of each training tutorial, shared by both frameworks.

Every training run, JAX or PyTorch, gets its inputs from :func:`tutorial_data`: NumPy arrays in the
run's dtype and a :class:`~jaxtut.data.BatchPlan` (or ``None`` for full-batch training). Neither
framework's loader decides anything, which is what lets the parity suite compare step by step.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxtut import configs as C
from jaxtut.data import (
    breast_cancer,
    linear_toy,
    load_mnist,
    make_regression_data,
    mnist_arrays,
    normalize,
    perceptron_toy,
    sequential_batches,
    shuffled_batches,
    to_tensor,
)
from jaxtut.data.batching import BatchPlan
from jaxtut.experiment import Experiment, TorchSide, Trainer


@dataclasses.dataclass(frozen=True)
class TutorialData:
    """Inputs of one training run.

    Attributes:
      train: ``(x, y)`` training arrays; the leading axis indexes samples.
      eval: ``(x, y)`` held-out arrays for final metrics, or ``None``.
      plan: the samples of every step, or ``None`` when each step uses all of ``train``.
    """

    train: tuple[np.ndarray, np.ndarray]
    eval: tuple[np.ndarray, np.ndarray] | None
    plan: BatchPlan | None


def _mnist(config: C.MnistLogregConfig | C.MnistMlpConfig) -> TutorialData:
    # ToTensor() only for the logistic regression; ToTensor() + Normalize(0.5, 0.5) for the MLP.
    normalize = isinstance(config, C.MnistMlpConfig)
    x_train, y_train, x_test, y_test = mnist_arrays(
        load_mnist(config.data_dir), normalize=normalize, dtype=config.dtype
    )
    return TutorialData((x_train, y_train), (x_test, y_test), _shuffled(config, len(x_train)))


def _shuffled(config: C.TrainConfig, n: int) -> BatchPlan:
    """A fresh permutation per epoch drawn from ``config.seed`` (``DataLoader(shuffle=True)``)."""
    return shuffled_batches(
        n, config.batch_size, config.epochs, config.seed, drop_last=config.drop_last
    )


def _mnist_cnn(config: C.MnistCnnConfig) -> TutorialData:
    # ToTensor() + Normalize((0.1307,), (0.3081,)), as torch's (N, 1, 28, 28). With one channel
    # this is also the memory order of JAX's NHWC (N, 28, 28, 1): the JAX side reshapes, free.
    data = load_mnist(config.data_dir)

    def images(raw: np.ndarray) -> np.ndarray:
        return normalize(to_tensor(raw, dtype=config.dtype), CNN_MEAN, CNN_STD)[:, None]

    x_train, x_test = images(data.train_images), images(data.test_images)
    y_train, y_test = (np.asarray(y, np.int64) for y in (data.train_labels, data.test_labels))
    return TutorialData((x_train, y_train), (x_test, y_test), _shuffled(config, len(x_train)))


def _linreg_scratch(config: C.LinregScratchConfig) -> TutorialData:
    # 1-D vectors, as the source writes them: forward is the elementwise w * x.
    x, y, x_test, y_test = linear_toy(config.dtype)
    return TutorialData((x, y), (x_test, y_test), None)


def _linreg_linear(config: C.LinregLinearConfig) -> TutorialData:
    # Columns (N, 1): nn.Linear(1, 1) takes one feature per row.
    x, y, x_test, y_test = linear_toy(config.dtype)
    return TutorialData((x[:, None], y[:, None]), (x_test[:, None], y_test[:, None]), None)


def _make_regression(config: C.LinregMakeRegressionConfig) -> TutorialData:
    return TutorialData(make_regression_data(config.dtype), None, None)


def _per_sample(config: C.PerceptronConfig | C.Mlp1101Config) -> TutorialData:
    # One sample per step, in the table's order, every epoch (the source loops over a list).
    x, y = perceptron_toy(config.dtype)
    plan = sequential_batches(len(x), config.batch_size or 1, config.epochs)
    return TutorialData((x[:, None], y[:, None]), None, plan)


def _breast_cancer(config: C.LogregBreastCancerConfig) -> TutorialData:
    x_train, y_train, x_test, y_test = breast_cancer(config.dtype)
    return TutorialData((x_train, y_train), (x_test, y_test), None)


_BUILDERS: dict[type, Any] = {
    C.LinregScratchConfig: _linreg_scratch,
    C.LinregLinearConfig: _linreg_linear,
    C.LinregMakeRegressionConfig: _make_regression,
    C.PerceptronConfig: _per_sample,
    C.Mlp1101Config: _per_sample,
    C.LogregBreastCancerConfig: _breast_cancer,
    C.MnistLogregConfig: _mnist,
    C.MnistMlpConfig: _mnist,
    C.MnistCnnConfig: _mnist_cnn,
}
# transforms.Normalize((0.1307,), (0.3081,)) of the MNIST CNN example.
CNN_MEAN, CNN_STD = 0.1307, 0.3081


def tutorial_data(config: C.TrainConfig) -> TutorialData:
    """The arrays and batch plan for the training tutorial that ``config`` configures."""
    return _BUILDERS[type(config)](config)


def reference(
    tutorial_id: str, module: str, *, loop: str | None = None, noise: str | None = None
) -> TorchSide:
    """The torch side of a catalogue tutorial, from ``jaxtut.torch_ref.<module>``.

    The module is imported only when a factory runs; it defines ``MODELS[id]``, ``CRITERIA[id]``
    and optionally ``EVALUATE[id]`` and ``EPOCH_EVAL[id]``, ``(model, eval tensors) -> metrics``
    with the names the JAX side uses. ``loop`` names the module's own training function where the
    source's loop is not the classic one, ``noise`` its converter of the JAX side's per-step
    noise (dropout masks) into the model's extra argument.
    """

    def ref():
        return importlib.import_module(f"jaxtut.torch_ref.{module}")

    def lookup(table):
        def call(model, eval_data):
            return getattr(ref(), table)[tutorial_id](model, eval_data)

        return call

    return TorchSide(
        model=lambda: ref().MODELS[tutorial_id](),
        criterion=lambda: ref().CRITERIA[tutorial_id],
        evaluate=lookup("EVALUATE"),
        epoch_eval=lookup("EPOCH_EVAL") if tutorial_id in _EPOCH_EVALS else None,
        loop=None if loop is None else lambda *a, **k: getattr(ref(), loop)(*a, **k),
        noise=None if noise is None else lambda *a: getattr(ref(), noise)(*a),
    )


# The tutorials whose reference measures something after every epoch.
_EPOCH_EVALS = ("logreg_breast_cancer",)


def runner(tutorial_id: str, framework: str) -> Callable[..., Any]:
    """``run(config=None, init_params=None, *, plan=None, progress=None)`` of one framework.

    Each tutorial module exposes its run functions this way (``mnist.run_mlp``,
    ``torch_ref.mnist.run_mlp``); they train the tutorial's one experiment through
    :meth:`jaxtut.registry.Tutorial.run`.
    """

    def run(config=None, init_params=None, *, plan=None, progress=None):
        from jaxtut import registry

        return registry.get(tutorial_id).run(
            framework, config, init_params=init_params, plan=plan, progress=progress
        )

    run.__doc__ = f"Trains ``{tutorial_id}`` in {framework}; see :meth:`Tutorial.run`."
    return run


# What a scheduler takes from the run when the config does not say (torch has no defaults here).
_SCHEDULE_DEFAULTS = {
    "cosineannealinglr": lambda config: {"T_max": config.epochs},
    "steplr": lambda config: {"step_size": 1},
    "onecyclelr": lambda config: {"max_lr": config.lr, "epochs": config.epochs},
}


def training_optimizer(config: C.TrainConfig, steps_per_epoch: int):
    """The optimizer of a catalogue run as a :mod:`jaxtut.optim` spec, for both frameworks.

    The config's optimizer (SGD, with the tutorial's momentum, unless it names another) and its
    options, with ``lr`` from the config; its scheduler, stepped once per epoch
    (``steps_per_epoch`` optimizer updates) as the torch scripts do. A cosine schedule anneals
    over the run's epochs unless ``T_max`` is given, a step schedule steps every epoch, a
    one-cycle schedule peaks at the config's ``lr``.
    """
    from jaxtut import optim

    name = getattr(config, "optimizer", "sgd")
    options = dict(getattr(config, "optimizer_options", ()))
    if name.lower() == "sgd":
        options.setdefault("momentum", config.momentum)
    schedule = None
    scheduler = getattr(config, "scheduler", None)
    if scheduler:
        key = optim.SCHEDULER_ALIASES.get(scheduler.lower(), scheduler.lower())
        sched_options = _SCHEDULE_DEFAULTS.get(key, lambda c: {})(config)
        sched_options.update(dict(getattr(config, "scheduler_options", ())))
        schedule = optim.schedule_spec(scheduler, steps_per_epoch=steps_per_epoch, **sched_options)
    return optim.optimizer_spec(name, lr=config.lr, schedule=schedule, **options)


def catalogue_experiment(
    trainer: Trainer,
    config: C.TrainConfig,
    *,
    eval: Callable[[TutorialData], Any] = lambda data: data.eval,
    torch: TorchSide | None = None,
    finish: Callable[[Any], Any] | None = None,
) -> Experiment:
    """The :class:`~jaxtut.experiment.Experiment` of a catalogue tutorial from its config.

    Args:
      trainer: the tutorial's JAX side.
      config: its config (hyperparameters, seed, dtype, device, data options).
      eval: ``TutorialData -> eval data`` handed to the trainer's evaluation functions.
      torch: the tutorial's torch side (the reference's model and criterion).
      finish: host-side post-processing of every run's result.
    """
    data = tutorial_data(config)
    replan = None
    if data.plan is not None and _BUILDERS[type(config)] in (_mnist, _mnist_cnn):  # shuffled
        n = len(data.train[0])

        def replan(seed: int) -> BatchPlan:
            return _shuffled(config.replace(seed=seed), n)

    steps_per_epoch = 1 if data.plan is None else data.plan.steps_per_epoch
    return Experiment(
        name=trainer.tutorial,
        jax=trainer,
        train=data.train,
        plan=data.plan,
        optimizer=training_optimizer(config, steps_per_epoch),
        epochs=config.epochs,
        dtype=config.dtype,
        device=config.device,
        seed=config.seed,
        eval=eval(data),
        torch=torch,
        replan=replan,
        finish=finish,
        config=config,
    )
