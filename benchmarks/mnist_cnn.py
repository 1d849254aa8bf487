"""One epoch of the MNIST CNN: JAX (fused scan, step-wise) vs PyTorch eager vs torch.compile.

The epoch is the example's: 60,000 training images in batches of 64 (938 steps, the last of 32
samples: padded and masked in JAX, short in torch), one shuffle shared by every variant, dropout
on, plain SGD (lr 0.01, momentum 0) or, with ``--optimizer adadelta``, the example's
Adadelta(lr 1.0) + StepLR(gamma 0.7) (``jaxtut.optim`` on the JAX side), float32 at the highest
matmul precision. Timed:

* ``jax scan``: the whole epoch one compiled program (``jaxtut.loops`` rolled scan), batches
  gathered and dropout masks drawn on the device; ``compile`` is the exact AOT compile time;
* ``jax stepwise``: the same step compiled once and called 938 times from Python
  (``LoopStrategy("stepwise")``); its compile time is its first call minus a steady epoch
  ("< noise" when that is not positive);
* ``torch eager``: the example's loop (``zero_grad``, forward, ``NLLLoss``, ``backward``,
  ``step``, ``loss.item()``) on pre-built tensors, ``F.dropout`` active;
* ``torch.compile``: the same loop with the forward and loss under
  ``torch.compile(dynamic=False)`` (the short last batch compiles a second graph in the first
  epoch).

Variants are interleaved, repeat after repeat, so each ratio compares epochs taken minutes apart
on the same machine; the first epoch of each is reported apart (it contains compilation).
The test-set evaluation (10,000 images in batches of 1000) is timed apart, once per framework.

``--profile`` traces one steady run of the fused scan with ``jax.profiler`` and prints where a
step's time goes, per XLA thunk (the compiled program's fusions, dots and copies), with the JAX
operation each comes from: the table behind docs/benchmarks.md's account of the CNN step.

Usage::

  python -m benchmarks.mnist_cnn [--repeats 2] [--steps N] [--no-torch-compile]
      [--optimizer sgd|adadelta] [--torch-threads N] [--profile]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np
import optax

from benchmarks import script
from benchmarks.timing import install_jax_hook, no_recompile
from jaxtut.data import shuffled_batches
from jaxtut.loops import LoopStrategy, fit_epochs
from jaxtut.runtime import jax_runtime
from jaxtut.tutorials import mnist_cnn as cnn

LR, MOMENTUM, SEED = 0.01, 0.0, 1


def _jax_optimizer(name: str, steps_per_epoch: int):
    """SGD(lr 0.01), or the example's Adadelta(lr 1.0) + StepLR(1 epoch, gamma 0.7)."""
    if name == "sgd":
        return optax.sgd(LR, momentum=MOMENTUM or None)
    from jaxtut import optim

    schedule = optim.step_lr(1, 0.7, steps_per_epoch=steps_per_epoch)
    return optim.adadelta(lr=1.0, schedule=schedule).to_optax()


def _torch_optimizer(name: str, params):
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, lr=LR, momentum=MOMENTUM)
    # StepLR(step_size=1) steps after each epoch, so within one epoch the lr is 1.0 throughout.
    return torch.optim.Adadelta(params, lr=1.0)


def _jax_variants(data, plan_idx, plan_mask, steps, optimizer_name, steps_per_epoch):
    """``{name: (run, AOT compile seconds or None, optimised HLO text or None)}``: each ``run()``
    trains one epoch from the same initial state (nothing is donated) and waits for it; it
    returns ``fit_epochs``'s ``(carry, losses, metrics)``."""
    x_train, y_train = (jax.device_put(a) for a in data)
    params = jax.device_put(cnn.init(jax.random.key(SEED)))
    optimizer = _jax_optimizer(optimizer_name, steps_per_epoch)
    opt_state = optimizer.init(params)
    step = cnn.make_train_step(optimizer)
    consts = (x_train, y_train, jax.random.key(SEED))
    numbers = np.arange(steps, dtype=np.int32)[None]  # (epochs=1, steps)
    xs = jax.device_put((plan_idx[:, :steps], plan_mask[:, :steps], numbers))

    def fused(carry, xs, consts):
        return fit_epochs(step, carry, xs, strategy=LoopStrategy(), consts=consts)

    start = time.perf_counter()
    exe = jax.jit(fused).lower((params, opt_state), xs, consts).compile()
    compile_s = time.perf_counter() - start
    stepwise = LoopStrategy("stepwise")
    return {
        "jax scan": (
            lambda: jax.block_until_ready(exe((params, opt_state), xs, consts)),
            compile_s,
            exe.as_text(),
        ),
        "jax stepwise": (
            lambda: jax.block_until_ready(
                fit_epochs(step, (params, opt_state), xs, strategy=stepwise, consts=consts)
            ),
            None,
            None,
        ),
    }, params


def profile_thunks(run: Callable[[], object], hlo_text: str, steps: int, top: int = 15) -> None:
    """Prints the ``top`` XLA thunks of one traced ``run()`` by time per step.

    Times are summed per thunk over the run's steps from the profiler's trace events, on
    whichever of the runtime's threads ran it (independent thunks run concurrently, so the
    column can add up to more than the step's wall time). A thunk that XLA runs asynchronously
    on its intra-op pool (an Eigen convolution, an Eigen batched dot) shows only its launch, well
    under a millisecond: time those apart. ``op`` is the JAX operation the HLO instruction was
    lowered from (its ``op_name`` metadata).
    """
    ops = {
        m.group(1): m.group(2) for m in re.finditer(r"%(\S+) = .*?op_name=\"([^\"]+)\"", hlo_text)
    }
    with tempfile.TemporaryDirectory(prefix="jaxtut-profile-") as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            run()
        (path,) = glob.glob(os.path.join(tmp, "**", "*.trace.json.gz"), recursive=True)
        with gzip.open(path) as f:
            events = json.load(f)["traceEvents"]
    total: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in ops:
            total[e["name"]] += e.get("dur", 0) / 1e3  # microseconds -> ms
    print(f"\nXLA thunks of the fused scan, ms per step (top {top} of {len(total)}):")
    for name, ms in total.most_common(top):
        op = ops[name].rsplit("/", 2)
        print(f"  {ms / steps:7.2f}  {name:28s} {'/'.join(op[-2:])}")


def _torch_variants(data, plan, steps, compiled: bool, optimizer_name: str):
    """``{name: run}`` for torch eager (and torch.compile): one epoch each, from the same init."""
    import torch
    import torch.nn.functional as F

    from jaxtut.torch_ref import mnist_cnn as ref

    torch.set_float32_matmul_precision("highest")
    x_train = torch.from_numpy(np.ascontiguousarray(data[0].transpose(0, 3, 1, 2)))
    y_train = torch.from_numpy(data[1].astype(np.int64))
    init = ref.initial_state_dict(SEED)
    batches = [torch.from_numpy(i) for i in plan.batches(0)[:steps]]

    def make(compile_model: bool) -> Callable[[], tuple]:
        # One model per variant, reset to the initial weights in place before every epoch, so
        # torch.compile's graph (guarded on the parameters' identity) is captured only once.
        model = ref.build(init, torch.float32)
        start = {k: torch.from_numpy(v) for k, v in init.items()}

        def forward_loss(x, y):
            return F.nll_loss(model(x), y)

        if compile_model:
            forward_loss = torch.compile(forward_loss, dynamic=False)

        def run():
            with torch.no_grad():
                model.load_state_dict(start)
            model.train()
            optimizer = _torch_optimizer(optimizer_name, model.parameters())
            losses = []
            for idx in batches:
                optimizer.zero_grad()
                loss = forward_loss(x_train[idx], y_train[idx])
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            return model, losses

        return run

    variants = {"torch eager": make(False)}
    if compiled:
        variants["torch.compile"] = make(True)
    return variants


def _torch_compile_note() -> None:
    # A cold inductor cache, as a user's first run would see (unless the caller set one).
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="inductor-"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per variant")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (default 938)")
    parser.add_argument("--no-torch-compile", dest="torch_compile", action="store_false")
    parser.add_argument("--data-dir", default=os.environ.get("JAXTUT_DATA_DIR"))
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        choices=["jax scan", "jax stepwise", "torch eager", "torch.compile"],
        help="time only these (quote names with spaces)",
    )
    parser.add_argument("--optimizer", choices=["sgd", "adadelta"], default="sgd")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--profile", action="store_true", help="print the fused step's time per XLA thunk"
    )
    args = parser.parse_args(argv)
    install_jax_hook()
    if args.torch_compile:
        _torch_compile_note()
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    x_train, y_train, x_test, y_test = cnn.mnist_cnn_arrays(args.data_dir, "float32")
    plan = shuffled_batches(len(x_train), cnn.BATCH_SIZE, 1, SEED)
    steps = args.steps or plan.steps_per_epoch
    print(
        f"jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {steps} steps of batch 64, "
        f"{args.optimizer}"
    )
    with jax_runtime("float32", "cpu"):
        jax_runs, _ = _jax_variants(
            (x_train, y_train),
            plan.idx.astype(np.int32),
            plan.mask,
            steps,
            args.optimizer,
            plan.steps_per_epoch,
        )
        runs = {name: run for name, (run, *_) in jax_runs.items()}
        runs.update(
            _torch_variants((x_train, y_train), plan, steps, args.torch_compile, args.optimizer)
        )
        if args.variants:
            runs = {name: run for name, run in runs.items() if name in args.variants}
        first, samples = {}, {name: [] for name in runs}
        outputs = {}
        for repeat in range(args.repeats + 1):
            for name, run in runs.items():
                guard = no_recompile(name) if repeat else contextlib.nullcontext()
                with guard:
                    start = time.perf_counter()
                    outputs[name] = run()
                    seconds = time.perf_counter() - start
                if repeat == 0:
                    first[name] = seconds
                else:
                    samples[name].append(seconds)
                print(f"  repeat {repeat} {name:14s} {seconds:8.2f} s", flush=True)

        eager = statistics.median(samples["torch eager"])
        print(f"\n{'variant':14s} {'compile s':>9s} {'first s':>8s} {'epoch s':>8s} "
              f"{'ms/step':>8s} {'vs eager':>8s}  [min-max epoch s]")  # fmt: skip
        for name, values in samples.items():
            median = statistics.median(values)
            if name == "jax scan":
                compile_s = f"{jax_runs[name][1]:9.2f}"
            elif name == "torch eager":  # nothing compiles
                compile_s = f"{'-':>9s}"
            elif first[name] > median:  # first call minus a steady epoch
                compile_s = f"{first[name] - median:9.2f}"
            else:  # the first call was no slower than a steady epoch: compiling hid in the noise
                compile_s = f"{'< noise':>9s}"
            print(
                f"{name:14s} {compile_s} {first[name]:8.2f} {median:8.2f} "
                f"{median / steps * 1e3:8.1f} {eager / median:7.2f}x  "
                f"[{min(values):.2f}-{max(values):.2f}]"
            )

        if args.profile:
            profile_thunks(jax_runs["jax scan"][0], jax_runs["jax scan"][2], steps)

        # Sanity: the trained models classify the test set (batches of 1000), timed apart.
        params, _ = outputs["jax scan"][0]
        evaluate = jax.jit(cnn.evaluate).lower(params, (x_test, y_test)).compile()
        start = time.perf_counter()
        metrics = jax.block_until_ready(evaluate(params, (x_test, y_test)))
        print(
            f"\njax test eval {time.perf_counter() - start:.2f} s: accuracy "
            f"{float(metrics['test_accuracy']):.4f}, loss {float(metrics['test_loss']):.4f}"
        )
        model, _ = outputs["torch eager"]
        model.eval()
        xt = torch.from_numpy(np.ascontiguousarray(x_test.transpose(0, 3, 1, 2)))
        start = time.perf_counter()
        with torch.no_grad():
            correct = sum(
                int(
                    (
                        model(xt[i : i + 1000]).argmax(1) == torch.from_numpy(y_test[i : i + 1000])
                    ).sum()
                )
                for i in range(0, len(xt), 1000)
            )
        print(
            f"torch test eval {time.perf_counter() - start:.2f} s: accuracy {correct / len(xt):.4f}"
        )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(script(main, "python -m benchmarks.mnist_cnn"))
