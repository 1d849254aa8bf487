"""The ``jaxtut`` command: a thin layer of argparse and rich over the library.

Commands: ``list``, ``run``, ``parity`` and ``tour`` (see ``jaxtut COMMAND --help``). ``run`` and
``parity`` also scale out (``docs/scaling.md``): ``--seeds K`` trains K seeds in one program,
``--devices N`` splits every batch over N devices, and ``--coordinator HOST:PORT --num-processes P
--process-id I`` makes the command one of P processes of a data-parallel run (only process 0
prints and writes files). Every user error (:class:`~jaxtut.errors.JaxtutError`, a bad option)
prints one line and exits 2; a diverged run or a failed parity check exits 1; Ctrl-C exits 130.
Output files are written only once a command has succeeded, each atomically, so an interrupted
command leaves none behind.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxtut import budget, registry
from jaxtut.errors import ConfigError, JaxtutError, Terminated
from jaxtut.io import Outputs, check_report_dir, write_json
from jaxtut.result import RunResult

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# SIGTERM exits 128 + 15 like any program it ends (shells, timeout(1), systemd and Kubernetes read
# the signal from it); 130 would claim a Ctrl-C that never happened. Cleanup is the same.
EXIT_TERMINATED = 143

# Tutorials whose result is best pictured as a fitted line over the data.
FIT_PLOTS = ("linreg_scratch", "linreg_linear", "linreg_make_regression", "perceptron")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (no usage dump) and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"jaxtut: error: {message} (see 'jaxtut --help')\n")


def _console(quiet: bool = False):
    from rich.console import Console

    # Piped output (make demo, CI logs) has no terminal width; 80 columns would crush the tables.
    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, quiet=quiet, width=width)


# --- Options --------------------------------------------------------------------------------


def _checked(cast: Callable, ok: Callable, expected: str, out_of_range: str | None = None):
    """An argparse ``type``: ``cast(text)``, then ``ok(value)``, each failure one clear line."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {out_of_range or expected}, got {text!r}")
        return value

    return parse


positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _checked(int, lambda v: v >= 0, "a non-negative integer")


def output_path(text: str) -> Path:
    """An argparse ``type`` for an output file: an empty path or a folder path is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a file path, got {text!r}")
    if text.endswith(os.sep):  # Path() would drop the slash and write a file named like the folder
        raise argparse.ArgumentTypeError(f"expected a file path, not a folder, got {text!r}")
    return Path(text)


positive_float = _checked(
    float, lambda v: np.isfinite(v) and v > 0, "a positive number", "a positive finite number"
)


def _config(args: argparse.Namespace, tutorial: registry.Tutorial):
    """The tutorial's default config with the options the user gave (others left as defaults)."""
    given = {
        "seed": args.seed,
        "dtype": args.dtype,
        "device": getattr(args, "device", None),
        "epochs": getattr(args, "epochs", None),
        "lr": getattr(args, "lr", None),
        "batch_size": getattr(args, "batch_size", None),
        "data_dir": getattr(args, "data_dir", None),
    }
    try:
        return tutorial.default_config(**given)
    except ConfigError as err:
        raise ConfigError(f"{tutorial.id}: {err}") from None


# --- list -------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    table = Table(title="jaxtut tutorials", show_lines=False)
    table.add_column("id", style="bold")
    table.add_column("what it does")
    table.add_column("source")
    for t in registry.TUTORIALS.values():
        sources = "; ".join(registry.SOURCES[s] for s in t.source.split("+"))
        table.add_row(t.id, t.summary, sources)
    _console().print(table)
    return EXIT_OK


# --- run --------------------------------------------------------------------------------------


def _progress_callback(console, label: str) -> Callable[[int, int, float], None]:
    start = time.perf_counter()

    def report(done: int, total: int, loss: float) -> None:
        console.print(
            f"  {label}: epoch {done}/{total}  loss {loss:.4f}  "
            f"({time.perf_counter() - start:.1f} s)"
        )

    return report


def _run(tutorial, framework: str, config, **kwargs) -> RunResult:
    """Runs one side, passing only the keyword arguments its run function accepts."""
    module = tutorial.jax_module() if framework == "jax" else tutorial.torch_module()
    fn = getattr(module, tutorial.function)
    accepted = inspect.signature(fn).parameters
    return fn(config, **{k: v for k, v in kwargs.items() if k in accepted and v is not None})


def _check_device(config, framework: str) -> None:
    """Fails early, with the devices that do exist, when the requested device is absent."""
    if framework == "jax":
        from jaxtut.runtime import resolve_jax_device

        resolve_jax_device(config.device)
    else:
        from jaxtut.torch_ref._common import torch_device

        torch_device(config.device)


def _metrics_line(result: RunResult) -> str:
    parts = []
    for k, v in result.metrics.items():
        parts.append(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}")
    return ", ".join(parts)


def cmd_run(args: argparse.Namespace) -> int:
    tutorial = registry.get(args.tutorial)
    config = _config(args, tutorial)
    if args.plot and not tutorial.trains and tutorial.id != "autograd":
        raise ConfigError(f"{tutorial.id} has no loss curve or fit to plot; drop --plot")
    if (args.save or args.init) and not tutorial.trains:
        raise ConfigError(f"{tutorial.id} has no trained parameters; drop --save/--init")
    # Outputs and size first: both are checked in well under a second, before torch loads.
    args.outputs = Outputs({"--json": args.json, "--plot": args.plot, "--save": args.save})
    budget.check_work(tutorial, config, framework=args.framework, seeds=args.seeds or 1)
    if args.framework == "torch":
        tutorial.torch_module()  # a missing torch is reported before any work
    _check_scaling(args, tutorial, args.framework)
    primary = _join_processes(args, args.framework)
    _check_device(config, args.framework)
    mesh = _mesh(args, config) if args.framework == "jax" else None
    init = None
    if args.init:
        from jaxtut.checkpoint import load_params

        init, _ = load_params(args.init)

    console = _console(quiet=not primary)
    if args.seeds:
        return _run_seeds(args, tutorial, config, console, mesh)
    console.print(f"[bold]{tutorial.id}[/bold] ({args.framework}): {_describe(config)}")
    progress = _progress_callback(console, args.framework)
    if args.framework == "torch" and _distributed(args):
        from jaxtut.torch_ref.distributed import run_ddp

        result = run_ddp(tutorial.id, config, init, progress=progress)
    else:
        from jaxtut.train import data_parallel

        with data_parallel(mesh):
            result = _run(tutorial, args.framework, config, init_params=init, progress=progress)
    if result.diverged:
        if primary:
            _error(
                f"jaxtut: {tutorial.id} diverged at step {result.diverged_at} "
                f"(loss {result.losses[result.diverged_at]}); try a smaller --lr"
            )
        return EXIT_FAIL
    if _learned_nothing(tutorial, config, [result], primary):
        return EXIT_FAIL
    timing = f"{result.wall_time_s:.3f} s"
    if result.compile_time_s:
        timing += f" (+ {result.compile_time_s:.2f} s compile)"
    console.print(f"  result: {_metrics_line(result)}")
    if len(result.losses):
        console.print(f"  final loss {result.losses[-1]:.6g} after {len(result.losses)} steps")
    console.print(f"  time: {timing} on {result.device}")
    if primary:
        _write_outputs(args, tutorial, config, result, console)
    return EXIT_OK


# --- Scaling out: seeds, devices, processes -------------------------------------------------


def _distributed(args: argparse.Namespace) -> bool:
    """Whether the command is one process of a multi-process run."""
    return bool(
        getattr(args, "distributed", False)
        or any(
            getattr(args, name, None) is not None
            for name in ("coordinator", "num_processes", "process_id")
        )
    )


def _check_scaling(args: argparse.Namespace, tutorial, framework: str) -> None:
    """Rejects combinations of --seeds, --devices and the distributed options that cannot work.

    Runs before JAX or torch start, so a bad command line costs nothing.
    """
    seeds, devices = getattr(args, "seeds", None), getattr(args, "devices", None)
    distributed = _distributed(args)
    used = [
        flag
        for flag, on in (
            ("--seeds", seeds),
            ("--devices", devices),
            ("--num-processes", distributed),
        )
        if on
    ]
    if used and not tutorial.trains:
        raise ConfigError(f"{tutorial.id} is not a training tutorial; drop {' and '.join(used)}")
    if distributed:
        from jaxtut.distributed import initialize_checks

        initialize_checks(args.coordinator, args.num_processes, args.process_id)
    if framework == "torch":
        if devices:
            raise ConfigError(
                "--devices splits the JAX program over devices; the torch reference runs "
                "data-parallel as processes (--coordinator, --num-processes, --process-id)"
            )
        if seeds and distributed:
            raise ConfigError(
                "torch runs --seeds one after another in one process; drop the distributed options"
            )
        if distributed:
            from jaxtut.torch_ref.distributed import check_supported

            check_supported(tutorial.id)
            given = [
                getattr(args, n) is not None for n in ("coordinator", "num_processes", "process_id")
            ]
            if any(given) and not all(given):
                raise ConfigError(
                    "the torch run needs all of --coordinator, --num-processes and --process-id "
                    "(or none, with --distributed, to read torchrun's MASTER_ADDR, MASTER_PORT, "
                    "WORLD_SIZE and RANK)"
                )
    if seeds and getattr(args, "init", None):
        raise ConfigError("--seeds draws each seed's own initial parameters; drop --init")
    if seeds and getattr(args, "save", None):
        raise ConfigError(
            "--save writes one model; with --seeds, --json holds every seed's final parameters"
        )


def _join_processes(args: argparse.Namespace, framework: str) -> bool:
    """Joins the distributed run when asked (before JAX starts); True in the primary process."""
    if not _distributed(args):
        return True
    if framework == "torch":
        from jaxtut.torch_ref.distributed import init_process_group

        rank, _ = init_process_group(args.coordinator, args.num_processes, args.process_id)
        return rank == 0
    from jaxtut.distributed import initialize

    rank, _ = initialize(args.coordinator, args.num_processes, args.process_id)
    return rank == 0


def _mesh(args: argparse.Namespace, config):
    """The data-parallel mesh that --devices or the distributed options ask for, else None."""
    devices = getattr(args, "devices", None)
    if devices is None and not _distributed(args):
        return None
    from jaxtut.scaling import device_mesh

    return device_mesh(devices, device=config.device)


def _run_seeds(args: argparse.Namespace, tutorial, config, console, mesh) -> int:
    """``run --seeds K``: K seeds (one program in JAX), a per-seed table and a summary."""
    from jaxtut import scaling

    seeds = scaling.seed_list(config, args.seeds)
    how = "in one program" if args.framework == "jax" else "one after another"
    console.print(
        f"[bold]{tutorial.id}[/bold] ({args.framework}): {_describe(config)}; "
        f"{len(seeds)} seeds ({seeds[0]}..{seeds[-1]}) {how}"
    )
    sweep = scaling.run_seeds(tutorial.id, config, seeds, framework=args.framework, mesh=mesh)
    _print_seeds(console, sweep)
    diverged = [s for s, r in zip(sweep.seeds, sweep.results, strict=True) if r.diverged]
    if diverged:
        if not console.quiet:
            _error(f"jaxtut: {tutorial.id} diverged for seeds {diverged}; try a smaller --lr")
        return EXIT_FAIL
    if _learned_nothing(tutorial, config, sweep.results, not console.quiet, sweep.seeds):
        return EXIT_FAIL
    if not console.quiet:
        outputs = args.outputs
        if "--json" in outputs:
            with outputs.writing("--json") as path:
                write_json(path, sweep.to_json())
            console.print(f"  wrote {args.json}")
        if "--plot" in outputs:
            from jaxtut import plots

            with outputs.writing("--plot") as path:
                plots.plot_losses(sweep.results, path)
            console.print(f"  wrote {args.plot}")
    return EXIT_OK


def _learned_nothing(tutorial, config, results, primary: bool, seeds=None) -> bool:
    """Reports (exit 1, like a divergence) runs whose accuracy is no better than chance."""
    failed = budget.learned_nothing(tutorial, config, results)
    if failed and primary:
        if seeds is None:
            _error(f"jaxtut: {failed[0][1]}; try a smaller --lr")
        else:
            which = [seeds[i] for i, _ in failed]
            _error(f"jaxtut: {failed[0][1]} (seeds {which}); try a smaller --lr")
    return bool(failed)


MAX_SEED_ROWS = 20


def _print_seeds(console, sweep) -> None:
    from rich.table import Table

    from jaxtut.scaling import LAST_EPOCH_LOSS

    names = list(sweep.summary)
    table = Table()
    table.add_column("seed", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    rows = list(zip(sweep.seeds, sweep.results, strict=True))
    # Thousands of rows cost seconds to lay out and nobody reads them: show both ends; --json
    # holds every seed.
    shown = rows if len(rows) <= MAX_SEED_ROWS else [*rows[:10], None, *rows[-10:]]
    for row in shown:
        if row is None:
            table.add_row(f"({len(rows) - 20} more)", *("..." for _ in names))
            continue
        seed, r = row
        values = [
            r.epoch_metrics["loss"][-1] if n == LAST_EPOCH_LOSS else r.metrics[n] for n in names
        ]
        table.add_row(str(seed), *(f"{v:.6g}" for v in values))
    table.add_section()
    for stat in ("mean", "std", "min", "max"):
        table.add_row(stat, *(f"{sweep.summary[n][stat]:.6g}" for n in names), style="bold")
    console.print(table)
    timing = f"{sweep.wall_time_s:.3f} s training"
    if sweep.compile_time_s:
        timing += f" + {sweep.compile_time_s:.2f} s compile"
    console.print(
        f"  time: {timing}, {sweep.total_time_s:.2f} s in all (data preparation included) "
        f"on {sweep.device}"
    )


def _describe(config) -> str:
    d = config.to_dict()
    return ", ".join(f"{k}={v}" for k, v in d.items() if v is not None)


def _write_outputs(args, tutorial, config, result: RunResult, console) -> None:
    """--json, --plot, --save: each written atomically, only after a successful run."""
    outputs = args.outputs
    if "--json" in outputs:
        with outputs.writing("--json") as path:
            write_json(path, result.to_json())
        console.print(f"  wrote {args.json}")
    if "--plot" in outputs:
        with outputs.writing("--plot") as path:
            _plot_result(tutorial, config, result, path)
        console.print(f"  wrote {args.plot}")
    if "--save" in outputs:
        from jaxtut.checkpoint import save_params

        with outputs.writing("--save") as path:
            save_params(
                path,
                result.params,
                metadata={
                    "tutorial": tutorial.id,
                    "framework": result.framework,
                    "dtype": config.dtype,
                },
            )
        console.print(f"  wrote {args.save}")


def _plot_result(tutorial, config, result: RunResult, path) -> None:
    from jaxtut import plots

    if tutorial.id in FIT_PLOTS:
        from jaxtut.tutorial_data import tutorial_data

        x, y = tutorial_data(config).train
        plots.plot_fit(_with_line(result, x), x, y, path)
    else:
        plots.plot_losses([result], path)


def _with_line(result: RunResult, x) -> RunResult:
    """``result`` with ``extras["line"]`` for a one-input linear model of any layer name.

    ``plots.line_from_result`` knows the layers named ``linear`` and ``w``; the perceptron's is
    ``fc1``, which made ``run perceptron --plot`` fail after training.
    """
    weights = [k for k in result.params if k.endswith("weight")]
    if "line" in result.extras or len(weights) != 1 or np.size(result.params[weights[0]]) != 1:
        return result
    w = float(np.asarray(result.params[weights[0]]).reshape(()))
    bias = result.params.get(weights[0].removesuffix("weight") + "bias")
    b = 0.0 if bias is None else float(np.asarray(bias).reshape(()))
    xs = np.sort(np.asarray(x, dtype=np.float64).reshape(-1))
    line = {"x": xs, "prediction": xs * w + b}
    return dataclasses.replace(result, extras={**result.extras, "line": line})


# --- parity -----------------------------------------------------------------------------------


def _truncate(plan, steps: int):
    """The first ``steps`` steps of a plan (across epochs), as a one-epoch plan."""
    from jaxtut.data.batching import BatchPlan

    total = plan.epochs * plan.steps_per_epoch
    if steps > total:
        raise ConfigError(f"--steps {steps} exceeds the run's {total} steps")
    idx = plan.idx.reshape(total, -1)[:steps][None]
    mask = plan.mask.reshape(total, -1)[:steps][None]
    return BatchPlan(idx=np.ascontiguousarray(idx), mask=np.ascontiguousarray(mask))


def parity(tutorial_id: str, config, *, steps: int | None = None, torch_config=None):
    """Runs both frameworks from the same init on the same batches and judges the result.

    Args:
      tutorial_id: a training tutorial.
      config: the shared config.
      steps: stop after this many steps (``None``: the full run).
      torch_config: a different config for the torch side (to demonstrate a failure).

    Returns:
      ``(pair, checks)``: the two runs and the parity suite's tier-3 comparisons for the dtype.
    """
    from jaxtut.parity import check_pair, run_pair
    from jaxtut.tutorial_data import tutorial_data

    plans = None
    if steps is not None:
        if tutorial_data(config).plan is None:  # full batch: one step per epoch
            config = config.replace(epochs=steps)
            torch_config = torch_config and torch_config.replace(epochs=steps)
        else:
            plans = lambda plan: (_truncate(plan, steps), _truncate(plan, steps))  # noqa: E731
    pair = run_pair(tutorial_id, config, torch_config=torch_config, plans=plans)
    return pair, check_pair(pair, config.dtype)


def _rows(pair, max_rows: int = 20) -> list[tuple[str, float, float]]:
    """Per-step rows for short runs, else per-epoch rows, thinned to about ``max_rows``."""
    steps = len(pair.jax.losses)
    if steps <= max_rows:
        pairs = zip(pair.jax.losses, pair.torch.losses, strict=True)
        return [(f"step {i}", a, b) for i, (a, b) in enumerate(pairs)]
    ja, ta = pair.jax.epoch_metrics["loss"], pair.torch.epoch_metrics["loss"]
    label = "epoch"
    if len(ja) == 1:  # one long epoch: sample steps instead
        ja, ta, label = pair.jax.losses, pair.torch.losses, "step"
    keep = np.unique(np.linspace(0, len(ja) - 1, min(max_rows, len(ja))).astype(int))
    return [(f"{label} {i}", ja[i], ta[i]) for i in keep]


def cmd_parity(args: argparse.Namespace) -> int:
    tutorial = registry.get(args.tutorial)
    if not tutorial.trains:
        raise ConfigError(
            f"{tutorial.id} is not a training tutorial; its op-by-op parity is in "
            f"parity_tests/test_{tutorial.id}.py"
        )
    config = _config(args, tutorial)
    args.outputs = Outputs({"--json": args.json, "--plot": args.plot})
    work = budget.check_work(tutorial, config, framework="parity", parity_steps=args.steps)
    tutorial.torch_module()
    _check_scaling(args, tutorial, "jax")
    distributed = _distributed(args)
    if distributed:
        from jaxtut.distributed import coordinator_host
        from jaxtut.torch_ref.distributed import check_supported

        check_supported(tutorial.id)
        host = coordinator_host(args.coordinator)
        if host is None:
            raise ConfigError(
                "parity across processes needs --coordinator HOST:PORT (or "
                "JAX_COORDINATOR_ADDRESS): process 0's host also serves PyTorch's rendezvous"
            )
    primary = _join_processes(args, "jax")
    _check_device(config, "jax")
    _check_device(config, "torch")
    console = _console(quiet=not primary)
    # The header names what runs: --steps on a full-batch tutorial trains that many epochs.
    full_batch = work.batch_slots == 0
    shown = config.replace(epochs=args.steps) if full_batch and args.steps else config
    first = f"; the first {args.steps} steps" if args.steps and not full_batch else ""
    console.print(f"[bold]{tutorial.id}[/bold] parity, {_describe(shown)}{first}")
    if distributed:
        from jaxtut.distributed import run_parity, shared_port
        from jaxtut.parity import check_pair
        from jaxtut.tutorial_data import tutorial_data

        plan = None
        if args.steps is not None and full_batch:
            config = shown
        elif args.steps is not None:
            plan = _truncate(tutorial_data(config).plan, args.steps)
        address = f"{host}:{shared_port(host)}"
        pair = run_parity(
            tutorial.id, config, plan=plan, torch_address=address, devices=args.devices
        )
        checks = check_pair(pair, config.dtype)
    else:
        from jaxtut.train import data_parallel

        with data_parallel(_mesh(args, config)):
            pair, checks = parity(tutorial.id, config, steps=args.steps)
    _print_parity(console, pair, checks)
    passed = all(c.passed for c in checks)
    if primary and "--json" in args.outputs:
        with args.outputs.writing("--json") as path:
            write_json(path, _parity_json(pair, checks))
    if primary and "--plot" in args.outputs:
        from jaxtut import plots

        with args.outputs.writing("--plot") as path:
            plots.plot_losses([pair.jax, pair.torch], path)
    return EXIT_OK if passed else EXIT_FAIL


def _print_parity(console, pair, checks) -> None:
    from rich.table import Table

    table = Table()
    for col in ("", "JAX loss", "torch loss", "abs diff", "rel diff"):
        table.add_column(col, justify="right")
    for label, a, b in _rows(pair):
        diff = abs(a - b)
        rel = diff / max(abs(a), abs(b), np.finfo(np.float64).tiny)
        table.add_row(label, f"{a:.10g}", f"{b:.10g}", f"{diff:.2e}", f"{rel:.2e}")
    console.print(table)
    console.print(f"JAX on {pair.jax.device}, torch on {pair.torch.device}")
    params = pair.params(np.inf)
    console.print(f"final params: max abs diff {params.max_abs:.3e} ({params.where})")
    for c in checks:
        colour = "green" if c.passed else "red"
        console.print(f"[{colour}]{c}[/{colour}]")
    verdict = "PASS" if all(c.passed for c in checks) else "FAIL"
    console.print(f"[bold]{verdict}[/bold]")


def _parity_json(pair, checks) -> dict[str, Any]:
    return {
        "tutorial": pair.tutorial,
        "config": pair.config.to_dict(),
        "passed": all(c.passed for c in checks),
        "checks": [
            {
                "name": c.name,
                "max_abs": c.max_abs,
                "max_rel": c.max_rel,
                "tolerance": c.tolerance,
                "passed": c.passed,
                "where": c.where,
            }
            for c in checks
        ],
        "jax": pair.jax.to_json(),
        "torch": pair.torch.to_json(),
    }


# --- tour -------------------------------------------------------------------------------------


def cmd_tour(args: argparse.Namespace) -> int:
    from jaxtut.tour import run_tour

    out = check_report_dir(args.out)  # the tour replaces the whole folder: check it first
    return run_tour(out, data_dir=args.data_dir, console=_console())


# --- main -------------------------------------------------------------------------------------


# --- bench ------------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    """Runs the source tree's benchmarks (not shipped in a wheel), forwarding the arguments."""
    import jaxtut

    root = Path(jaxtut.__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__init__.py").is_file():
        raise JaxtutError(
            f"'jaxtut bench' needs the repository's benchmarks/ folder, which is not next to "
            f"this installation ({root}); run it from a source checkout (pip install -e .)"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import benchmarks

    return benchmarks.main(args.bench_argv)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxtut", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list the tutorials")
    p.set_defaults(func=cmd_list)

    def common(p):
        p.add_argument("tutorial", help="tutorial id (see 'jaxtut list')")
        p.add_argument("--seed", type=non_negative_int)
        p.add_argument("--dtype", choices=("float32", "float64"))
        p.add_argument("--device", choices=("cpu", "gpu"))
        p.add_argument("--data-dir", help="folder with the four MNIST IDX files")
        p.add_argument("--json", type=output_path, help="write the result as JSON")
        p.add_argument("--plot", type=output_path, help="write a PNG (loss curve or fitted line)")

    def scaling(p):
        p.add_argument(
            "--devices",
            type=positive_int,
            help="JAX: split every batch over N devices of one process (1-D mesh)",
        )
        p.add_argument(
            "--coordinator",
            metavar="HOST:PORT",
            help="one of several processes: process 0's address, the same in every process",
        )
        p.add_argument(
            "--num-processes", type=positive_int, metavar="P", help="processes in the run"
        )
        p.add_argument(
            "--process-id", type=non_negative_int, metavar="I", help="this process, 0..P-1"
        )
        p.add_argument(
            "--distributed",
            action="store_true",
            help="join a multi-process run configured by the environment "
            "(JAX_COORDINATOR_ADDRESS, SLURM, Open MPI; torchrun's variables for torch)",
        )

    p = sub.add_parser("run", help="train a tutorial in one framework")
    common(p)
    p.add_argument("--framework", choices=("jax", "torch"), default="jax")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--save", type=output_path, help="write the trained parameters (safetensors)")
    p.add_argument("--init", type=Path, help="start from parameters saved with --save")
    p.add_argument(
        "--seeds",
        type=positive_int,
        metavar="K",
        help="train K seeds (--seed .. --seed+K-1); JAX: in one vmapped program",
    )
    scaling(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("parity", help="run JAX and torch side by side and compare every step")
    common(p)
    p.add_argument("--steps", type=positive_int, help="compare only the first N steps")
    scaling(p)
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser(
        "bench",
        add_help=False,  # --help and every option go to the benchmarks' own parser
        help="time JAX (fused, stepwise) vs PyTorch vs NumPy; see 'jaxtut bench --help'",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("tour", help="every tutorial in both frameworks, with a report")
    p.add_argument("--out", default="reports/tour", help="report folder (default reports/tour)")
    p.add_argument("--data-dir", help="folder with the four MNIST IDX files")
    p.set_defaults(func=cmd_tour)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxtut`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_argv = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with _sigterm_as_interrupt():
            return args.func(args)
    except JaxtutError as e:
        if args.debug:
            raise
        _error(f"jaxtut: error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated)
        outputs = getattr(args, "outputs", None)
        note = outputs.interrupted_note() if outputs else "no output files were written"
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        _error(f"jaxtut: {what}; {note}")
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    except Exception as e:  # a bug, not a user error: say so, keep the traceback behind --debug
        if args.debug:
            raise
        _error(f"jaxtut: internal error: {type(e).__name__}: {e} (rerun with --debug)")
        return EXIT_FAIL


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a command runs, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt).

    So SIGTERM gets Ctrl-C's cleanup: temporaries removed, no partial output. Python prints and
    drops an exception raised while a gc callback or ``__del__`` runs (JAX registers a gc
    callback), which swallowed Ctrl-C and SIGTERM mid-run (the run went on); such a dropped
    interrupt is re-delivered at once, so it lands in the command itself. Only the main thread
    can install handlers (``main`` may be called from a test's worker thread); everything is
    restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    lock = threading.Lock()
    done = False

    def terminate(signum, frame):
        if not done:
            raise Terminated

    def resend(sig: int) -> None:
        with lock:
            if not done:
                os.kill(os.getpid(), sig)

    def unraisable(info) -> None:
        if not isinstance(info.exc_value, KeyboardInterrupt):
            previous_hook(info)
        elif not done:  # dropped: send it again, from a thread (a signal sent to oneself is
            # handled at once, inside this hook, and dropped again); it lands in the command
            sig = signal.SIGTERM if isinstance(info.exc_value, Terminated) else signal.SIGINT
            timer = threading.Timer(0.01, resend, (sig,))
            timer.daemon = True
            timer.start()

    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        with lock:
            done = True
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook


def _error(message: str) -> None:
    """One unwrapped line on stderr (rich would wrap it at the terminal width)."""
    print(" ".join(message.split()), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
