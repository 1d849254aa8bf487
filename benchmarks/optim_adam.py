"""jaxtut's Adam against stock ``optax.adam``, and JAX against torch eager for Adam and SGD.

One fused MNIST MLP epoch (``jaxtut.tutorials.mnist``'s 784-128-64-10 ReLU network, batch 64,
937 full batches of one permutation: the short last batch of 32 is left out so every variant runs
the same steps) is compiled once per optimizer and timed:

* ``jax_adam_jaxtut``: ``jaxtut.optim.adam(lr=1e-3).to_optax()`` (hyperparameters in the state);
* ``jax_adam_optax``: ``optax.adam(1e-3)`` (hyperparameters baked into the program);
* ``jax_sgd_jaxtut``: ``jaxtut.optim.sgd(lr=0.003)``, the tutorial's optimizer.

The two Adam variants are timed alternately (A, B, A, B, ...) so that load on a shared machine
falls on both alike; the acceptance is jaxtut within 5% of stock (median ratio <= 1.05). torch
eager (``jaxtut.torch_ref.mnist.Net``, the tutorial's loop on pre-built tensors) is timed over the
first ``--torch-steps`` steps, and the JAX vs torch ratio is per step.

Run: ``python -m benchmarks.optim_adam [--repeats 7] [--torch-steps 300] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import script
from benchmarks.timing import Stats, clock, install_jax_hook, machine_info, no_recompile
from jaxtut import nn, optim
from jaxtut.data import load_mnist
from jaxtut.data.mnist import mnist_arrays
from jaxtut.tutorials.mnist import MLP, mlp_loss

BATCH = 64
ROOT = Path(__file__).resolve().parents[1]


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import os

    folder = os.environ.get("JAXTUT_DATA_DIR") or ROOT.parent / "shared" / "datasets" / "mnist"
    x, y, _, _ = mnist_arrays(load_mnist(folder), normalize=True, dtype="float32")
    order = np.random.default_rng(0).permutation(len(x))
    steps = len(x) // BATCH
    return x, y.astype(np.int32), order[: steps * BATCH].reshape(steps, BATCH).astype(np.int32)


def fused_epoch(tx: optax.GradientTransformation):
    """One epoch as one program: ``lax.scan`` over the batches, data already on the device."""

    def epoch(params, opt_state, x, y, batches):
        def step(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(mlp_loss)(params, (x[idx], y[idx]))
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), batches)
        return params, opt_state, losses

    return jax.jit(epoch)


def _jax_variants(x, y, batches) -> dict[str, Any]:
    params = nn.init_params(MLP, 0)
    args = (jnp.asarray(x), jnp.asarray(y), jnp.asarray(batches))
    variants = {}
    for name, tx in (
        ("jax_adam_jaxtut", optim.adam(lr=1e-3).to_optax()),
        ("jax_adam_optax", optax.adam(1e-3)),
        ("jax_sgd_jaxtut", optim.sgd(lr=0.003).to_optax()),
    ):
        run = fused_epoch(tx)
        state = tx.init(params)
        start = time.perf_counter()
        compiled = run.lower(params, state, *args).compile()
        compile_s = time.perf_counter() - start
        variants[name] = {
            "call": lambda c=compiled, s=state: c(params, s, *args),
            "compile": compile_s,
        }
    return variants


def _torch_steps(name: str, x, y, batches, steps: int, repeats: int) -> Stats:
    import torch

    from jaxtut.torch_ref.mnist import Net

    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    idx = [torch.from_numpy(b.astype(np.int64)) for b in batches[:steps]]
    criterion = torch.nn.NLLLoss()
    samples = []
    for r in range(repeats + 1):  # the first run is the warm-up
        torch.manual_seed(0)
        model = Net()
        opt = (optim.adam(lr=1e-3) if name == "adam" else optim.sgd(lr=0.003)).to_torch(model)
        start = time.perf_counter()
        for b in idx:
            opt.zero_grad()
            loss = criterion(model(xt[b]), yt[b])
            loss.backward()
            opt.step()
            loss.item()  # the tutorial's loop reads the loss every step
        if r:
            samples.append((time.perf_counter() - start) / steps)
    return Stats.of(samples)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--torch-steps", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    install_jax_hook()
    x, y, batches = _data()
    steps = len(batches)
    variants = _jax_variants(x, y, batches)
    for v in variants.values():
        _, v["first_s"] = clock(v["call"])  # warm-up, off the books
    samples: dict[str, list[float]] = {k: [] for k in variants}
    with no_recompile("optim_adam"):
        for _ in range(args.repeats):  # interleaved: A, B, C, A, B, C, ...
            for name, v in variants.items():
                samples[name].append(clock(v["call"])[1])
    stats = {k: Stats.of(s) for k, s in samples.items()}
    # Per-repeat ratios of the interleaved pairs: load common to a pair cancels.
    pair = [
        a / b for a, b in zip(samples["jax_adam_jaxtut"], samples["jax_adam_optax"], strict=True)
    ]
    torch_stats = {
        k: _torch_steps(k, x, y, batches, args.torch_steps, max(3, args.repeats // 2))
        for k in ("adam", "sgd")
    }
    result = {
        "machine": machine_info("cpu"),
        "epoch_steps": steps,
        "jax_epoch_s": {k: s.to_dict() for k, s in stats.items()},
        "jax_compile_s": {k: v["compile"] for k, v in variants.items()},
        "adam_jaxtut_over_optax": {
            "median_of_epoch_medians": stats["jax_adam_jaxtut"].median
            / stats["jax_adam_optax"].median,
            "median_pairwise": statistics.median(pair),
            "pairwise_min": min(pair),
            "pairwise_max": max(pair),
        },
        "torch_eager_step_s": {k: s.to_dict() for k, s in torch_stats.items()},
        "jax_vs_torch_eager_per_step": {
            "adam": torch_stats["adam"].median / (stats["jax_adam_jaxtut"].median / steps),
            "sgd": torch_stats["sgd"].median / (stats["jax_sgd_jaxtut"].median / steps),
        },
    }
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    sys.exit(script(main, "python -m benchmarks.optim_adam"))
