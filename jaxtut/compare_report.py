"""What :func:`jaxtut.compare` returns: checks by tier, the per-step series and a verdict.

A :class:`CompareReport` is plain data (NumPy and floats): it prints as the same kind of table as
``jaxtut parity``, names the first diverging tier, step and leaf in one line
(:attr:`CompareReport.verdict`), and writes JSON, Markdown and a PNG of the trajectories
(:meth:`CompareReport.write`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from jaxtut.result import _jsonable


@dataclasses.dataclass(frozen=True)
class Check:
    """One verdict of one tier.

    Attributes:
      tier: 0 structure, 1 forward/loss, 2 gradients, 3 trajectory (and the sensitivity twin),
        4 statistics over seeds.
      name: what was checked.
      passed: the verdict.
      measured: the largest relative difference (the p-value for tier 4), if any.
      tolerance: what it was held to (for tier 3, the largest tolerance of the step envelope).
      where: the worst element, the first diverging step and leaf, or a note.
      time: for tier-3 failures, when the first divergence happened, in the order the run
        produced the figures (step ``i``'s loss is ``2 i``, the parameters after it ``2 i + 1``).
    """

    tier: int
    name: str
    passed: bool
    measured: float | None = None
    tolerance: float | None = None
    where: str = ""
    time: int | None = None


def envelope(spread: np.ndarray, stated: float, factor: float) -> np.ndarray:
    """The per-step tolerance: ``max(stated, factor * the running max of the spread)``.

    A NaN in the spread (torch diverged from itself) opens the envelope from that step on.
    """
    return np.maximum(stated, factor * np.maximum.accumulate(np.nan_to_num(spread, nan=np.inf)))


def trajectory_check(
    name: str,
    rel: np.ndarray,
    tol: np.ndarray,
    judged: int,
    leaves: list[str] | None = None,
    offset: int = 0,
) -> Check:
    """The tier-3 verdict on one per-step series, over its first ``judged`` steps.

    A failing check names its first step outside ``tol`` (NaN included), a passing one its worst
    step; ``leaves`` (each step's worst leaf) adds the leaf. ``offset`` orders checks of the same
    step for the verdict (the loss before the parameters after it).
    """
    bad = np.flatnonzero(~(rel[:judged] <= tol[:judged]))
    first = int(bad[0]) if bad.size else None
    at = int(np.nanargmax(np.nan_to_num(rel[:judged], nan=np.inf))) if first is None else first
    leaf = "" if leaves is None else f" {leaves[at]}"
    where = f"step {at}{leaf}" if first is None else f"first diverging step {at}{leaf}"
    steps = f"; {judged} of {len(rel)} steps judged" if judged < len(rel) else ""
    return Check(
        3, name, first is None, float(rel[at]), float(tol[at]), where + steps,
        time=None if first is None else 2 * first + offset,
    )  # fmt: skip


@dataclasses.dataclass
class StepSeries:
    """Per-step figures of a lock-step run (one entry per optimizer step).

    ``rel_*`` are JAX-vs-torch relative differences (losses; the worst parameter leaf after the
    step), ``spread_*`` the same between torch and torch started one ulp up, ``tol_*`` the
    tolerance envelope: ``max(stated, ULP_FACTOR * running max of the spread)``.
    """

    loss_torch: np.ndarray
    loss_jax: np.ndarray
    rel_loss: np.ndarray
    rel_params: np.ndarray
    where_params: list[str]
    spread_loss: np.ndarray
    spread_params: np.ndarray
    tol_loss: np.ndarray
    tol_params: np.ndarray
    loss_twin: np.ndarray | None = None
    rel_twin: np.ndarray | None = None

    @classmethod
    def empty(cls, steps: int, twin: bool) -> StepSeries:
        def nan():
            return np.full(steps, np.nan)

        return cls(
            nan(), nan(), nan(), nan(), [""] * steps, nan(), nan(), nan(), nan(),
            nan() if twin else None, nan() if twin else None,
        )  # fmt: skip

    def finish_envelope(self, stated: float, factor: float) -> None:
        """Fills the tolerance envelope from the measured one-ulp spread of torch itself."""
        self.tol_loss = envelope(self.spread_loss, stated, factor)
        self.tol_params = envelope(self.spread_params, stated, factor)

    def checks(self, judged: int) -> list[Check]:
        """Tier-3 verdicts over the first ``judged`` steps, and the sensitivity twin's.

        A failing check names its first step outside the envelope (NaN included) and, for the
        parameters, the worst leaf there.
        """
        n = judged
        out = [
            trajectory_check("losses, every step", self.rel_loss, self.tol_loss, n),
            trajectory_check(
                "parameters after every step", self.rel_params, self.tol_params, n,
                self.where_params, offset=1,
            ),
        ]  # fmt: skip
        if self.rel_twin is not None:
            bound = np.maximum(self.tol_loss[:n], self.tol_params[:n])
            caught = np.flatnonzero(~(self.rel_twin[:n] <= bound))
            passed = bool(caught.size)
            where = (
                f"lr x 1.01 rejected from step {int(caught[0])}"
                if passed
                else "lr x 1.01 NOT rejected: this comparison cannot tell a 1% lr error apart"
            )
            out.append(
                Check(
                    3, "sensitivity twin", passed, float(np.nanmax(self.rel_twin[:n])), None, where
                )
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclasses.dataclass
class CompareReport:
    """The outcome of :func:`jaxtut.compare`.

    Attributes:
      name: the pair's name.
      dtype: ``"float64"`` or ``"float32"``.
      steps: optimizer steps of the run.
      checks: every verdict, in tier order.
      versions: library versions.
      config: the run's settings (epochs, dtype, device, seed, optimizer).
      seconds: wall time of the comparison.
      series: the per-step figures (``None`` when it stopped before tier 3).
      extra: tier-4 figures, when run.
    """

    name: str
    dtype: str
    steps: int
    checks: list[Check]
    versions: dict[str, Any]
    config: dict[str, Any]
    seconds: float = 0.0
    series: StepSeries | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def finish(self, seconds: float, series: StepSeries | None = None) -> CompareReport:
        self.seconds = seconds
        self.series = series
        return self

    def add(self, check: Check, **extra: Any) -> None:
        self.checks.append(check)
        self.extra.update(extra)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def first_failure(self) -> Check | None:
        """The failing check of the lowest tier; in tier 3, the one that diverged first."""
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            return None
        tier = min(c.tier for c in failed)
        same = [c for c in failed if c.tier == tier]
        return min(same, key=lambda c: np.inf if c.time is None else c.time)

    @property
    def verdict(self) -> str:
        """One line: PASS with the worst figures, or FAIL naming the tier, step and leaf."""
        bad = self.first_failure
        if bad is None:
            tier3 = [c for c in self.checks if c.tier == 3 and c.tolerance is not None]
            worst = max(tier3, key=lambda c: c.measured / (c.tolerance or 1), default=None)
            figure = (
                f"; worst {worst.name}: {worst.measured:.1e} (tol {worst.tolerance:.1e}) at "
                f"{worst.where}"
                if worst
                else ""
            )
            return f"PASS {self.name} ({self.dtype}, {self.steps} steps){figure}"
        head = f"FAIL {self.name} ({self.dtype}) tier {bad.tier} {bad.name}"
        if bad.tier == 0 or bad.measured is None:
            return f"{head}: {bad.where}"
        if bad.tier == 4:
            return f"{head}: p = {bad.measured:.3g} < {bad.tolerance}: {bad.where}"
        figure = f"{bad.measured:.2e} > tol {bad.tolerance:.1e}"
        if bad.tier in (1, 2):  # judged at the shared start, before any update
            return f"{head}: {figure} at step 0 (the shared start), {bad.where}"
        return f"{head}: {figure} at {bad.where}"

    def rows(self) -> list[tuple[str, ...]]:
        """Table rows: tier, check, verdict, measured, tolerance, where."""
        return [
            (
                str(c.tier), c.name, "PASS" if c.passed else "FAIL",
                "" if c.measured is None else f"{c.measured:.2e}",
                "" if c.tolerance is None else f"{c.tolerance:.1e}", c.where,
            )
            for c in self.checks
        ]  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name, "dtype": self.dtype, "steps": self.steps,
            "passed": self.passed, "verdict": self.verdict,
            "checks": [dataclasses.asdict(c) for c in self.checks],
            "versions": self.versions, "config": self.config, "seconds": self.seconds,
            "series": None if self.series is None else self.series.to_json(),
            "extra": self.extra,
        }  # fmt: skip
        return _jsonable(out)

    def to_markdown(self) -> str:
        lines = [
            f"# jaxtut compare: {self.name}",
            "",
            f"**{self.verdict}**",
            "",
            f"{self.steps} steps, {self.dtype}, {self.seconds:.1f} s. Versions: "
            + ", ".join(f"{k} {v}" for k, v in self.versions.items() if v),
            "",
            "| tier | check | verdict | measured | tolerance | where |",
            "|---|---|---|---|---|---|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows()]
        lines += [
            "",
            "Tier 3 tolerance: the stated one (float64 1e-10, float32 1e-5 over the first 100 "
            "steps), raised step by step to 4x the spread of torch against itself started one "
            "ulp up.",
            "",
        ]
        return "\n".join(lines)

    def write(self, path: str | Path) -> list[Path]:
        """Writes ``<path>.json``, ``<path>.md`` and, after tier 3, ``<path>.png``; atomically."""
        from jaxtut.io import write_json, write_text

        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".json", ".md", ".png") else base
        out = [
            write_json(base.with_suffix(".json"), self.to_json()),
            write_text(base.with_suffix(".md"), self.to_markdown()),
        ]
        if self.series is not None:
            out.append(self.plot(base.with_suffix(".png")))
        return out

    def plot(self, path: str | Path) -> Path:
        """Writes the PNG: both loss curves, and the per-step differences with the envelope."""
        from jaxtut.io import atomic_path

        with atomic_path(path) as tmp:
            _plot(self, tmp)
        return Path(path)


def _plot(report: CompareReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report.series
    steps = np.arange(len(s.loss_torch))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(steps, s.loss_torch, label="torch", lw=2)
    top.plot(steps, s.loss_jax, "--", label="JAX", lw=1)
    top.set_ylabel("loss")
    top.set_yscale("log" if np.nanmin(s.loss_torch) > 0 else "linear")
    top.legend()
    floor = np.finfo(np.float64).tiny
    bottom.semilogy(steps, np.maximum(s.rel_loss, floor), label="loss, JAX vs torch")
    bottom.semilogy(steps, np.maximum(s.rel_params, floor), label="params, JAX vs torch")
    bottom.semilogy(steps, np.maximum(s.tol_params, s.tol_loss), "k:", label="tolerance")
    if s.rel_twin is not None:
        bottom.semilogy(steps, np.maximum(s.rel_twin, floor), alpha=0.5, label="twin (lr x 1.01)")
    bottom.set_xlabel("step")
    bottom.set_ylabel("relative difference")
    bottom.legend(fontsize=8)
    fig.suptitle(report.verdict[:110], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
