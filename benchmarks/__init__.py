"""Benchmarks of the catalogue: JAX (fused, stepwise) vs PyTorch (eager, compiled) vs NumPy.

Run ``python -m benchmarks --help`` from the repository root, or ``jaxtut bench``. The benchmark
code only calls the catalogue's public API (``jaxtut.registry``, ``jaxtut.train``,
``jaxtut.tutorial_data``, the torch references' ``MODELS``/``CRITERIA``); docs/benchmarks.md
describes the method and how to read the results in ``benchmarks/results/``.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmarks with command-line arguments ``argv``; returns the exit status."""
    # Imported here so that importing the package stays cheap (no JAX, no torch).
    from benchmarks.runner import main as run

    return run(argv)


__all__ = ["main"]
