"""Where the unit tests find the real MNIST files: one rule for every test module.

``$JAXTUT_DATA_DIR`` if set, else ``../shared/datasets/mnist`` beside the project root (as the
Makefile and CI arrange); a folder counts only if it holds all four IDX files (``.gz`` or raw).
"""

from __future__ import annotations

import os
from pathlib import Path

from jaxtut.data import ENV_VAR, SHA256

ROOT = Path(__file__).resolve().parents[1]


def find_mnist_dir() -> Path | None:
    """The first candidate folder holding the four MNIST files, or ``None``."""
    env = os.environ.get(ENV_VAR)
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "datasets" / "mnist")
    for path in candidates:
        if all((path / f"{n}.gz").is_file() or (path / n).is_file() for n in SHA256):
            return path
    return None
