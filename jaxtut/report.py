"""The parity report: ``reports/parity.json`` and ``reports/parity.md``, written atomically.

Each record is one measured check (tutorial, tier, what was compared, dtype, the measured maximum
absolute and relative differences, the tolerance, pass/fail) plus the outcome of the pytest test
that asserted it, so the table can be checked against the test results it summarises.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jaxtut.io import write_json, write_text


@dataclasses.dataclass
class ParityRecord:
    tutorial: str
    tier: str
    check: str
    dtype: str
    device: str
    max_abs: float | None
    max_rel: float | None
    tolerance: float | None
    passed: bool
    where: str = ""
    note: str = ""
    test: str = ""
    outcome: str = ""


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.2e}" if isinstance(x, float) else str(x)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_parity_report(
    records: Iterable[ParityRecord],
    out_dir: str | Path,
    *,
    versions: dict[str, Any],
    device: str,
    stem: str = "parity",
) -> tuple[Path, Path]:
    """Writes ``<stem>.json`` and ``<stem>.md`` under ``out_dir``; returns their paths."""
    records = sorted(records, key=lambda r: (r.tutorial, r.tier, r.dtype, r.check))
    out_dir = Path(out_dir)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = {
        "generated": stamp,
        "device": device,
        "versions": versions,
        "summary": {
            "checks": len(records),
            "passed": sum(r.passed for r in records),
            "failed": sum(not r.passed for r in records),
        },
        "records": [{k: _clean(v) for k, v in dataclasses.asdict(r).items()} for r in records],
    }
    json_path = write_json(out_dir / f"{stem}.json", payload)

    lines = [
        "# jaxtut parity report",
        "",
        f"Generated {stamp} on `{device}` by `pytest parity_tests`. "
        "Each row is one measured comparison between the JAX implementation and the PyTorch "
        "reference; `check` is the comparison's verdict against the tolerance, `test` the "
        "outcome of the pytest test that asserted it (a sensitivity row passes as a test when "
        "its check FAILS).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v),
        "",
        f"{payload['summary']['passed']} of {len(records)} checks passed.",
        "",
        "| tutorial | tier | check | dtype | max abs | max rel | tolerance | check | test "
        "| where |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r.tutorial} | {r.tier} | {r.check} | {r.dtype} | {_fmt(r.max_abs)} | "
            f"{_fmt(r.max_rel)} | {_fmt(r.tolerance)} | {'PASS' if r.passed else 'FAIL'} | "
            f"{r.outcome or '-'} | {r.where}{' — ' + r.note if r.note else ''} |"
        )
    md_path = write_text(out_dir / f"{stem}.md", "\n".join(lines) + "\n")
    return json_path, md_path
