"""Command-line option types: each parses one value or fails with one clear line.

Shared by the ``jaxtut`` command and the benchmark scripts (so neither imports the other).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def checked(cast: Callable, ok: Callable, expected: str, out_of_range: str | None = None):
    """An argparse ``type``: ``cast(text)``, then ``ok(value)``, each failure one clear line."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {out_of_range or expected}, got {text!r}")
        return value

    return parse


positive_int = checked(int, lambda v: v >= 1, "a positive integer")
non_negative_int = checked(int, lambda v: v >= 0, "a non-negative integer")
positive_float = checked(
    float, lambda v: np.isfinite(v) and v > 0, "a positive number", "a positive finite number"
)


def output_path(text: str) -> Path:
    """An argparse ``type`` for an output file: an empty path or a folder path is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a file path, got {text!r}")
    if text.endswith(os.sep):  # Path() would drop the slash and write a file named like the folder
        raise argparse.ArgumentTypeError(f"expected a file path, not a folder, got {text!r}")
    return Path(text)


def _value(text: str):
    """``true``/``false``, an int, a float, a comma-separated tuple of numbers, else the text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if "," in text:
        return tuple(_value(part) for part in text.split(","))
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def key_value(text: str) -> tuple[str, object]:
    """An argparse ``type`` for ``KEY=VALUE`` (``--opt weight_decay=0.01 --opt betas=0.9,0.99``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), _value(value)
