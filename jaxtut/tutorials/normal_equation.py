"""Least squares in closed form: the normal equation in JAX, beside NumPy.

Seed 000 fits ``beta = (X^T X)^-1 X^T y`` to ``X = randn(10, 5)`` with a first column of ones (the
intercept) and ``y = randn(10)``, once in PyTorch and once in NumPy. This module computes it three
ways, in one jitted JAX function and in NumPy (:func:`run_numpy`):

* ``inverse``: the formula as written, ``inv(X^T X) @ (X^T y)``;
* ``solve``: ``solve(X^T X, X^T y)``, which factorises instead of inverting: cheaper and more
  accurate, and what one should write;
* ``lstsq``: least squares on ``X`` itself (SVD in JAX and NumPy), which never forms ``X^T X`` and
  so never squares the condition number.

The data are drawn once with NumPy (:func:`normal_equation_data`) and given to every framework;
the source drew them with torch and converted. Each result is compared with
:func:`lstsq_reference`, NumPy's ``lstsq`` in float64 on the data as the run sees them (already
rounded to the run's dtype), so the difference measures the method's own rounding. With the
seed's well-conditioned ``X`` (condition number 4.7), every method lands within 7e-7 of it in
float32 and 2e-15 in float64, on CPU and on an H100 GPU; the acceptance bands are 1e-5 and 1e-12.

The matrix products ask for ``Precision.HIGHEST`` explicitly (and :func:`jax_runtime` sets it as
the default too): on GPU, JAX's default float32 ``matmul`` runs in TF32, whose 10-bit mantissa
costs three decimal digits. Measured on an H100: with the default (or ``"high"``) precision the
float32 inverse and solve fits miss the reference by 4.1e-4; with ``HIGHEST``, by 1.7e-7 and 4.1e-7.

Example:
  >>> from jaxtut.tutorials import normal_equation
  >>> result = normal_equation.run()
  >>> result.metrics["max_abs_diff_vs_lstsq"] < 1e-5
  True
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxtut import runtime
from jaxtut.compiled import compile_once, count_trace, timed_call, to_numpy
from jaxtut.configs import NormalEquationConfig
from jaxtut.result import RunResult
from jaxtut.runtime import jax_runtime, np_dtype

METHODS = ("inverse", "solve", "lstsq")
HIGHEST = jax.lax.Precision.HIGHEST


def normal_equation_data(config: NormalEquationConfig) -> tuple[np.ndarray, np.ndarray]:
    """The one data set every framework fits: ``X`` with an intercept column, and ``y``.

    Drawn in float64 with ``np.random.default_rng(config.seed)`` and cast to ``config.dtype``, so
    the float32 run sees the float64 run's data rounded once.

    Returns:
      ``X`` of shape ``(n_samples, n_features)`` whose first column is 1, and ``y`` of shape
      ``(n_samples,)``, both in ``config.dtype``.
    """
    rng = np.random.default_rng(config.seed)
    x = rng.standard_normal((config.n_samples, config.n_features))
    x[:, 0] = 1.0  # the intercept's column
    y = rng.standard_normal(config.n_samples)
    dtype = np_dtype(config.dtype)
    return x.astype(dtype), y.astype(dtype)


def lstsq_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``numpy.linalg.lstsq`` in float64 on the given data: the yardstick for every method."""
    return np.linalg.lstsq(x.astype(np.float64), y.astype(np.float64), rcond=None)[0]


def fit(x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    """``beta`` by the normal equation (inverse and solve) and by least squares (pure; jit it).

    Args:
      x: ``(n, p)`` design matrix.
      y: ``(n,)`` responses.

    Returns:
      ``{"inverse": (p,), "solve": (p,), "lstsq": (p,)}``.
    """
    count_trace("normal_equation")
    xtx = jnp.matmul(x.T, x, precision=HIGHEST)  # (p, p)
    xty = jnp.matmul(x.T, y, precision=HIGHEST)  # (p,)
    return {
        "inverse": jnp.matmul(jnp.linalg.inv(xtx), xty, precision=HIGHEST),
        "solve": jnp.linalg.solve(xtx, xty),
        "lstsq": jnp.linalg.lstsq(x, y, rcond=None)[0],
    }


def fit_numpy(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`fit` in NumPy, in the arrays' own dtype."""
    xtx = x.T @ x
    xty = x.T @ y
    return {
        "inverse": np.linalg.inv(xtx) @ xty,
        "solve": np.linalg.solve(xtx, xty),
        "lstsq": np.linalg.lstsq(x, y, rcond=None)[0],
    }


def compare(
    betas: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Metrics and extras of a fit: each method's largest deviation from :func:`lstsq_reference`.

    Returns:
      ``(metrics, extras)``: ``metrics`` holds ``max_abs_diff_<method>`` per method,
      ``max_abs_diff_vs_lstsq`` (their maximum) and ``cond`` (the condition number of ``X``);
      ``extras`` holds ``betas`` (per method), ``reference``, ``x`` and ``y`` as lists.
    """
    betas = {m: betas[m] for m in METHODS}  # one order whatever the framework returned
    reference = lstsq_reference(x, y)
    diffs = {
        f"max_abs_diff_{m}": float(np.max(np.abs(np.asarray(b, np.float64) - reference)))
        for m, b in betas.items()
    }
    metrics = {
        "max_abs_diff_vs_lstsq": max(diffs.values()),
        **diffs,
        "cond": float(np.linalg.cond(x.astype(np.float64))),
    }
    extras = {
        "betas": {m: np.asarray(b).tolist() for m, b in betas.items()},
        "reference": reference.tolist(),
        "x": x.tolist(),
        "y": y.tolist(),
    }
    return metrics, extras


def fit_result(
    config: NormalEquationConfig,
    framework: str,
    betas: dict[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    seconds: float,
    compile_s: float | None,
    device: str,
    versions: dict[str, str | None],
) -> RunResult:
    """Packs one framework's fits into a :class:`RunResult` (shared by JAX, NumPy and torch)."""
    metrics, extras = compare(betas, x, y)
    return RunResult(
        tutorial="normal_equation",
        framework=framework,
        config=config.to_dict(),
        losses=np.zeros(0),
        epoch_metrics={},
        metrics=metrics,
        params={"beta": np.asarray(betas["inverse"])},
        wall_time_s=seconds,
        compile_time_s=compile_s,
        versions=versions,
        device=device,
        extras=extras,
    )


def run(config: NormalEquationConfig | None = None) -> RunResult:
    """Fits ``beta`` three ways in one jitted JAX function.

    Returns:
      A :class:`RunResult`: ``params = {"beta": the inverse formula's beta}``; ``metrics`` and
      ``extras`` as :func:`compare` describes; no losses.
    """
    config = config or NormalEquationConfig()
    x, y = normal_equation_data(config)
    with jax_runtime(config.dtype, config.device) as device:
        args = jax.device_put((x, y), device)
        exe, compile_s = compile_once("normal_equation", fit, *args)
        betas, seconds = timed_call(exe, *args)
        betas = to_numpy(betas)
    return fit_result(
        config,
        "jax",
        betas,
        x,
        y,
        seconds=seconds,
        compile_s=compile_s,
        device=f"{device.platform}:{device.id}",
        versions=runtime.versions(),
    )


def run_numpy(config: NormalEquationConfig | None = None) -> RunResult:
    """The same three fits in NumPy (CPU, the run's dtype); ``framework="numpy"``."""
    config = config or NormalEquationConfig()
    x, y = normal_equation_data(config)
    start = time.perf_counter()
    betas = fit_numpy(x, y)
    seconds = time.perf_counter() - start
    return fit_result(
        config,
        "numpy",
        betas,
        x,
        y,
        seconds=seconds,
        compile_s=None,
        device="cpu:0",
        versions=runtime.versions(),
    )
