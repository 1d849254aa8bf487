"""Reading a constructed ``torch.optim`` optimizer (and scheduler) into an :class:`OptimizerSpec`.

torch is never imported here: the optimizer's class and its ``param_groups`` are read as they
are, after the scheduler's constructor has written its own keys (``initial_lr``, OneCycleLR's
``max_lr`` and cycled momentum) into them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import optax

from jaxtut.errors import ConfigError
from jaxtut.optim import _schedules
from jaxtut.optim._spec import _FLOATS, _OPTIONS, OptimizerSpec, param_group

# Keys a param group may hold that change nothing jaxtut computes: the kernel choice on this path
# (foreach), or keys the scheduler wrote (read from the scheduler instead).
_IGNORED = frozenset(
    {"params", "param_names", "foreach", "initial_lr", "min_lr", "max_lr"}
    | {"base_momentum", "max_momentum"}
)
# Options whose non-default value means a different implementation than the one jaxtut reproduces.
_UNSUPPORTED = {
    "differentiable": "differentiates through the optimizer step, which an Optax update is not "
    "set up to reproduce",
    "capturable": "selects the CUDA-graph kernels, whose operation order jaxtut does not reproduce",
    "fused": "selects the fused kernels, whose rounding jaxtut does not reproduce",
}


def _schedule_spec(scheduler: Any, steps_per_epoch: int | None) -> _schedules.ScheduleSpec:
    cls = type(scheduler).__name__
    if cls not in _schedules.SCHEDULERS or type(scheduler).__module__ != (
        "torch.optim.lr_scheduler"
    ):
        raise ConfigError(
            f"scheduler: {cls} is not supported; jaxtut reproduces "
            f"{', '.join(_schedules.SCHEDULERS)}"
        )
    if scheduler.last_epoch != 0 or getattr(scheduler, "_step_count", 1) != 1:
        raise ConfigError(
            f"scheduler: this {cls} has already been stepped (last_epoch={scheduler.last_epoch}); "
            "hand over a freshly constructed one"
        )
    if cls == "StepLR":
        return _schedules.step_lr(
            scheduler.step_size, scheduler.gamma, steps_per_epoch=steps_per_epoch
        )
    if cls == "MultiStepLR":
        return _schedules.multistep_lr(
            tuple(scheduler.milestones.elements()), scheduler.gamma, steps_per_epoch=steps_per_epoch
        )
    if cls == "ExponentialLR":
        return _schedules.exponential_lr(scheduler.gamma, steps_per_epoch=steps_per_epoch)
    if cls == "CosineAnnealingLR":
        return _schedules.cosine_annealing_lr(
            scheduler.T_max, scheduler.eta_min, steps_per_epoch=steps_per_epoch
        )
    if cls == "LinearLR":
        return _schedules.linear_lr(
            scheduler.start_factor,
            scheduler.end_factor,
            scheduler.total_iters,
            steps_per_epoch=steps_per_epoch,
        )
    # OneCycleLR keeps derived numbers only (phase ends, initial/min lr in the group); recover
    # constructor arguments that re-derive them bit for bit.
    group = scheduler.optimizer.param_groups[0]
    phases = scheduler._schedule_phases
    total = scheduler.total_steps
    end0 = phases[0]["end_step"]
    pct_start = _exact_inverse(lambda p: float(p * total) - 1, end0, (end0 + 1) / total)
    max_lr, initial_lr = group["max_lr"], group["initial_lr"]
    div_factor = _exact_inverse(lambda d: max_lr / d, initial_lr, max_lr / initial_lr)
    final_div = _exact_inverse(
        lambda d: initial_lr / d, group["min_lr"], initial_lr / group["min_lr"]
    )
    cycle = scheduler.cycle_momentum
    return _schedules.one_cycle_lr(
        max_lr,
        total_steps=total,
        pct_start=pct_start,
        anneal_strategy=scheduler._anneal_func_type,
        cycle_momentum=cycle,
        base_momentum=group["base_momentum"] if cycle else 0.85,
        max_momentum=group["max_momentum"] if cycle else 0.95,
        div_factor=div_factor,
        final_div_factor=final_div,
        three_phase=len(phases) == 3,
    )


def _exact_inverse(f, target: float, guess: float) -> float:
    """The float within a few ulps of ``guess`` for which ``f(x) == target`` exactly.

    torch stores ``float(pct_start * total) - 1`` and ``max_lr / div_factor`` rather than the
    arguments; dividing back can be an ulp off, which would move a phase end or an lr by an ulp.
    """
    candidates = [guess]
    up = down = guess
    for _ in range(8):
        up, down = math.nextafter(up, math.inf), math.nextafter(down, -math.inf)
        candidates += [up, down]
    for x in candidates:
        if f(x) == target:
            return x
    return guess


def _group_values(name: str, group: Mapping[str, Any], scheduler: Any) -> dict[str, Any]:
    """The group's hyperparameters and options, in the spec's terms; errors for the rest."""
    known = {k for k, _ in _FLOATS[name]} | {k for k, _ in _OPTIONS[name]}
    for key, value in group.items():
        if key in _UNSUPPORTED:
            if value:
                raise ConfigError(f"{key}={value!r}: torch.optim.{name} {_UNSUPPORTED[key]}")
        elif key == "decoupled_weight_decay":
            pass  # Adam(decoupled_weight_decay=True) is AdamW: handled by the caller.
        elif key not in known and key not in _IGNORED:
            raise ConfigError(f"param_groups: {key!r} is not an option jaxtut reproduces")
    values = {k: group[k] for k in known}
    values["lr"] = float(values["lr"])  # a 1-element tensor lr is accepted by torch
    if scheduler is not None and "initial_lr" in group:
        # The scheduler has already moved group["lr"] to its epoch-0 value: start from its base.
        values["lr"] = float(group["initial_lr"])
    if "betas" in values:
        values["betas"] = tuple(float(b) for b in values["betas"])
    for key in ("max_lr", "base_momentum", "max_momentum"):
        if key in group and type(scheduler).__name__ == "OneCycleLR":
            values[key] = float(group[key])
    cycled = type(scheduler).__name__ == "OneCycleLR" and scheduler.cycle_momentum
    if cycled and "momentum" in values:
        # OneCycleLR has set momentum to max_momentum (betas[0] likewise); the cycle overwrites
        # it before every update, so the value only decides torch's `momentum != 0` branch.
        values["momentum"] = float(group["max_momentum"])
    return values


def spec_from_torch(
    optimizer: Any,
    scheduler: Any = None,
    *,
    steps_per_epoch: int | None = None,
    named_parameters: Iterable[tuple[str, Any]] | Any = None,
) -> OptimizerSpec:
    """The :class:`OptimizerSpec` of a constructed torch optimizer (and scheduler).

    Args:
      optimizer: A ``torch.optim.SGD``, ``Adam``, ``AdamW``, ``Adagrad``, ``RMSprop`` or
        ``Adadelta``, as the user's script builds it.
      scheduler: A fresh ``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``CosineAnnealingLR``,
        ``LinearLR`` or ``OneCycleLR`` on ``optimizer``, or ``None``.
      steps_per_epoch: Optimizer updates between two ``scheduler.step()`` calls (batches per
        epoch; 1 if the script steps the scheduler after every batch). Needed for every scheduler
        but ``OneCycleLR``, which is stepped per batch.
      named_parameters: ``model.named_parameters()`` or the module, to tell which parameter is in
        which group when the groups differ (not needed if the optimizer was built from named
        parameters, or has one group).

    Returns:
      The spec; ``spec.to_optax()`` is the transformation.

    Raises:
      ConfigError: For an optimizer, scheduler or option jaxtut does not reproduce, or a missing
        ``steps_per_epoch`` or parameter names.
    """
    cls = type(optimizer)
    name = cls.__name__
    if name not in _FLOATS or cls.__module__.split(".")[:2] != ["torch", "optim"]:
        raise ConfigError(
            f"optimizer: {cls.__module__}.{cls.__qualname__} is not supported; jaxtut "
            f"reproduces torch.optim.{', torch.optim.'.join(_FLOATS)}"
        )
    groups = optimizer.param_groups
    if name == "Adam" and any(g.get("decoupled_weight_decay") for g in groups):
        if not all(g.get("decoupled_weight_decay") for g in groups):
            raise ConfigError(
                "decoupled_weight_decay: set in some param groups only; jaxtut needs it in all"
            )
        name = "AdamW"  # torch's AdamW is exactly Adam(decoupled_weight_decay=True)
    schedule = None
    if scheduler is not None:
        if scheduler.optimizer is not optimizer:
            raise ConfigError("scheduler: it steps a different optimizer than the one given")
        schedule = _schedule_spec(scheduler, steps_per_epoch)
    values = [_group_values(name, g, scheduler) for g in groups]
    base = values[0]
    floats = tuple((k, base[k]) for k, _ in _FLOATS[name])
    options = tuple((k, base[k]) for k, _ in _OPTIONS[name])
    extra = []
    for i, v in enumerate(values[1:], start=1):
        diff = {k: x for k, x in v.items() if base.get(k) != x}
        if diff:
            extra.append(param_group(_group_names(optimizer, i, named_parameters), **diff))
    return OptimizerSpec(name, floats, options, tuple(extra), schedule)


def _group_names(optimizer: Any, index: int, named_parameters: Any) -> frozenset[str]:
    group = optimizer.param_groups[index]
    if "param_names" in group:
        return frozenset(group["param_names"])
    if named_parameters is None:
        raise ConfigError(
            f"named_parameters: param group {index} has its own settings, so jaxtut needs "
            "parameter names: pass named_parameters=model.named_parameters() (or build the "
            "optimizer from named parameters)"
        )
    if hasattr(named_parameters, "named_parameters"):
        named_parameters = named_parameters.named_parameters()
    ids = {id(p): n for n, p in named_parameters}
    missing = [p for p in group["params"] if id(p) not in ids]
    if missing:
        raise ConfigError(
            f"named_parameters: {len(missing)} parameter(s) of param group {index} are not among "
            "the named parameters given"
        )
    return frozenset(ids[id(p)] for p in group["params"])


def from_torch(
    optimizer: Any,
    scheduler: Any = None,
    *,
    steps_per_epoch: int | None = None,
    named_parameters: Any = None,
) -> optax.GradientTransformation:
    """The Optax transformation equal to a constructed torch optimizer (and scheduler).

    ``from_torch(opt, sched, steps_per_epoch=n)`` is
    ``spec_from_torch(opt, sched, steps_per_epoch=n).to_optax()``; see :func:`spec_from_torch`.
    """
    return spec_from_torch(
        optimizer, scheduler, steps_per_epoch=steps_per_epoch, named_parameters=named_parameters
    ).to_optax()
