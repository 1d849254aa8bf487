"""Unit tests of ``jaxtut.optim``: specs, torch round trips, groups, errors, tracing, schedules.

The trajectories against torch are in parity_tests/test_optim.py; these tests are the fast
checks of everything around them.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxtut import optim
from jaxtut.errors import ConfigError

torch = pytest.importorskip("torch")
LRS = torch.optim.lr_scheduler

CONSTRUCTORS = {
    "SGD": optim.sgd,
    "Adam": optim.adam,
    "AdamW": optim.adamw,
    "Adagrad": optim.adagrad,
    "RMSprop": optim.rmsprop,
    "Adadelta": optim.adadelta,
}

# Non-default values of every hyperparameter and option, per torch class.
NON_DEFAULT = {
    "SGD": dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=1e-3, nesterov=True),
    "Adam": dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-2, amsgrad=True),
    "AdamW": dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=0.1, amsgrad=True),
    "Adagrad": dict(lr=0.1, lr_decay=1e-3, weight_decay=1e-4, initial_accumulator_value=0.1),
    "RMSprop": dict(lr=1e-3, alpha=0.9, eps=1e-6, weight_decay=1e-4, momentum=0.5, centered=True),
    "Adadelta": dict(lr=0.5, rho=0.95, eps=1e-5, weight_decay=1e-4, maximize=True),
}


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(3, 4)
        self.fc2 = torch.nn.Linear(4, 2)


def _tiny_params():
    return {
        "fc1": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4)},
        "fc2": {"kernel": jnp.ones((4, 2)), "bias": jnp.ones(2)},
    }


def _torch_hparams(optimizer) -> list[dict]:
    skip = {"params", "param_names", "foreach", "initial_lr"}
    return [{k: v for k, v in g.items() if k not in skip} for g in optimizer.param_groups]


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_constructor_defaults_are_torchs(name):
    """Every argument of jaxtut's constructor has the installed torch class's default."""
    ours = inspect.signature(CONSTRUCTORS[name]).parameters
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    for arg, param in ours.items():
        if arg in ("groups", "schedule"):
            continue
        assert param.default == theirs[arg].default, (name, arg)


@pytest.mark.parametrize("name", list(CONSTRUCTORS))
def test_from_torch_round_trip(name):
    """torch optimizer -> spec -> torch optimizer gives the same param groups, and the spec
    equals the one built by jaxtut's constructor with the same arguments."""
    model = Tiny()
    original = getattr(torch.optim, name)(model.parameters(), **NON_DEFAULT[name])
    spec = optim.spec_from_torch(original)
    assert spec == CONSTRUCTORS[name](**NON_DEFAULT[name])
    rebuilt = spec.to_torch(model).optimizer
    assert type(rebuilt) is type(original)
    assert _torch_hparams(rebuilt) == _torch_hparams(original)
    assert optim.spec_from_torch(rebuilt) == spec
    assert hash(spec) == hash(optim.spec_from_torch(rebuilt))
    assert isinstance(optim.from_torch(original), optax.GradientTransformation)


def test_adam_decoupled_weight_decay_is_adamw():
    opt = torch.optim.Adam(Tiny().parameters(), lr=1e-3, decoupled_weight_decay=True)
    assert optim.spec_from_torch(opt) == optim.adamw(lr=1e-3, weight_decay=0.0)


def test_param_groups_no_weight_decay_on_biases():
    """Two torch groups (decay on weights, none on biases) become one ParamGroup override; one
    update with zero gradients then leaves the biases alone and shrinks the weights by exactly
    torch's factor."""
    model = Tiny()
    named = list(model.named_parameters())
    opt = torch.optim.AdamW(
        [
            {"params": [p for n, p in named if n.endswith("weight")]},
            {"params": [p for n, p in named if n.endswith("bias")], "weight_decay": 0.0},
        ],
        lr=0.1,
        weight_decay=0.5,
    )
    with pytest.raises(ConfigError, match="named_parameters"):
        optim.spec_from_torch(opt)
    spec = optim.spec_from_torch(opt, named_parameters=model)
    assert spec.groups == (
        optim.param_group(optim.NameIn(frozenset({"fc1.bias", "fc2.bias"})), weight_decay=0.0),
    )
    # The same groups built by name, torch-free:
    by_suffix = optim.adamw(
        lr=0.1,
        weight_decay=0.5,
        groups=[optim.param_group(optim.NameEndsWith(".bias"), weight_decay=0)],
    )
    for s in (spec, by_suffix):
        tx = s.to_optax()
        params = _tiny_params()
        zeros = jax.tree.map(jnp.zeros_like, params)
        updates, _ = tx.update(zeros, tx.init(params), params)
        new = optax.apply_updates(params, updates)
        for layer in ("fc1", "fc2"):
            assert np.all(np.asarray(new[layer]["bias"]) == 1.0)
            np.testing.assert_allclose(new[layer]["kernel"], 1.0 - 0.1 * 0.5, rtol=1e-6)
    # torch agrees: an optimizer built from the name-selected spec has the same two groups.
    rebuilt = by_suffix.to_torch(model).optimizer
    assert [g["weight_decay"] for g in rebuilt.param_groups] == [0.5, 0]
    assert [len(g["params"]) for g in rebuilt.param_groups] == [2, 2]


def test_optimizer_built_from_named_parameters_needs_no_names():
    model = Tiny()
    named = list(model.named_parameters())
    opt = torch.optim.SGD(
        [
            {"params": [(n, p) for n, p in named if n.startswith("fc1")], "lr": 0.5},
            {"params": [(n, p) for n, p in named if n.startswith("fc2")]},
        ],
        lr=0.1,
    )
    spec = optim.spec_from_torch(opt)
    assert dict(spec.hyperparams)["lr"] == 0.5
    assert spec.groups[0].select == optim.NameIn(frozenset({"fc2.weight", "fc2.bias"}))


# --------------------------------------------------------------------------------------------
# Errors: one line, ConfigError, naming the option.


def _assert_one_line_naming(exc: pytest.ExceptionInfo, *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def _opt(cls=torch.optim.SGD, **kw):
    return cls(Tiny().parameters(), **{"lr": 0.1, **kw})


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: optim.from_torch(_opt(torch.optim.NAdam)), ["NAdam", "not supported"]),
        (lambda: optim.from_torch(_opt(differentiable=True)), ["differentiable"]),
        (lambda: optim.from_torch(_opt(torch.optim.Adam, capturable=True)), ["capturable"]),
        (lambda: optim.from_torch(_opt(torch.optim.Adam, fused=True)), ["fused"]),
        (
            lambda: optim.from_torch(o := _opt(), LRS.LambdaLR(o, lambda e: 0.9**e)),
            ["LambdaLR", "not supported"],
        ),
        (
            lambda: optim.from_torch(o := _opt(), LRS.CosineAnnealingLR(o, T_max=3)),
            ["steps_per_epoch"],
        ),
        (lambda: optim.sgd(lr=0.1, nesterov=True), ["nesterov", "momentum"]),
        (lambda: optim.adam(lr=-1.0), ["lr", ">= 0"]),
        (lambda: optim.adam(betas=(0.9, 1.0)), ["betas[1]"]),
        (lambda: optim.adagrad(schedule=optim.one_cycle_lr(0.1, 10)), ["cycle_momentum"]),
        (lambda: optim.sgd(groups=[optim.param_group(["a"], betas=(0.9, 0.9))]), ["betas"]),
        (lambda: optim.param_group(".bias", weight_decay=0.0), ["NameEndsWith"]),
        (lambda: optim.step_lr(0, steps_per_epoch=2), ["step_size"]),
        (lambda: optim.one_cycle_lr(0.1), ["total_steps"]),
    ],
)
def test_errors_are_one_line_config_errors(make, words):
    with pytest.raises(ConfigError) as exc:
        make()
    _assert_one_line_naming(exc, *words)


def test_stepped_scheduler_is_rejected():
    opt = _opt()
    sched = LRS.StepLR(opt, step_size=2)
    opt.step()
    sched.step()
    with pytest.raises(ConfigError) as exc:
        optim.from_torch(opt, sched, steps_per_epoch=4)
    _assert_one_line_naming(exc, "already been stepped")


def test_import_does_not_import_torch():
    code = "import sys, jaxtut.optim; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# Hyperparameters are state: other values never re-trace; only the structure key does.


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            optim.adam(lr=1e-3, weight_decay=1e-4),
            optim.adam(lr=5e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
        ),
        (
            optim.sgd(lr=0.1, momentum=0.9, schedule=optim.step_lr(3, 0.5, steps_per_epoch=2)),
            optim.sgd(lr=0.3, momentum=0.5, schedule=optim.step_lr(5, 0.1, steps_per_epoch=2)),
        ),
        (
            optim.rmsprop(centered=True, momentum=0.5, schedule=optim.one_cycle_lr(1.0, 50)),
            optim.rmsprop(
                lr=1e-3, centered=True, momentum=0.9, schedule=optim.one_cycle_lr(0.2, 80)
            ),
        ),
    ],
    ids=["adam", "sgd_steplr", "rmsprop_onecycle"],
)
def test_hyperparameters_are_traced(a, b):
    """A jitted update traced for spec ``a`` runs spec ``b`` (same structure key) from ``b``'s
    state without re-tracing, and gives exactly what ``b``'s own transformation gives."""
    assert a.structure_key() == b.structure_key()
    traces = []
    tx_a = a.to_optax()

    @jax.jit
    def update(grads, state, params):
        traces.append(1)
        return tx_a.update(grads, state, params)

    params = _tiny_params()
    grads = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)
    tx_b = b.to_optax()
    reference = jax.jit(tx_b.update)  # jitted too: eager float32 ops round differently
    state_a, state_b, ref_state = tx_a.init(params), tx_b.init(params), tx_b.init(params)
    for _ in range(3):
        _, state_a = update(grads, state_a, params)
        got, state_b = update(grads, state_b, params)
        want, ref_state = reference(grads, ref_state, params)
        jax.tree.map(np.testing.assert_array_equal, got, want)
    assert len(traces) == 1


def test_structure_key_changes_only_with_structure():
    assert optim.sgd(lr=0.1).structure_key() == optim.sgd(lr=0.2).structure_key()
    assert optim.sgd(momentum=0.9).structure_key() != optim.sgd().structure_key()
    assert (
        optim.sgd(momentum=0.9, nesterov=True).structure_key()
        != optim.sgd(momentum=0.9).structure_key()
    )
    assert optim.adam(amsgrad=True).structure_key() != optim.adam().structure_key()
    cos = optim.cosine_annealing_lr(5, steps_per_epoch=10)
    assert optim.adam(schedule=cos).structure_key() != optim.adam().structure_key()
    ms = [optim.multistep_lr(m, steps_per_epoch=10) for m in ([2, 4], [2, 5])]
    assert optim.adam(schedule=ms[0]).structure_key() != optim.adam(schedule=ms[1]).structure_key()
    hash(optim.adamw(groups=[optim.param_group(optim.NameEndsWith(".bias"), weight_decay=0)]))


# --------------------------------------------------------------------------------------------
# Schedule step counting: jaxtut's learning rate at every update against torch's ``group["lr"]``
# during that update, for a scheduler stepped every 3 updates (and OneCycleLR every update).

SCHEDULE_CASES = {
    "StepLR": (lambda o: LRS.StepLR(o, step_size=4, gamma=0.3), 3),
    "MultiStepLR": (lambda o: LRS.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.5), 3),
    "ExponentialLR": (lambda o: LRS.ExponentialLR(o, gamma=0.9), 3),
    "CosineAnnealingLR": (lambda o: LRS.CosineAnnealingLR(o, T_max=4, eta_min=0.01), 3),
    "LinearLR": (lambda o: LRS.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=6), 3),
    "OneCycleLR": (lambda o: LRS.OneCycleLR(o, max_lr=0.4, total_steps=40), None),
}


@pytest.mark.parametrize("case", list(SCHEDULE_CASES))
def test_schedule_step_counting(case):
    """40 updates: the lr (and OneCycle momentum) jaxtut uses at update t equals torch's.

    Bit for bit for the multiplicative schedulers. The cosine-based ones call XLA's cos where
    torch calls libm's: MEASURED bit for bit here too (all 40 values of CosineAnnealingLR and
    OneCycleLR, lr and momentum), but held to 4 ulps since the two cos implementations are not
    guaranteed to round alike on every machine.
    """
    make, spe = SCHEDULE_CASES[case]
    opt = torch.optim.SGD(Tiny().parameters(), lr=0.3, momentum=0.9)
    sched = make(opt)
    spec = optim.spec_from_torch(opt, sched, steps_per_epoch=spe)
    torch_lr, torch_mom = [], []
    for t in range(40):
        torch_lr.append(opt.param_groups[0]["lr"])
        torch_mom.append(opt.param_groups[0]["momentum"])
        opt.step()
        if (t + 1) % (spe or 1) == 0:
            sched.step()
    with jax.enable_x64(True):
        schedule = optim.TorchSchedule(spec.schedule, dict(spec.hyperparams)["lr"])
        state = schedule.init()
        ours_lr, ours_mom = [], []
        for _ in range(40):
            ours_lr.append(float(state.lr))
            ours_mom.append(float(state.momentum))
            state = schedule.advance(state)
    np.testing.assert_allclose(ours_lr, torch_lr, rtol=4 * np.finfo(np.float64).eps, atol=0)
    if case == "OneCycleLR":
        np.testing.assert_allclose(ours_mom, torch_mom, rtol=4 * np.finfo(np.float64).eps)
    if case not in ("CosineAnnealingLR", "OneCycleLR"):
        assert ours_lr == torch_lr  # bit for bit


def test_steps_per_epoch_maps_epochs_onto_updates():
    """StepLR(step_size=1, gamma=0.5) stepped every 3 updates: updates 0-2 at lr, 3-5 at lr/2."""
    spec = optim.sgd(lr=0.8, schedule=optim.step_lr(1, 0.5, steps_per_epoch=3))
    tx = spec.to_optax()
    seen = []
    with jax.enable_x64(True):
        params = {"w": jnp.zeros((), jnp.float64)}
        state = tx.init(params)
        for _ in range(7):
            updates, state = tx.update({"w": jnp.ones((), jnp.float64)}, state, params)
            seen.append(-float(updates["w"]))
    assert seen == [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2]


def test_torch_optimizer_steps_scheduler_per_interval():
    spec = optim.sgd(lr=0.8, schedule=optim.step_lr(1, 0.5, steps_per_epoch=3))
    topt = spec.to_torch(Tiny())
    lrs = []
    for _ in range(7):
        lrs.append(topt.optimizer.param_groups[0]["lr"])
        topt.step()
    assert lrs == [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2]


@pytest.mark.parametrize(
    ("pct", "div", "final_div", "total"), [(0.3, 25.0, 1e4, 240), (0.23, 7.0, 3e3, 977)]
)
def test_one_cycle_round_trip_is_exact(pct, div, final_div, total):
    """torch keeps only derived numbers (phase ends, initial and min lr); the spec's arguments
    re-derive them bit for bit."""
    opt = torch.optim.SGD(Tiny().parameters(), lr=0.1, momentum=0.9)
    sched = LRS.OneCycleLR(
        opt,
        max_lr=0.37,
        total_steps=total,
        pct_start=pct,
        div_factor=div,
        final_div_factor=final_div,
    )
    rebuilt = optim.spec_from_torch(opt, sched).to_torch(Tiny())
    assert rebuilt.scheduler._schedule_phases == sched._schedule_phases
    for key in ("initial_lr", "max_lr", "min_lr", "lr", "momentum"):
        assert rebuilt.optimizer.param_groups[0][key] == opt.param_groups[0][key], key


def test_specs_by_name():
    assert optim.optimizer_spec("AdamW", lr=1e-3) == optim.adamw(lr=1e-3)
    assert optim.optimizer_spec("rmsprop", centered=True) == optim.rmsprop(centered=True)
    assert optim.schedule_spec("cosine", T_max=5, steps_per_epoch=9) == optim.cosine_annealing_lr(
        5, steps_per_epoch=9
    )
    assert optim.schedule_spec("OneCycleLR", max_lr=0.1, total_steps=9) == optim.one_cycle_lr(
        0.1, 9
    )
    for make, words in [
        (lambda: optim.optimizer_spec("lamb"), ["optimizer", "lamb"]),
        (lambda: optim.optimizer_spec("sgd", betas=(0.9, 0.9)), ["betas"]),
        (lambda: optim.schedule_spec("plateau"), ["scheduler", "plateau"]),
        (lambda: optim.schedule_spec("cosine", T_max=5), ["steps_per_epoch"]),
        (lambda: optim.schedule_spec("step", steps_per_epoch=3), ["step_size"]),
    ]:
        with pytest.raises(ConfigError) as exc:
            make()
        _assert_one_line_naming(exc, *words)


@pytest.mark.parametrize(
    ("spec", "x64"),
    [
        (optim.sgd(0.1, 0.9, 0.1, 1e-3, schedule=optim.step_lr(2, steps_per_epoch=2)), True),
        (optim.adam(amsgrad=True, schedule=optim.one_cycle_lr(0.1, 9)), False),
        (optim.adamw(schedule=optim.cosine_annealing_lr(3, steps_per_epoch=2)), True),
        (optim.adagrad(lr_decay=0.1, schedule=optim.linear_lr(steps_per_epoch=1)), False),
        (optim.rmsprop(centered=True, momentum=0.5, schedule=optim.one_cycle_lr(0.1, 9)), True),
        (
            optim.adadelta(weight_decay=0.1, schedule=optim.exponential_lr(0.9, steps_per_epoch=1)),
            False,
        ),
    ],
    ids=lambda v: v.name if isinstance(v, optim.OptimizerSpec) else f"x64={v}",
)
def test_float32_state_keeps_its_dtypes_in_a_scan(spec, x64):
    """A float32 run (with or without x64 enabled) keeps a float32 optimizer state, so it can be
    the carry of lax.scan; the schedule's float64 numbers are cast at use."""
    with jax.enable_x64(x64):
        tx = spec.to_optax()
        params = jax.tree.map(lambda p: p.astype(jnp.float32), _tiny_params())
        state = tx.init(params)

        def step(carry, _):
            params, state = carry
            grads = jax.tree.map(lambda p: jnp.sin(p), params)
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, state), length=4)
        assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
