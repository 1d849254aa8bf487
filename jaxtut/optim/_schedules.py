"""torch.optim.lr_scheduler, reproduced update by update.

torch's schedulers are recursive: ``scheduler.step()`` multiplies (or shifts) each group's current
``lr``; the closed forms (``_get_closed_form_lr``) run only for the deprecated
``step(epoch)``. jaxtut reproduces the recursion, in the order torch writes it: the current learning
rate is part of the optimizer state, and every ``updates_per_step`` updates it is advanced by the
scheduler's ``get_lr`` formula for the new ``last_epoch``. Every hyperparameter (base lr, gamma,
T_max, ...) lives in that state as an array, so changing one never recompiles; only the kind, the
milestones of ``MultiStepLR`` and the stepping interval are part of the program.

Step counting (``c`` = optimizer updates done before the current one, from 0)::

    last_epoch e = c // updates_per_step       # the scheduler has been stepped e times
    the current update uses torch's lr (and OneCycle momentum) for last_epoch e

``updates_per_step`` is the number of optimizer updates between two ``scheduler.step()`` calls:
the loader's batches per epoch for a scheduler stepped once per epoch, 1 for one stepped after
every batch (``OneCycleLR`` always is).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxtut.errors import ConfigError

Array = jax.Array

SCHEDULERS = (
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
    "OneCycleLR",
)


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
    """A torch learning-rate scheduler as a hashable, torch-free value.

    Build one with :func:`step_lr`, :func:`multistep_lr`, :func:`exponential_lr`,
    :func:`cosine_annealing_lr`, :func:`linear_lr` or :func:`one_cycle_lr` (torch's argument names
    and defaults), or get it from :func:`jaxtut.optim.spec_from_torch`.

    Attributes:
      name: The torch class name, e.g. ``"CosineAnnealingLR"``.
      params: ``(name, value)`` pairs with torch's argument names, sorted.
      updates_per_step: Optimizer updates per ``scheduler.step()`` (see the module docstring).
    """

    name: str
    params: tuple[tuple[str, Any], ...]
    updates_per_step: int

    def __post_init__(self) -> None:
        if self.name not in SCHEDULERS:
            raise ConfigError(
                f"scheduler: {self.name!r} is not supported; jaxtut reproduces "
                f"{', '.join(SCHEDULERS)}"
            )
        if not isinstance(self.updates_per_step, int) or self.updates_per_step < 1:
            raise ConfigError(
                f"steps_per_epoch: must be a positive integer (optimizer updates per "
                f"scheduler.step()), got {self.updates_per_step!r}"
            )

    @property
    def kwargs(self) -> dict[str, Any]:
        """The torch constructor's keyword arguments."""
        return dict(self.params)

    @property
    def cycles_momentum(self) -> bool:
        """Whether the scheduler also sets momentum / ``betas[0]`` (OneCycleLR's cycling)."""
        return self.name == "OneCycleLR" and bool(self.kwargs["cycle_momentum"])

    def structure_key(self) -> tuple:
        """What changes the compiled program: kind, static options, milestones, interval."""
        kw = self.kwargs
        static = {
            "MultiStepLR": ("milestones",),
            "OneCycleLR": ("anneal_strategy", "three_phase", "cycle_momentum"),
        }.get(self.name, ())
        return (self.name, self.updates_per_step, *((k, kw[k]) for k in static))

    def to_torch(self, optimizer: Any) -> Any:
        """The matching ``torch.optim.lr_scheduler`` on ``optimizer`` (imports torch)."""
        from torch.optim import lr_scheduler

        kw = self.kwargs
        if self.name == "MultiStepLR":
            kw["milestones"] = list(kw["milestones"])
        return getattr(lr_scheduler, self.name)(optimizer, **kw)


def _spec(name: str, updates_per_step: Any, **params: Any) -> ScheduleSpec:
    if updates_per_step is None:
        raise ConfigError(
            f"steps_per_epoch: {name} steps once per scheduler.step(), so jaxtut needs the number "
            "of optimizer updates between two calls (batches per epoch, or 1 if stepped per batch)"
        )
    return ScheduleSpec(name, tuple(sorted(params.items())), updates_per_step)


def _positive_int(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{option}: must be a positive integer, got {value!r}")
    return value


def step_lr(step_size: int, gamma: float = 0.1, *, steps_per_epoch: int | None) -> ScheduleSpec:
    """``StepLR``: ``lr *= gamma`` every ``step_size`` scheduler steps."""
    return _spec(
        "StepLR",
        steps_per_epoch,
        step_size=_positive_int("step_size", step_size),
        gamma=float(gamma),
    )


def multistep_lr(
    milestones: tuple[int, ...] | list[int], gamma: float = 0.1, *, steps_per_epoch: int | None
) -> ScheduleSpec:
    """``MultiStepLR``: ``lr *= gamma ** k`` at a milestone listed ``k`` times."""
    ms = tuple(sorted(_positive_int("milestones", int(m)) for m in milestones))
    return _spec("MultiStepLR", steps_per_epoch, milestones=ms, gamma=float(gamma))


def exponential_lr(gamma: float, *, steps_per_epoch: int | None) -> ScheduleSpec:
    """``ExponentialLR``: ``lr *= gamma`` every scheduler step."""
    return _spec("ExponentialLR", steps_per_epoch, gamma=float(gamma))


def cosine_annealing_lr(
    T_max: int,
    eta_min: float = 0.0,
    *,
    steps_per_epoch: int | None,
) -> ScheduleSpec:
    """``CosineAnnealingLR`` in torch's recursive form (see :func:`_cosine_next`)."""
    return _spec(
        "CosineAnnealingLR",
        steps_per_epoch,
        T_max=_positive_int("T_max", T_max),
        eta_min=float(eta_min),
    )


def linear_lr(
    start_factor: float = 1.0 / 3,
    end_factor: float = 1.0,
    total_iters: int = 5,
    *,
    steps_per_epoch: int | None,
) -> ScheduleSpec:
    """``LinearLR``: the factor goes from ``start_factor`` to ``end_factor`` in ``total_iters``."""
    if not 0 < start_factor <= 1:
        raise ConfigError(f"start_factor: must be in (0, 1], got {start_factor!r}")
    if not 0 <= end_factor <= 1:
        raise ConfigError(f"end_factor: must be in [0, 1], got {end_factor!r}")
    return _spec(
        "LinearLR",
        steps_per_epoch,
        start_factor=float(start_factor),
        end_factor=float(end_factor),
        total_iters=_positive_int("total_iters", total_iters),
    )


def one_cycle_lr(
    max_lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> ScheduleSpec:
    """``OneCycleLR``, stepped after every batch as torch documents; momentum cycling included.

    Arguments are torch's; ``steps_per_epoch`` here only sizes the cycle (``epochs *
    steps_per_epoch``) as in torch. With ``cycle_momentum`` the optimizer's momentum (SGD,
    RMSprop) or ``betas[0]`` (Adam, AdamW) follows the cycle too.
    """
    if total_steps is None:
        if epochs is None or steps_per_epoch is None:
            raise ConfigError(
                "total_steps: OneCycleLR needs total_steps, or epochs and steps_per_epoch"
            )
        total_steps = _positive_int("epochs", epochs) * _positive_int(
            "steps_per_epoch", steps_per_epoch
        )
    if not 0 <= pct_start <= 1:
        raise ConfigError(f"pct_start: must be in [0, 1], got {pct_start!r}")
    if anneal_strategy not in ("cos", "linear"):
        raise ConfigError(f"anneal_strategy: must be 'cos' or 'linear', got {anneal_strategy!r}")
    return ScheduleSpec(
        "OneCycleLR",
        tuple(
            sorted(
                dict(
                    max_lr=float(max_lr),
                    total_steps=_positive_int("total_steps", total_steps),
                    pct_start=float(pct_start),
                    anneal_strategy=anneal_strategy,
                    cycle_momentum=bool(cycle_momentum),
                    base_momentum=float(base_momentum),
                    max_momentum=float(max_momentum),
                    div_factor=float(div_factor),
                    final_div_factor=float(final_div_factor),
                    three_phase=bool(three_phase),
                ).items()
            )
        ),
        1,
    )


# ---------------------------------------------------------------------------------------------
# The recursion in JAX. ``h`` holds the schedule's numbers as arrays (float64 under x64).


def _float_dtype() -> Any:
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _step_next(lr: Array, e: Array, h: Mapping[str, Array]) -> Array:
    # StepLR.get_lr: unchanged unless last_epoch is a positive multiple of step_size.
    return jnp.where((e == 0) | (e % h["step_size"] != 0), lr, lr * h["gamma"])


def _multistep_next(milestones: tuple[int, ...]) -> Callable[..., Array]:
    counts = sorted(Counter(milestones).items())

    def next_lr(lr: Array, e: Array, h: Mapping[str, Array]) -> Array:
        # MultiStepLR.get_lr: lr * gamma ** milestones[e] at a milestone; ** as in Python.
        for milestone, k in counts:
            factor = h["gamma"] if k == 1 else jnp.power(h["gamma"], float(k))
            lr = jnp.where(e == milestone, lr * factor, lr)
        return lr

    return next_lr


def _exponential_next(lr: Array, e: Array, h: Mapping[str, Array]) -> Array:
    return lr * h["gamma"]  # ExponentialLR.get_lr for last_epoch >= 1


def _cosine_next(lr: Array, e: Array, h: Mapping[str, Array]) -> Array:
    """CosineAnnealingLR.get_lr for ``last_epoch = e >= 1`` (a fresh scheduler), torch's order::

    if (e - 1 - T) % (2T) == 0:  lr + (base - eta_min) * (1 - cos(pi / T)) / 2
    else:  (1 + cos(pi * e / T)) / (1 + cos(pi * (e - 1) / T)) * (lr - eta_min) + eta_min
    """
    t, eta_min, base = h["T_max"], h["eta_min"], h["base_lr"]
    ef = e.astype(lr.dtype)
    tf = t.astype(lr.dtype)
    restart = lr + (base - eta_min) * (1 - jnp.cos(math.pi / tf)) / 2
    ratio = (1 + jnp.cos(math.pi * ef / tf)) / (1 + jnp.cos(math.pi * (ef - 1) / tf))
    smooth = ratio * (lr - eta_min) + eta_min
    return jnp.where((e - 1 - t) % (2 * t) == 0, restart, smooth)


def _linear_next(lr: Array, e: Array, h: Mapping[str, Array]) -> Array:
    """LinearLR.get_lr for ``last_epoch = e >= 1``::

    e > total_iters: lr
    else: lr * (1 + (end - start) / (total_iters * start + (e - 1) * (end - start)))
    """
    start, end, n = h["start_factor"], h["end_factor"], h["total_iters"]
    nf = n.astype(lr.dtype)
    ef = e.astype(lr.dtype)
    factor = 1.0 + (end - start) / (nf * start + (ef - 1) * (end - start))
    return jnp.where(e > n, lr, lr * factor)


def _one_cycle(step: Array, h: Mapping[str, Array], *, anneal: str, three_phase: bool):
    """OneCycleLR.get_lr at ``last_epoch = step``: ``(lr, momentum)``, torch's phase table."""
    dtype = h["max_lr"].dtype
    total = h["total_steps"].astype(dtype)
    pct_start = h["pct_start"]
    initial_lr = h["max_lr"] / h["div_factor"]
    min_lr = initial_lr / h["final_div_factor"]
    lrs = {"initial_lr": initial_lr, "max_lr": h["max_lr"], "min_lr": min_lr}
    moms = {"max_momentum": h["max_momentum"], "base_momentum": h["base_momentum"]}
    if three_phase:
        phases = [
            (pct_start * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            (2 * pct_start * total - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
            (total - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
        ]
    else:
        phases = [
            (pct_start * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            (total - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
        ]

    def anneal_fn(start, end, pct):
        if anneal == "cos":
            return end + (start - end) / 2.0 * (jnp.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    s = step.astype(dtype)
    # torch walks the phases and takes the first with step <= end_step (the last one otherwise);
    # evaluating them last to first under `where` picks the same one.
    lr = mom = None
    starts = [jnp.zeros([], dtype)] + [p[0] for p in phases[:-1]]
    for i in reversed(range(len(phases))):
        end_step, lr0, lr1, m0, m1 = phases[i]
        pct = (s - starts[i]) / (end_step - starts[i])
        lr_i = anneal_fn(lrs[lr0], lrs[lr1], pct)
        mom_i = anneal_fn(moms[m0], moms[m1], pct)
        if lr is None:
            lr, mom = lr_i, mom_i
        else:
            take = s <= end_step
            lr, mom = jnp.where(take, lr_i, lr), jnp.where(take, mom_i, mom)
    return lr, mom


class TorchScheduleState(NamedTuple):
    """State of a :class:`TorchSchedule`: the scheduler's position and numbers."""

    count: Array  # () int32: optimizer updates done
    lr: Array  # the learning rate of the current update
    momentum: Array  # OneCycleLR's cycled momentum / beta1 (0 for other schedulers)
    hparams: dict[str, Array]


@dataclasses.dataclass(frozen=True)
class TorchSchedule:
    """One param group's scheduler: ``init() -> state``, ``value(state)``, ``advance(state)``.

    Attributes:
      spec: The scheduler.
      base_lr: The group's ``lr`` before the scheduler touched it (torch's ``initial_lr``).
      overrides: Per-group values of OneCycleLR's ``max_lr`` / ``base_momentum`` /
        ``max_momentum`` (torch accepts one per group).
    """

    spec: ScheduleSpec
    base_lr: float
    overrides: tuple[tuple[str, float], ...] = ()

    def init(self) -> TorchScheduleState:
        kw = {**self.spec.kwargs, **dict(self.overrides)}
        fdt = _float_dtype()
        h: dict[str, Array] = {"base_lr": jnp.asarray(self.base_lr, fdt)}
        for name, value in kw.items():
            if isinstance(value, bool) or name in ("milestones", "anneal_strategy"):
                continue  # static: part of the program
            dtype = jnp.int32 if isinstance(value, int) else fdt
            h[name] = jnp.asarray(value, dtype)
        zero = jnp.zeros([], jnp.int32)
        lr, momentum = self._at_zero(h)
        return TorchScheduleState(count=zero, lr=lr, momentum=momentum, hparams=h)

    def _at_zero(self, h: Mapping[str, Array]) -> tuple[Array, Array]:
        # The value set by the scheduler's constructor (its initial step to last_epoch 0).
        zero = jnp.zeros([], jnp.int32)
        no_momentum = jnp.zeros([], h["base_lr"].dtype)
        if self.spec.name == "LinearLR":
            return h["base_lr"] * h["start_factor"], no_momentum
        if self.spec.name == "OneCycleLR":
            return self._one_cycle(zero, h)
        return h["base_lr"], no_momentum

    def _one_cycle(self, step: Array, h: Mapping[str, Array]) -> tuple[Array, Array]:
        kw = self.spec.kwargs
        return _one_cycle(step, h, anneal=kw["anneal_strategy"], three_phase=kw["three_phase"])

    def advance(self, state: TorchScheduleState) -> TorchScheduleState:
        """The state after one more optimizer update."""
        count = state.count + 1
        n = self.spec.updates_per_step
        epoch = count // n
        stepped = count % n == 0
        h = state.hparams
        if self.spec.name == "OneCycleLR":
            lr, momentum = self._one_cycle(epoch, h)
        else:
            next_lr = {
                "StepLR": _step_next,
                "MultiStepLR": _multistep_next(self.spec.kwargs.get("milestones", ())),
                "ExponentialLR": _exponential_next,
                "CosineAnnealingLR": _cosine_next,
                "LinearLR": _linear_next,
            }[self.spec.name]
            lr, momentum = next_lr(state.lr, epoch, h), state.momentum
        lr = jnp.where(stepped, lr, state.lr)
        momentum = jnp.where(stepped, momentum, state.momentum)
        return TorchScheduleState(count=count, lr=lr, momentum=momentum, hparams=h)
