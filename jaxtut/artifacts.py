"""The files a command writes after it succeeded: --json, --plot and --save, for each command.

Every path was checked before any work started (:class:`jaxtut.io.Outputs`); each file is written
atomically, only once the run it describes has succeeded.
"""

from __future__ import annotations

from typing import Any

from jaxtut.io import Outputs, write_json


def plot_run(tutorial: Any, config: Any, result: Any, path: Any) -> None:
    """``--plot`` of one run: the fitted line over the data, or the loss curve (registry trait)."""
    from jaxtut import plots

    if tutorial.plot == "fit":
        from jaxtut.tutorial_data import tutorial_data

        x, y = tutorial_data(config).train
        plots.plot_fit(result, x, y, path)
    else:
        plots.plot_losses([result], path)


def write_run(outputs: Outputs, tutorial: Any, config: Any, result: Any) -> list[str]:
    """``run``: the result as JSON, its plot, its parameters (safetensors); the paths written."""
    written = []
    if "--json" in outputs:
        with outputs.writing("--json") as path:
            write_json(path, result.to_json())
        written.append("--json")
    if "--plot" in outputs:
        with outputs.writing("--plot") as path:
            plot_run(tutorial, config, result, path)
        written.append("--plot")
    if "--save" in outputs:
        from jaxtut.checkpoint import save_params

        with outputs.writing("--save") as path:
            metadata = {
                "tutorial": tutorial.id,
                "framework": result.framework,
                "dtype": config.dtype,
            }
            save_params(path, result.params, metadata=metadata)
        written.append("--save")
    return [str(outputs.paths[flag]) for flag in written]


def write_seeds(outputs: Outputs, sweep: Any) -> list[str]:
    """``run --seeds``: the summary and every seed's result as JSON, the overlaid loss curves."""
    written = []
    if "--json" in outputs:
        with outputs.writing("--json") as path:
            write_json(path, sweep.to_json())
        written.append("--json")
    if "--plot" in outputs:
        from jaxtut import plots

        with outputs.writing("--plot") as path:
            plots.plot_losses(sweep.results, path)
        written.append("--plot")
    return [str(outputs.paths[flag]) for flag in written]


def write_parity(outputs: Outputs, pair: Any, checks: Any) -> list[str]:
    """``parity``: both runs and the verdicts as JSON, the two loss curves."""
    written = []
    if "--json" in outputs:
        from jaxtut.parity import parity_json

        with outputs.writing("--json") as path:
            write_json(path, parity_json(pair, checks))
        written.append("--json")
    if "--plot" in outputs:
        from jaxtut import plots

        with outputs.writing("--plot") as path:
            plots.plot_losses([pair.jax, pair.torch], path)
        written.append("--plot")
    return [str(outputs.paths[flag]) for flag in written]


COMPARE_SUFFIXES = (".json", ".md", ".png")


def compare_outputs(path: Any) -> Outputs:
    """``compare --report PATH``: ``PATH.json``, ``PATH.md`` and ``PATH.png``, checked up front."""
    from pathlib import Path

    base = None if path is None else Path(path).with_suffix("")
    return Outputs({s: None if base is None else base.with_suffix(s) for s in COMPARE_SUFFIXES})


def write_compare(outputs: Outputs, report: Any) -> list[str]:
    """``compare``: the report as JSON and Markdown, and its PNG once tier 3 ran."""
    from jaxtut.io import write_text

    for suffix in COMPARE_SUFFIXES:
        if suffix not in outputs or (suffix == ".png" and report.series is None):
            continue
        with outputs.writing(suffix) as path:
            if suffix == ".json":
                write_json(path, report.to_json())
            elif suffix == ".md":
                write_text(path, report.to_markdown())
            else:
                report.plot(path)
    return [str(p) for p in outputs.written]
