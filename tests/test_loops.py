"""``jaxtut.loops``: every loop strategy gives the same run; the step-wise loop compiles once."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtut.loops import LoopStrategy, fit_epochs

STRATEGIES = [
    LoopStrategy(),
    LoopStrategy("unrolled", 2),
    LoopStrategy("unrolled", 4),  # does not divide the 6 steps of a run
    LoopStrategy("stepwise"),
]


def _sgd_step(consts, carry, x):
    """Least squares on one sample: consts = (data, targets), x = (sample index, lr scale)."""
    data, targets = consts
    i, scale = x
    w, count = carry
    loss, g = jax.value_and_grad(lambda w: (data[i] @ w - targets[i]) ** 2)(w)
    return (w - 0.1 * scale * g, count + 1), {"loss": loss, "w0": w[0]}


def _problem():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5, 3)).astype(np.float32)
    targets = rng.standard_normal(5).astype(np.float32)
    idx = rng.integers(0, 5, (2, 3)).astype(np.int32)  # (epochs, steps)
    scale = np.linspace(0.5, 1.0, 6, dtype=np.float32).reshape(2, 3)
    carry = (np.zeros(3, np.float32), np.int32(0))
    return carry, (idx, scale), (data, targets)


def _python_loop(carry, xs, consts):
    ys = []
    for e in range(2):
        for s in range(3):
            carry, y = _sgd_step(consts, carry, jax.tree.map(lambda a, e=e, s=s: a[e, s], xs))
            ys.append(y)
    return carry, ys


@pytest.mark.parametrize("strategy", STRATEGIES, ids=str)
def test_strategies_match_a_plain_python_loop(strategy):
    carry, xs, consts = _problem()
    want_carry, want_ys = _python_loop(carry, xs, consts)

    def run(carry, xs, consts):
        return fit_epochs(
            _sgd_step, carry, xs, strategy=strategy, consts=consts, epoch_fn=lambda c: c[0]
        )

    run = run if strategy.kind == "stepwise" else jax.jit(run)
    (w, count), ys, per_epoch = run(carry, xs, consts)
    assert int(count) == 6
    np.testing.assert_allclose(w, want_carry[0], rtol=1e-6)
    losses = np.asarray(ys["loss"])
    assert losses.shape == (2, 3)
    np.testing.assert_allclose(losses.ravel(), [y["loss"] for y in want_ys], rtol=1e-6)
    assert per_epoch.shape == (2, 3)  # epoch_fn's output stacked over epochs
    np.testing.assert_allclose(per_epoch[-1], w)


def test_without_xs_needs_epochs_and_steps():
    def step(c, x):
        return c + 1.0, c

    out, ys, _ = fit_epochs(step, jnp.float32(0), None, epochs=2, steps=3)
    assert float(out) == 6.0 and ys.shape == (2, 3)
    with pytest.raises(ValueError, match="epochs= and steps="):
        fit_epochs(step, jnp.float32(0), None)


def test_stepwise_compiles_its_step_once():
    carry, xs, consts = _problem()
    compiles = []

    def listener(event, duration, **kwargs):
        if event.endswith("backend_compile_duration"):
            compiles.append(event)

    stepwise = LoopStrategy("stepwise")
    fit_epochs(_sgd_step, carry, xs, strategy=stepwise, consts=consts)  # compiles the step
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for _ in range(2):
            jax.block_until_ready(
                fit_epochs(_sgd_step, carry, xs, strategy=stepwise, consts=consts)
            )
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []


def test_stepwise_refuses_to_run_under_jit():
    carry, xs, consts = _problem()
    with pytest.raises(ValueError, match="outside jit"):
        jax.jit(
            lambda c: fit_epochs(_sgd_step, c, xs, strategy=LoopStrategy("stepwise"), consts=consts)
        )(carry)


@pytest.mark.parametrize(
    ("kind", "unroll"), [("scan", 2), ("unrolled", 1), ("stepwise", 3), ("rolled", 1)]
)
def test_invalid_strategies_are_refused(kind, unroll):
    with pytest.raises(ValueError):
        LoopStrategy(kind, unroll)
