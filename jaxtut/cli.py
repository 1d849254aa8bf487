"""The ``jaxtut`` command: argparse and rich over the library; it parses and prints.

Commands: ``list``, ``run``, ``parity``, ``compare``, ``tour`` and ``bench`` (see ``jaxtut COMMAND
--help``). ``run`` and ``parity`` also scale out (``docs/scaling.md``): ``--seeds K`` trains K seeds
in one program, ``--devices N`` splits every batch over N devices, and ``--coordinator HOST:PORT
--num-processes P --process-id I`` makes the command one of P processes of a data-parallel run
(only process 0 prints and writes files). Every user error (:class:`~jaxtut.errors.JaxtutError`,
a bad option) prints one line and exits 2; a diverged run, a run that learned nothing or a failed
check exits 1; Ctrl-C exits 130 and SIGTERM 143. Output paths are checked before any work and
written only once a command has succeeded, each atomically.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from jaxtut import artifacts, budget, registry
from jaxtut.checkpoint import load_params
from jaxtut.errors import ConfigError, JaxtutError, Terminated
from jaxtut.io import Outputs, check_report_dir
from jaxtut.launch import Launch, run_benchmarks
from jaxtut.options import key_value, non_negative_int, output_path, positive_float, positive_int

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# SIGTERM exits 128 + 15 like any program it ends (shells, timeout(1), systemd and Kubernetes read
# the signal from it); 130 would claim a Ctrl-C that never happened. Cleanup is the same.
EXIT_TERMINATED = 143
MAX_SEED_ROWS = 20


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (no usage dump) and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"jaxtut: error: {message} (see 'jaxtut --help')\n")


def _console(quiet: bool = False):
    from rich.console import Console

    # Piped output (make demo, CI logs) has no terminal width; 80 columns would crush the tables.
    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, quiet=quiet, width=width)


def _error(message: str) -> None:
    """One unwrapped line on stderr (rich would wrap it at the terminal width)."""
    print(" ".join(message.split()), file=sys.stderr, flush=True)


def _config(args: argparse.Namespace, tutorial: registry.Tutorial):
    """The tutorial's default config with the options the user gave (others left as defaults)."""
    names = ("seed", "dtype", "device", "epochs", "lr", "batch_size", "data_dir")
    given = {name: getattr(args, name, None) for name in (*names, "optimizer", "scheduler")}
    for flag, name in (("opt", "optimizer_options"), ("sched", "scheduler_options")):
        if getattr(args, flag, None):
            given[name] = tuple(getattr(args, flag))
    try:
        return tutorial.default_config(**given)
    except ConfigError as err:
        raise ConfigError(f"{tutorial.id}: {err}") from None


def _describe(config) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.to_dict().items() if v not in (None, ()))


def _progress(console, label: str) -> Callable[[int, int, float], None]:
    start = time.perf_counter()

    def report(done: int, total: int, loss: float) -> None:
        elapsed = time.perf_counter() - start
        console.print(f"  {label}: epoch {done}/{total}  loss {loss:.4f}  ({elapsed:.1f} s)")

    return report


def _wrote(console, paths: list[str]) -> None:
    for path in paths:
        console.print(f"  wrote {path}")


# --- list and run ---------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    table = Table(title="jaxtut tutorials", show_lines=False)
    for column in ("id", "what it does", "source"):
        table.add_column(column, style="bold" if column == "id" else None)
    for t in registry.TUTORIALS.values():
        sources = "; ".join(registry.SOURCES[s] for s in t.source.split("+"))
        table.add_row(t.id, t.summary, sources)
    _console().print(table)
    return EXIT_OK


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
    launch = Launch.from_args(args)
    primary, mesh = launch.prepare(tutorial, config, args.framework)
    init = load_params(args.init)[0] if args.init else None
    console = _console(quiet=not primary)
    if args.seeds:
        return _run_seeds(args, tutorial, config, console, mesh)
    console.print(f"[bold]{tutorial.id}[/bold] ({args.framework}): {_describe(config)}")
    progress = _progress(console, args.framework)
    if args.framework == "torch" and launch.multi_process:
        from jaxtut.torch_ref.distributed import run_ddp

        result = run_ddp(tutorial.id, config, init, progress=progress)
    else:
        result = tutorial.run(
            args.framework, config, init_params=init, progress=progress, mesh=mesh
        )
    if failure := budget.failure(tutorial, config, [result]):
        if primary:
            _error(failure)
        return EXIT_FAIL
    timing = f"{result.wall_time_s:.3f} s"
    if result.compile_time_s:
        timing += f" (+ {result.compile_time_s:.2f} s compile)"
    metrics = ", ".join(f"{k} {v:.6g}" for k, v in result.metrics.items())
    console.print(f"  result: {metrics}")
    if len(result.losses):
        console.print(f"  final loss {result.losses[-1]:.6g} after {len(result.losses)} steps")
    console.print(f"  time: {timing} on {result.device}")
    if primary:
        _wrote(console, artifacts.write_run(args.outputs, tutorial, config, result))
    return EXIT_OK


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
    if failure := budget.failure(tutorial, config, sweep.results, sweep.seeds):
        if not console.quiet:
            _error(failure)
        return EXIT_FAIL
    if not console.quiet:
        _wrote(console, artifacts.write_seeds(args.outputs, sweep))
    return EXIT_OK


def _print_seeds(console, sweep) -> None:
    from rich.table import Table

    columns, rows, stats = sweep.table(MAX_SEED_ROWS)
    table = Table()
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    table.add_section()
    for row in stats:
        table.add_row(*row, style="bold")
    console.print(table)
    console.print(f"  time: {sweep.timing()}")


# --- parity and compare -----------------------------------------------------------------------


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
    launch = Launch.from_args(args)
    primary, mesh = launch.prepare(tutorial, config, "parity")
    console = _console(quiet=not primary)
    # The header names what runs: --steps on a full-batch tutorial trains that many epochs.
    full_batch = work.batch_slots == 0
    shown = config.replace(epochs=args.steps) if full_batch and args.steps else config
    first = f"; the first {args.steps} steps" if args.steps and not full_batch else ""
    console.print(f"[bold]{tutorial.id}[/bold] parity, {_describe(shown)}{first}")
    if launch.multi_process:
        from jaxtut.distributed import parity_across_processes

        pair, checks = parity_across_processes(tutorial.id, config, steps=args.steps, launch=launch)
    else:
        from jaxtut.parity import parity

        pair, checks = parity(tutorial.id, config, steps=args.steps, mesh=mesh)
    _print_parity(console, pair, checks)
    if primary:
        _wrote(console, artifacts.write_parity(args.outputs, pair, checks))
    return EXIT_OK if all(c.passed for c in checks) else EXIT_FAIL


def _print_parity(console, pair, checks) -> None:
    from rich.table import Table

    from jaxtut.parity import loss_rows

    table = Table()
    for col in ("", "JAX loss", "torch loss", "abs diff", "rel diff"):
        table.add_column(col, justify="right")
    for label, a, b in loss_rows(pair):
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
    console.print(f"[bold]{'PASS' if all(c.passed for c in checks) else 'FAIL'}[/bold]")


def cmd_compare(args: argparse.Namespace) -> int:
    from jaxtut.pairfile import load_pair

    args.outputs = artifacts.compare_outputs(args.report)
    kwargs = load_pair(args.pair)
    for name in ("dtype", "epochs", "seeds"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    console = _console()
    model, port, data = (kwargs.pop(n) for n in ("model", "port", "data"))
    console.print(f"[bold]{kwargs['name']}[/bold] compare, {kwargs.get('dtype', 'float64')}")
    from jaxtut.harness import compare

    report = compare(
        model, port, data, progress=lambda i, n: console.print(f"  step {i}/{n}"), **kwargs
    )
    _print_compare(console, report)
    bad = report.first_failure
    if bad is not None and bad.tier == 0:  # the pair itself does not fit together: bad input
        raise ConfigError(f"{args.pair}: {bad.where}")
    _wrote(console, artifacts.write_compare(args.outputs, report))
    return EXIT_OK if report.passed else EXIT_FAIL


def _print_compare(console, report) -> None:
    from rich.table import Table

    table = Table()
    for col in ("tier", "check", "verdict", "measured", "tolerance", "where"):
        table.add_column(col)
    for row in report.rows():
        table.add_row(*row, style=None if row[2] == "PASS" else "red")
    console.print(table)
    console.print(f"[bold]{report.verdict}[/bold] ({report.seconds:.1f} s)")


# --- tour and bench ---------------------------------------------------------------------------


def cmd_tour(args: argparse.Namespace) -> int:
    from jaxtut.tour import run_tour

    out = check_report_dir(args.out)  # the tour replaces the whole folder: check it first
    return run_tour(out, data_dir=args.data_dir, console=_console())


def cmd_bench(args: argparse.Namespace) -> int:
    return run_benchmarks(args.bench_argv)


def _common(p) -> None:
    """The options of ``run`` and ``parity``."""
    p.add_argument("tutorial", help="tutorial id (see 'jaxtut list')")
    p.add_argument("--seed", type=non_negative_int)
    p.add_argument("--dtype", choices=("float32", "float64"))
    p.add_argument("--device", choices=("cpu", "gpu"))
    p.add_argument("--data-dir", help="folder with the four MNIST IDX files")
    p.add_argument("--json", type=output_path, help="write the result as JSON")
    p.add_argument("--plot", type=output_path, help="write a PNG (loss curve or fitted line)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--optimizer", help="sgd (default), adam, adamw, adagrad, rmsprop, adadelta")
    p.add_argument("--opt", type=key_value, action="append", metavar="KEY=VALUE",
                   help="an optimizer option (torch's name), e.g. weight_decay=0.01")  # fmt: skip
    p.add_argument("--scheduler", help="step, multistep, exponential, cosine, linear, onecycle")
    p.add_argument("--sched", type=key_value, action="append", metavar="KEY=VALUE",
                   help="a scheduler option (torch's name), e.g. gamma=0.7")  # fmt: skip
    p.add_argument("--devices", type=positive_int, help="JAX: split every batch over N devices")
    p.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address (every process)")
    p.add_argument("--num-processes", type=positive_int, metavar="P", help="processes in the run")
    p.add_argument("--process-id", type=non_negative_int, metavar="I", help="this process, 0..P-1")
    p.add_argument(
        "--distributed", action="store_true", help="join a run set up by the environment"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxtut", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the tutorials").set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="train a tutorial in one framework")
    _common(p)
    p.add_argument("--framework", choices=("jax", "torch"), default="jax")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--save", type=output_path, help="write the trained parameters (safetensors)")
    p.add_argument("--init", type=Path, help="start from parameters saved with --save")
    p.add_argument("--seeds", type=positive_int, metavar="K", help="train K seeds in one program")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("parity", help="run JAX and torch side by side and compare every step")
    _common(p)
    p.add_argument("--steps", type=positive_int, help="compare only the first N steps")
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("compare", help="check your own torch model and JAX port (docs/compare.md)")
    p.add_argument(
        "pair", type=Path, help="a pair file defining model, port, data, loss, optimizer"
    )
    p.add_argument("--dtype", choices=("float32", "float64"))
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--seeds", type=positive_int, metavar="K", help="also tier 4 over K seeds")
    p.add_argument("--report", type=output_path, help="write PATH.json, PATH.md and PATH.png")
    p.set_defaults(func=cmd_compare)

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
    from jaxtut.signals import sigterm_as_interrupt

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_argv = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with sigterm_as_interrupt():
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


if __name__ == "__main__":
    sys.exit(main())
