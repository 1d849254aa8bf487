"""Roofline of the MNIST models: FLOPs per epoch against the machine's measured matmul peak.

The peak is measured in the same process as the training times, with a large float32 GEMM in each
framework (the best of them is "the machine's matmul peak"). FLOPs per epoch are counted three
ways, because conventions differ and the gap between them is the point:

* ``conventional``: 3 x the forward matmul FLOPs (forward, plus backward taken as twice the
  forward). For ``mnist_mlp`` at batch 64 that is 39.3 GFLOP per epoch, the figure the project's
  targets use.
* ``minimal``: the matmuls training really needs: forward, the weight gradients, and the input
  gradients of every layer but the first (nobody needs the gradient with respect to the images,
  and neither XLA nor autograd computes it): 27.3 GFLOP for ``mnist_mlp``.
* ``xla``: XLA's own cost analysis of one compiled training step (matmuls, elementwise work and
  the update), times the steps per epoch.

The matmul floor of an epoch is ``FLOPs / peak``; the fused JAX epoch time divided by it says how
close training comes to doing nothing but large matmuls at peak speed. The model's matmuls are
small (64 x 784 x 128 at most), and small GEMMs do not reach a large GEMM's rate, so a second,
shape-aware floor is measured too: one epoch of the step's own matmuls (forward, weight gradients,
input gradients) at their real shapes, alone in one compiled loop, in the same framework and run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.settings import ROOFLINE_IDS, Settings
from benchmarks.timing import BENCH_TRACES, Stats, timed_repeats

# (fan_in, fan_out) of each linear layer, in order; samples per epoch.
LAYERS = {
    "mnist_mlp": [(784, 128), (128, 64), (64, 10)],
    "mnist_logreg": [(784, 10)],
}
SAMPLES_PER_EPOCH = 60_000


def flops_per_epoch(tutorial_id: str, samples: int = SAMPLES_PER_EPOCH) -> dict[str, float]:
    """Analytic matmul FLOPs of one training epoch (see the module docstring)."""
    layers = LAYERS[tutorial_id]
    forward = sum(2 * i * o for i, o in layers)  # per sample: one multiply-add per weight
    input_grads = sum(2 * i * o for i, o in layers[1:])  # the first layer's is not needed
    return {
        "forward": forward * samples,
        "conventional": 3 * forward * samples,
        "minimal": (2 * forward + input_grads) * samples,
    }


def xla_step_flops(tutorial_id: str, device: str, batch_size: int) -> float | None:
    """FLOPs of one compiled training step by XLA's cost analysis (``None`` if unavailable)."""
    import jax
    import jax.numpy as jnp
    import optax

    from jaxtut import registry
    from jaxtut.runtime import jax_runtime
    from jaxtut.train import sgd

    trainer = registry.get(tutorial_id).trainer()
    with jax_runtime("float32", device):
        params = trainer.init(jax.random.key(0), jnp.float32)
        opt = sgd(np.float32(0.01), np.float32(0.0))
        x = jnp.zeros((batch_size, 784), jnp.float32)
        y = jnp.zeros((batch_size,), jnp.int32)

        def step(params, opt_state, batch):
            loss, grads = jax.value_and_grad(trainer.loss)(params, batch, None)
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        compiled = jax.jit(step).lower(params, opt.init(params), (x, y)).compile()
        try:
            cost = compiled.cost_analysis()
        except Exception:  # not every backend implements it
            return None
    if isinstance(cost, list | tuple):  # older JAX returns one dict per device
        cost = cost[0] if cost else {}
    flops = (cost or {}).get("flops")
    return float(flops) if flops is not None else None


def gemm_only_epoch(
    tutorial_id: str, batch: int, steps: int, device: str, repeats: int
) -> dict[str, Any]:
    """One epoch of the training step's matmuls alone, at their real shapes, in one ``scan``.

    Each step runs the forward matmuls, the weight gradients and the input gradients of every
    layer but the first (the "minimal" count), with a tiny weight update so that no step can be
    hoisted out of the loop. No gather, activation, loss or optimizer work: what is left of the
    fused epoch above this time is everything that is not a matmul.
    """
    import jax
    import jax.numpy as jnp

    from jaxtut.runtime import jax_runtime

    layers = LAYERS[tutorial_id]
    hi = jax.lax.Precision.HIGHEST

    def epoch(x, weights):
        BENCH_TRACES["gemm_epoch"] += 1

        def step(weights, _):
            acts = [x]
            for w in weights:
                acts.append(jnp.matmul(acts[-1], w, precision=hi))  # (B, in) @ (in, out)
            g = acts[-1]  # stands in for dL/d(output): same shape, no loss to compute
            grads = []
            for i in reversed(range(len(weights))):
                grads.append(jnp.matmul(acts[i].T, g, precision=hi))  # (in, B) @ (B, out)
                if i > 0:
                    g = jnp.matmul(g, weights[i].T, precision=hi)  # (B, out) @ (out, in)
            grads.reverse()
            return [w - 1e-12 * gw for w, gw in zip(weights, grads, strict=True)], None

        return jax.lax.scan(step, weights, None, length=steps)[0]

    with jax_runtime("float32", device) as dev:
        x = jax.device_put(jnp.full((batch, layers[0][0]), 0.01, jnp.float32), dev)
        weights = [jnp.full((i, o), 0.01, jnp.float32) for i, o in layers]
        f = jax.jit(epoch)
        first, stats = _repeat(lambda: f(x, weights), repeats, label="gemm epoch")
    return {"first_call_s": first, "seconds": stats.to_dict(), "steps": steps}


def gemm_peak(settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Float32 GEMM throughput (``n x n`` by ``n x n``) in NumPy, torch and JAX, same process.

    Returns:
      ``{"n", "flops", "frameworks": {name: {"seconds", "gflops"}}, "peak_gflops", "best"}``;
      the peak is the best framework's median rate.
    """
    n = settings.gemm_n
    flops = 2.0 * n**3
    rng = np.random.default_rng(0)
    a_host = rng.standard_normal((n, n), dtype=np.float32)
    b_host = rng.standard_normal((n, n), dtype=np.float32)
    results: dict[str, dict[str, Any]] = {}

    def record(name: str, first: float, stats: Stats) -> None:
        results[name] = {
            "first_call_s": first,
            "seconds": stats.to_dict(),
            # The fastest call gives the highest rate: min and max swap.
            "gflops": {
                "median": flops / stats.median / 1e9,
                "min": flops / stats.max / 1e9,
                "max": flops / stats.min / 1e9,
            },
        }
        log(f"  gemm {name:<6} n={n}: {flops / stats.median / 1e9:8.1f} GFLOP/s")

    if settings.device == "cpu":
        out = np.empty_like(a_host)
        first, stats = _repeat(lambda: np.matmul(a_host, b_host, out=out), settings.repeats)
        record("numpy", first, stats)

    import torch

    from jaxtut.configs import Config
    from jaxtut.torch_ref._common import torch_runtime

    with torch_runtime(Config(device=settings.device)) as device:
        a, b = torch.from_numpy(a_host).to(device), torch.from_numpy(b_host).to(device)
        c = torch.empty_like(a)
        first, stats = _repeat(
            lambda a=a, b=b, c=c: torch.mm(a, b, out=c), settings.repeats, device
        )
        record("torch", first, stats)

    import jax
    import jax.numpy as jnp

    from jaxtut.runtime import jax_runtime

    def matmul(a, b):
        BENCH_TRACES["gemm"] += 1
        return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)

    with jax_runtime("float32", settings.device) as device:
        a, b = jax.device_put((a_host, b_host), device)
        f = jax.jit(matmul)
        first, stats = _repeat(lambda a=a, b=b: f(a, b), settings.repeats, label="gemm jax")
        record("jax", first, stats)
    best = max(results, key=lambda k: results[k]["gflops"]["median"])
    return {
        "n": n,
        "dtype": "float32",
        "flops": flops,
        "frameworks": results,
        "best": best,
        "peak_gflops": results[best]["gflops"]["median"],
    }


def _repeat(
    fn: Callable[[], Any], repeats: int, torch_device: Any = None, *, label: str = "gemm"
) -> tuple[float, Stats]:
    def traces() -> int:
        return BENCH_TRACES["gemm"] + BENCH_TRACES["gemm_epoch"]

    return timed_repeats(fn, repeats, label=label, traces=traces, torch_device=torch_device)


def bench_roofline(
    settings: Settings,
    training: list[dict[str, Any]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The matmul peak and, for each MNIST model timed in ``training``, its roofline figures.

    Args:
      settings: the run's settings.
      training: the training section's records (the fused JAX epoch times come from there, so
        the peak and the epochs are measured in the same process and run).
      log: progress printer.
    """
    peak = gemm_peak(settings, log)
    peak_flops = peak["peak_gflops"] * 1e9
    models = []
    by_id = {t["tutorial"]: t for t in training}
    for tid in ROOFLINE_IDS:
        record = by_id.get(tid)
        if record is None or record.get("skipped"):
            reason = record["skipped"] if record else "its training benchmark was not selected"
            models.append({"tutorial": tid, "skipped": reason})
            continue
        batch = record["config"]["batch_size"]
        steps = record["steps_per_epoch"]
        counts = flops_per_epoch(tid)
        xla_step = xla_step_flops(tid, settings.device, batch)
        counts["xla"] = None if xla_step is None else xla_step * steps
        fused = next(v for v in record["variants"] if v["variant"] == "jax_fused")
        epoch = fused["per_epoch_s"]["median"]
        gemms = gemm_only_epoch(tid, batch, steps, settings.device, settings.repeats)
        gemm_epoch = gemms["seconds"]["median"]
        row: dict[str, Any] = {
            "tutorial": tid,
            "batch_size": batch,
            "steps_per_epoch": steps,
            "flops_per_epoch": counts,
            "fused_epoch_s": epoch,
            "epoch_extrapolated": fused["epoch_extrapolated"],
            "gemm_only_epoch": {
                **gemms,
                "gflops": counts["minimal"] / gemm_epoch / 1e9,
                "fraction_of_peak": counts["minimal"] / gemm_epoch / peak_flops,
                "fused_epoch_over_it": epoch / gemm_epoch,
            },
        }
        for name in ("conventional", "minimal"):
            floor = counts[name] / peak_flops
            row[name] = {
                "matmul_floor_s": floor,
                "achieved_gflops": counts[name] / epoch / 1e9,
                "fraction_of_peak": floor / epoch,
                "epoch_over_floor": epoch / floor,
            }
        models.append(row)
        log(
            f"  roofline {tid}: {counts['conventional'] / 1e9:.1f} GFLOP/epoch (3x fwd), "
            f"floor {row['conventional']['matmul_floor_s']:.3f} s, its GEMMs alone "
            f"{gemm_epoch:.3f} s, fused {epoch:.3f} s"
        )
    return {"peak": peak, "models": models}
