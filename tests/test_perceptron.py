"""Tests for ``perceptron`` and ``mlp_1_10_1``: acceptance, JAX/PyTorch parity, tracing, momentum.

Parity runs start both frameworks from the same parameters (the torch reference's own initial
``state_dict`` for the seed, converted) and feed them the same one-sample steps.

About the float64 tolerance over all 600 steps: the two frameworks round a few operations
differently (XLA fuses ``x * w + b`` into one fused multiply-add, PyTorch's ``addmm`` rounds the
product first; the summation order inside a 10-term dot product differs), so the trajectories
start to differ by an ulp after a few steps. The perceptron's dynamics damp that; the 1-10-1
network's (a product of two weight matrices, pushed with the largest input at the edge of
stability) amplify it by ~1e5 by the late epochs, exactly as they amplify a one-ulp change of the
initial parameters inside JAX alone. So the first 100 steps are held to 1e-12 relative for both
tutorials, and the whole 1-10-1 run is held to the spread that a one-ulp nudge of the initial
parameters produces on its own.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
import torch

from jaxtut import registry, train
from jaxtut.configs import Mlp1101Config, PerceptronConfig
from jaxtut.torch_ref import _common
from jaxtut.torch_ref import perceptron as torch_ref
from jaxtut.torch_ref import train as torch_train
from jaxtut.tutorial_data import tutorial_data
from jaxtut.tutorials import perceptron as jax_impl

CASES = {
    "perceptron": (PerceptronConfig, jax_impl.run_perceptron, torch_ref.run_perceptron),
    "mlp_1_10_1": (Mlp1101Config, jax_impl.run_mlp, torch_ref.run_mlp),
}
IDS = list(CASES)


def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.abs(b)


def _max_param_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def _pair(tid: str, **overrides):
    """JAX and torch runs of ``tid`` from the torch reference's initial parameters."""
    config_cls, run_jax, run_torch = CASES[tid]
    config = config_cls(**overrides)
    init = _common.initial_state_dict(torch_ref.MODELS[tid], config)
    return init, run_jax(config, init), run_torch(config, init)


@pytest.fixture(scope="module")
def float64_pairs():
    return {tid: _pair(tid, dtype="float64") for tid in IDS}


@pytest.fixture(scope="module")
def float32_pairs():
    return {tid: _pair(tid) for tid in IDS}


# --- Acceptance of the default runs -------------------------------------------------------------


def _check_perceptron_band(metrics: dict) -> None:
    assert abs(metrics["weight"] - 3.0) <= 0.02, metrics
    assert abs(metrics["bias"]) < 0.1, metrics
    assert abs(metrics["prediction"] - 3.0) < 0.1, metrics


def _check_mlp_band(metrics: dict) -> None:
    # The network is linear, so it should extrapolate the line y = 3x beyond the data too.
    assert abs(metrics["prediction"] - 3.0) < 0.05, metrics
    assert abs(metrics["prediction_at_7"] - 21.0) < 1.0, metrics


def test_perceptron_default_jax_run_learns_y_equals_3x():
    result = jax_impl.run_perceptron()
    assert result.losses.shape == (600,)
    assert not result.diverged
    _check_perceptron_band(result.metrics)
    np.testing.assert_allclose(result.params["fc1.weight"][0, 0], result.metrics["weight"])
    assert result.metrics["final_loss"] < 1e-3


def test_perceptron_default_torch_run_learns_y_equals_3x():
    result = torch_ref.run_perceptron()
    assert result.losses.shape == (600,)
    _check_perceptron_band(result.metrics)


def test_mlp_default_runs_learn_the_line():
    for result in (jax_impl.run_mlp(), torch_ref.run_mlp()):
        assert result.losses.shape == (600,)
        assert not result.diverged
        _check_mlp_band(result.metrics)


def test_plan_is_one_sample_per_step_in_table_order():
    data = tutorial_data(PerceptronConfig())
    assert data.train[0].shape == data.train[1].shape == (6, 1)
    assert data.plan.idx.shape == (100, 6, 1)
    np.testing.assert_array_equal(data.plan.idx[0, :, 0], np.arange(6))
    assert data.plan.mask.all()


# --- Parity with the PyTorch reference ----------------------------------------------------------


@pytest.mark.parametrize("tid", IDS)
def test_first_step_loss_parity_float32(tid, float32_pairs):
    _, jax_run, torch_run = float32_pairs[tid]
    assert _rel(jax_run.losses[0], torch_run.losses[0]) <= 1e-6


@pytest.mark.parametrize("tid", IDS)
def test_float64_first_100_steps_agree_to_1e12(tid, float64_pairs):
    _, jax_run, torch_run = float64_pairs[tid]
    assert jax_run.losses.shape == torch_run.losses.shape == (600,)
    assert _rel(jax_run.losses[:100], torch_run.losses[:100]).max() <= 1e-12


def test_perceptron_float64_every_step_and_final_params_agree(float64_pairs):
    _, jax_run, torch_run = float64_pairs["perceptron"]
    # Late losses are squares of residuals that are tiny next to y (up to 18), so one ulp of the
    # prediction is a large relative change of the loss; the scale is the run's first loss.
    scale = torch_run.losses[0]
    assert np.abs(jax_run.losses - torch_run.losses).max() <= 1e-12 * scale
    assert _max_param_diff(jax_run.params, torch_run.params) <= 1e-12
    for name in ("weight", "bias", "prediction"):
        assert abs(jax_run.metrics[name] - torch_run.metrics[name]) <= 1e-12


def test_mlp_float64_every_step_within_rounding_sensitivity(float64_pairs):
    init, jax_run, torch_run = float64_pairs["mlp_1_10_1"]
    config = Mlp1101Config(dtype="float64")
    # The same JAX run from initial parameters one ulp away: how much rounding alone moves it.
    nudged = jax_impl.run_mlp(config, {k: np.nextafter(v, np.inf) for k, v in init.items()})
    sensitivity = _rel(nudged.losses, jax_run.losses).max()
    observed = _rel(jax_run.losses, torch_run.losses).max()
    assert observed <= max(10 * sensitivity, 1e-12), (observed, sensitivity)
    assert observed <= 1e-7
    assert _max_param_diff(jax_run.params, torch_run.params) <= 1e-10
    for name in ("prediction", "prediction_at_7"):
        assert abs(jax_run.metrics[name] - torch_run.metrics[name]) <= 1e-9


@pytest.mark.parametrize("tid", IDS)
def test_forward_loss_and_grads_agree_at_the_same_parameters(tid):
    config = CASES[tid][0](dtype="float64")
    init = _common.initial_state_dict(torch_ref.MODELS[tid], config)
    batch = tutorial_data(config).train  # all six samples at once
    jax_out = train.evaluate_at(jax_impl.TRAINERS[tid], config, init, batch)
    torch_out = torch_train.evaluate_at(registry.get(tid).experiment(config), init, batch)
    np.testing.assert_allclose(jax_out["output"], torch_out["output"], rtol=1e-14)
    np.testing.assert_allclose(jax_out["loss"], torch_out["loss"], rtol=1e-14)
    for name, grad in torch_out["grads"].items():
        np.testing.assert_allclose(jax_out["grads"][name], grad, rtol=1e-13, atol=1e-14)


def test_mlp_diverges_at_the_same_step_in_both_frameworks():
    # From PyTorch's seed-5 initial parameters the source's setup (lr 0.01, inputs up to 6) is
    # unstable: the loss overflows within four epochs. Both frameworks must blow up identically.
    for dtype in ("float32", "float64"):
        _, jax_run, torch_run = _pair("mlp_1_10_1", seed=5, dtype=dtype)
        assert torch_run.diverged and jax_run.diverged_at == torch_run.diverged_at, dtype
        n = torch_run.diverged_at - 5  # compare the finite part, well before the overflow
        np.testing.assert_allclose(jax_run.losses[:n], torch_run.losses[:n], rtol=1e-4)


# --- Momentum -----------------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.5, 0.01, 0.9])
def test_optax_sgd_momentum_equals_torch_sgd_float64(momentum):
    """The optimizer alone: the same gradient sequence through both, parameters every step."""
    rng = np.random.default_rng(0)
    params0 = rng.normal(size=7)
    grads = rng.normal(size=(50, 7))
    lr = 0.01

    p = torch.tensor(params0.copy(), requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
    torch_traj = []
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        torch_traj.append(p.detach().numpy().copy())

    with jax.enable_x64(True):
        tx = train.sgd(np.float64(lr), np.float64(momentum))

        @jax.jit
        def step(params, state, g):
            updates, state = tx.update(g, state, params)
            return optax.apply_updates(params, updates), state

        params, state = params0, tx.init(params0)
        jax_traj = []
        for g in grads:
            params, state = step(params, state, g)
            jax_traj.append(np.asarray(params))
    assert np.asarray(jax_traj).dtype == np.float64
    np.testing.assert_allclose(jax_traj, torch_traj, rtol=0, atol=1e-12)


def test_momentum_changes_the_trajectory():
    config = PerceptronConfig(epochs=5)
    init = _common.initial_state_dict(torch_ref.Net, config)
    with_momentum = jax_impl.run_perceptron(config, init)
    without = jax_impl.run_perceptron(config.replace(momentum=0.0), init)
    # The first update is lr * g either way (the buffer starts at the first gradient) ...
    np.testing.assert_array_equal(with_momentum.losses[:2], without.losses[:2])
    # ... and every later step feels the accumulated buffer.
    assert np.all(with_momentum.losses[2:] != without.losses[2:])
    assert _max_param_diff(with_momentum.params, without.params) > 1e-3
    torch_without = torch_ref.run_perceptron(config.replace(momentum=0.0), init)
    np.testing.assert_allclose(without.losses[:20], torch_without.losses[:20], rtol=1e-5)


# --- Compilation --------------------------------------------------------------------------------


@pytest.mark.parametrize("tid", IDS)
def test_two_seeds_trace_once(tid):
    config_cls, run_jax, _ = CASES[tid]
    # An epoch count no other test uses, so this program is compiled here and nowhere else.
    config = config_cls(epochs=7)
    before = train.TRACE_COUNTS[tid]
    first = run_jax(config.replace(seed=1))
    second = run_jax(config.replace(seed=2))
    assert train.TRACE_COUNTS[tid] - before == 1
    assert second.compile_time_s == 0.0
    assert not np.array_equal(first.losses, second.losses)  # different seeds, different inits
