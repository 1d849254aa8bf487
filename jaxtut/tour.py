"""The tour (``jaxtut tour``, ``make demo``): every tutorial in both frameworks, one report.

For each training tutorial the tour runs the parity comparison in float64 and float32 (same init,
same batches; the parity suite's own checks), and reports each framework's result, the verdicts
and the steady-state speed ratio measured in the same process (torch seconds / JAX seconds, JAX
compile time excluded and reported apart). The demonstrations (tensors, autograd, normal
equation) run in both frameworks and their headline numbers are compared.

The report folder is built in a temporary sibling directory and moved into place at the end, so
an interrupted tour leaves the previous report (or none), never half of one.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxtut import plots, registry
from jaxtut.io import write_json, write_text
from jaxtut.runtime import versions


def _fmt_metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    items = [(k, v) for k, v in metrics.items() if isinstance(v, int | float)][:limit]
    return ", ".join(f"{k} {v:.4g}" for k, v in items)


# Demonstrations: outputs compared scaled by their magnitude (max |jax - torch| / max |torch|).
DEMO_TOLERANCES = {"float32": 1e-5, "float64": 1e-12}


def _demo_parity(tutorial, config) -> tuple[dict[str, str], bool, Any]:
    """Runs a demonstration in both frameworks and dtypes and compares what they produce.

    ``tensors``: every operation both frameworks define exactly must match in value, dtype and
    shape. ``autograd``: the SGD trajectory and the final parameter. ``normal_equation``: the
    fitted coefficients.
    """
    from jaxtut.parity import compare_series, compare_trees

    verdicts, ok, first = {}, True, None
    for dtype in ("float64", "float32"):
        cfg = config.replace(dtype=dtype)
        jr, tr = tutorial.run("jax", cfg), tutorial.run("torch", cfg)
        first = first or (jr, tr)
        if tutorial.id == "tensors":
            pairs = zip(jr.extras["operations"], tr.extras["operations"], strict=True)
            exact = [(a, b) for a, b in pairs if a["kind"] == b["kind"] == "exact"]
            same = sum(
                a["value"] == b["value"] and a["dtype"] == b["dtype"] and a["shape"] == b["shape"]
                for a, b in exact
            )
            passed = same == len(exact)
            verdicts[dtype] = (
                f"{'PASS' if passed else 'FAIL'} ({same}/{len(exact)} exact ops equal)"
            )
        else:
            tol = DEMO_TOLERANCES[dtype]
            checks = [compare_trees("params", jr.params, tr.params, tol, scaled=True)]
            if len(jr.losses):
                checks.append(compare_series("losses", jr.losses, tr.losses, tol))
            worst = max(checks, key=lambda c: c.max_rel)
            passed = all(c.passed for c in checks)
            verdicts[dtype] = f"{'PASS' if passed else 'FAIL'} ({worst.name}: {worst.max_rel:.1e})"
        ok &= passed
    return verdicts, ok, first


def run_tour(out: Path, *, console, data_dir: str | None = None) -> int:
    """Runs the tour and writes ``out/index.md``, ``out/summary.json`` and the figures.

    Returns:
      0 when every parity verdict passed, else 1.
    """
    from jaxtut.parity import parity

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    say = console.print
    rows, figures, all_passed = [], [], True
    start = time.perf_counter()
    try:
        for tutorial in registry.TUTORIALS.values():
            overrides = {"data_dir": data_dir} if tutorial.uses_mnist else {}
            config = tutorial.default_config(**overrides)
            say(f"[bold]{tutorial.id}[/bold] ...")
            if not tutorial.trains:
                verdicts, ok, (jr, tr) = _demo_parity(tutorial, config)
                all_passed &= ok
                rows.append({
                    "tutorial": tutorial.id, "jax": _fmt_metrics(jr.metrics),
                    "torch": _fmt_metrics(tr.metrics), "float64": verdicts["float64"],
                    "float32": verdicts["float32"], "passed": ok, "speed": "-",
                })  # fmt: skip
                continue
            pairs = {}
            verdicts = {}
            for dtype in ("float64", "float32"):
                pair, checks = parity(tutorial.id, config.replace(dtype=dtype))
                pairs[dtype] = pair
                worst = max(checks, key=lambda c: c.max_rel / c.tolerance)
                ok = all(c.passed for c in checks)
                verdicts[dtype] = f"{'PASS' if ok else 'FAIL'} ({worst.name}: {worst.max_rel:.1e})"
                all_passed &= ok
            p32 = pairs["float32"]
            speed = p32.torch.wall_time_s / max(p32.jax.wall_time_s, 1e-9)
            rows.append({
                "tutorial": tutorial.id, "jax": _fmt_metrics(p32.jax.metrics),
                "torch": _fmt_metrics(p32.torch.metrics), "float64": verdicts["float64"],
                "float32": verdicts["float32"], "passed": "FAIL" not in str(verdicts),
                "speed": f"{speed:.1f}x ({p32.jax.wall_time_s * 1e3:.1f} ms vs "
                         f"{p32.torch.wall_time_s * 1e3:.1f} ms; compile "
                         f"{(p32.jax.compile_time_s or 0):.2f} s)",
            })  # fmt: skip
            name = f"losses-{tutorial.id}.png"
            plots.plot_losses([p32.jax, p32.torch], tmp / name)
            figures.append((f"{tutorial.id}: JAX vs torch training loss (float32)", name))
            figures += _figures(tutorial, p32.jax, config, tmp)
        elapsed = time.perf_counter() - start
        summary = {"rows": rows, "versions": versions(torch=True), "seconds": elapsed}
        write_json(tmp / "summary.json", summary)
        write_text(tmp / "index.md", _index(rows, figures, elapsed))
        _print_table(rows, console)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        say(f"report: {out / 'index.md'} ({elapsed:.0f} s)")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all_passed else 1


def _figures(tutorial, result, config, folder: Path) -> list[tuple[str, str]]:
    """The extra figures the registry lists for a tutorial (``Tutorial.figures``), from its run."""
    out = []
    experiment = tutorial.experiment(config.replace(epochs=1)) if tutorial.figures else None
    if "fit" in tutorial.figures:
        x, y = experiment.train
        name = f"fit-{tutorial.id}.png"
        plots.plot_fit(result, x, y, folder / name)
        out.append((f"{tutorial.id}: data and the JAX fit", name))
    if {"digits", "confusion"} & set(tutorial.figures):
        predictions, (x_test, y_test) = _predictions(experiment, result)
        if "digits" in tutorial.figures:
            name = f"{tutorial.id}-digits.png"
            plots.plot_digits(x_test[:32], y_test[:32], predictions[:32], folder / name)
            out.append((f"{tutorial.id}: test digits, JAX prediction (label); red = wrong", name))
        if "confusion" in tutorial.figures:
            name = f"{tutorial.id}-confusion.png"
            plots.plot_confusion(y_test, predictions, folder / name)
            out.append((f"{tutorial.id}: confusion matrix on the test digits (JAX)", name))
    return out


def _predictions(experiment, result):
    """The JAX model's predicted classes on the experiment's test set, from a run's parameters."""
    import jax

    from jaxtut.convert import from_state_dict

    trainer = experiment.jax
    x_test, y_test = experiment.eval
    template = jax.eval_shape(lambda: trainer.init(jax.random.key(0), np.float32))
    params = from_state_dict(result.params, template)
    return np.asarray(trainer.forward(params, x_test)).argmax(axis=1), (x_test, y_test)


def _index(rows, figures, elapsed: float) -> str:
    v = versions(torch=True)
    lines = [
        "# jaxtut tour",
        "",
        "Every tutorial of the catalogue in JAX and in PyTorch. Training tutorials start both "
        "frameworks from the same (torch-drawn, converted) parameters and feed them the same "
        "batches; the parity columns are the parity suite's tier-3 verdicts (float64: every step "
        "and the final parameters to 1e-10; float32: the first 100 steps to 1e-5 and the final "
        "metrics within calibrated bounds). Speed is torch eager seconds / JAX seconds for the "
        "float32 run, measured in this process, JAX compile time excluded and shown apart.",
        "",
        f"Run took {elapsed:.0f} s. Versions: "
        + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        "",
        "| tutorial | JAX result | torch result | float64 parity | float32 parity | speed |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tutorial']} | {r['jax']} | {r['torch']} | {r['float64']} | "
            f"{r['float32']} | {r['speed']} |"
        )
    lines.append("")
    for caption, name in figures:
        lines += [f"## {caption}", "", f"![{caption}]({name})", ""]
    return "\n".join(lines)


def _print_table(rows, console) -> None:
    from rich.table import Table

    table = Table(title="jaxtut tour")
    for col in ("tutorial", "JAX", "torch", "float64", "float32", "speed"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["tutorial"], r["jax"], r["torch"], r["float64"], r["float32"], r["speed"])
    console.print(table)
