"""Up-front checks of how much work and memory a command asks for, and of runs that learned nothing.

A run's cost is known before it starts: epochs x steps per epoch x samples per step, times the
number of seeds, and the host memory of everything materialised up front (the batch plan holds
every sample index of every step; every step's loss is kept). :func:`check_work` estimates both
from a one-epoch probe of the tutorial's data (cheap: no full plan is built) and refuses, with one
line naming the limit and a way under it, what would be killed for memory or run for hours:

========================  ======================================================================
limit                     why
========================  ======================================================================
host memory               half the machine's RAM (``os.sysconf``): beyond it the OS kills the
                          run, possibly after hours; ``--epochs 1000000`` on MNIST asked ~780 GB
JAX steps                 10^8 optimisation steps per seed (a compiled loop; ~minutes)
torch steps               10^7 steps in all (a Python loop at 30-300 us a step: up to an hour)
arithmetic                10^15 floating-point operations (6 x parameters x samples; hours on
                          a CPU, minutes on a GPU)
========================  ======================================================================

:func:`check_chance` reports a classifier whose final accuracy is no better than always guessing
the most common class: such a run diverged in all but name (``mnist_mlp --lr 10`` ends at 10%).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np

from jaxtut.errors import BudgetError, ConfigError
from jaxtut.runtime import MAX_SEED

# Host bytes per sample slot of a batch plan, per seed: the per-epoch permutations and their
# stacked copy (int64), the plan's idx (int64) and mask (bool), and the int32 index and mask
# copies the JAX program receives.
BYTES_PER_SLOT = 32
# Host bytes per optimisation step, per run: the loss on the device (float32/64), its NumPy
# float64 copy, the result's copy and the per-epoch reduction (or a Python float in a torch list).
BYTES_PER_STEP = 32
# Floating-point operations per parameter per sample for a forward and backward pass.
FLOPS_PER_PARAM_SAMPLE = 6


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30  # a conservative machine when the OS does not say


@dataclasses.dataclass(frozen=True)
class Limits:
    """The most one command may ask for; see the module docstring for why each is what it is.

    Attributes:
      host_bytes: estimated host memory of the arrays a run materialises up front.
      jax_steps: optimisation steps per seed of a compiled JAX run.
      torch_steps: optimisation steps of the torch side, all seeds together (a Python loop).
      flops: estimated floating-point operations of the whole command.
    """

    host_bytes: int = dataclasses.field(default_factory=lambda: _physical_memory() // 2)
    jax_steps: int = 10**8
    torch_steps: int = 10**7
    flops: float = 1e15


@dataclasses.dataclass(frozen=True)
class Work:
    """What one command will do, estimated before it starts.

    Attributes:
      tutorial: catalogue id.
      samples: training samples.
      frameworks: the frameworks that run (``("jax", "torch")`` for parity).
      seeds: independent runs.
      epochs: epochs per run (for a parity comparison of a full-batch tutorial, the steps).
      steps_per_epoch: optimisation steps per epoch.
      batch_slots: samples per step as stored (padded batch size), 0 when there is no plan.
      samples_per_step: samples each step computes with (the batch, or all samples).
      params: trainable parameters of the model.
      steps: optimisation steps per run that actually execute.
      host_bytes: estimated host memory materialised up front.
      flops: estimated floating-point operations of the whole command.
    """

    tutorial: str
    samples: int
    frameworks: tuple[str, ...]
    seeds: int
    epochs: int
    steps_per_epoch: int
    batch_slots: int
    samples_per_step: int
    params: int
    steps: int
    host_bytes: int
    flops: float


def _probe_config(config: Any) -> Any:
    """``config`` for one epoch of single samples: a probe whose cost does not grow with them."""
    changes: dict[str, Any] = {"epochs": 1}
    if any(f.name == "batch_size" for f in dataclasses.fields(config)):
        changes["batch_size"] = 1
    return config.replace(**changes)


def _probe_data(tutorial: Any, config: Any) -> tuple[int, bool, int]:
    """``(samples, batched, data bytes)`` of a training tutorial, from a probe of its data.

    The probe builds the data arrays the run uses anyway (MNIST's are cached) and a plan of one
    epoch of single samples. It goes through :func:`jaxtut.tutorial_data.tutorial_data`, which
    imports neither JAX nor Flax, so a refusal on memory or steps costs no model import.
    """
    from jaxtut.tutorial_data import _BUILDERS, tutorial_data

    probe = _probe_config(config)
    if type(probe) in _BUILDERS:
        data = tutorial_data(probe)
        train, plan = data.train, data.plan
    else:  # a tutorial whose data only its experiment knows
        experiment = tutorial.experiment(probe)
        train, plan = experiment.train, experiment.plan
    leaves = [np.asarray(x) for x in _leaves(train)]
    samples = plan.steps_per_epoch if plan is not None else len(leaves[0])
    return samples, plan is not None, sum(x.nbytes for x in leaves)


def _leaves(tree: Any) -> list[Any]:
    """The arrays of a nested tuple / list / dict of arrays (NumPy only: no JAX import)."""
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    if isinstance(tree, list | tuple):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [] if tree is None else [tree]


def _n_params(tutorial: Any, config: Any) -> int:
    """Trainable parameters, from the JAX initialiser's shapes (nothing is allocated)."""
    import jax

    probe = _probe_config(config)
    init = (
        tutorial.experiment(probe).jax.init
        if hasattr(tutorial, "experiment")
        else tutorial.trainer().init
    )
    with jax.enable_x64(probe.dtype == "float64"):
        shapes = jax.eval_shape(lambda: init(jax.random.key(0), np.dtype(probe.dtype)))
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes)))


def plan_work(
    tutorial: Any,
    config: Any,
    *,
    framework: str = "jax",
    seeds: int = 1,
    parity_steps: int | None = None,
    params: int | None = None,
) -> Work:
    """Estimates the work of a training command without doing it (see :func:`check_work`).

    Args:
      tutorial, config, framework, seeds, parity_steps: as for :func:`check_work`.
      params: the model's parameter count if known; ``None`` counts them (imports JAX).
    """
    samples, batched, data_bytes = _probe_data(tutorial, config)
    if params is None:
        params = _n_params(tutorial, config)
    return _estimate(
        tutorial, config, framework, seeds, parity_steps, samples, batched, data_bytes, params
    )


def _estimate(
    tutorial, config, framework, seeds, parity_steps, samples, batched, data_bytes, params
) -> Work:
    """The arithmetic of :func:`plan_work` on the probed sizes."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"the number of seeds must be a positive integer, got {seeds!r}")
    if config.seed + seeds - 1 > MAX_SEED:
        raise ConfigError(
            f"seeds {config.seed}..{config.seed + seeds - 1} go past the largest seed, 2**32 - 1; "
            "start from a smaller --seed"
        )
    frameworks = ("jax", "torch") if framework == "parity" else (framework,)
    epochs = config.epochs
    if batched:
        batch = config.batch_size or 1
        steps_per_epoch = samples // batch if config.drop_last else -(-samples // batch)
        if steps_per_epoch == 0:
            raise ConfigError(
                f"batch_size {batch} is larger than the {samples} samples and drop_last is set, "
                "so there would be no batches; lower batch_size or keep the last batch"
            )
        slots, per_step = batch, batch
    else:
        steps_per_epoch, slots, per_step = 1, 0, samples
    steps = epochs * steps_per_epoch
    if parity_steps is not None:
        if not batched:  # full batch: the comparison trains `parity_steps` epochs
            epochs = steps = parity_steps
        else:
            if parity_steps > steps:
                raise ConfigError(
                    f"--steps {parity_steps} exceeds the run's {steps} steps "
                    f"({epochs} epochs of {steps_per_epoch}); raise --epochs to compare more"
                )
            steps = parity_steps
    runs = seeds * len(frameworks)
    plan_bytes = epochs * steps_per_epoch * slots * BYTES_PER_SLOT * seeds
    host = (
        plan_bytes
        + steps * BYTES_PER_STEP * runs
        + params * 8 * 4 * runs  # initial, final and optimizer-state copies, float64 at most
        + data_bytes * (1 + len(frameworks))  # the arrays and their device / tensor copies
    )
    flops = float(FLOPS_PER_PARAM_SAMPLE) * params * per_step * steps * runs
    return Work(
        tutorial=tutorial.id,
        samples=samples,
        frameworks=frameworks,
        seeds=seeds,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_slots=slots,
        samples_per_step=per_step,
        params=params,
        steps=steps,
        host_bytes=int(host),
        flops=flops,
    )


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} bytes"


def check_work(
    tutorial: Any,
    config: Any,
    *,
    framework: str = "jax",
    seeds: int = 1,
    parity_steps: int | None = None,
    limits: Limits | None = None,
) -> Work:
    """Refuses, before any work starts, a command over :class:`Limits`; returns its estimate.

    Args:
      tutorial: the :class:`~jaxtut.registry.Tutorial` (a demonstration is checked on its own
        size options, see :func:`check_demo`).
      config: its config.
      framework: ``"jax"``, ``"torch"``, or ``"parity"`` for both.
      seeds: how many seeds run (JAX: in one program; torch: one after another).
      parity_steps: the steps a parity comparison runs (``--steps``), or ``None``.
      limits: the limits (default: :class:`Limits` for this machine).

    Raises:
      BudgetError: the estimate exceeds a limit; the message names it and a way under it.
      ConfigError: ``parity_steps`` exceeds the run, or the options make no batches.
    """
    limits = limits or Limits()
    if not tutorial.trains:
        check_demo(tutorial, config, limits)
        return None  # type: ignore[return-value]
    sizes = _probe_data(tutorial, config)
    args = (tutorial, config, framework, seeds, parity_steps, *sizes)
    # Memory and steps first, without the parameter count: refusing them then imports no model.
    _check_limits(_estimate(*args, 0), limits, flops=False)
    work = _estimate(*args, _n_params(tutorial, config))
    _check_limits(work, limits, flops=True)
    return work


def _check_limits(work: Work, limits: Limits, *, flops: bool) -> None:
    what = f"{work.tutorial} with {work.epochs} epochs x {work.steps_per_epoch} steps"
    if work.seeds > 1:
        what += f" x {work.seeds} seeds"
    if work.host_bytes > limits.host_bytes:
        advice = (
            f"a batch size of at most {work.samples} (larger ones are padded)"
            if work.batch_slots > work.samples
            else "fewer epochs or seeds, or a larger batch size"
        )
        raise BudgetError(
            f"{what} needs about {_size(work.host_bytes)} of memory up front (batch plan and "
            f"losses), over the limit of {_size(limits.host_bytes)} (half this machine's RAM); "
            f"use {advice}"
        )
    if "jax" in work.frameworks and work.steps > limits.jax_steps:
        raise BudgetError(
            f"{what} is {work.steps:,} optimisation steps per run, over the limit of "
            f"{limits.jax_steps:,}; use fewer epochs or a larger batch size"
        )
    torch_steps = work.steps * work.seeds
    if "torch" in work.frameworks and torch_steps > limits.torch_steps:
        raise BudgetError(
            f"{what} is {torch_steps:,} PyTorch steps (a Python loop), over the limit of "
            f"{limits.torch_steps:,}; use fewer epochs or seeds"
        )
    if flops and work.flops > limits.flops:
        raise BudgetError(
            f"{what} is about {work.flops:.1e} floating-point operations, over the limit of "
            f"{limits.flops:.0e} (hours of computing); use fewer epochs or seeds"
        )


def check_demo(tutorial: Any, config: Any, limits: Limits | None = None) -> None:
    """Size checks of the demonstrations whose options scale their work (autograd, least squares).

    Raises:
      BudgetError: ``steps`` of the autograd demo or the least-squares matrix is over a limit.
    """
    limits = limits or Limits()
    steps = getattr(config, "steps", None)
    if isinstance(steps, int) and steps > limits.torch_steps:
        raise BudgetError(
            f"{tutorial.id} with {steps:,} steps is over the limit of {limits.torch_steps:,} "
            "steps (its loops run in Python); use fewer steps"
        )
    n, p = getattr(config, "n_samples", None), getattr(config, "n_features", None)
    if isinstance(n, int) and isinstance(p, int):
        host = 8 * (n * p * 4 + p * p * 4)  # X, its float32 copy and the solvers' copies
        flops = 2.0 * n * p * p + 3.0 * p**3
        if host > limits.host_bytes or flops > limits.flops:
            raise BudgetError(
                f"{tutorial.id} with a {n} x {p} matrix needs about {_size(host)} and "
                f"{flops:.1e} operations, over the limits of {_size(limits.host_bytes)} and "
                f"{limits.flops:.0e}; use fewer samples or features"
            )


# --- Runs that learned nothing ------------------------------------------------------------------


def chance_accuracy(labels: Any) -> float:
    """The accuracy of always guessing the most common label: the floor a classifier must beat.

    Args:
      labels: class labels (integers, or 0/1 floats of any shape).
    """
    labels = np.rint(np.asarray(labels, dtype=np.float64)).reshape(-1)
    if labels.size == 0:
        raise ValueError("no labels")
    _, counts = np.unique(labels, return_counts=True)
    return float(counts.max() / labels.size)


def check_chance(result: Any, labels: Any, metric: str = "test_accuracy") -> str | None:
    """Why a finished classifier run learned nothing, or ``None`` when it did better than chance.

    Args:
      result: a :class:`~jaxtut.result.RunResult`.
      labels: the labels its ``metric`` was measured on.
      metric: the accuracy metric in ``result.metrics``; a result without it is never flagged.

    Returns:
      A one-line message when the accuracy is at most :func:`chance_accuracy` of ``labels``
      (no better than always guessing the most common class), else ``None``.
    """
    accuracy = result.metrics.get(metric)
    if not isinstance(accuracy, int | float) or labels is None:
        return None
    floor = chance_accuracy(labels)
    if math.isfinite(accuracy) and accuracy > floor:
        return None
    return (
        f"{result.tutorial} ended no better than chance: {metric} {accuracy:.4f}, while always "
        f"guessing the most common class scores {floor:.4f}"
    )


def eval_labels(tutorial: Any, config: Any) -> Any:
    """The held-out labels a training tutorial's accuracy is measured on, or ``None``."""
    if not tutorial.trains:
        return None
    from jaxtut.tutorial_data import tutorial_data

    changes: dict[str, Any] = {"epochs": 1}
    if any(f.name == "batch_size" for f in dataclasses.fields(config)):
        changes["batch_size"] = 1
    data = tutorial_data(config.replace(**changes))
    if isinstance(data.eval, tuple | list) and len(data.eval) == 2:
        return data.eval[1]
    return None


def learned_nothing(tutorial: Any, config: Any, results: Any) -> list[tuple[int, str]]:
    """``(index, message)`` for each result of ``results`` that ended no better than chance.

    Args:
      tutorial: the tutorial the results ran.
      config: the config they share (all but the seed).
      results: :class:`~jaxtut.result.RunResult` objects (one per seed).
    """
    if not any("test_accuracy" in r.metrics for r in results):
        return []
    labels = eval_labels(tutorial, config)
    out = []
    for i, result in enumerate(results):
        message = check_chance(result, labels)
        if message is not None:
            out.append((i, message))
    return out


def failure(tutorial: Any, config: Any, results: Any, seeds: Any = None) -> str | None:
    """One line saying why finished runs failed (exit 1 at the CLI), or ``None``.

    A run fails when its loss turned NaN or infinite, or when it ended no better than chance
    (:func:`learned_nothing`). ``seeds`` names the runs of a many-seeds sweep.
    """
    diverged = [i for i, r in enumerate(results) if r.diverged]
    if diverged:
        if seeds is not None:
            which = [seeds[i] for i in diverged]
            return f"jaxtut: {tutorial.id} diverged for seeds {which}; try a smaller --lr"
        r = results[0]
        return (
            f"jaxtut: {tutorial.id} diverged at step {r.diverged_at} "
            f"(loss {r.losses[r.diverged_at]}); try a smaller --lr"
        )
    failed = learned_nothing(tutorial, config, results)
    if not failed:
        return None
    which = "" if seeds is None else f" (seeds {[seeds[i] for i, _ in failed]})"
    return f"jaxtut: {failed[0][1]}{which}; try a smaller --lr"
