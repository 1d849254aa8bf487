"""The one explicit contract of a training run, shared by JAX, PyTorch and the parity harness.

An :class:`Experiment` says everything a training run depends on, as values: the JAX side (pure
functions), the torch side (how to build the ``nn.Module`` and its criterion), the data (NumPy
arrays) and the ONE :class:`~jaxtut.data.BatchPlan` both frameworks read, the optimizer, epochs,
dtype, device and seed. Nothing reaches a run any other way: no context variables, no global
switches. Every catalogue tutorial is a function ``config -> Experiment``
(:meth:`jaxtut.registry.Tutorial.experiment`); a researcher's own model and its JAX port become one
through :func:`jaxtut.compare`. Training (:func:`jaxtut.train.train`), many seeds
(:func:`jaxtut.train.train_seeds`), a data-parallel mesh, progress reporting and the torch side
(:func:`jaxtut.torch_ref.train.train`) all take an experiment and their own options as arguments.

This module imports neither JAX nor torch: the torch side is described by factories that import
torch only when called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from jaxtut.data.batching import BatchPlan
from jaxtut.errors import ConfigError
from jaxtut.runtime import DEVICES, DTYPES, check_seed


@dataclasses.dataclass(frozen=True)
class Trainer:
    """The JAX side of an experiment: pure functions only (hashable, so it keys compiled programs).

    Attributes:
      tutorial: a name for the model (the trace counter's and compile cache's key).
      init: ``(key, dtype) -> params``, the model's own initialisation (PyTorch-style in the
        catalogue); ``None`` when parameters always come from torch (a user's port).
      loss: ``(params, batch, mask) -> scalar`` training loss; ``mask`` marks the real samples of
        a padded batch, or is ``None`` when the batch has no padding.
      forward: ``(params, x) -> output``, what the torch model returns.
      evaluate: optional ``(params, eval_data) -> {name: scalar}`` run once after training.
      epoch_eval: optional ``(params, eval_data) -> {name: scalar}`` run after every epoch.
      noise: optional ``(key, batch_size, dtype) -> arrays``: per-step random inputs of the
        loss (dropout masks), drawn from ``fold_in(key(seed), step)`` and appended to the batch,
        ``loss(params, (*batch, noise), mask)``. The torch side receives the very same arrays
        (``TorchSide.noise``): torch's generator cannot be reproduced, so it is not used.
      flatten_chw: ``((torch Linear path, (C, H, W)), ...)``: Linears fed by a flattened feature
        map, whose weights are permuted between torch's C, H, W flatten and JAX's H, W, C.
      unroll: steps per trip of the fused loop (``lax.scan(unroll=...)``), the model's measured
        loop strategy (docs/benchmarks.md, "Loop strategy per tutorial"); 1 is a rolled loop.
    """

    tutorial: str
    init: Callable[[Any, Any], Any] | None
    loss: Callable[..., Any]
    forward: Callable[[Any, Any], Any]
    evaluate: Callable[[Any, Any], dict[str, Any]] | None = None
    epoch_eval: Callable[[Any, Any], dict[str, Any]] | None = None
    noise: Callable[..., Any] | None = None
    flatten_chw: tuple[tuple[str, tuple[int, ...]], ...] = ()
    unroll: int = 1


@dataclasses.dataclass(frozen=True)
class TorchSide:
    """The PyTorch side of an experiment, as factories (torch is imported only when they run).

    Attributes:
      model: ``() -> nn.Module`` with default initialisation (called after ``torch.manual_seed``).
      criterion: ``() -> loss module`` (``nn.MSELoss()``, ``nn.NLLLoss()``, ...), called as
        ``criterion(model(x), y)``.
      evaluate: optional ``(model, eval_tensors) -> {name: float}`` run once after training,
        under ``torch.no_grad()``; ``eval_tensors`` mirrors ``Experiment.eval`` as tensors.
      epoch_eval: optional, the same after every epoch.
      loop: optional ``(experiment, init_params) -> RunResult`` for a source whose training loop
        is not the classic ``zero_grad``/forward/criterion/``backward``/``step`` one (a manual
        update); ``None`` runs :func:`jaxtut.torch_ref.train.train`.
      noise: with ``Trainer.noise``: ``(noise arrays of the step's real samples, dtype) ->
        model's extra argument`` (the masks in torch's layout); the model is called
        ``model(x, extra)``.
    """

    model: Callable[[], Any]
    criterion: Callable[[], Any]
    evaluate: Callable[[Any, Any], dict[str, float]] | None = None
    epoch_eval: Callable[[Any, Any], dict[str, float]] | None = None
    loop: Callable[..., Any] | None = None
    noise: Callable[..., Any] | None = None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Everything one training run depends on; both frameworks receive this same object.

    Attributes:
      name: the catalogue id, or a name for a user's pair.
      jax: the JAX side (:class:`Trainer`).
      train: pytree of NumPy arrays in the run's dtype; the leading axis indexes samples.
      plan: which samples every step sees (read by both frameworks), or ``None`` when every step
        uses all of ``train`` (full-batch training, one step per epoch).
      optimizer: the optimizer, a :class:`jaxtut.optim.OptimizerSpec` (torch's optimizer and
        scheduler as a value: ``to_optax()`` for JAX, ``to_torch(model)`` for torch).
      epochs: passes over the data (must equal ``plan.epochs`` when there is a plan).
      dtype: ``"float32"`` or ``"float64"``.
      device: ``"cpu"`` or ``"gpu"``.
      seed: seeds the JAX initialisation (and, through ``replan``, the batch order).
      eval: pytree of NumPy arrays handed to the evaluation functions, or ``None``.
      torch: the torch side, or ``None`` for a JAX-only experiment.
      replan: ``seed -> plan`` for the same experiment with another seed (many seeds); ``None``
        when the batch order does not depend on the seed.
      finish: host-side post-processing of a finished :class:`~jaxtut.result.RunResult` (turning
        counts into fractions, adding plot data), applied to every run of either framework.
      config: the catalogue config this experiment was built from (recorded in results), or
        ``None``.
    """

    name: str
    jax: Trainer
    train: Any
    plan: BatchPlan | None
    optimizer: Any
    epochs: int
    dtype: str = "float32"
    device: str = "cpu"
    seed: int = 0
    eval: Any = None
    torch: TorchSide | None = None
    replan: Callable[[int], BatchPlan | None] | None = None
    finish: Callable[[Any], Any] | None = None
    config: Any = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs must be a positive integer, got {self.epochs!r}")
        check_seed(self.seed)  # an experiment built outside a config is checked too
        if self.plan is not None and self.plan.epochs != self.epochs:
            raise ConfigError(
                f"the batch plan covers {self.plan.epochs} epochs but the experiment trains "
                f"{self.epochs}"
            )

    @property
    def steps_per_epoch(self) -> int:
        return 1 if self.plan is None else self.plan.steps_per_epoch

    @property
    def num_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def with_seed(self, seed: int) -> Experiment:
        """The same experiment with another seed: its own batch order, the same data arrays."""
        plan = self.plan if self.replan is None else self.replan(seed)
        config = None if self.config is None else self.config.replace(seed=seed)
        return dataclasses.replace(self, seed=seed, plan=plan, config=config)

    def with_plan(self, plan: BatchPlan) -> Experiment:
        """The same experiment on another batch plan (its epochs become the plan's)."""
        return dataclasses.replace(self, plan=plan, epochs=plan.epochs, replan=None)

    def record(self) -> dict[str, Any]:
        """The run's configuration as a plain dict, for results and reports."""
        if self.config is not None:
            return self.config.to_dict()
        return {
            "epochs": self.epochs,
            "dtype": self.dtype,
            "device": self.device,
            "seed": self.seed,
            "optimizer": repr(self.optimizer),
        }

    def replace(self, **changes: Any) -> Experiment:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)
