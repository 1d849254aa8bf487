"""Many seeds at once: K models in one vmapped JAX program against K sequential PyTorch runs.

For ``mnist_mlp`` and ``perceptron``, K = 1, 8 and 64 independent models (each its own initial
parameters and, for MNIST, its own shuffle) are trained by :func:`jaxtut.train.train_seeds`, which
compiles the single-seed program ``vmap``-ped over the seeds. The baselines, timed in the same
process:

* ``single``: one model by :func:`jaxtut.train.train`, the same plan (the plain fused run);
* ``torch``: K sequential runs of the PyTorch loop (:class:`benchmarks.torch_loops.TorchLoop`),
  one model after another; the total for K is the sum of the first K runs.

MNIST models train ``seeds_mnist_steps`` steps each (a part of an epoch: a whole epoch for 64
models would take minutes per repeat on a CPU), the perceptron ``seeds_perceptron_epochs`` epochs
of its six samples. Both include the tutorial's final evaluation, in JAX and in torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.settings import MNIST_IDS, Settings
from benchmarks.timing import RecompileError, Stats, no_recompile, steady_samples
from benchmarks.training import truncated
from jaxtut import registry
from jaxtut.data.batching import BatchPlan, shuffled_batches
from jaxtut.errors import JaxtutError
from jaxtut.tutorial_data import tutorial_data


def _plans(tutorial_id: str, config, data, seeds: list[int], steps: int | None) -> list[BatchPlan]:
    """One batch plan per seed: MNIST reshuffles per seed (as its tutorial_data does)."""
    if tutorial_id not in MNIST_IDS:
        return [data.plan] * len(seeds)  # per-sample tutorials: one fixed order for every seed
    n = len(data.train[0])
    plans = [
        shuffled_batches(n, config.batch_size, config.epochs, s, drop_last=config.drop_last)
        for s in seeds
    ]
    return [truncated(p, steps) for p in plans] if steps else plans


def _timed(label: str, trace: Callable[[], int], run: Callable[[], Any], settings: Settings):
    """First call apart (compiles), then the timed runs; ``run`` returns (compile_s, wall_s)."""
    compile_s, first_wall = run()

    def timed() -> float:
        again, wall = run()
        if again != 0.0:
            raise RecompileError(f"{label}: a repeat compiled its program again")
        return wall

    with no_recompile(label, trace):
        samples = steady_samples(timed, settings.repeats, settings.min_timed_s)
    return compile_s, compile_s + first_wall, Stats.of(samples)


def bench_seeds(tutorial_id: str, settings: Settings, log: Callable[[str], None]) -> dict:
    """K = ``settings.seed_counts`` models of one tutorial, vmapped JAX vs sequential torch."""
    from jaxtut.train import TRACE_COUNTS, train, train_seeds

    tutorial = registry.get(tutorial_id)
    if tutorial_id in MNIST_IDS:
        config = tutorial.default_config(epochs=1, device=settings.device)
        steps = settings.seeds_mnist_steps
    else:
        config = tutorial.default_config(
            epochs=settings.seeds_perceptron_epochs, device=settings.device
        )
        steps = None
    try:
        experiment = tutorial.experiment(config)
    except JaxtutError as err:
        log(f"  seeds {tutorial_id}: skipped ({err})")
        return {"tutorial": tutorial_id, "skipped": str(err), "counts": []}
    data = tutorial_data(config)
    seed_counts = settings.seed_counts
    if tutorial_id in MNIST_IDS:
        seed_counts = tuple(k for k in seed_counts if k <= settings.max_mnist_seeds)
    max_k = max(seed_counts)
    plans = _plans(tutorial_id, config, data, list(range(max_k)), steps)
    steps_per_model = plans[0].num_steps
    # The experiment on the (possibly truncated) plans: seed i reads plans[i].
    experiment = experiment.with_plan(plans[0]).replace(replan=lambda seed: plans[seed])
    trace = lambda: TRACE_COUNTS[tutorial_id]  # noqa: E731

    def single():
        r = train(experiment)
        return r.compile_time_s, r.wall_time_s

    single_compile, _, single_stats = _timed(f"seeds {tutorial_id} single", trace, single, settings)
    counts = []
    for k in seed_counts:

        def vmapped(k=k):
            results = train_seeds(experiment, list(range(k)))
            return results[0].compile_time_s, results[0].wall_time_s

        start = time.perf_counter()
        compile_s, first_call, stats = _timed(
            f"seeds {tutorial_id} K={k}", trace, vmapped, settings
        )
        counts.append(
            {
                "k": k,
                "jax_compile_s": compile_s,
                "jax_first_call_s": first_call,
                "jax_total_s": stats.to_dict(),
                "jax_per_model_s": stats.median / k,
                "per_model_vs_single": stats.median / k / single_stats.median,
            }
        )
        log(
            f"  seeds {tutorial_id} K={k:>3}: JAX vmapped {stats.median:8.4f} s total, "
            f"{stats.median / k * 1e3:8.3f} ms/model (bench {time.perf_counter() - start:.1f} s)"
        )
    torch_runs = _torch_sequential(tutorial_id, config, data, plans, max_k)
    per_model = Stats.of(torch_runs)
    for row in counts:
        k = row["k"]
        total = float(np.sum(torch_runs[:k]))
        row["torch_total_s"] = total
        row["torch_per_model_s"] = total / k
        row["speedup_vs_torch"] = total / row["jax_total_s"]["median"]
    log(f"  seeds {tutorial_id}: torch {per_model.median * 1e3:.3f} ms/model (median of {max_k})")
    return {
        "tutorial": tutorial_id,
        "config": config.to_dict(),
        "steps_per_model": steps_per_model,
        "single_run": {"compile_s": single_compile, "seconds": single_stats.to_dict()},
        "torch_per_model_s": per_model.to_dict(),
        "counts": counts,
    }


def _torch_sequential(tutorial_id, config, data, plans, count: int) -> list[float]:
    """Seconds of each of ``count`` sequential torch runs (seed i, plan i), after one warm-up."""
    from benchmarks.timing import clock
    from benchmarks.torch_loops import TorchLoop
    from jaxtut.torch_ref._common import torch_runtime

    seconds = []
    with torch_runtime(config) as device:
        for i in range(-1, count):  # run -1 is the untimed warm-up
            seed = max(i, 0)
            loop = TorchLoop(tutorial_id, config.replace(seed=seed), data, device)
            _, s = clock(
                lambda loop=loop, seed=seed: loop.run(plans[seed], plans[seed].epochs),
                torch_device=device,
            )
            if i >= 0:
                seconds.append(s)
    return seconds
