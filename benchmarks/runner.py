"""The command line: ``python -m benchmarks [IDS...] [--repeats N] [--quick] [--device D]``.

IDS select what to run: training tutorial ids (``mnist_mlp``, ``perceptron``, ...) and the other
benchmarks by name (``roofline``, ``seeds``, ``sin``, ``normal_equation``); none means all of them.
The roofline reads the MNIST epochs timed by the training benchmark, so selecting it also times
those tutorials, and selecting an MNIST tutorial adds the roofline; likewise selecting
``mnist_mlp`` or ``perceptron`` adds their many-seeds rows.

Exit status: 0 on success, 2 for a usage error (an unknown id, an absent device), 1 if a
benchmark failed (for instance something recompiled inside a timed loop).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.settings import ROOFLINE_IDS, SECTIONS, SEED_IDS, Settings
from jaxtut.options import positive_int

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxtut bench",
        description="Time every training tutorial in JAX (fused and stepwise), PyTorch (eager, "
        "DataLoader, torch.compile) and NumPy, plus roofline, many-seeds and micro-benchmarks; "
        "write <machine-id>.json, .md and .png.",
    )
    parser.add_argument(
        "ids",
        nargs="*",
        metavar="ID",
        help=f"training tutorial ids and/or {', '.join(SECTIONS)} (default: everything)",
    )
    parser.add_argument(
        "--repeats", type=positive_int, help="timed repeats per measurement (default 5; quick 3)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test sizes: part of an MNIST epoch, torch.compile only for the perceptron, "
        "a 4000 x 4000 sin, 3 repeats (under 2 minutes on 2 cores)",
    )
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--torch-threads",
        type=positive_int,
        help="torch intra-op threads (default: torch's own choice, reported in the results)",
    )
    parser.add_argument(
        "--no-torch-compile", action="store_true", help="skip every torch.compile variant"
    )
    return parser


def _select(ids: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training tutorial ids, sections) selected by ``ids``; raises JaxtutError on a bad id."""
    from jaxtut import registry
    from jaxtut.errors import ConfigError

    training_all = registry.ids(training_only=True)
    if not ids:
        return training_all, SECTIONS
    training, sections = [], []
    for name in ids:
        if name in SECTIONS:
            sections.append(name)
        elif name in training_all:
            training.append(name)
        else:
            registry.get(name)  # unknown: raises with a suggestion
            raise ConfigError(
                f"{name!r} is not a training tutorial; choose from the training tutorials or "
                f"{', '.join(SECTIONS)}"
            )
    if "roofline" in sections:  # it reads the MNIST epochs timed by the training benchmark
        training += [t for t in ROOFLINE_IDS if t not in training]
    elif any(t in ROOFLINE_IDS for t in training):
        sections.append("roofline")
    if any(t in SEED_IDS for t in training) and "seeds" not in sections:
        sections.append("seeds")
    return tuple(dict.fromkeys(training)), tuple(s for s in SECTIONS if s in sections)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmarks; returns the exit status (0, 1 or 2)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    # A fresh inductor cache for this process, so that torch.compile's compile time is a cold
    # compile every time rather than whatever an earlier run left on disk.
    cache = None
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        cache = tempfile.TemporaryDirectory(prefix="jaxtut-bench-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name
    try:
        return _main(args, argv)
    finally:
        if cache is not None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            cache.cleanup()


def _log(message: str) -> None:
    print(message, flush=True)


def _main(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    from jaxtut.errors import JaxtutError

    start = time.perf_counter()
    # A run of a subset is named apart, so that it never overwrites the machine's full results.
    partial = bool(args.ids) or args.no_torch_compile
    try:
        training_ids, sections = _select(args.ids)
        settings = Settings.create(
            device=args.device,
            repeats=args.repeats,
            quick=args.quick,
            training_ids=training_ids,
            sections=sections,
            torch_compile=not args.no_torch_compile,
        )
        results = run_all(settings, args.torch_threads)
    except JaxtutError as err:
        print(f"jaxtut bench: error: {err}", file=sys.stderr)
        return 2
    results["run"] = {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv),
        "quick": settings.quick,
        "partial": partial,
        "repeats": settings.repeats,
        "settings": dict(vars(settings)),
        "wall_s": time.perf_counter() - start,
    }
    from benchmarks import report, targets

    results["targets"] = targets.evaluate(results, settings.device, settings.quick)
    name = (
        results["machine_id"]
        + ("-partial" if partial else "")
        + ("-quick" if settings.quick else "")
    )
    ordered = {k: results[k] for k in ("machine_id", "run", *report.SECTIONS)}
    paths = report.write_all(ordered, args.out, name)
    _log("")
    for t in results["targets"]:
        status = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        measured = "-" if t["measured"] is None else f"{t['measured']:.4g}{t['unit']}"
        _log(f"  [{status:>6}] {t['description']}: {measured}")
    _log(
        f"wrote {paths['json']}, {paths['md'].name}, {paths['png'].name} "
        f"in {time.perf_counter() - start:.0f} s"
    )
    return 0


def run_all(settings: Settings, torch_threads: int | None = None) -> dict[str, Any]:
    """Runs every selected benchmark in this process; returns the results (without targets)."""
    import torch

    from benchmarks import timing

    if torch_threads:
        torch.set_num_threads(torch_threads)
    timing.install_jax_hook()
    info = timing.machine_info(settings.device)  # also fails early on an absent device
    if settings.device == "gpu":
        from jaxtut.configs import Config
        from jaxtut.torch_ref._common import torch_device

        torch_device(Config(device="gpu").device)  # a clear error if torch has no CUDA
    _log(
        f"benchmarks on {timing.machine_id(info)} ({info['jax_device_kind']}), "
        f"torch threads {info['torch_threads']}, repeats {settings.repeats}"
        + (", quick" if settings.quick else "")
    )
    results: dict[str, Any] = {
        "machine_id": timing.machine_id(info),
        "machine": info,
        "training": [],
        "roofline": {},
        "seeds": [],
        "micro": {},
    }
    from benchmarks import micro, roofline, seeds, training

    if settings.training_ids:
        _log("training:")
        for tid in settings.training_ids:
            results["training"].append(training.bench_tutorial(tid, settings, _log))
    if "roofline" in settings.sections:
        _log("roofline:")
        results["roofline"] = roofline.bench_roofline(settings, results["training"], _log)
    if "seeds" in settings.sections:
        _log("many seeds:")
        chosen = [t for t in SEED_IDS if t in settings.training_ids] or list(SEED_IDS)
        results["seeds"] = [seeds.bench_seeds(t, settings, _log) for t in chosen]
    if "sin" in settings.sections:
        _log("sin:")
        results["micro"]["sin"] = micro.bench_sin(settings, _log)
    if "normal_equation" in settings.sections:
        _log("normal equation:")
        results["micro"]["normal_equation"] = micro.bench_normal_equation(settings, _log)
    return results
