"""Shared machinery of the parity suite: cached runs, the ``record`` fixture and the report.

Set ``JAXTUT_PARITY_DEVICE=gpu`` to run both frameworks on CUDA (matmul precision pinned to the
highest on both), ``JAXTUT_REPORT_DIR`` to write the report (JSON, Markdown and loss-curve
figures) into that folder, and ``JAXTUT_PARITY_PLOTS=0`` to skip the figures. Without
``JAXTUT_REPORT_DIR`` nothing is written: a test run never rewrites the committed report, which
``make parity-report`` regenerates on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jaxtut import registry
from jaxtut.parity import Comparison, Pair, run_pair
from jaxtut.report import ParityRecord, write_parity_report
from jaxtut.runtime import versions

ROOT = Path(__file__).resolve().parents[1]
DEVICE = os.environ.get("JAXTUT_PARITY_DEVICE", "cpu")
REPORT_DIR = Path(os.environ["JAXTUT_REPORT_DIR"]) if os.environ.get("JAXTUT_REPORT_DIR") else None
REPORT_STEM = "parity" if DEVICE == "cpu" else f"parity-{DEVICE}"

_RECORDS: list[ParityRecord] = []
_PAIRS: dict[tuple[str, str], Pair] = {}


def default_config(tutorial_id: str, dtype: str = "float32", **overrides):
    """The tutorial's default config on the suite's device."""
    return registry.get(tutorial_id).default_config(dtype=dtype, device=DEVICE, **overrides)


def full_pair(tutorial_id: str, dtype: str) -> Pair:
    """The full default run of both frameworks from the torch-drawn init; computed once."""
    key = (tutorial_id, dtype)
    if key not in _PAIRS:
        _PAIRS[key] = run_pair(tutorial_id, default_config(tutorial_id, dtype))
    return _PAIRS[key]


def cached_pairs() -> dict[tuple[str, str], Pair]:
    return _PAIRS


@pytest.fixture
def record(request):
    """Adds a measured check to the parity report; returns the record.

    Call as ``record(tutorial, tier, dtype, comparison)`` or with explicit ``max_abs``,
    ``max_rel``, ``tolerance`` and ``passed`` for checks that are not a :class:`Comparison`.
    """

    def add(
        tutorial: str,
        tier: str,
        dtype: str,
        comparison: Comparison | None = None,
        *,
        check: str | None = None,
        passed: bool | None = None,
        max_abs: float | None = None,
        max_rel: float | None = None,
        tolerance: float | None = None,
        where: str = "",
        note: str = "",
    ) -> ParityRecord:
        if comparison is not None:
            check = check or comparison.name
            max_abs, max_rel = comparison.max_abs, comparison.max_rel
            tolerance, where = comparison.tolerance, where or comparison.where
            passed = comparison.passed if passed is None else passed
        rec = ParityRecord(
            tutorial=tutorial,
            tier=tier,
            check=check or "",
            dtype=dtype,
            device=DEVICE,
            max_abs=max_abs,
            max_rel=max_rel,
            tolerance=tolerance,
            passed=bool(passed),
            where=where,
            note=note,
            test=request.node.nodeid,
        )
        _RECORDS.append(rec)
        return rec

    return add


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" or (report.when == "setup" and not report.passed):
        for rec in _RECORDS:
            if rec.test == item.nodeid:
                rec.outcome = report.outcome
    return report


def pytest_sessionfinish(session, exitstatus):
    if not _RECORDS or REPORT_DIR is None:
        return
    write_parity_report(
        _RECORDS,
        REPORT_DIR,
        versions=versions(torch=True),
        device=_device_name(),
        stem=REPORT_STEM,
    )
    if os.environ.get("JAXTUT_PARITY_PLOTS", "1") != "0":
        _plot_pairs()


def _device_name() -> str:
    if DEVICE == "gpu":
        import torch

        return f"gpu ({torch.cuda.get_device_name(0)})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _plot_pairs() -> None:
    try:
        from jaxtut.plots import plot_losses
    except ImportError:  # plots are optional for the report's tables
        return
    for (tutorial, dtype), pair in sorted(_PAIRS.items()):
        if dtype == "float32":
            plot_losses(
                [pair.jax, pair.torch],
                REPORT_DIR / "parity_plots" / f"{REPORT_STEM}-{tutorial}.png",
            )
