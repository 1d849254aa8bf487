"""Figures: a fitted regression line over its data, and loss curves of several runs.

matplotlib is imported inside the functions, with the non-interactive Agg backend, so importing
:mod:`jaxtut` never pulls it in and plotting works on machines without a display. Files are
written atomically (a temporary file in the target directory, then ``os.replace``), so a reader
never sees half a PNG and an interrupted run leaves the previous figure intact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxtut.io import atomic_path
from jaxtut.result import RunResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Writes ``fig`` to ``path`` as a PNG, atomically (see :func:`jaxtut.io.atomic_path`)."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        _pyplot().close(fig)
    return Path(path)


def line_from_result(result: RunResult, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fitted line of a linear model: ``(sorted x, prediction)``.

    Uses ``result.extras["line"]`` when the run recorded one; otherwise evaluates the model's
    single one-element weight (``linear.weight``, ``fc1.weight``, ``w``) and its bias, if any,
    from the final parameters.
    """
    line = result.extras.get("line")
    if line is not None:
        return np.asarray(line["x"]).reshape(-1), np.asarray(line["prediction"]).reshape(-1)
    xs = np.sort(np.asarray(x, dtype=np.float64).reshape(-1))
    params = result.params
    weights = [k for k in params if (k == "w" or k.endswith("weight")) and np.size(params[k]) == 1]
    if len(weights) != 1 or len(params) > 2:
        raise ValueError(f"{result.tutorial}: no fitted line in extras and no 1-D linear params")
    w = float(np.asarray(params[weights[0]]).reshape(()))
    bias = params.get(weights[0].removesuffix("weight") + "bias")
    b = 0.0 if bias is None else float(np.asarray(bias).reshape(()))
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
    With exactly two runs of equal length (a parity pair, whose curves lie on top of each other)
    a second panel shows their relative difference per step.

    Args:
      results: the runs to overlay, e.g. the JAX and PyTorch runs of one tutorial.
      path: where to write the PNG; parent directories are created.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.
    """
    plt = _pyplot()
    pair = len(results) == 2 and len(results[0].losses) == len(results[1].losses)
    if pair:
        fig, (ax, diff_ax) = plt.subplots(
            2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
        )
    else:
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
    ax.set_ylabel("loss")
    if results:
        ax.legend()
    if pair:
        a, b = (np.asarray(r.losses, dtype=np.float64) for r in results)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
        # Exact agreement has no place on a log axis: draw it at the float64 resolution.
        rel = np.where(rel > 0, rel, np.finfo(np.float64).eps / 2)
        diff_ax.plot(np.arange(len(rel)), rel, ".", color="C2", markersize=2)
        diff_ax.set_yscale("log")
        diff_ax.set_ylabel("|relative difference|")
        diff_ax.set_xlabel("step")
    else:
        ax.set_xlabel("step")
    return _save(fig, path)


def plot_digits(
    images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, path: str | os.PathLike[str]
) -> Path:
    """A grid of MNIST digits titled ``prediction (label)``, wrong predictions in red.

    Args:
      images: ``(N, 784)`` or ``(N, 28, 28)`` in any scale (each image is shown min-to-max).
      labels: the true digits, ``(N,)``.
      predictions: the predicted digits, ``(N,)``.
      path: where to write the PNG.
    """
    plt = _pyplot()
    images = np.asarray(images).reshape(-1, 28, 28)
    n = len(images)
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, label, pred in zip(axes.ravel(), images, labels, predictions, strict=False):
        ax.imshow(image, cmap="gray_r")
        ax.set_title(f"{pred} ({label})", color="black" if pred == label else "red", fontsize=9)
    fig.suptitle("prediction (label)")
    return _save(fig, path)


def plot_confusion(
    labels: np.ndarray, predictions: np.ndarray, path: str | os.PathLike[str]
) -> Path:
    """The 10 x 10 confusion matrix (rows: true digit, columns: prediction), with counts."""
    plt = _pyplot()
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(matrix, cmap="Blues")
    for i in range(10):
        for j in range(10):
            color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    accuracy = np.trace(matrix) / matrix.sum()
    ax.set_title(f"confusion matrix (accuracy {accuracy:.4f})")
    fig.colorbar(im, ax=ax)
    return _save(fig, path)
