"""Tests for the linear-regression tutorials (scratch, ``Linear(1, 1)``, make_regression).

Acceptance of the default runs in NumPy, JAX and PyTorch, parity between JAX and PyTorch from the
same initial parameters (float32 first step, float64 whole run), compile-once behaviour and the
plots. All runs are tiny (at most 2000 full-batch steps on 20 samples).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jaxtut import registry, train
from jaxtut.configs import LinregLinearConfig, LinregMakeRegressionConfig, LinregScratchConfig
from jaxtut.data import linear_toy, make_regression_data
from jaxtut.tutorials import linreg

torch_linreg = pytest.importorskip("jaxtut.torch_ref.linreg")
from jaxtut.torch_ref import _common  # noqa: E402  (needs torch, skipped above when absent)
from jaxtut.torch_ref import train as torch_train  # noqa: E402

IDS = ("linreg_scratch", "linreg_linear", "linreg_make_regression")


def rel_diff(a, b) -> float:
    """Largest elementwise ``|a - b| / |b|`` (0 where both are 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.where(b == 0, 1.0, np.abs(b))
    return float(np.max(np.abs(a - b) / scale)) if a.size else 0.0


def pair(tutorial_id: str, config):
    """JAX and torch runs from the torch reference's initial parameters for ``config``."""
    t = registry.get(tutorial_id)
    init = _common.initial_state_dict(torch_linreg.MODELS[tutorial_id], config)
    return t.run("jax", config, init_params=init), t.run("torch", config, init_params=init)


def lstsq_line(dtype="float64") -> tuple[float, float]:
    x, y = make_regression_data(dtype)
    design = np.hstack([x, np.ones_like(x)]).astype(np.float64)
    (weight, bias), *_ = np.linalg.lstsq(design, y.astype(np.float64).ravel(), rcond=None)
    return float(weight), float(bias)


# --- acceptance of the default runs -----------------------------------------------------------


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_linear_default_predicts_12(framework):
    result = registry.get("linreg_linear").run(framework)
    assert abs(result.metrics["prediction"] - 12.0) <= 0.01
    assert result.losses.shape == (2000,)
    assert result.metrics["final_loss"] < 1e-4
    assert set(result.params) == {"linear.weight", "linear.bias"}
    assert result.params["linear.weight"].shape == (1, 1)


def test_scratch_three_versions_predict_12():
    config = LinregScratchConfig()
    numpy_run = linreg.run_scratch_numpy(config)
    jax_run = linreg.run_scratch(config)
    torch_run = torch_linreg.run_scratch(config)
    for r in (numpy_run, jax_run, torch_run):
        assert abs(r.metrics["prediction"] - 12.0) < 1e-3, r.framework
        assert r.losses.shape == (100,)
        assert r.params["w"].shape == (1,)
    assert numpy_run.framework == "numpy"
    assert jax_run.framework == "jax"
    assert torch_run.framework == "torch"


def test_numpy_gradient_is_the_sum_not_the_mean():
    x, y, _, _ = linear_toy("float64")
    w = np.array([0.7])
    mean_grad = np.mean(2 * x * (w * x - y))  # d/dw of mean((w x - y)^2)
    assert linreg.numpy_gradient(x, y, w) == pytest.approx(len(x) * mean_grad, rel=1e-15)


def test_numpy_reproduces_the_source_log():
    # The source prints loss 24.130 at epoch 0 and w = 2.14810945503594 after that step; with the
    # summed gradient the step is w1 = w0 + 1.1 (2 - w0), so w0 = (2.2 - w1) / 0.1.
    w1 = 2.14810945503594
    w0 = (2.2 - w1) / 0.1
    config = LinregScratchConfig(dtype="float64", epochs=3)
    result = linreg.run_scratch_numpy(config, init_params={"w": np.array([w0])})
    assert f"{result.losses[0]:.3f}" == "24.130"
    assert result.extras["weights"][1] == pytest.approx(w1, rel=1e-12)
    # Each step overshoots 2 and shrinks the error tenfold (factor -0.1).
    errors = result.extras["weights"] - 2.0
    np.testing.assert_allclose(errors[1:] / errors[:-1], -0.1, rtol=1e-6)


def test_numpy_default_init_is_uniform_and_seeded():
    a = linreg.run_scratch_numpy(LinregScratchConfig(epochs=1, seed=3))
    b = linreg.run_scratch_numpy(LinregScratchConfig(epochs=1, seed=3))
    c = linreg.run_scratch_numpy(LinregScratchConfig(epochs=1, seed=4))
    w0 = a.extras["weights"][0]
    assert 0.0 <= w0 < 1.0  # np.random.rand() draws from U[0, 1)
    assert w0 == b.extras["weights"][0] != c.extras["weights"][0]


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_make_regression_converges_to_least_squares(framework):
    result = registry.get("linreg_make_regression").run(framework)
    weight, bias = lstsq_line()
    assert result.metrics["weight"] == pytest.approx(weight, rel=1e-4)
    assert result.metrics["bias"] == pytest.approx(bias, abs=1e-3)
    x, y = make_regression_data("float64")
    best = float(np.mean((x[:, 0] * weight + bias - y[:, 0]) ** 2))
    assert result.metrics["final_loss"] == pytest.approx(best, rel=1e-5)  # float32 loss
    line = result.extras["line"]
    assert np.all(np.diff(line["x"]) >= 0)
    fitted = line["x"] * result.metrics["weight"] + result.metrics["bias"]
    np.testing.assert_allclose(line["prediction"], fitted, rtol=1e-5, atol=1e-4)


# --- parity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tutorial_id", IDS)
def test_first_step_loss_parity_float32(tutorial_id):
    config = registry.get(tutorial_id).default_config(epochs=1)
    jax_run, torch_run = pair(tutorial_id, config)
    assert rel_diff(jax_run.losses[:1], torch_run.losses[:1]) <= 1e-6


@pytest.mark.parametrize("tutorial_id", IDS)
def test_float64_parity_whole_run(tutorial_id):
    # Every step's loss and the final parameters agree to 1e-12. Losses are compared relative to
    # the first loss: near the exact fit (y = 2x has zero residual) the loss is a cancellation
    # y - w x at the rounding floor, whose own relative value carries no information.
    config = registry.get(tutorial_id).default_config(dtype="float64")
    jax_run, torch_run = pair(tutorial_id, config)
    diff = np.abs(jax_run.losses - torch_run.losses)
    assert diff.max() <= 1e-12 * torch_run.losses[0]
    assert rel_diff(jax_run.losses[:20], torch_run.losses[:20]) <= 1e-12
    for key, value in torch_run.params.items():
        assert rel_diff(jax_run.params[key], value) <= 1e-12, key


@pytest.mark.parametrize("tutorial_id", IDS)
def test_forward_loss_and_grads_match_torch_float64(tutorial_id):
    from jaxtut.tutorial_data import tutorial_data

    config = registry.get(tutorial_id).default_config(dtype="float64")
    init = _common.initial_state_dict(torch_linreg.MODELS[tutorial_id], config)
    batch = tutorial_data(config).train
    a = train.evaluate_at(registry.get(tutorial_id).trainer(), config, init, batch)
    b = torch_train.evaluate_at(registry.get(tutorial_id).experiment(config), init, batch)
    assert rel_diff(a["output"], b["output"]) <= 1e-15
    assert rel_diff(a["loss"], b["loss"]) <= 1e-15
    for key, grad in b["grads"].items():
        assert rel_diff(a["grads"][key], grad) <= 1e-14, key


def test_torch_scratch_init_is_randn_after_seed():
    import torch

    torch.manual_seed(5)
    expected = torch.randn(1).numpy()
    init = _common.initial_state_dict(torch_linreg.Scratch, LinregScratchConfig(seed=5))
    np.testing.assert_array_equal(init["w"], expected)


def test_torch_linear_init_is_a_bare_linear_after_seed():
    import torch

    torch.manual_seed(2)
    bare = torch.nn.Linear(1, 1)
    init = _common.initial_state_dict(torch_linreg.LinearRegression, LinregLinearConfig(seed=2))
    np.testing.assert_array_equal(init["linear.weight"], bare.weight.detach().numpy())
    np.testing.assert_array_equal(init["linear.bias"], bare.bias.detach().numpy())


# --- compile once ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "config"),
    [
        (linreg.run_scratch, LinregScratchConfig(epochs=23)),
        (linreg.run_linear, LinregLinearConfig(epochs=23)),
        (linreg.run_make_regression, LinregMakeRegressionConfig(epochs=23)),
    ],
)
def test_traced_once_across_seeds(run, config):
    # An epoch count no other test uses, so this program has not been compiled before.
    name = config_tutorial(config)
    before = train.TRACE_COUNTS[name]
    first = run(config.replace(seed=1))
    second = run(config.replace(seed=2))
    assert train.TRACE_COUNTS[name] - before == 1
    assert second.compile_time_s == 0.0
    assert not np.array_equal(first.losses, second.losses)


def config_tutorial(config) -> str:
    return next(t.id for t in registry.TUTORIALS.values() if isinstance(config, t.config))


# --- plots -----------------------------------------------------------------------------------


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1000
    import matplotlib.image

    assert matplotlib.image.imread(path).ndim == 3
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_plot_fit_writes_png(tmp_path):
    from jaxtut.plots import plot_fit

    result = linreg.run_make_regression(LinregMakeRegressionConfig(epochs=50))
    x, y = make_regression_data()
    path = plot_fit(result, x, y, tmp_path / "fit" / "make_regression.png")
    assert path == tmp_path / "fit" / "make_regression.png"
    assert_png(path)


def test_plot_fit_without_recorded_line(tmp_path):
    from jaxtut.plots import line_from_result, plot_fit

    result = linreg.run_linear(LinregLinearConfig(epochs=50))
    x, y, _, _ = linear_toy()
    xs, prediction = line_from_result(result, x)
    w, b = result.params["linear.weight"].item(), result.params["linear.bias"].item()
    np.testing.assert_allclose(prediction, xs * w + b)
    assert_png(plot_fit(result, x, y, tmp_path / "linear.png"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_plot_losses_writes_png(tmp_path, dtype):
    from jaxtut.plots import plot_losses

    config = LinregLinearConfig(epochs=50, dtype=dtype)
    jax_run, torch_run = pair("linreg_linear", config)
    assert_png(plot_losses([jax_run, torch_run], tmp_path / "losses.png"))


def test_plot_losses_accepts_zero_losses(tmp_path):
    from jaxtut.plots import plot_losses

    # An exact fit can reach a loss of exactly 0, which a log axis cannot show.
    result = linreg.run_scratch_numpy(LinregScratchConfig(epochs=20))
    zero = dataclasses.replace(result, losses=np.append(result.losses, 0.0))
    assert_png(plot_losses([result, zero], tmp_path / "scratch.png"))
