"""Writes one run's results: ``<machine-id>.json``, ``.md`` (one table per benchmark) and ``.png``.

Every file is written atomically (:mod:`jaxtut.io`), so an interrupted run never leaves half a
results file behind, and a reader never sees one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jaxtut.io import atomic_path, write_json, write_text

# Sections every results file has, in order (the smoke test checks for them).
SECTIONS = ("machine", "training", "roofline", "seeds", "micro", "targets")
MD_HEADINGS = (
    "## Machine",
    "## Training",
    "## Roofline",
    "## Many seeds",
    "## sin of a matrix",
    "## Normal equation",
    "## Targets",
)


def write_all(results: dict[str, Any], out_dir: Path, name: str) -> dict[str, Path]:
    """Writes the JSON, the Markdown and the chart; returns their paths."""
    out_dir = Path(out_dir)
    paths = {
        "json": out_dir / f"{name}.json",
        "md": out_dir / f"{name}.md",
        "png": out_dir / f"{name}.png",
    }
    write_json(paths["json"], _finite(results))
    write_text(paths["md"], markdown(results, chart=paths["png"].name))
    chart(results, paths["png"])
    return paths


def _finite(obj: Any) -> Any:
    """The results with non-finite floats as ``None`` (strict JSON has no NaN or Infinity)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --- Markdown -------------------------------------------------------------------------------


def _time(seconds: float | None) -> str:
    """Seconds in a readable unit (ns, us, ms or s), 3 significant digits."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def _spread(stats: dict[str, float] | None) -> str:
    if not stats:
        return "-"
    return f"{_time(stats['median'])} [{_time(stats['min'])} – {_time(stats['max'])}]"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}x" if value < 1000 else f"{value:,.0f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def markdown(results: dict[str, Any], *, chart: str | None = None) -> str:
    """The results as Markdown: the machine, then one table per benchmark, then the targets."""
    m = results["machine"]
    run = results["run"]
    lines = [
        f"# Benchmarks: {results['machine_id']}",
        "",
        f"Generated {run['timestamp']} by `{run['command']}` in {run['wall_s']:.0f} s"
        + (
            " (**--quick**: reduced sizes and repeats; a smoke test, not a result)"
            if run["quick"]
            else ""
        )
        + ". Times are medians of the repeats, [min – max] after them; ratios are against PyTorch"
        " eager from the same run (above 1 = faster). See docs/benchmarks.md for the method.",
        "",
        "## Machine",
        "",
    ]
    versions = m["versions"]
    lines += _table(
        ["", ""],
        [
            ["device", f"{m['device']} ({m['jax_device_kind']})"],
            ["CPU", f"{m['cpu_model']}, {m['cpu_count']} cores, {m['memory_gib']} GiB"],
            ["GPU (torch)", m["torch_cuda_device"] or "-"],
            [
                "torch threads",
                f"{m['torch_threads']} intra-op, {m['torch_interop_threads']} inter-op",
            ],
            ["XLA_FLAGS", m["env"].get("XLA_FLAGS") or "-"],
            ["NumPy BLAS", m.get("numpy_blas") or "-"],
            [
                "versions",
                ", ".join(f"{k} {v}" for k, v in versions.items() if k not in ("platform",)),
            ],
            ["platform", versions.get("platform", "-")],
        ],
    )
    lines += _training_md(results["training"], run)
    lines += _roofline_md(results["roofline"])
    lines += _seeds_md(results["seeds"])
    lines += _sin_md(results["micro"].get("sin"))
    lines += _normal_md(results["micro"].get("normal_equation"))
    lines += ["## Targets", ""]
    lines += _table(
        ["target", "measured", "bound", "met", "note"],
        [
            [
                t["description"],
                _value(t["measured"], t["unit"]),
                f"{t['op']} {_value(t['threshold'], t['unit'])}",
                {True: "yes", False: "**no**", None: "n/a"}[t["met"]],
                t["note"].replace("|", "/"),
            ]
            for t in results["targets"]
        ],
    )
    if chart:
        lines += [f"![speedups against PyTorch eager]({chart})", ""]
    return "\n".join(lines)


def _pct(fraction: float) -> str:
    """A fraction as a percentage, with decimals when it is under 1% (a GPU roofline's are)."""
    return f"{fraction:.2%}" if fraction < 0.01 else f"{fraction:.0%}"


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return _time(value)
    if unit == "GB/s":
        return f"{value:,.0f} GB/s"
    return _ratio(value)


def _training_md(training: list[dict[str, Any]], run: dict[str, Any]) -> list[str]:
    lines = [
        "## Training",
        "",
        "Per-run times cover the whole run of the tutorial's configuration (MNIST: one epoch), "
        "first call apart. `first call` includes compiling (JAX, torch.compile); `compile` is "
        "the AOT compile time for the fused run and the first call minus a steady run otherwise.",
        "",
    ]
    for record in training:
        tid = record["tutorial"]
        if record.get("skipped"):
            lines += [f"### {tid}", "", f"Skipped: {record['skipped']}", ""]
            continue
        extra = ""
        if record["steps_per_epoch_timed"] != record["steps_per_epoch"]:
            extra = (
                f" Timed on {record['steps_per_epoch_timed']} of the epoch's "
                f"{record['steps_per_epoch']} steps; the epoch time is extrapolated."
            )
        if record.get("torch_compile_skipped"):
            extra += f" torch.compile: {record['torch_compile_skipped']}."
        lines += [
            f"### {tid}",
            "",
            f"{record['epochs_per_run']} epoch(s) per run, {record['steps_per_epoch']} step(s) "
            f"per epoch.{extra}",
            "",
        ]
        rows = []
        for v in record["variants"]:
            rows.append(
                [
                    v["label"],
                    _time(v["first_call_s"]),
                    _time(v["compile_s"]),
                    _spread(v["per_step_s"]),
                    _spread(v["per_epoch_s"]),
                    str(v["repeats"]),
                    _ratio(v["ratio_vs_torch_eager"]),
                ]
            )
        lines += _table(
            ["variant", "first call", "compile", "per step", "per epoch", "n", "vs eager"], rows
        )
        for v in record["variants"]:
            marginal = v.get("marginal")
            if marginal:
                lines += [
                    f"Fused run {v['steps_per_run']} vs {marginal['steps_long_run']} steps: "
                    f"{_time(marginal['per_step_s'])} per extra step "
                    f"({_ratio(marginal['ratio_vs_torch_eager'])} eager), "
                    f"{_time(marginal['per_call_overhead_s'])} fixed per call.",
                    "",
                ]
            if v.get("note"):
                lines += [f"*{v['label']}*: {v['note']}.", ""]
    return lines


def _roofline_md(roofline: dict[str, Any]) -> list[str]:
    if not roofline:
        return ["## Roofline", "", "Not run.", ""]
    peak = roofline["peak"]
    lines = [
        "## Roofline",
        "",
        f"Matmul peak: float32 {peak['n']} x {peak['n']} GEMM, best of the frameworks "
        f"({peak['best']}): **{peak['peak_gflops']:.1f} GFLOP/s**.",
        "",
    ]
    lines += _table(
        ["framework", "GEMM time", "GFLOP/s (median)"],
        [
            [name, _spread(r["seconds"]), f"{r['gflops']['median']:.1f}"]
            for name, r in peak["frameworks"].items()
        ],
    )
    rows = []
    for row in roofline["models"]:
        if "skipped" in row:
            rows.append([row["tutorial"], "-", "-", "-", "-", "-", row["skipped"]])
            continue
        f = row["flops_per_epoch"]
        for name in ("conventional", "minimal"):
            r = row[name]
            rows.append(
                [
                    row["tutorial"],
                    name,
                    f"{f[name] / 1e9:.2f}",
                    _time(r["matmul_floor_s"]),
                    _time(row["fused_epoch_s"]),
                    _pct(r["fraction_of_peak"]),
                    f"epoch = {r['epoch_over_floor']:.2f}x floor"
                    + (f"; XLA counts {f['xla'] / 1e9:.2f} GFLOP" if f.get("xla") else ""),
                ]
            )
    lines += _table(
        ["model", "count", "GFLOP/epoch", "floor", "fused epoch", "of peak", "note"], rows
    )
    for row in roofline["models"]:
        gemms = row.get("gemm_only_epoch")
        if gemms:
            lines += [
                f"{row['tutorial']}: the step's matmuls alone, at their real shapes in one "
                f"compiled loop, take {_spread(gemms['seconds'])} per epoch "
                f"({gemms['gflops']:.1f} GFLOP/s, {_pct(gemms['fraction_of_peak'])} of the peak); "
                f"the fused epoch is {gemms['fused_epoch_over_it']:.2f}x that.",
                "",
            ]
    return lines


def _seeds_md(seeds: list[dict[str, Any]]) -> list[str]:
    lines = ["## Many seeds", ""]
    if not seeds:
        return [*lines, "Not run.", ""]
    rows = []
    for record in seeds:
        if record.get("skipped"):
            rows.append([record["tutorial"], "-", "-", "-", "-", "-", "-", record["skipped"]])
            continue
        single = record["single_run"]["seconds"]["median"]
        for r in record["counts"]:
            rows.append(
                [
                    record["tutorial"],
                    str(r["k"]),
                    _spread(r["jax_total_s"]),
                    _time(r["jax_per_model_s"]),
                    f"{r['per_model_vs_single']:.3g}x",
                    _time(r["torch_total_s"]),
                    _ratio(r["speedup_vs_torch"]),
                    f"single fused run {_time(single)}; {record['steps_per_model']} steps/model; "
                    f"compile {_time(r['jax_compile_s'])}",
                ]
            )
    return lines + _table(
        [
            "tutorial",
            "K",
            "JAX vmapped total",
            "per model",
            "per model / single",
            "torch K sequential",
            "JAX vs torch",
            "note",
        ],
        rows,
    )


def _sin_md(sin: dict[str, Any] | None) -> list[str]:
    lines = ["## sin of a matrix", ""]
    if not sin:
        return [*lines, "Not run.", ""]
    lines += [
        f"{sin['n']} x {sin['n']} ({sin['elements']:,} elements). Effective bandwidth = bytes "
        f"read + written per second. Memory bandwidth measured by a large copy in the same run: "
        f"**{sin['memory_bandwidth_gbps']:.1f} GB/s**.",
        "",
    ]
    rows = []
    for r in sin["copy"] + sin["sin"] + sin["h2d"]:
        fraction = r.get("fraction_of_bandwidth")
        rows.append(
            [
                r["op"],
                r["name"],
                r["dtype"],
                _time(r["first_call_s"]),
                _spread(r["seconds"]),
                f"{r['effective_gbps']:.1f}",
                "-" if fraction is None else _pct(fraction),
                r.get("note", ""),
            ]
        )
    return lines + _table(
        ["op", "how", "dtype", "first call", "time", "GB/s", "of bandwidth", "note"], rows
    )


def _normal_md(normal: dict[str, Any] | None) -> list[str]:
    lines = ["## Normal equation", ""]
    if not normal:
        return [*lines, "Not run.", ""]
    lines += [f"X of shape {normal['shape'][0]} x {normal['shape'][1]}, {normal['note']}.", ""]
    rows = [
        [
            r["framework"],
            r["op"],
            _spread(r["per_call_s"]),
            _time(r["compile_s"]),
            _ratio(r["ratio_vs_torch"]),
        ]
        for r in normal["rows"]
    ]
    return lines + _table(["framework", "op", "per call", "compile", "vs torch"], rows)


# --- Chart ------------------------------------------------------------------------------------


def chart(results: dict[str, Any], path: Path) -> Path:
    """A bar chart of every training variant's speedup against PyTorch eager (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    training = [t for t in results["training"] if not t.get("skipped")]
    names = [n for n in _variant_order(training) if n != "torch_eager"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(training) + 2), 4.5))
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        xs, ys = [], []
        for i, record in enumerate(training):
            v = next((v for v in record["variants"] if v["variant"] == name), None)
            if v is not None and v["ratio_vs_torch_eager"]:
                xs.append(i + (j - (len(names) - 1) / 2) * width)
                ys.append(v["ratio_vs_torch_eager"])
        label = next(v["label"] for t in training for v in t["variants"] if v["variant"] == name)
        ax.bar(xs, ys, width=width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(training)))
    ax.set_xticklabels([t["tutorial"] for t in training], rotation=30, ha="right")
    ax.set_ylabel("speedup vs PyTorch eager (per step)")
    title = f"{results['machine_id']}" + (" (--quick)" if results["run"]["quick"] else "")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def _variant_order(training: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for record in training:
        for v in record["variants"]:
            if v["variant"] not in seen:
                seen.append(v["variant"])
    return seen
