"""Optimizers and schedulers by name, for command lines and configs (``--optimizer adamw``).

Names are matched case-insensitively, in torch's spelling (``"AdamW"``, ``"CosineAnnealingLR"``)
or the short forms listed in :data:`SCHEDULER_ALIASES`.
"""

from __future__ import annotations

import types
from typing import Any

from jaxtut.errors import ConfigError
from jaxtut.optim import _schedules, _spec

_OPTIMIZERS = types.MappingProxyType(
    {
        "sgd": _spec.sgd,
        "adam": _spec.adam,
        "adamw": _spec.adamw,
        "adagrad": _spec.adagrad,
        "rmsprop": _spec.rmsprop,
        "adadelta": _spec.adadelta,
    }
)
_SCHEDULERS = types.MappingProxyType(
    {
        "steplr": _schedules.step_lr,
        "multisteplr": _schedules.multistep_lr,
        "exponentiallr": _schedules.exponential_lr,
        "cosineannealinglr": _schedules.cosine_annealing_lr,
        "linearlr": _schedules.linear_lr,
        "onecyclelr": _schedules.one_cycle_lr,
    }
)
# Short names a command line may use for the schedulers.
SCHEDULER_ALIASES = types.MappingProxyType(
    {
        "step": "steplr",
        "multistep": "multisteplr",
        "exponential": "exponentiallr",
        "cosine": "cosineannealinglr",
        "linear": "linearlr",
        "onecycle": "onecyclelr",
    }
)


def optimizer_spec(name: str, **kwargs: Any) -> _spec.OptimizerSpec:
    """``optimizer_spec("adamw", lr=1e-3)`` is ``adamw(lr=1e-3)``; torch's argument names.

    Raises:
      ConfigError: For an unknown name or argument.
    """
    make = _OPTIMIZERS.get(name.lower())
    if make is None:
        raise ConfigError(f"optimizer: unknown {name!r}; choose one of {', '.join(_OPTIMIZERS)}")
    return _call(make, f"optimizer {name}", kwargs)


def schedule_spec(name: str, **kwargs: Any) -> _schedules.ScheduleSpec:
    """``schedule_spec("cosine", T_max=5, steps_per_epoch=938)`` is ``cosine_annealing_lr(...)``.

    Raises:
      ConfigError: For an unknown name or argument, or a missing ``steps_per_epoch``.
    """
    key = SCHEDULER_ALIASES.get(name.lower(), name.lower())
    make = _SCHEDULERS.get(key)
    if make is None:
        names = [*SCHEDULER_ALIASES, *_schedules.SCHEDULERS]
        raise ConfigError(f"scheduler: unknown {name!r}; choose one of {', '.join(names)}")
    return _call(make, f"scheduler {name}", kwargs)


def _call(make: Any, what: str, kwargs: dict[str, Any]) -> Any:
    import inspect

    params = inspect.signature(make).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: not an argument of the {what} (it takes {', '.join(params)})"
        )
    missing = [
        k
        for k, p in params.items()
        if p.default is inspect.Parameter.empty and k not in kwargs and k != "steps_per_epoch"
    ]
    if missing:
        raise ConfigError(f"{missing[0]}: the {what} needs it")
    if "steps_per_epoch" in params and params["steps_per_epoch"].default is inspect.Parameter.empty:
        kwargs.setdefault("steps_per_epoch", None)  # -> the one-line steps_per_epoch error
    return make(**kwargs)
