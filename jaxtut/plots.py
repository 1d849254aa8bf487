"""Figures: a fitted regression line over its data, and loss curves of several runs.

matplotlib is imported inside the functions, with the non-interactive Agg backend, so importing
:mod:`jaxtut` never pulls it in and plotting works on machines without a display. Files are
written atomically (a temporary file in the target directory, then ``os.replace``), so a reader
never sees half a PNG and an interrupted run leaves the previous figure intact.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxtut.result import RunResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Writes ``fig`` to ``path`` as a PNG via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
        os.chmod(tmp, 0o644)  # mkstemp creates the file private to its owner
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        _pyplot().close(fig)
    return path


def line_from_result(result: RunResult, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fitted line of a linear model: ``(sorted x, prediction)``.

    Uses ``result.extras["line"]`` when the run recorded one; otherwise evaluates
    ``linear.weight * x + linear.bias`` (or ``w * x``) from the final parameters.
    """
    line = result.extras.get("line")
    if line is not None:
        return np.asarray(line["x"]).reshape(-1), np.asarray(line["prediction"]).reshape(-1)
    xs = np.sort(np.asarray(x, dtype=np.float64).reshape(-1))
    params = result.params
    if "linear.weight" in params:
        w = float(np.asarray(params["linear.weight"]).reshape(()))
        b = float(np.asarray(params["linear.bias"]).reshape(()))
    elif "w" in params:
        w, b = float(np.asarray(params["w"]).reshape(())), 0.0
    else:
        raise ValueError(f"{result.tutorial}: no fitted line in extras and no 1-D linear params")
    return xs, xs * w + b


def plot_fit(result: RunResult, x: np.ndarray, y: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Plots the data as red dots and the fitted line in blue; writes a PNG to ``path``.

    Args:
      result: a run of a one-input linear model (e.g. ``linreg_make_regression``).
      x: the inputs, shape ``(N,)`` or ``(N, 1)``.
      y: the targets, same length.
      path: where to write the PNG; parent directories are created.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.
    """
    plt = _pyplot()
    xs, prediction = line_from_result(result, x)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.asarray(x).reshape(-1), np.asarray(y).reshape(-1), "ro", label="data")
    ax.plot(xs, prediction, "b-", label="fitted line")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"{result.tutorial} ({result.framework})")
    ax.legend()
    return _save(fig, path)


def plot_losses(results: Sequence[RunResult], path: str | os.PathLike[str]) -> Path:
    """Overlays the per-step training losses of several runs; writes a PNG to ``path``.

    The y axis is logarithmic when every plotted loss is positive (losses that fall by orders of
    magnitude stay readable), linear otherwise. Non-finite losses are left out of the curves.

    Args:
      results: the runs to overlay, e.g. the JAX and PyTorch runs of one tutorial.
      path: where to write the PNG; parent directories are created.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    positive = True
    styles = ["-", "--", ":", "-."]
    for i, r in enumerate(results):
        losses = np.asarray(r.losses, dtype=np.float64).reshape(-1)
        finite = np.isfinite(losses)
        positive &= bool(np.all(losses[finite] > 0))
        steps = np.arange(len(losses))
        dtype = r.config.get("dtype", "")
        ax.plot(
            steps[finite],
            losses[finite],
            styles[i % len(styles)],
            label=f"{r.framework} {dtype}".strip(),
        )
    if results and positive:
        ax.set_yscale("log")
    tutorials = sorted({r.tutorial for r in results})
    ax.set_title(", ".join(tutorials) + " - training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if results:
        ax.legend()
    return _save(fig, path)
