"""Training benchmarks: every training tutorial, each framework variant, one process, one run.

Variants (not all apply to every tutorial):

* ``jax_fused``: the catalogue's own JAX run, ``tutorial.run("jax", config)``: the whole run is one
  compiled program with the data on the device. The first call compiles (its ``compile_time_s``);
  every later call with the same shapes re-uses the executable, and ``wall_time_s`` is the
  execution alone.
* ``jax_step``: how most JAX tutorials are written: a ``jax.jit`` step (``value_and_grad`` of the
  tutorial's loss, the Optax SGD update, parameters donated) called from a Python loop over the
  shared batch plan, the data and each step's index array already on the device, and
  ``block_until_ready`` at the end of every epoch. It times the training steps only (no test
  evaluation), which favours it slightly over the two variants that include the tutorial's own
  evaluation.
* ``torch_eager``: the catalogue's PyTorch reference, ``tutorial.run("torch", config)``: the
  tutorial's loop on pre-built tensors, ``loss.item()`` every step.
* ``torch_dataloader`` (MNIST): the same loop fed by ``DataLoader(TensorDataset(x, y),
  batch_size, shuffle=True)``, as the tutorials write it.
* ``torch_compile``: the reference's loop with its forward and loss in ``torch.compile`` (see
  :class:`benchmarks.torch_loops.TorchLoop`); the first run (all compiling) is reported apart.
* ``numpy``: the tutorial's NumPy version, where it has one (``linreg_scratch``).

Every variant is timed as whole runs of the tutorial's configuration (MNIST: one epoch), the
first run apart, then ``repeats`` runs whose median, min and max are reported per run, per step and
per epoch. ``ratio_vs_torch_eager`` is the eager reference's median time per step divided by the
variant's: above 1 means faster than PyTorch eager.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.settings import MNIST_IDS, Settings
from benchmarks.timing import (
    BENCH_TRACES,
    RecompileError,
    Stats,
    clock,
    no_recompile,
    steady_samples,
    timed_repeats,
)
from jaxtut import registry
from jaxtut.configs import TrainConfig
from jaxtut.data.batching import BatchPlan
from jaxtut.errors import JaxtutError
from jaxtut.tutorial_data import TutorialData, tutorial_data

# The longer fused run that separates per-step from per-call cost has at least this many steps.
MARGINAL_MIN_STEPS = 20_000

VARIANTS = {
    "jax_fused": "JAX, whole run fused",
    "jax_step": "JAX, jitted step from Python",
    "torch_eager": "PyTorch eager (reference)",
    "torch_dataloader": "PyTorch eager + DataLoader",
    "torch_compile": "PyTorch torch.compile(forward + loss)",
    "numpy": "NumPy",
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One tutorial as benchmarked: its config, data and the (possibly truncated) batch plan.

    Attributes:
      tutorial: the catalogue entry.
      config: the tutorial's defaults on the benchmark's device (MNIST: one epoch per run).
      data: the shared arrays.
      plan: the batch plan each run follows (``None``: full batch, one step per epoch).
      epochs: epochs per run.
      steps_per_epoch: steps per epoch in a timed run.
      full_steps_per_epoch: steps in a real epoch; larger than ``steps_per_epoch`` only when a
        quick run times part of an MNIST epoch, whose epoch time is then extrapolated.
    """

    tutorial: registry.Tutorial
    config: TrainConfig
    data: TutorialData
    plan: BatchPlan | None
    epochs: int
    steps_per_epoch: int
    full_steps_per_epoch: int

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def extrapolated(self) -> bool:
        return self.steps_per_epoch != self.full_steps_per_epoch


def truncated(plan: BatchPlan, steps: int) -> BatchPlan:
    """The first ``steps`` steps of every epoch of ``plan``."""
    return BatchPlan(idx=plan.idx[:, :steps], mask=plan.mask[:, :steps])


def make_case(tutorial_id: str, settings: Settings, **overrides: Any) -> Case:
    """Builds the benchmark case of one training tutorial (loads its data)."""
    tutorial = registry.get(tutorial_id)
    if tutorial_id in MNIST_IDS:
        overrides.setdefault("epochs", 1)
    config = tutorial.default_config(device=settings.device, **overrides)
    data = tutorial_data(config)
    plan = data.plan
    if plan is None:
        return Case(tutorial, config, data, None, config.epochs, 1, 1)
    full = plan.steps_per_epoch
    if tutorial_id in MNIST_IDS and settings.mnist_steps:
        plan = truncated(plan, min(settings.mnist_steps, full))
    return Case(tutorial, config, data, plan, plan.epochs, plan.steps_per_epoch, full)


def variant_result(
    name: str,
    case: Case,
    per_run: Stats,
    *,
    first_call_s: float | None,
    compile_s: float | None,
    note: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """The JSON record of one variant: per-run, per-step and per-epoch statistics."""
    per_step = per_run.scaled(1 / case.steps)
    return {
        "variant": name,
        "label": VARIANTS[name],
        "first_call_s": first_call_s,
        "compile_s": compile_s,
        "repeats": per_run.n,
        "per_run_s": per_run.to_dict(),
        "per_step_s": per_step.to_dict(),
        "per_epoch_s": per_step.scaled(case.full_steps_per_epoch).to_dict(),
        "steps_per_run": case.steps,
        "epoch_extrapolated": case.extrapolated,
        "ratio_vs_torch_eager": None,
        "recompilations": 0,
        "note": note,
        **extra,
    }


# --- JAX ------------------------------------------------------------------------------------------


def _fused_samples(case: Case, config: TrainConfig, plan: BatchPlan | None, settings: Settings):
    """First call (compiles) and the timed calls of the catalogue's fused JAX run."""
    from jaxtut.train import TRACE_COUNTS

    tid = case.tutorial.id

    def run():
        return case.tutorial.run("jax", config, plan=plan)

    def timed() -> float:
        result = run()
        if result.compile_time_s != 0.0:
            raise RecompileError(f"{tid} jax_fused: a repeat compiled its program again")
        return result.wall_time_s

    first = run()
    with no_recompile(f"{tid} jax_fused", lambda: TRACE_COUNTS[tid]):
        samples = steady_samples(timed, settings.repeats, settings.min_timed_s)
    return first, Stats.of(samples)


def jax_fused(case: Case, settings: Settings) -> dict[str, Any]:
    """The catalogue's whole-run program; for the small tutorials also its marginal step cost."""
    first, per_run = _fused_samples(case, case.config, case.plan, settings)
    extra = {}
    if case.tutorial.id not in MNIST_IDS and settings.marginal_factor > 1:
        # A run of a tiny model is over in microseconds, so a fixed cost per call (dispatch,
        # output buffers) weighs on its per-step figure. Timing a run `factor` times longer
        # separates the two: the slope is the cost of one more step, the intercept the per-call
        # overhead.
        factor = max(settings.marginal_factor, -(-MARGINAL_MIN_STEPS // case.steps))
        long_config = case.config.replace(epochs=case.config.epochs * factor)
        _, long_run = _fused_samples(case, long_config, None, settings)
        long_steps = case.steps * factor
        slope = (long_run.median - per_run.median) / (long_steps - case.steps)
        extra["marginal"] = {
            # A slope at or below zero means the extra steps cost less than the timing noise.
            "per_step_s": slope if slope > 0 else None,
            "per_call_overhead_s": per_run.median - max(slope, 0.0) * case.steps,
            "steps_long_run": long_steps,
            "long_run_s": long_run.to_dict(),
            "ratio_vs_torch_eager": None,
        }
    return variant_result(
        "jax_fused",
        case,
        per_run,
        first_call_s=first.compile_time_s + first.wall_time_s,
        compile_s=first.compile_time_s,
        **extra,
    )


def _int32_labels(tree: Any) -> Any:
    """Integer arrays as int32 (JAX's index type), as the tutorials' run functions pass them."""
    import jax

    return jax.tree.map(
        lambda a: a.astype(np.int32) if np.issubdtype(np.asarray(a).dtype, np.integer) else a,
        tree,
    )


def jax_step(case: Case, settings: Settings) -> dict[str, Any]:
    """A ``jax.jit`` step (parameters donated) driven from a Python loop over the plan."""
    import jax
    import jax.numpy as jnp
    import optax

    from jaxtut.runtime import jax_runtime
    from jaxtut.train import sgd

    tid = case.tutorial.id
    trainer = case.tutorial.trainer()
    config, plan = case.config, case.plan
    trace_key = f"jax_step:{tid}"
    with jax_runtime(config.dtype, config.device) as device:
        dtype = jnp.dtype(config.dtype)
        opt = sgd(np.asarray(config.lr, dtype), np.asarray(config.momentum, dtype))

        def step(params, opt_state, data, idx, mask):
            BENCH_TRACES[trace_key] += 1
            batch = data if idx is None else jax.tree.map(lambda a: a[idx], data)
            loss, grads = jax.value_and_grad(trainer.loss)(params, batch, mask)
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        # Donating the parameters and optimizer state lets XLA update them in place.
        jitted = jax.jit(step, donate_argnums=(0, 1))
        data = jax.device_put(_int32_labels(case.data.train), device)
        # Each step's indices (and the padding mask, only if some batch is padded) are staged on
        # the device before the clock starts, as data already on the device.
        epochs_idx: list[list[Any]] = []
        epochs_mask: list[list[Any]] = []
        for epoch in range(case.epochs):
            if plan is None:
                epochs_idx.append([None])
                epochs_mask.append([None])
                continue
            idx = plan.idx[epoch].astype(np.int32)
            epochs_idx.append(list(jax.device_put(list(idx), device)))
            padded = not plan.mask.all()
            masks = list(jax.device_put(list(plan.mask[epoch]), device)) if padded else None
            epochs_mask.append(masks or [None] * len(idx))

        def fresh_state():
            params = jax.device_put(trainer.init(jax.random.key(config.seed), dtype), device)
            return jax.block_until_ready((params, opt.init(params)))

        def run(state):
            params, opt_state = state
            losses = []
            for idx_list, mask_list in zip(epochs_idx, epochs_mask, strict=True):
                for idx, mask in zip(idx_list, mask_list, strict=True):
                    params, opt_state, loss = jitted(params, opt_state, data, idx, mask)
                    losses.append(loss)
                jax.block_until_ready(params)
            return losses

        def timed() -> float:
            state = fresh_state()  # outside the clock: the old buffers were donated
            return clock(lambda: run(state))[1]

        _, first_call = clock(lambda: run(fresh_state()))
        with no_recompile(f"{tid} jax_step", lambda: BENCH_TRACES[trace_key]):
            samples = steady_samples(timed, settings.repeats, settings.min_timed_s)
    per_run = Stats.of(samples)
    return variant_result(
        "jax_step",
        case,
        per_run,
        first_call_s=first_call,
        compile_s=max(0.0, first_call - per_run.median),
        note="training steps only (no test evaluation)",
    )


# --- PyTorch --------------------------------------------------------------------------------------


def torch_eager(case: Case, settings: Settings) -> dict[str, Any]:
    """The catalogue's torch reference; its ``wall_time_s`` excludes building data and model."""

    def run():
        return case.tutorial.run("torch", case.config, plan=case.plan).wall_time_s

    first = run()  # warm-up: the first call pays for lazy initialisation in torch
    with no_recompile(f"{case.tutorial.id} torch_eager"):
        samples = steady_samples(run, settings.repeats, settings.min_timed_s)
    return variant_result(
        "torch_eager", case, Stats.of(samples), first_call_s=first, compile_s=None
    )


def torch_compile(case: Case, settings: Settings) -> dict[str, Any]:
    """The reference's loop with its forward and loss compiled; the first run compiles."""
    from benchmarks.torch_loops import TorchLoop
    from jaxtut.torch_ref._common import torch_runtime

    with torch_runtime(case.config) as device:
        loop = TorchLoop(case.tutorial.id, case.config, case.data, device, compiled=True)
        first, per_run = timed_repeats(
            lambda: loop.run(case.plan, case.epochs),
            settings.repeats,
            label=f"{case.tutorial.id} torch_compile",
            torch_device=device,
            min_timed_s=settings.min_timed_s,
        )
    return variant_result(
        "torch_compile",
        case,
        per_run,
        first_call_s=first,
        # None when noise makes the first run no slower than the median: not separable.
        compile_s=first - per_run.median if first > per_run.median else None,
        note="compile_s = first run minus a steady run (cold inductor cache)",
    )


def torch_dataloader(case: Case, settings: Settings) -> dict[str, Any]:
    """The MNIST loop fed by ``DataLoader(TensorDataset(x, y), shuffle=True)``, as written."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from benchmarks.torch_loops import TorchLoop
    from jaxtut.torch_ref._common import tensor, torch_runtime

    config = case.config
    with torch_runtime(config) as device:
        loop = TorchLoop(case.tutorial.id, config, case.data, device)
        # The tutorials keep the data set on the host and move each batch to the device.
        x, y = (tensor(a, config, device=torch.device("cpu")) for a in case.data.train)
        loader = DataLoader(
            TensorDataset(x, y),
            batch_size=config.batch_size,
            shuffle=True,
            drop_last=config.drop_last,
            generator=torch.Generator().manual_seed(config.seed),
        )
        first, per_run = timed_repeats(
            lambda: loop.run_loader(loader, case.steps),
            settings.repeats,
            label=f"{case.tutorial.id} torch_dataloader",
            torch_device=device,
            min_timed_s=settings.min_timed_s,
        )
    return variant_result("torch_dataloader", case, per_run, first_call_s=first, compile_s=None)


def numpy_variant(case: Case, settings: Settings) -> dict[str, Any]:
    """The tutorial's NumPy version (host only); its ``wall_time_s`` is the training loop."""

    def run():
        return case.tutorial.run("numpy", case.config).wall_time_s

    first = run()
    samples = steady_samples(run, settings.repeats, settings.min_timed_s)
    note = ""
    if case.tutorial.id == "linreg_scratch":
        note = "the source's NumPy loop: hand-written (summed) gradient, same work per step"
    return variant_result(
        "numpy", case, Stats.of(samples), first_call_s=first, compile_s=None, note=note
    )


# --- One tutorial -------------------------------------------------------------------------------


OWN_BENCHMARK = "timed by its own benchmark, benchmarks/mnist_cnn.py (per-step dropout masks)"


def bench_tutorial(tutorial_id: str, settings: Settings, log: Callable[[str], None]) -> dict:
    """All variants of one training tutorial; the ratios are against its torch eager time."""
    if registry.get(tutorial_id).trainer().noise is not None:
        # Per-step dropout masks need their own step and torch loop: benchmarks/mnist_cnn.py
        # times this model (fused JAX vs torch eager vs torch.compile, per step and per epoch).
        note = OWN_BENCHMARK
        log(f"  {tutorial_id}: {note}")
        return {"tutorial": tutorial_id, "skipped": note, "variants": []}
    try:
        case = make_case(tutorial_id, settings)
    except JaxtutError as err:  # e.g. the MNIST files are not available
        log(f"  {tutorial_id}: skipped ({err})")
        return {"tutorial": tutorial_id, "skipped": str(err), "variants": []}
    plan = [
        ("jax_fused", jax_fused),
        ("jax_step", jax_step),
        ("torch_eager", torch_eager),
    ]
    if tutorial_id in MNIST_IDS:
        plan.append(("torch_dataloader", torch_dataloader))
    if tutorial_id in settings.compile_ids:
        plan.append(("torch_compile", torch_compile))
    if case.tutorial.has_numpy:
        plan.append(("numpy", numpy_variant))
    variants = []
    for name, fn in plan:
        start = time.perf_counter()
        record = fn(case, settings)
        variants.append(record)
        log(
            f"  {tutorial_id:>22} {name:<16} per step {record['per_step_s']['median'] * 1e6:10.2f}"
            f" us   (bench {time.perf_counter() - start:5.1f} s)"
        )
    eager = next(v for v in variants if v["variant"] == "torch_eager")
    eager_step = eager["per_step_s"]["median"]
    for v in variants:
        v["ratio_vs_torch_eager"] = eager_step / v["per_step_s"]["median"]
        marginal = v.get("marginal")
        if marginal and marginal["per_step_s"]:
            marginal["ratio_vs_torch_eager"] = eager_step / marginal["per_step_s"]
    skipped_compile = tutorial_id not in settings.compile_ids
    return {
        "tutorial": tutorial_id,
        "config": case.config.to_dict(),
        "epochs_per_run": case.epochs,
        "steps_per_epoch_timed": case.steps_per_epoch,
        "steps_per_epoch": case.full_steps_per_epoch,
        "torch_compile_skipped": (
            "skipped in --quick (compiling costs 5-20 s per tutorial on a 2-core CPU)"
            if skipped_compile and settings.quick
            else ("skipped" if skipped_compile else None)
        ),
        "variants": variants,
    }
