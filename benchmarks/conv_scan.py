"""Minimal reproducer: a convolution gradient in a rolled ``lax.scan`` is ~10x slower on XLA:CPU.

The model is the canonical MNIST CNN (Conv2d(1,32,3), ReLU, Conv2d(32,64,3), ReLU, MaxPool2d(2),
Linear(9216,128), ReLU, Linear(128,10), LogSoftmax, NLL; no dropout here), batch 64, float32,
NHWC, plain SGD. Each convolution formulation is timed four ways, compile time apart:

* ``step``: one jitted training step called from Python ``--steps`` times;
* ``scan``: ``--steps`` steps as one rolled ``lax.scan``;
* ``unroll=k``: the same scan with ``unroll=k`` (``k < steps``: the loop stays a loop);
* ``unroll=all``: ``unroll=steps``; XLA then removes the one-trip loop.

Formulations: ``lax`` (``lax.conv_general_dilated`` and JAX's own gradient), ``lax_nchw`` (the
same in PyTorch's NCHW/OIHW layout), ``im2col`` (patches @ weights, no convolution op at all), and
``canonical`` (the forward ``lax`` convolution with a ``custom_vjp`` whose gradients are written
as NHWC/HWIO convolutions with explicit transposes), and ``model`` (the ``mnist_cnn`` tutorial's
``conv2d``: im2col forward and weight gradient sharing one patch matrix, canonical-convolution
input gradient).

``--hlo`` prints every convolution of each compiled scan with its ``dim_labels`` and whether it
sits in the while body: the cause of the slowdown is visible there (docs/benchmarks.md,
"Convolution inside lax.scan on XLA:CPU").

Usage::

  python -m benchmarks.conv_scan [--steps 4] [--repeats 3] [--unroll 2] [--hlo]
      [--formulations lax lax_nchw im2col canonical model] [--torch]
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks import script
from benchmarks.timing import Stats, no_recompile, steady_samples

BATCH = 64
NHWC = ("NHWC", "HWIO", "NHWC")
NCHW = ("NCHW", "OIHW", "NCHW")
# The only dimension numbers XLA:CPU hands to its Eigen convolution (batch, spatial, feature
# for the input and output; spatial, in, out for the kernel).
CANONICAL = "b01f_01io->b01f"


def _conv(x, w, padding="VALID", dn=NHWC):
    return lax.conv_general_dilated(
        x, w, (1, 1), padding, dimension_numbers=dn, precision=lax.Precision.HIGHEST
    )


def conv_lax(x, w):
    """``(B, H, W, C) * (kh, kw, C, O) -> (B, H-kh+1, W-kw+1, O)``, JAX's own gradient."""
    return _conv(x, w)


def conv_lax_nchw(x, w):
    """``(B, C, H, W) * (O, C, kh, kw) -> (B, O, H', W')``: PyTorch's layouts."""
    return _conv(x, w, dn=NCHW)


def conv_im2col(x, w):
    """The convolution as one matmul: ``(B, H', W', kh*kw*C) @ (kh*kw*C, O)``."""
    kh, kw, c, o = w.shape
    h, wd = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    patches = jnp.concatenate(
        [x[:, i : i + h, j : j + wd, :] for i in range(kh) for j in range(kw)], axis=-1
    )  # (B, H', W', kh*kw*C), ordered like w.reshape
    return patches @ w.reshape(kh * kw * c, o)


@jax.custom_vjp
def conv_canonical(x, w):
    """:func:`conv_lax` with both gradients written as canonical NHWC/HWIO convolutions."""
    return _conv(x, w)


def _canonical_fwd(x, w):
    return _conv(x, w), (x, w)


def _canonical_bwd(res, g):  # g: (B, H', W', O)
    x, w = res
    kh, kw = w.shape[:2]
    # dx: full correlation of g with the flipped kernel, in/out swapped -> (kh, kw, O, C).
    dx = _conv(g, jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2), [(kh - 1, kh - 1), (kw - 1, kw - 1)])
    # dw: batch and channels swap roles: x as (C, H, W, B) convolved with g as (H', W', B, O)
    # gives (C, kh, kw, O).
    dw = _conv(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3)).transpose(1, 2, 0, 3)
    return dx, dw


conv_canonical.defvjp(_canonical_fwd, _canonical_bwd)


def conv_model(x, w):
    """The formulation :mod:`jaxtut.tutorials.mnist_cnn` uses: im2col forward and weight
    gradient (patches built once), canonical-convolution input gradient."""
    from jaxtut.tutorials.mnist_cnn import conv2d

    return conv2d(x, w)


FORMULATIONS: dict[str, tuple[Callable, bool]] = {
    # name: (conv, NCHW?)
    "lax": (conv_lax, False),
    "lax_nchw": (conv_lax_nchw, True),
    "im2col": (conv_im2col, False),
    "canonical": (conv_canonical, False),
    "model": (conv_model, False),
}


def init_params(nchw: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """PyTorch-style U(+-1/sqrt(fan_in)) parameters; conv kernels HWIO, or OIHW when ``nchw``."""
    rng = np.random.default_rng(seed)

    def u(shape, fan_in):
        bound = 1 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    p = {
        "c1w": u((3, 3, 1, 32), 9),
        "c1b": u((32,), 9),
        "c2w": u((3, 3, 32, 64), 288),
        "c2b": u((64,), 288),
        "f1w": u((9216, 128), 9216),
        "f1b": u((128,), 9216),
        "f2w": u((128, 10), 128),
        "f2b": u((10,), 128),
    }
    if nchw:
        p["c1w"], p["c2w"] = (p[k].transpose(3, 2, 0, 1) for k in ("c1w", "c2w"))
    return p


def loss(params, x, y, conv, nchw):
    """Mean NLL of the CNN; ``x`` is (B, 28, 28, 1), or (B, 1, 28, 28) when ``nchw``."""
    cb = (lambda b: b[:, None, None]) if nchw else (lambda b: b)  # bias over the feature axis
    h = jax.nn.relu(conv(x, params["c1w"]) + cb(params["c1b"]))
    h = jax.nn.relu(conv(h, params["c2w"]) + cb(params["c2b"]))
    if nchw:  # (B, 64, 24, 24) -> 2x2 max pool -> (B, 9216)
        b, c, hh, ww = h.shape
        h = h.reshape(b, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5)).reshape(b, -1)
    else:  # (B, 24, 24, 64) -> (B, 9216)
        b, hh, ww, c = h.shape
        h = h.reshape(b, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4)).reshape(b, -1)
    h = jax.nn.relu(h @ params["f1w"] + params["f1b"])
    logp = jax.nn.log_softmax(h @ params["f2w"] + params["f2b"])
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def sgd_step(params, batch, conv, nchw, lr=0.01):
    x, y = batch
    value, grads = jax.value_and_grad(loss)(params, x, y, conv, nchw)
    return jax.tree.map(lambda p, g: p - lr * g, params, grads), value


def _compile(fn, *args) -> tuple[Callable, float]:
    start = time.perf_counter()
    exe = jax.jit(fn).lower(*args).compile()
    return exe, time.perf_counter() - start


def _timed(run: Callable[[], object], repeats: int, label: str) -> Stats:
    """Median of ``repeats`` runs after a warm-up run, nothing compiling in between."""
    jax.block_until_ready(run())

    def once() -> float:
        start = time.perf_counter()
        jax.block_until_ready(run())
        return time.perf_counter() - start

    with no_recompile(label):
        return Stats.of(steady_samples(once, repeats))


def conv_report(compiled_text: str) -> list[str]:
    """The convolutions of a compiled module, counted by dim_labels and by where they sit.

    A convolution whose metadata names ``/while/`` was traced inside the scan's body.
    """
    counts: dict[tuple[str, str], int] = {}
    for line in compiled_text.splitlines():
        if " convolution(" not in line:
            continue
        labels = re.search(r"dim_labels=(\S+?),", line).group(1)
        where = "while body" if "/while/" in line else "entry"
        counts[labels, where] = counts.get((labels, where), 0) + 1
    rows = []
    for (labels, where), n in sorted(counts.items()):
        kind = "canonical (Eigen)" if labels == CANONICAL else "NOT canonical (loop emitter)"
        rows.append(f"{n:3d} x {labels:18s} {where:10s} {kind}")
    return rows


def bench_formulation(name: str, args: argparse.Namespace) -> list[tuple[str, float, Stats]]:
    """Times one formulation as step / scan / unroll=k / unroll=all; returns labelled rows."""
    conv, nchw = FORMULATIONS[name]
    params = jax.device_put(init_params(nchw))
    rng = np.random.default_rng(1)
    shape = (args.steps, BATCH, 1, 28, 28) if nchw else (args.steps, BATCH, 28, 28, 1)
    xs = jax.device_put(rng.standard_normal(shape).astype(np.float32))
    ys = jax.device_put(rng.integers(0, 10, (args.steps, BATCH)).astype(np.int32))
    step = functools.partial(sgd_step, conv=conv, nchw=nchw)
    rows = []

    exe, compile_s = _compile(lambda p, x, y: step(p, (x, y)), params, xs[0], ys[0])
    batches = [(xs[i], ys[i]) for i in range(args.steps)]  # sliced once, outside the clock

    def stepwise():
        p = params
        for x, y in batches:
            p, _ = exe(p, x, y)
        return p

    stats = _timed(stepwise, args.repeats, f"{name} step")
    rows.append(("step", compile_s, stats.scaled(1 / args.steps)))

    unrolls = [("scan", 1), (f"unroll={args.unroll}", args.unroll)]
    if args.full_unroll:
        unrolls.append(("unroll=all", args.steps))
    for label, k in unrolls:

        def run_scan(p, xs, ys, k=k):
            return lax.scan(step, p, (xs, ys), unroll=k)

        exe, compile_s = _compile(run_scan, params, xs, ys)
        stats = _timed(lambda exe=exe: exe(params, xs, ys), args.repeats, f"{name} {label}")
        rows.append((label, compile_s, stats.scaled(1 / args.steps)))
        if args.hlo and k in (1, args.steps):
            print(f"  [{name} {label}] convolutions in the compiled module:")
            for line in conv_report(exe.as_text()) or ["(none)"]:
                print(f"    {line}")
    return rows


def bench_torch(args: argparse.Namespace) -> Stats:
    """PyTorch eager: the same network and SGD step, NCHW, float32, torch's own threads."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in init_params(True).items()}
    rng = np.random.default_rng(1)
    xs = torch.tensor(rng.standard_normal((args.steps, BATCH, 1, 28, 28)).astype(np.float32))
    ys = torch.tensor(rng.integers(0, 10, (args.steps, BATCH)))

    def run():
        for x, y in zip(xs, ys, strict=True):
            h = F.relu(F.conv2d(x, p["c1w"], p["c1b"]))
            h = F.max_pool2d(F.relu(F.conv2d(h, p["c2w"], p["c2b"])), 2).flatten(1)
            h = F.relu(h @ p["f1w"] + p["f1b"])
            value = F.nll_loss(F.log_softmax(h @ p["f2w"] + p["f2b"], dim=1), y)
            grads = torch.autograd.grad(value, list(p.values()))
            with torch.no_grad():
                for t, g in zip(p.values(), grads, strict=True):
                    t -= 0.01 * g

    run()
    samples = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return Stats.of(samples).scaled(1 / args.steps)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--unroll", type=int, default=2, help="partial unroll factor k")
    parser.add_argument("--no-full-unroll", dest="full_unroll", action="store_false")
    parser.add_argument("--hlo", action="store_true", help="list the compiled convolutions")
    parser.add_argument("--torch", action="store_true", help="time PyTorch eager too")
    parser.add_argument(
        "--formulations", nargs="+", default=list(FORMULATIONS), choices=list(FORMULATIONS)
    )
    args = parser.parse_args(argv)
    from benchmarks.timing import install_jax_hook

    install_jax_hook()
    print(f"jax {jax.__version__} on {jax.devices()[0]}; batch {BATCH}, float32, HIGHEST")
    print(f"{'formulation':12s} {'loop':11s} {'compile s':>9s} {'ms/step median [min-max]':>28s}")
    with jax.default_matmul_precision("highest"):
        for name in args.formulations:
            for label, compile_s, s in bench_formulation(name, args):
                spread = f"{s.median * 1e3:8.1f} [{s.min * 1e3:.1f}-{s.max * 1e3:.1f}]"
                print(f"{name:12s} {label:11s} {compile_s:9.2f} {spread:>28s}", flush=True)
    if args.torch:
        s = bench_torch(args)
        spread = f"{s.median * 1e3:8.1f} [{s.min * 1e3:.1f}-{s.max * 1e3:.1f}]"
        print(f"{'torch eager':12s} {'python':11s} {'-':>9s} {spread:>28s}")


if __name__ == "__main__":
    sys.exit(script(main, "python -m benchmarks.conv_scan"))
