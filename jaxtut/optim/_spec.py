"""``OptimizerSpec``: a torch optimizer as a hashable value, and the Optax program built from it.

A spec holds what ``torch.optim.<Name>(params, **kwargs)`` holds (torch's names and defaults),
optional per-parameter-group overrides and an optional :class:`ScheduleSpec`. It imports neither
torch nor anything heavy, so a training contract can carry it and hash it.

:meth:`OptimizerSpec.to_optax` builds one ``optax.inject_hyperparams`` transformation per group,
so every float (lr, betas, eps, weight decay, momentum, ...) is an array in the optimizer state:
a jitted update called with other values does not recompile. What does change the program is
:meth:`OptimizerSpec.structure_key`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import optax

from jaxtut.convert import torch_key
from jaxtut.errors import ConfigError
from jaxtut.optim import _transforms
from jaxtut.optim._schedules import ScheduleSpec, TorchSchedule, TorchScheduleState

# torch 2.13's constructor defaults (torch/optim/<name>.py), checked against the installed
# signatures by tests/test_optim.py. Float hyperparameters, then static (bool) options.
_FLOATS = types.MappingProxyType(
    {
        "SGD": (("lr", 1e-3), ("momentum", 0.0), ("dampening", 0.0), ("weight_decay", 0.0)),
        "Adam": (("lr", 1e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8), ("weight_decay", 0.0)),
        "AdamW": (("lr", 1e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8), ("weight_decay", 1e-2)),
        "Adagrad": (
            ("lr", 1e-2),
            ("lr_decay", 0.0),
            ("weight_decay", 0.0),
            ("initial_accumulator_value", 0.0),
            ("eps", 1e-10),
        ),
        "RMSprop": (
            ("lr", 1e-2),
            ("alpha", 0.99),
            ("eps", 1e-8),
            ("weight_decay", 0.0),
            ("momentum", 0.0),
        ),
        "Adadelta": (("lr", 1.0), ("rho", 0.9), ("eps", 1e-6), ("weight_decay", 0.0)),
    }
)
_OPTIONS = types.MappingProxyType(
    {
        "SGD": (("nesterov", False), ("maximize", False)),
        "Adam": (("amsgrad", False), ("maximize", False)),
        "AdamW": (("amsgrad", False), ("maximize", False)),
        "Adagrad": (("maximize", False),),
        "RMSprop": (("centered", False), ("maximize", False)),
        "Adadelta": (("maximize", False),),
    }
)
OPTIMIZERS = tuple(_FLOATS)
# OneCycleLR accepts one of these per param group.
_GROUP_SCHEDULE_KEYS = ("max_lr", "base_momentum", "max_momentum")


@dataclasses.dataclass(frozen=True)
class NameIn:
    """Selects the parameters whose ``state_dict`` name is one of ``names``."""

    names: frozenset[str]

    def __call__(self, name: str) -> bool:
        return name in self.names


@dataclasses.dataclass(frozen=True)
class NameEndsWith:
    """Selects the parameters whose ``state_dict`` name ends with ``suffix`` (e.g. ``".bias"``)."""

    suffix: str

    def __call__(self, name: str) -> bool:
        return name.endswith(self.suffix)


@dataclasses.dataclass(frozen=True)
class ParamGroup:
    """Overrides for the parameters that ``select`` accepts (by ``state_dict`` name).

    Attributes:
      select: A hashable predicate over names like ``"fc1.bias"`` (:class:`NameEndsWith`,
        :class:`NameIn`, or any function).
      overrides: ``(option, value)`` pairs with torch's names, sorted.
    """

    select: Callable[[str], bool]
    overrides: tuple[tuple[str, Any], ...]


def param_group(select: Callable[[str], bool] | Iterable[str], **overrides: Any) -> ParamGroup:
    """A :class:`ParamGroup`; ``select`` may be a predicate or a collection of names.

    Example: ``adamw(lr=1e-3, groups=[param_group(NameEndsWith(".bias"), weight_decay=0.0)])``.
    """
    if not callable(select):
        if isinstance(select, str):
            raise ConfigError(
                f"param_group: select={select!r} is a string; pass NameEndsWith({select!r}) or "
                "a list of names"
            )
        select = NameIn(frozenset(select))
    return ParamGroup(select, tuple(sorted(overrides.items())))


class _Static(NamedTuple):
    """A group's program structure: the inner factory's static arguments."""

    name: str
    flags: tuple[tuple[str, bool], ...]


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """A torch optimizer (and scheduler) as a frozen, hashable, torch-free value.

    Build one with :func:`sgd`, :func:`adam`, :func:`adamw`, :func:`adagrad`, :func:`rmsprop`,
    :func:`adadelta`, or :func:`jaxtut.optim.spec_from_torch`.

    Attributes:
      name: torch's class name: ``"SGD"``, ``"Adam"``, ``"AdamW"``, ``"Adagrad"``, ``"RMSprop"``
        or ``"Adadelta"``.
      hyperparams: ``(name, value)`` pairs of the float hyperparameters (``betas`` a pair).
      options: ``(name, bool)`` pairs of the static options (nesterov, amsgrad, centered, ...).
      groups: Per-parameter-group overrides; the first group that selects a parameter wins,
        parameters no group selects use the spec's own values.
      schedule: The learning-rate scheduler, if any.
    """

    name: str
    hyperparams: tuple[tuple[str, Any], ...]
    options: tuple[tuple[str, bool], ...]
    groups: tuple[ParamGroup, ...] = ()
    schedule: ScheduleSpec | None = None

    def __post_init__(self) -> None:
        if self.name not in _FLOATS:
            raise ConfigError(
                f"optimizer: {self.name!r} is not supported; jaxtut reproduces "
                f"{', '.join(OPTIMIZERS)}"
            )
        allowed = {k for k, _ in _FLOATS[self.name]} | {k for k, _ in _OPTIONS[self.name]}
        for group in self.groups:
            for key, _ in group.overrides:
                if key not in allowed and key not in _GROUP_SCHEDULE_KEYS:
                    raise ConfigError(
                        f"param_group: {key!r} is not an option of torch.optim.{self.name}"
                    )
        for hp, opts in self._group_settings():
            _validate(self.name, hp, opts, self.schedule)

    # -- what each group runs with ------------------------------------------------------------

    def _group_settings(self) -> list[tuple[dict[str, Any], dict[str, bool]]]:
        """``(hyperparams, options)`` of the default group, then of each ParamGroup."""
        out = [(dict(self.hyperparams), dict(self.options))]
        for group in self.groups:
            hp, opts = dict(self.hyperparams), dict(self.options)
            for key, value in group.overrides:
                (opts if key in opts else hp)[key] = value
            out.append((hp, opts))
        return out

    def _static(self, hp: Mapping[str, Any], opts: Mapping[str, bool]) -> _Static:
        cycles = self.schedule is not None and self.schedule.cycles_momentum
        flags = dict(opts)
        flags["use_weight_decay"] = hp["weight_decay"] != 0
        if self.name == "SGD":
            # torch branches on `momentum != 0`; OneCycleLR sets momentum = max_momentum > 0.
            flags["use_momentum"] = hp["momentum"] != 0 or cycles
            flags["dampened"] = hp["dampening"] != 0
        elif self.name == "RMSprop":
            flags["use_momentum"] = hp["momentum"] > 0 or cycles
        return _Static(self.name, tuple(sorted(flags.items())))

    def structure_key(self) -> tuple:
        """Everything that changes the compiled update program, and nothing else.

        Two specs with equal keys build transformations whose ``update`` traces to the same
        program; only the values in their states differ. As in torch's kernels, a zero
        ``weight_decay`` / ``momentum`` / ``dampening`` skips its operation, so going from zero to
        non-zero is a structure change; any non-zero value to another is not.
        """
        statics = tuple(self._static(hp, opts) for hp, opts in self._group_settings())
        selects = tuple(g.select for g in self.groups)
        schedule = None if self.schedule is None else self.schedule.structure_key()
        return (self.name, statics, selects, schedule)

    # -- Optax ---------------------------------------------------------------------------------

    def to_optax(self) -> optax.GradientTransformation:
        """The Optax transformation, torch's update to float64 rounding (docs/optimizers.md).

        Returns:
          An ``optax.GradientTransformation``; hyperparameters are arrays in its state.
        """
        txs = [self._group_tx(hp, opts, overrides) for (hp, opts), overrides in self._groups_io()]
        if not self.groups:
            return txs[0]
        selects = [g.select for g in self.groups]

        def labels(tree: Any) -> Any:
            def label(path: tuple, _: Any) -> str:
                name = torch_key(tuple(_key_str(k) for k in path))
                return next((f"group{i}" for i, s in enumerate(selects) if s(name)), "default")

            return jax.tree_util.tree_map_with_path(label, tree)

        transforms = {"default": txs[0]} | {f"group{i}": tx for i, tx in enumerate(txs[1:])}
        return optax.partition(transforms, labels)

    def _groups_io(self) -> list[tuple[tuple[dict, dict], tuple]]:
        settings = self._group_settings()
        overrides = [()] + [g.overrides for g in self.groups]
        return list(zip(settings, overrides, strict=True))

    def _group_tx(
        self, hp: dict[str, Any], opts: dict[str, bool], overrides: tuple
    ) -> optax.GradientTransformation:
        static = self._static(hp, opts)
        floats = dict(hp)
        if "betas" in floats:
            floats["b1"], floats["b2"] = (float(b) for b in floats.pop("betas"))
        floats = {k: float(v) for k, v in floats.items()}
        floats["learning_rate"] = floats.pop("lr")
        factory = _FACTORIES[self.name]
        inner = optax.inject_hyperparams(factory, static_args=tuple(dict(static.flags)))(
            **floats, **dict(static.flags)
        )
        if self.schedule is None:
            return inner
        sched_overrides = tuple((k, float(v)) for k, v in overrides if k in _GROUP_SCHEDULE_KEYS)
        schedule = TorchSchedule(self.schedule, floats["learning_rate"], sched_overrides)
        momentum_key = None
        if self.schedule.cycles_momentum:
            momentum_key = "b1" if self.name in ("Adam", "AdamW") else "momentum"
        return _scheduled(inner, schedule, momentum_key)

    # -- torch ---------------------------------------------------------------------------------

    def to_torch(self, params: Any) -> TorchOptimizer:
        """The matching torch optimizer and scheduler (imports torch).

        Args:
          params: A ``torch.nn.Module``, a mapping or iterable of ``(name, parameter)`` pairs,
            or (only without groups) an iterable of parameters.

        Returns:
          A :class:`TorchOptimizer`; call its ``step()`` after each backward pass.
        """
        import torch

        if isinstance(params, torch.nn.Module):
            named = list(params.named_parameters())
        elif isinstance(params, Mapping):
            named = list(params.items())
        else:
            items = list(params)
            if items and isinstance(items[0], tuple):
                named = items
            elif self.groups:
                raise ConfigError(
                    "params: this spec has param groups, so to_torch needs names: pass the module "
                    "or its named_parameters()"
                )
            else:
                named = [(str(i), p) for i, p in enumerate(items)]
        buckets: list[list[Any]] = [[] for _ in range(len(self.groups) + 1)]
        for name, p in named:
            i = next((i + 1 for i, g in enumerate(self.groups) if g.select(name)), 0)
            buckets[i].append(p)
        torch_groups = []
        for i, bucket in enumerate(buckets):
            group: dict[str, Any] = {"params": bucket}
            if i:
                for key, value in self.groups[i - 1].overrides:
                    if key not in _GROUP_SCHEDULE_KEYS:
                        group[key] = value
            if bucket:
                torch_groups.append(group)
        kwargs = {**dict(self.hyperparams), **dict(self.options)}
        # The single-tensor kernels are the path jaxtut is verified against (and torch's CPU
        # default); foreach kernels round differently on CUDA.
        kwargs["foreach"] = False
        optimizer = getattr(torch.optim, self.name)(torch_groups, **kwargs)
        scheduler = None
        if self.schedule is not None:
            kw = self.schedule.kwargs
            per_group = [
                dict(self.groups[i - 1].overrides) if i else {} for i, b in enumerate(buckets) if b
            ]
            for key in _GROUP_SCHEDULE_KEYS:
                if self.schedule.name == "OneCycleLR" and any(key in g for g in per_group):
                    kw[key] = [g.get(key, kw[key]) for g in per_group]
            scheduler = ScheduleSpec.to_torch(
                dataclasses.replace(self.schedule, params=tuple(sorted(kw.items()))), optimizer
            )
        interval = 1 if self.schedule is None else self.schedule.updates_per_step
        return TorchOptimizer(optimizer, scheduler, interval)


class TorchOptimizer:
    """A torch optimizer with its scheduler stepped every ``updates_per_step`` updates.

    Attributes:
      optimizer: The ``torch.optim.Optimizer``.
      scheduler: The ``lr_scheduler`` or ``None``.
      updates_per_step: Optimizer updates between two ``scheduler.step()`` calls.
    """

    def __init__(self, optimizer: Any, scheduler: Any, updates_per_step: int) -> None:
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.updates_per_step = updates_per_step
        self._updates = 0

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def step(self) -> None:
        """``optimizer.step()``, then ``scheduler.step()`` when an epoch (interval) ends."""
        self.optimizer.step()
        self._updates += 1
        if self.scheduler is not None and self._updates % self.updates_per_step == 0:
            self.scheduler.step()


def _key_str(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


# ---------------------------------------------------------------------------------------------
# Inner factories for inject_hyperparams: floats arrive as arrays, flags as Python bools. Each is
# torch's single-tensor kernel written as a chain of Optax transformations.


def _sign(maximize: bool) -> optax.GradientTransformation:
    # torch negates the gradient first, before weight decay: grad = -grad if maximize.
    return optax.scale(-1.0) if maximize else optax.identity()


def _l2(weight_decay, use: bool) -> optax.GradientTransformation:
    # Coupled (L2) weight decay: grad = grad + weight_decay * param, torch's grad.add(param, wd).
    return optax.add_decayed_weights(weight_decay) if use else optax.identity()


def _sgd_factory(
    learning_rate,
    momentum,
    dampening,
    weight_decay,
    *,
    nesterov,
    maximize,
    use_weight_decay,
    use_momentum,
    dampened,
):
    if not use_momentum:
        trace = optax.identity()
    elif dampened:
        trace = _transforms.dampened_trace(momentum, dampening, nesterov)
    else:
        # buf = g + m * buf from zero: the first buf is g, as torch's `buf = grad.clone()`.
        trace = optax.trace(decay=momentum, nesterov=nesterov)
    return optax.chain(
        _sign(maximize),
        _l2(weight_decay, use_weight_decay),
        trace,
        optax.scale_by_learning_rate(learning_rate),
    )


def _adam_factory(
    learning_rate, b1, b2, eps, weight_decay, *, amsgrad, maximize, use_weight_decay, decoupled
):
    if amsgrad:
        direction = _transforms.scale_by_torch_amsgrad(b1, b2, eps)
    else:
        # (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps): torch's formula, eps outside the root.
        direction = optax.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=0.0)
    if decoupled:
        # AdamW: p <- p - lr * (direction + wd * p), torch's p * (1 - lr * wd) - lr * direction.
        return optax.chain(
            _sign(maximize),
            direction,
            _l2(weight_decay, use_weight_decay),
            optax.scale_by_learning_rate(learning_rate),
        )
    return optax.chain(
        _sign(maximize),
        _l2(weight_decay, use_weight_decay),
        direction,
        optax.scale_by_learning_rate(learning_rate),
    )


def _adam(learning_rate, b1, b2, eps, weight_decay, *, amsgrad, maximize, use_weight_decay):
    return _adam_factory(
        learning_rate,
        b1,
        b2,
        eps,
        weight_decay,
        amsgrad=amsgrad,
        maximize=maximize,
        use_weight_decay=use_weight_decay,
        decoupled=False,
    )


def _adamw(learning_rate, b1, b2, eps, weight_decay, *, amsgrad, maximize, use_weight_decay):
    return _adam_factory(
        learning_rate,
        b1,
        b2,
        eps,
        weight_decay,
        amsgrad=amsgrad,
        maximize=maximize,
        use_weight_decay=use_weight_decay,
        decoupled=True,
    )


def _adagrad_factory(
    learning_rate,
    lr_decay,
    weight_decay,
    initial_accumulator_value,
    eps,
    *,
    maximize,
    use_weight_decay,
):
    return optax.chain(
        _sign(maximize),
        _l2(weight_decay, use_weight_decay),
        _transforms.torch_adagrad_step(learning_rate, lr_decay, eps, initial_accumulator_value),
    )


def _rmsprop_factory(
    learning_rate,
    alpha,
    eps,
    weight_decay,
    momentum,
    *,
    centered,
    maximize,
    use_weight_decay,
    use_momentum,
):
    # torch: avg = sqrt(v - mean^2 if centered else v) + eps (eps outside the root), then
    # buf = momentum * buf + g / avg and p -= lr * buf: momentum BEFORE the learning rate.
    if centered:
        scale = optax.scale_by_stddev(decay=alpha, eps=eps, eps_in_sqrt=False)
    else:
        scale = optax.scale_by_rms(decay=alpha, eps=eps, eps_in_sqrt=False)
    return optax.chain(
        _sign(maximize),
        _l2(weight_decay, use_weight_decay),
        scale,
        optax.trace(decay=momentum) if use_momentum else optax.identity(),
        optax.scale_by_learning_rate(learning_rate),
    )


def _adadelta_factory(learning_rate, rho, eps, weight_decay, *, maximize, use_weight_decay):
    # delta = sqrt(acc + eps) / sqrt(v + eps) * g: optax.scale_by_adadelta is torch's formula.
    return optax.chain(
        _sign(maximize),
        _l2(weight_decay, use_weight_decay),
        optax.scale_by_adadelta(rho=rho, eps=eps),
        optax.scale_by_learning_rate(learning_rate),
    )


_FACTORIES = types.MappingProxyType(
    {
        "SGD": _sgd_factory,
        "Adam": _adam,
        "AdamW": _adamw,
        "Adagrad": _adagrad_factory,
        "RMSprop": _rmsprop_factory,
        "Adadelta": _adadelta_factory,
    }
)


class ScheduledState(NamedTuple):
    """State of a scheduled group: the scheduler's state and the inner optimizer's."""

    schedule: TorchScheduleState
    inner: Any  # optax.InjectStatefulHyperparamsState


def _scheduled(
    inner: optax.GradientTransformation, schedule: TorchSchedule, momentum_key: str | None
) -> optax.GradientTransformation:
    """Writes the scheduler's lr (and cycled momentum) into ``inner``'s hyperparams each update.

    The values are cast to the dtype ``inject_hyperparams`` chose for that entry (the params'),
    as torch casts its Python-float lr to the tensor's dtype.
    """

    def init_fn(params):
        return ScheduledState(schedule=schedule.init(), inner=inner.init(params))

    def update_fn(updates, state, params=None):
        hp = dict(state.inner.hyperparams)
        hp["learning_rate"] = state.schedule.lr.astype(hp["learning_rate"].dtype)
        if momentum_key is not None:
            hp[momentum_key] = state.schedule.momentum.astype(hp[momentum_key].dtype)
        updates, inner_state = inner.update(updates, state.inner._replace(hyperparams=hp), params)
        return updates, ScheduledState(schedule=schedule.advance(state.schedule), inner=inner_state)

    return optax.GradientTransformation(init_fn, update_fn)


def _validate(name: str, hp: Mapping[str, Any], opts: Mapping[str, bool], schedule) -> None:
    """torch's constructor checks, as one-line ConfigErrors naming the option."""

    def need(ok: bool, option: str, why: str) -> None:
        if not ok:
            raise ConfigError(f"{option}: {why} (torch.optim.{name})")

    for key, value in hp.items():
        values = value if key == "betas" else (value,)
        for v in values:
            need(
                isinstance(v, (int, float)) and not isinstance(v, bool),
                key,
                f"must be a number, got {v!r}",
            )
    for key in ("lr", "eps", "weight_decay", "momentum", "lr_decay", "alpha"):
        if key in hp:
            need(hp[key] >= 0, key, f"must be >= 0, got {hp[key]!r}")
    if "initial_accumulator_value" in hp:
        v = hp["initial_accumulator_value"]
        need(v >= 0, "initial_accumulator_value", f"must be >= 0, got {v!r}")
    if "betas" in hp:
        betas = hp["betas"]
        need(len(betas) == 2, "betas", f"must be a pair, got {betas!r}")
        for i, b in enumerate(betas):
            need(0 <= b < 1, f"betas[{i}]", f"must be in [0, 1), got {b!r}")
    if "rho" in hp:
        need(0 <= hp["rho"] <= 1, "rho", f"must be in [0, 1], got {hp['rho']!r}")
    for key, value in opts.items():
        need(isinstance(value, bool), key, f"must be True or False, got {value!r}")
    if opts.get("nesterov"):
        need(
            hp["momentum"] > 0 and hp["dampening"] == 0,
            "nesterov",
            "needs momentum > 0 and dampening = 0",
        )
    if schedule is not None and schedule.cycles_momentum:
        need(
            name in ("SGD", "RMSprop", "Adam", "AdamW"),
            "cycle_momentum",
            "OneCycleLR cycles momentum or betas[0], which this optimizer does not have; "
            "pass cycle_momentum=False",
        )


# ---------------------------------------------------------------------------------------------
# Constructors with torch's argument names and defaults.


def _make(name: str, given: Mapping[str, Any], groups, schedule) -> OptimizerSpec:
    floats = tuple((k, given[k]) for k, _ in _FLOATS[name])
    floats = tuple((k, tuple(float(b) for b in v) if k == "betas" else v) for k, v in floats)
    options = tuple((k, given[k]) for k, _ in _OPTIONS[name])
    groups = tuple(g if isinstance(g, ParamGroup) else param_group(**g) for g in groups or ())
    return OptimizerSpec(name, floats, options, groups, schedule)


def sgd(
    lr: float = 1e-3,
    momentum: float = 0,
    dampening: float = 0,
    weight_decay: float = 0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
    groups: Iterable[ParamGroup] = (),
    schedule: ScheduleSpec | None = None,
) -> OptimizerSpec:
    """``torch.optim.SGD``: ``buf = m * buf + (1 - dampening) * g`` (first ``buf = g``)."""
    return _make("SGD", locals(), groups, schedule)


def adam(
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    groups: Iterable[ParamGroup] = (),
    schedule: ScheduleSpec | None = None,
) -> OptimizerSpec:
    """``torch.optim.Adam`` (L2 weight decay added to the gradient; torch's AMSGrad)."""
    return _make("Adam", locals(), groups, schedule)


def adamw(
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    groups: Iterable[ParamGroup] = (),
    schedule: ScheduleSpec | None = None,
) -> OptimizerSpec:
    """``torch.optim.AdamW``: decoupled decay ``p *= 1 - lr * weight_decay`` (default 1e-2)."""
    return _make("AdamW", locals(), groups, schedule)


def adagrad(
    lr: float = 1e-2,
    lr_decay: float = 0,
    weight_decay: float = 0,
    initial_accumulator_value: float = 0,
    eps: float = 1e-10,
    *,
    maximize: bool = False,
    groups: Iterable[ParamGroup] = (),
    schedule: ScheduleSpec | None = None,
) -> OptimizerSpec:
    """``torch.optim.Adagrad``: ``-lr / (1 + (t-1) lr_decay) * g / (sqrt(s) + eps)``."""
    return _make("Adagrad", locals(), groups, schedule)


def rmsprop(
    lr: float = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum: float = 0,
    centered: bool = False,
    *,
    maximize: bool = False,
    groups: Iterable[ParamGroup] = (),
    schedule: ScheduleSpec | None = None,
) -> OptimizerSpec:
    """``torch.optim.RMSprop``: ``g / (sqrt(v) + eps)``, momentum applied before ``lr``."""
    return _make("RMSprop", locals(), groups, schedule)


def adadelta(
    lr: float = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0,
    *,
    maximize: bool = False,
    groups: Iterable[ParamGroup] = (),
    schedule: ScheduleSpec | None = None,
) -> OptimizerSpec:
    """``torch.optim.Adadelta`` with torch's ``lr = 1.0`` (Optax's alias defaults to ``None``)."""
    return _make("Adadelta", locals(), groups, schedule)
