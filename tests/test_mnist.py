"""Tests for ``mnist_logreg`` and ``mnist_mlp``: compile-once, accuracy bands, PyTorch parity.

The MNIST files come from ``$JAXTUT_DATA_DIR`` or ``../shared/datasets/mnist`` next to the project
root; every test here is skipped, with the reason, when neither holds them. Parity runs start both
frameworks from the torch reference's initial ``state_dict`` and feed them a truncated copy of the
shared batch plan, so they compare a few exact steps instead of whole epochs.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxtut import train
from jaxtut.configs import MnistLogregConfig, MnistMlpConfig
from jaxtut.data import ENV_VAR
from jaxtut.data.batching import BatchPlan
from jaxtut.torch_ref import _common
from jaxtut.torch_ref import mnist as torch_ref
from jaxtut.tutorial_data import tutorial_data
from jaxtut.tutorials import mnist as jax_impl

from mnist_dir import find_mnist_dir

MNIST_DIR = find_mnist_dir()
pytestmark = pytest.mark.skipif(
    MNIST_DIR is None, reason=f"MNIST files not found: set {ENV_VAR} to a folder holding them"
)

CASES = {
    "mnist_logreg": (MnistLogregConfig, jax_impl.run_logreg, torch_ref.run_logreg, 0.80),
    "mnist_mlp": (MnistMlpConfig, jax_impl.run_mlp, torch_ref.run_mlp, 0.88),
}
IDS = list(CASES)


def _config(tid: str, **overrides):
    return CASES[tid][0](data_dir=str(MNIST_DIR), **overrides)


def _truncated(plan: BatchPlan, steps: int) -> BatchPlan:
    return BatchPlan(idx=plan.idx[:, :steps], mask=plan.mask[:, :steps])


def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.abs(b)


def _max_param_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def _parity_pair(tid: str, dtype: str, steps: int):
    _, run_jax, run_torch, _ = CASES[tid]
    config = _config(tid, epochs=1, dtype=dtype)
    plan = _truncated(tutorial_data(config).plan, steps)
    init = _common.initial_state_dict(torch_ref.MODELS[tid], config)
    return run_jax(config, init, plan=plan), run_torch(config, init, plan=plan)


# --- Compilation --------------------------------------------------------------------------------


@pytest.mark.parametrize("tid", IDS)
def test_multi_epoch_run_with_short_last_batch_traces_once(tid):
    # mnist_mlp's batch of 64 leaves 60000 - 937 * 64 = 32 samples for the last step. The logistic
    # regression's 100 divides 60000, so it runs here with 128 (a last batch of 96) instead.
    overrides = {"batch_size": 128} if tid == "mnist_logreg" else {}
    config = _config(tid, epochs=2, **overrides)
    plan = tutorial_data(config).plan
    assert not plan.mask[:, -1].all() and plan.mask[:, :-1].all()
    _, run_jax, _, _ = CASES[tid]
    before = train.TRACE_COUNTS[tid]
    first = run_jax(config.replace(seed=1))
    second = run_jax(config.replace(seed=2))
    assert train.TRACE_COUNTS[tid] - before == 1
    assert second.compile_time_s == 0.0
    assert first.losses.shape == second.losses.shape == (plan.num_steps,)
    assert np.isfinite(first.losses).all() and np.isfinite(second.losses).all()
    assert not np.array_equal(first.losses, second.losses)


# --- Accuracy of the default five-epoch runs ----------------------------------------------------


@pytest.mark.parametrize("tid", IDS)
def test_default_jax_run_reaches_accuracy_band(tid):
    _, run_jax, _, band = CASES[tid]
    result = run_jax(_config(tid))
    assert result.epoch_metrics["loss"].shape == (5,)
    assert result.epoch_metrics["loss"][-1] < result.epoch_metrics["loss"][0]
    assert result.metrics["test_accuracy"] >= band, result.metrics


@pytest.fixture
def one_torch_thread():
    """Runs a test with one PyTorch intra-op thread, then restores the previous count.

    With two threads on two cores, every small op ends at a barrier where one thread spins
    waiting for the other; when other processes hold a core, five MNIST-MLP epochs went from ~5 s
    to ~9 minutes. One thread costs little at these batch sizes. Thread count changes float32
    summation order, so only this accuracy test (never a parity test) uses it.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("tid", IDS)
@pytest.mark.usefixtures("one_torch_thread")
def test_default_torch_run_reaches_accuracy_band(tid):
    # Five PyTorch epochs: ~1-2 s for the logistic regression, ~5-8 s for the MLP.
    _, _, run_torch, band = CASES[tid]
    result = run_torch(_config(tid))
    assert result.metrics["test_accuracy"] >= band, result.metrics


# --- Parity with the PyTorch reference ----------------------------------------------------------


@pytest.mark.parametrize("tid", IDS)
def test_first_step_loss_parity_float32(tid):
    jax_run, torch_run = _parity_pair(tid, "float32", steps=3)
    assert jax_run.losses.shape == torch_run.losses.shape == (3,)
    assert _rel(jax_run.losses[0], torch_run.losses[0]) <= 1e-6
    assert _rel(jax_run.losses, torch_run.losses).max() <= 1e-5


@pytest.mark.parametrize("tid", IDS)
def test_float64_parity_over_50_steps(tid):
    jax_run, torch_run = _parity_pair(tid, "float64", steps=50)
    assert jax_run.losses.shape == torch_run.losses.shape == (50,)
    assert _rel(jax_run.losses, torch_run.losses).max() <= 1e-12
    assert _max_param_diff(jax_run.params, torch_run.params) <= 1e-12
