"""Small tabular data sets: scikit-learn's breast cancer and regression data, and toy tables.

Everything is computed in float64 (as scikit-learn does) and cast to the requested dtype at the
end, so the float32 and float64 runs see the same values up to one rounding. scikit-learn is
imported inside the functions so that ``import jaxtut`` stays fast.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxtut.data._dtypes import as_dtype

__all__ = ["as_dtype", "breast_cancer", "linear_toy", "make_regression_data", "perceptron_toy"]


def breast_cancer(
    dtype: Any = "float32",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Wisconsin breast cancer set, split 80/20 and standardised on the training part.

    ``train_test_split(X, y, test_size=0.2, random_state=42)``, then a ``StandardScaler`` fitted
    on the training rows only (so no test statistics leak in) and applied to both parts.

    Args:
        dtype: ``"float32"`` (default) or ``"float64"``.

    Returns:
        ``(x_train, y_train, x_test, y_test)`` with shapes ``(455, 30)``, ``(455, 1)``,
        ``(114, 30)``, ``(114, 1)``. Targets are 0/1 floats shaped like the model's output, as
        ``BCELoss`` wants.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    dt = as_dtype(dtype)
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float64), y, test_size=0.2, random_state=42
    )
    scaler = StandardScaler().fit(x_train)
    return (
        scaler.transform(x_train).astype(dt),
        y_train.reshape(-1, 1).astype(dt),
        scaler.transform(x_test).astype(dt),
        y_test.reshape(-1, 1).astype(dt),
    )


def make_regression_data(dtype: Any = "float32") -> tuple[np.ndarray, np.ndarray]:
    """``make_regression(n_samples=20, n_features=1, noise=20, random_state=1)`` as columns.

    Args:
        dtype: ``"float32"`` (default) or ``"float64"``.

    Returns:
        ``(x, y)``, both of shape ``(20, 1)``.
    """
    from sklearn.datasets import make_regression

    dt = as_dtype(dtype)
    x, y = make_regression(n_samples=20, n_features=1, noise=20, random_state=1)
    return x.astype(dt), y.reshape(-1, 1).astype(dt)


def linear_toy(dtype: Any = "float32") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The line ``y = 2x``: train on ``x = 1..5``, predict ``x = 6`` (expect 12).

    Args:
        dtype: ``"float32"`` (default) or ``"float64"``.

    Returns:
        ``(x, y, x_test, y_test)``: 1-D arrays of shape ``(5,)``, ``(5,)``, ``(1,)``, ``(1,)``.
    """
    dt = as_dtype(dtype)
    x = np.arange(1, 6, dtype=dt)
    return x, 2 * x, np.array([6], dtype=dt), np.array([12], dtype=dt)


def perceptron_toy(dtype: Any = "float32") -> tuple[np.ndarray, np.ndarray]:
    """The pairs ``(1, 3), (2, 6), ..., (6, 18)``: a single weight should learn 3.

    Args:
        dtype: ``"float32"`` (default) or ``"float64"``.

    Returns:
        ``(x, y)``, both of shape ``(6,)``.
    """
    dt = as_dtype(dtype)
    x = np.arange(1, 7, dtype=dt)
    return x, 3 * x
