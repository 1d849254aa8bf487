"""Which loop strategy is fastest for each training tutorial: rolled scan, unrolled, step-wise.

For every training tutorial of the catalogue (its default config; MNIST tutorials one epoch) and
for ``mnist_cnn`` (a 64-step slice of an epoch), the same training step (the tutorial's loss,
``value_and_grad``, the experiment's optimizer in Optax, batches gathered on the device from the
shared plan; ``jaxtut.registry``'s experiments) is run by
:func:`jaxtut.loops.fit_epochs` with each :class:`~jaxtut.loops.LoopStrategy`:

* ``scan``: rolled ``lax.scan`` over steps (inside a rolled scan over epochs);
* ``unrolled xK``: ``unroll=K`` for each K of ``--unroll``;
* ``stepwise``: one compiled step per Python iteration, carry on the device.

Each run is compiled (fused: AOT, timed apart) and called once untimed, then timed with
:func:`benchmarks.timing.steady_samples` (medians; short runs are sampled for at least 0.2 s)
with every XLA compilation counted and forbidden during the repeats. Strategies are interleaved
repeat by repeat. The winner is the lowest median per step.

``--hlo ID`` prints, for that tutorial's rolled and unrolled programs, the instructions of the
step loop's body by opcode, which is where a fused step's fixed cost shows.

Usage::

  python -m benchmarks.loop_strategy [IDS...] [--repeats 5] [--unroll 4 16] [--hlo mlp_1_10_1]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import script
from benchmarks.timing import install_jax_hook, no_recompile, steady_samples
from jaxtut import registry
from jaxtut.loops import LoopStrategy, fit_epochs
from jaxtut.runtime import jax_runtime

CNN = "mnist_cnn"
CNN_STEPS = 64


def _catalogue_problem(tid: str, data_dir: str | None) -> dict[str, Any]:
    """The tutorial's step function, carry, per-step inputs and constants, from its experiment."""
    entry = registry.get(tid)
    overrides = {"data_dir": data_dir, "epochs": 1} if entry.uses_mnist else {}
    exp = entry.experiment(entry.default_config(**overrides))
    trainer = exp.jax
    dtype = jnp.dtype(exp.dtype)
    x, y = exp.train
    if np.issubdtype(y.dtype, np.integer):
        y = y.astype(np.int32)
    params = trainer.init(jax.random.key(exp.seed), dtype)
    opt = exp.optimizer.to_optax()
    if exp.plan is None:  # full batch: every step sees all samples
        xs, epochs, steps = None, exp.epochs, 1
    else:
        padded = not exp.plan.mask.all()
        xs = (exp.plan.idx.astype(np.int32), exp.plan.mask if padded else None)
        epochs, steps = exp.plan.epochs, exp.plan.steps_per_epoch

    def step(consts, carry, x_step):
        train_x, train_y = consts
        params, opt_state = carry
        if x_step is None:
            batch, mask = (train_x, train_y), None
        else:
            idx, mask = x_step
            batch = (train_x[idx], train_y[idx])  # gathered on the device
        value, grads = jax.value_and_grad(trainer.loss)(params, batch, mask)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (jax.tree.map(lambda p, u: p + u, params, updates), opt_state), value

    return {
        "step": step,
        "carry": (params, opt.init(params)),
        "xs": xs,
        "consts": (x, y),
        "epochs": epochs,
        "steps": steps,
    }


def _cnn_problem(data_dir: str | None) -> dict[str, Any]:
    """The MNIST CNN's first ``CNN_STEPS`` steps of an epoch, dropout masks drawn on device."""
    from jaxtut.data import shuffled_batches
    from jaxtut.tutorials import mnist_cnn as cnn

    x, y, _, _ = cnn.mnist_cnn_arrays(data_dir, "float32")
    plan = shuffled_batches(len(x), cnn.BATCH_SIZE, 1, 0)
    params = cnn.init(jax.random.key(0))
    opt = optax.sgd(0.01)
    numbers = np.arange(CNN_STEPS, dtype=np.int32)[None]
    idx = plan.idx[:, :CNN_STEPS].astype(np.int32)
    return {
        "step": cnn.make_train_step(opt),
        "carry": (params, opt.init(params)),
        "xs": (idx, None, numbers),
        "consts": (x, y, jax.random.key(0)),
        "epochs": 1,
        "steps": CNN_STEPS,
    }


def _runner(problem: dict[str, Any], strategy: LoopStrategy):
    """``(run, compile seconds)``: ``run()`` trains the whole problem once and waits."""
    step, carry, xs, consts = (problem[k] for k in ("step", "carry", "xs", "consts"))
    carry, xs, consts = jax.device_put((carry, xs, consts))
    kwargs = {"strategy": strategy, "epochs": problem["epochs"], "steps": problem["steps"]}
    if not strategy.fused:
        return lambda: jax.block_until_ready(
            fit_epochs(step, carry, xs, consts=consts, **kwargs)
        ), None

    def program(carry, xs, consts):
        return fit_epochs(step, carry, xs, consts=consts, **kwargs)

    start = time.perf_counter()
    exe = jax.jit(program).lower(carry, xs, consts).compile()
    compile_s = time.perf_counter() - start
    return (lambda: jax.block_until_ready(exe(carry, xs, consts))), compile_s


def loop_body_ops(compiled_text: str) -> collections.Counter[str]:
    """Opcodes of the instructions in the innermost while body of a compiled module.

    The body is the computation named by the while instruction whose body contains no other
    while (the step loop); fusions count as one instruction each, named by their kind.
    """
    computations: dict[str, list[str]] = {}
    name = None
    for line in compiled_text.splitlines():
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if header:
            name = header.group(1)
            computations[name] = []
        elif name is not None and line.strip() and line.strip() != "}":
            computations[name].append(line)
    bodies = []
    for lines in computations.values():
        for line in lines:
            m = re.search(r" while\(.*body=%?([\w.\-]+)", line)
            if m:
                bodies.append(m.group(1))
    inner = [b for b in bodies if not any(" while(" in ln for ln in computations.get(b, []))]
    ops: collections.Counter[str] = collections.Counter()
    for body in inner:
        for line in computations.get(body, []):
            m = re.search(r"= [^ ]+(?:\{[^}]*\})? ([\w\-]+)\(", line)
            if not m:
                continue
            op = m.group(1)
            if op == "fusion":
                kind = re.search(r"kind=(\w+)", line)
                op = f"fusion:{kind.group(1) if kind else '?'}"
            ops[op] += 1
    return ops


def bench(tid: str, args: argparse.Namespace) -> list[tuple[str, float | None, float, int]]:
    """``[(strategy, compile s, median s per step, samples)]`` for one tutorial."""
    problem = _cnn_problem(args.data_dir) if tid == CNN else _catalogue_problem(tid, args.data_dir)
    total = problem["epochs"] * problem["steps"]
    strategies = [LoopStrategy()]
    for k in [2] if tid == CNN else args.unroll:  # the CNN's compile time grows with k
        k = min(k, total)
        if k >= 2:
            strategies.append(LoopStrategy("unrolled", k))
    strategies = [*dict.fromkeys(strategies), LoopStrategy("stepwise")]
    runners = {str(s): _runner(problem, s) for s in strategies}
    if tid in args.hlo:
        for s in strategies:
            if s.fused:
                print(f"  [{tid} {s}] while-body instructions (per {s.unroll} step(s)):")
                exe = jax.jit(
                    lambda c, x, k, s=s: fit_epochs(
                        problem["step"],
                        c,
                        x,
                        consts=k,
                        strategy=s,
                        epochs=problem["epochs"],
                        steps=problem["steps"],
                    )
                ).lower(*jax.device_put((problem["carry"], problem["xs"], problem["consts"])))
                text = exe.compile().as_text()
                ops = loop_body_ops(text)
                # XLA:CPU's SmallWhileLoopHoistingPass outlines a loop that touches few bytes into
                # one kernel (a call tagged xla_cpu_small_call): no per-instruction dispatch.
                hoisted = "xla_cpu_small_call" in text
                print(f"    hoisted into one kernel (xla_cpu_small_call): {hoisted}")
                print(f"    {sum(ops.values())} total: " + ", ".join(
                    f"{op} x{n}" for op, n in ops.most_common()))  # fmt: skip
    for run, _ in runners.values():
        run()  # warm-up (the step-wise loop also compiles its step here)
    samples: dict[str, list[float]] = {name: [] for name in runners}

    def timed(run):
        def once():
            start = time.perf_counter()
            run()
            return time.perf_counter() - start

        return once

    for _ in range(args.rounds):
        for name, (run, _) in runners.items():
            with no_recompile(f"{tid} {name}"):
                samples[name] += steady_samples(timed(run), args.repeats)
    return [
        (name, runners[name][1], statistics.median(values) / total, len(values))
        for name, values in samples.items()
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="tutorial ids (default: every training tutorial)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of repeats")
    parser.add_argument("--unroll", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--hlo", nargs="*", default=[], help="ids whose loop bodies to print")
    parser.add_argument("--data-dir", default=os.environ.get("JAXTUT_DATA_DIR"))
    args = parser.parse_args(argv)
    install_jax_hook()
    ids = args.ids or registry.ids(training_only=True)  # mnist_cnn among them (_cnn_problem)
    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'tutorial':24s} {'strategy':13s} {'compile s':>9s} {'per step':>12s} {'n':>5s}")
    with jax_runtime("float32", "cpu"):
        for tid in ids:
            rows = bench(tid, args)
            best = min(rows, key=lambda r: r[2])
            for name, compile_s, per_step, n in rows:
                c = "-" if compile_s is None else f"{compile_s:9.2f}"
                mark = "  <- fastest" if name == best[0] else ""
                print(f"{tid:24s} {name:13s} {c:>9s} {_fmt(per_step):>12s} {n:5d}{mark}")
            scan = next(r for r in rows if r[0] == "scan")[2]
            stepwise = next(r for r in rows if r[0] == "stepwise")[2]
            print(f"{'':24s} stepwise / scan = {stepwise / scan:.2f}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def _fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e9:.0f} ns"


if __name__ == "__main__":
    sys.exit(script(main, "python -m benchmarks.loop_strategy"))
