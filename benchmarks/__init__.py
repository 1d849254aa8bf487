"""Benchmarks of the catalogue: JAX (fused, stepwise) vs PyTorch (eager, compiled) vs NumPy.

Run ``python -m benchmarks --help`` from the repository root, or ``jaxtut bench``. The benchmark
code only calls the catalogue's public API (``jaxtut.registry``, ``jaxtut.train``,
``jaxtut.tutorial_data``, the torch references' ``MODELS``/``CRITERIA``); docs/benchmarks.md
describes the method and how to read the results in ``benchmarks/results/``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmarks with command-line arguments ``argv``; returns the exit status."""
    # Imported here so that importing the package stays cheap (no JAX, no torch).
    from benchmarks.runner import main as run

    return run(argv)


def script(main: Callable[[], object], prog: str) -> int:
    """Runs one benchmark script's ``main()`` as its command: the exit status it returns.

    What a user can get wrong (the MNIST files missing or corrupt, torch not installed) is one
    line and exit status 2, as in ``jaxtut``; anything else keeps its traceback.
    """
    from jaxtut.errors import JaxtutError

    try:
        result = main()
    except ModuleNotFoundError as err:
        if err.name != "torch":
            raise
        print(
            f"{prog}: error: PyTorch is not installed: install the extra with "
            "pip install 'jaxtut[torch]' (pins torch==2.13.0)",
            file=sys.stderr,
        )
        return 2
    except JaxtutError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0 if result is None or result else 1


__all__ = ["main", "script"]
