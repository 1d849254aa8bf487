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
from jaxtut.parity import Comparison, Pair, run_pair, truncate
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


# Tutorials whose tier-3 run is the first N steps of the default run, not all of it: a CNN epoch
# in both frameworks takes many minutes on a 2-core CPU. Its 300-step runs (dropout, Adadelta)
# are marked slow: `make parity-report` runs them, `make test` a 40-step run
# (test_tier3_mnist_cnn_short). The full float32 epoch is its own slow test
# (test_tier3_mnist_cnn_float32_full_epoch; docs/parity.md).
SUITE_STEPS = {"mnist_cnn": 300}


def suite_plan(tutorial_id: str, config, steps: int | None = None):
    """The plan of the suite's run of ``tutorial_id``: ``None`` (the default) or the first steps."""
    steps = steps or SUITE_STEPS.get(tutorial_id)
    if steps is None:
        return None
    return truncate(registry.get(tutorial_id).experiment(config).plan, steps)


def full_pair(tutorial_id: str, dtype: str, steps: int | None = None, nudge: bool = True) -> Pair:
    """The default run of both frameworks from the torch-drawn init (see SUITE_STEPS); once.

    ``nudge=False`` skips the JAX run from the init one ulp up (its spread is then 0, and the
    stated tolerance applies alone).
    """
    key = (tutorial_id, dtype, steps)
    if key not in _PAIRS:
        config = default_config(tutorial_id, dtype)
        plan = suite_plan(tutorial_id, config, steps)
        plans = None if plan is None else (lambda _: (plan, plan))
        _PAIRS[key] = run_pair(tutorial_id, config, plans=plans, nudge=nudge)
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
    for (tutorial, dtype, steps), pair in sorted(_PAIRS.items(), key=str):
        if dtype == "float32" and steps is None:
            plot_losses(
                [pair.jax, pair.torch],
                REPORT_DIR / "parity_plots" / f"{REPORT_STEM}-{tutorial}.png",
            )
