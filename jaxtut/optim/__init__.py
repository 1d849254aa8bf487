"""torch.optim and its learning-rate schedulers, reproduced exactly in Optax.

Three ways in, one result (an ``optax.GradientTransformation`` whose float hyperparameters live in
its state, so changing them never recompiles):

* constructors with torch's names and defaults: :func:`sgd`, :func:`adam`, :func:`adamw`,
  :func:`adagrad`, :func:`rmsprop`, :func:`adadelta`, each returning an :class:`OptimizerSpec`
  (call ``.to_optax()``); schedulers: :func:`step_lr`, :func:`multistep_lr`,
  :func:`exponential_lr`, :func:`cosine_annealing_lr`, :func:`linear_lr`, :func:`one_cycle_lr`;
* :func:`from_torch` / :func:`spec_from_torch`: read what a torch script constructed;
* :meth:`OptimizerSpec.to_torch`: the other direction, for references and parity runs;
* :func:`optimizer_spec` / :func:`schedule_spec`: the same by name, for command lines.

Example:
  >>> from jaxtut import optim
  >>> spec = optim.adamw(lr=1e-3, schedule=optim.cosine_annealing_lr(5, steps_per_epoch=938))
  >>> tx = spec.to_optax()

See docs/optimizers.md for every difference from Optax's stock aliases.
"""

from jaxtut.optim._from_torch import from_torch, spec_from_torch
from jaxtut.optim._names import SCHEDULER_ALIASES, optimizer_spec, schedule_spec
from jaxtut.optim._schedules import (
    SCHEDULERS,
    ScheduleSpec,
    TorchSchedule,
    TorchScheduleState,
    cosine_annealing_lr,
    exponential_lr,
    linear_lr,
    multistep_lr,
    one_cycle_lr,
    step_lr,
)
from jaxtut.optim._spec import (
    OPTIMIZERS,
    NameEndsWith,
    NameIn,
    OptimizerSpec,
    ParamGroup,
    ScheduledState,
    TorchOptimizer,
    adadelta,
    adagrad,
    adam,
    adamw,
    param_group,
    rmsprop,
    sgd,
)
from jaxtut.optim._transforms import (
    dampened_trace,
    scale_by_torch_amsgrad,
    torch_adagrad_step,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "SCHEDULER_ALIASES",
    "NameEndsWith",
    "NameIn",
    "OptimizerSpec",
    "ParamGroup",
    "ScheduleSpec",
    "ScheduledState",
    "TorchOptimizer",
    "TorchSchedule",
    "TorchScheduleState",
    "adadelta",
    "adagrad",
    "adam",
    "adamw",
    "cosine_annealing_lr",
    "dampened_trace",
    "exponential_lr",
    "from_torch",
    "linear_lr",
    "multistep_lr",
    "one_cycle_lr",
    "optimizer_spec",
    "param_group",
    "rmsprop",
    "scale_by_torch_amsgrad",
    "schedule_spec",
    "sgd",
    "spec_from_torch",
    "step_lr",
    "torch_adagrad_step",
]
