"""The catalogue: tutorial ids mapped to their configs, JAX implementations and torch references.

Implementations are named by module path and loaded on first use, so listing or validating
tutorials imports neither JAX's compiled code paths nor torch. Conventions every entry follows:

* a training tutorial's JAX module (``jaxtut.tutorials.<module>``) defines ``EXPERIMENTS[id]``, a
  function ``config -> Experiment`` (:mod:`jaxtut.experiment`), and ``TRAINERS[id]``, its JAX
  side; both frameworks train that one experiment. Its torch module (``jaxtut.torch_ref.<module>``)
  defines ``MODELS[id]`` (an ``nn.Module`` class) and ``CRITERIA[id]``, and the run function named
  here, which takes the experiment, where the source's loop is not the classic one;
* a demonstration's modules both define the run function named here, taking the config.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from types import ModuleType
from typing import Any

from jaxtut import configs as C
from jaxtut.errors import ConfigError, MissingDependencyError, UnknownTutorialError

SOURCES = {
    "first_steps": "'First Steps With PyTorch' (seeds 000/002)",
    "basics": "PyTorch basics: tensors, CUDA, perceptron (seed 001)",
    "floydhub": "FloydHub 'Introduction to Deep Learning: PyTorch' (seed 003)",
    "part1": "'PyTorch Tutorial, Part 1' (seed 004)",
    "examples": "pytorch/examples mnist/main.py (issue 13)",
}


@dataclasses.dataclass(frozen=True)
class Tutorial:
    """One catalogue entry.

    Attributes:
      id: the name used by the CLI, tests, examples and reports.
      summary: one line for ``jaxtut list``.
      source: which source tutorial it rebuilds (a key of :data:`SOURCES`).
      config: its frozen config dataclass (defaults = the source's values).
      module: the module name under ``jaxtut.tutorials`` and ``jaxtut.torch_ref``.
      function: the run function's name in both modules.
      trains: whether it is a training tutorial (parity tiers 0-4 apply).
      uses_mnist: whether it needs the MNIST files.
      plot: what ``jaxtut run --plot`` draws: ``"losses"`` (the loss curve) or ``"fit"`` (the
        fitted line over the data).
      figures: the extra figures the tour draws from the JAX run: ``"fit"`` (the data and the
        fitted line), ``"digits"`` (test digits with predictions), ``"confusion"``.
    """

    id: str
    summary: str
    source: str
    config: type[C.Config]
    module: str
    function: str = "run"
    trains: bool = True
    uses_mnist: bool = False
    plot: str = "losses"
    figures: tuple[str, ...] = ()

    def default_config(self, **overrides: Any) -> C.Config:
        """The default config with ``overrides`` applied (``None`` values ignored)."""
        return self.config().replace(**overrides)

    def jax_module(self) -> ModuleType:
        return importlib.import_module(f"jaxtut.tutorials.{self.module}")

    def torch_module(self) -> ModuleType:
        """The PyTorch reference module; a missing torch raises one clear error."""
        try:
            import torch  # noqa: F401
        except ImportError as err:
            raise MissingDependencyError(
                "PyTorch is not installed: install the extra with "
                "pip install 'jaxtut[torch]' (pins torch==2.13.0)"
            ) from err
        return importlib.import_module(f"jaxtut.torch_ref.{self.module}")

    def experiment(self, config: C.Config | None = None):
        """The training tutorial as an :class:`~jaxtut.experiment.Experiment` for ``config``."""
        if not self.trains:
            raise ConfigError(f"{self.id} is not a training tutorial")
        return self.jax_module().EXPERIMENTS[self.id](config or self.config())

    def run(
        self,
        framework: str = "jax",
        config: C.Config | None = None,
        *,
        init_params: Any = None,
        plan: Any = None,
        progress: Any = None,
        mesh: Any = None,
    ):
        """Runs the tutorial; returns a RunResult.

        A training tutorial runs its :meth:`experiment`: in JAX through
        :func:`jaxtut.train.train`, in PyTorch through :func:`jaxtut.torch_ref.train.train`
        (or the reference's own loop where the source's is not the classic one,
        ``TorchSide.loop``).

        Args:
          framework: ``"jax"``, ``"torch"``, or ``"numpy"`` for the tutorials that have a NumPy
            version (its function is the JAX module's ``<function>_numpy``).
          config: the run's config (defaults to the tutorial's).
          init_params: initial parameters as a NumPy ``state_dict`` (training tutorials).
          plan: a batch plan replacing the experiment's (a parity check swaps two batches).
          progress: ``(epochs done, epochs, loss) -> None`` after every chunk of epochs.
          mesh: JAX only: a 1-D ``"data"`` mesh to train data-parallel on.
        """
        C.check_run(self, framework, config, init_params=init_params)
        if framework not in ("jax", "torch", "numpy"):
            raise ConfigError(f"framework must be 'jax', 'torch' or 'numpy', got {framework!r}")
        config = config or self.config()
        if framework == "numpy":
            fn = getattr(self.jax_module(), f"{self.function}_numpy", None)
            if fn is None:
                raise ConfigError(f"{self.id} has no NumPy version")
            return fn(config, init_params) if self.trains else fn(config)
        if not self.trains:
            module = self.jax_module() if framework == "jax" else self.torch_module()
            return getattr(module, self.function)(config)
        experiment = self.experiment(config)
        if plan is not None:
            experiment = experiment.with_plan(plan)
        if framework == "jax":
            from jaxtut.train import train

            return train(experiment, init_params=init_params, progress=progress, mesh=mesh)
        if mesh is not None:
            raise ConfigError("a mesh applies to JAX runs; torch runs on one device")
        self.torch_module()  # one clear error when torch is missing
        if experiment.torch.loop is not None:  # the source's own loop, on the same data and plan
            return experiment.torch.loop(experiment, init_params=init_params)
        from jaxtut.torch_ref.train import train

        return train(experiment, init_params=init_params, progress=progress)

    @property
    def has_numpy(self) -> bool:
        return hasattr(self.jax_module(), f"{self.function}_numpy")

    def trainer(self):
        """The JAX side (:class:`~jaxtut.experiment.Trainer`) of a training tutorial."""
        return self.jax_module().TRAINERS[self.id]


_ENTRIES = [
    Tutorial("tensors", "tensor basics: creation, dtypes, ops, indexing, views, NumPy, devices",
             "first_steps+basics", C.TensorsConfig, "tensors", trains=False),
    Tutorial("autograd", "autograd: grad of mean(3(x+2)^2) is 4.5; SGD on |5 - y|",
             "floydhub+part1", C.AutogradConfig, "autograd", trains=False),
    Tutorial("normal_equation", "least squares by (X^T X)^-1 X^T y, solve and lstsq",
             "first_steps", C.NormalEquationConfig, "normal_equation", trains=False),
    Tutorial("linreg_scratch", "y = 2x, one weight: hand-written gradient, autograd, grad",
             "part1", C.LinregScratchConfig, "linreg", "run_scratch", plot="fit"),
    Tutorial("linreg_linear", "y = 2x with Linear(1,1), MSELoss, SGD, 2000 epochs",
             "part1", C.LinregLinearConfig, "linreg", "run_linear", plot="fit"),
    Tutorial("linreg_make_regression", "make_regression(20, 1, noise=20): Linear(1,1), 1000 epochs",
             "part1", C.LinregMakeRegressionConfig, "linreg", "run_make_regression", plot="fit",
             figures=("fit",)),
    Tutorial("perceptron", "y = 3x, Linear(1,1), per-sample SGD with momentum 0.5",
             "basics", C.PerceptronConfig, "perceptron", "run_perceptron", plot="fit"),
    Tutorial("mlp_1_10_1", "y = 3x, fc2(fc1(x)) 1-10-1 without activation, per-sample SGD",
             "basics", C.Mlp1101Config, "perceptron", "run_mlp"),
    Tutorial("logreg_breast_cancer", "breast cancer, sigmoid(Linear(30,1)), BCELoss, 100 epochs",
             "part1", C.LogregBreastCancerConfig, "logreg"),
    Tutorial("mnist_logreg", "MNIST, Linear(784,10), cross-entropy, SGD 0.001, batch 100",
             "floydhub", C.MnistLogregConfig, "mnist", "run_logreg", uses_mnist=True),
    Tutorial("mnist_mlp", "MNIST, 784-128-64-10 ReLU, LogSoftmax+NLLLoss, SGD 0.003, batch 64",
             "first_steps", C.MnistMlpConfig, "mnist", "run_mlp", uses_mnist=True,
             figures=("digits", "confusion")),
    Tutorial("mnist_cnn", "MNIST CNN: 2 conv, max-pool, dropout, Adadelta + StepLR, batch 64",
             "examples", C.MnistCnnConfig, "mnist_cnn", uses_mnist=True),
]  # fmt: skip

TUTORIALS: dict[str, Tutorial] = {t.id: t for t in _ENTRIES}
TRAINING = tuple(t.id for t in _ENTRIES if t.trains)


def get(tutorial_id: str) -> Tutorial:
    """The catalogue entry for ``tutorial_id``; an unknown id suggests the closest one."""
    if not isinstance(tutorial_id, str):
        raise UnknownTutorialError(
            f"a tutorial id is a string such as 'mnist_mlp', got {type(tutorial_id).__name__} "
            f"{tutorial_id!r} (see 'jaxtut list')"
        )
    try:
        return TUTORIALS[tutorial_id]
    except KeyError:
        close = difflib.get_close_matches(tutorial_id, TUTORIALS, n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownTutorialError(
            f"unknown tutorial {tutorial_id!r}{hint} (see 'jaxtut list')"
        ) from None


def ids(*, training_only: bool = False) -> tuple[str, ...]:
    return TRAINING if training_only else tuple(TUTORIALS)
