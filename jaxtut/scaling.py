"""Many seeds and many devices for any training tutorial, on JAX's own machinery.

* **Many seeds** (:func:`run_seeds`): K independent initialisations and batch orders of one
  tutorial trained in ONE compiled program, the single-seed program ``vmap``-ped over the
  parameters, the optimizer state and the batch plan
  (:func:`jaxtut.train.train_seeds`). Each seed's result equals the single run with that
  seed (float64: to rounding; measured bit-equal on the CPU). With a mesh, the seed axis is split
  over the devices: each device trains whole models.
* **Many devices** (:func:`run` with ``devices=N``, or ``mesh=`` of :func:`jaxtut.train.train`): the
  run's program compiled for a 1-D :class:`~jax.sharding.Mesh` (axis ``"data"``) with
  ``NamedSharding``: every batch split over the devices, parameters and optimizer state
  replicated. The loss is a sum over the global batch divided by the global count, so a
  data-parallel run equals the single-device run (float64: within 1e-12 relative per step).
* **Many processes**: the same, with a mesh over every device of every process; see
  :mod:`jaxtut.distributed`.

Tutorials are not written for any of this: each is a function from its config to an
:class:`~jaxtut.experiment.Experiment`, and the mesh and the seeds are arguments of the functions
that train it (:func:`jaxtut.train.train`, :func:`jaxtut.train.train_seeds`). Many seeds build the
data once and draw only each seed's batch order (``Experiment.with_seed``), then apply the
experiment's own post-processing to every seed's result.

Example:
  >>> from jaxtut import scaling
  >>> sweep = scaling.run_seeds("mnist_mlp", seeds=16)  # doctest: +SKIP
  >>> sweep.summary["test_accuracy"]["mean"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxtut import registry
from jaxtut.budget import check_work
from jaxtut.configs import TrainConfig, check_run
from jaxtut.errors import ConfigError, DeviceError
from jaxtut.result import RunResult, _jsonable

# The final metric added to every summary beside the tutorial's own: the mean training loss of the
# last epoch (what the parity suite calls "loss").
LAST_EPOCH_LOSS = "last_epoch_loss"


def device_mesh(devices: int | None = None, *, device: str = "cpu"):
    """A 1-D mesh (axis ``"data"``) over the first ``devices`` JAX devices of a platform.

    Args:
      devices: how many devices; ``None`` takes all of them. When several processes share the
        run (:mod:`jaxtut.distributed`) the mesh must span every device of every process, so
        ``devices`` must then be ``None`` or the global device count.
      device: ``"cpu"`` or ``"gpu"``.

    Raises:
      DeviceError: more devices are asked for than exist (the message says how many exist and,
        on the CPU, how to simulate more).
    """
    import jax
    from jax.sharding import Mesh

    from jaxtut.sharding import DATA_AXIS

    try:
        available = jax.devices(device)
    except RuntimeError:
        available = []
    n = len(available) if devices is None else devices
    if n < 1:
        raise ConfigError(f"the number of devices must be at least 1, got {n}")
    if n > len(available):
        hint = (
            f"; simulate {n} CPU devices with XLA_FLAGS=--xla_force_host_platform_device_count={n} "
            "set before JAX starts"
            if device == "cpu"
            else ""
        )
        raise DeviceError(
            f"--devices {n} asks for {n} {device} devices but JAX sees {len(available)}{hint}"
        )
    if jax.process_count() > 1 and n != len(available):
        raise ConfigError(
            f"with {jax.process_count()} processes the mesh spans all {len(available)} devices "
            f"of all processes; drop --devices or pass --devices {len(available)}"
        )
    return Mesh(np.array(available[:n]), (DATA_AXIS,))


def run(
    tutorial_id: str,
    config: TrainConfig | None = None,
    *,
    devices: int | None = None,
    mesh: Any = None,
    **kwargs: Any,
) -> RunResult:
    """Runs a training tutorial in JAX, data-parallel over ``devices`` (or ``mesh``).

    Args:
      tutorial_id: a training tutorial.
      config: its config (default: the tutorial's defaults).
      devices: split every batch over this many devices (see :func:`device_mesh`).
      mesh: a ready mesh instead of ``devices``.
      **kwargs: passed to the tutorial's run function (``init_params``, ``plan``, ...).

    Returns:
      The :class:`RunResult`; its ``device`` names the mesh (e.g. ``cpu x4 (mesh 'data')``).
    """
    tutorial = _training_tutorial(tutorial_id)
    config = config or tutorial.config()
    if mesh is None and devices is not None:
        mesh = device_mesh(devices, device=config.device)
    return tutorial.run("jax", config, mesh=mesh, **kwargs)


@dataclasses.dataclass
class SeedsResult:
    """K runs of one tutorial that differ only in their seed, and a summary of their metrics.

    Attributes:
      tutorial: catalogue id.
      framework: ``"jax"`` (one vmapped program) or ``"torch"`` (runs one after another).
      seeds: the seeds, in the order of ``results``.
      results: one :class:`RunResult` per seed; a JAX result equals the single run with its seed.
      summary: ``{metric: {"mean", "std", "min", "max"}}`` over the seeds, for every final metric
        and :data:`LAST_EPOCH_LOSS`; ``std`` is the population standard deviation (ddof=0).
      wall_time_s: seconds of training: the one vmapped program (JAX, compilation excluded), or
        the sum of the runs' own times (torch).
      compile_time_s: seconds tracing and compiling the vmapped program (JAX), else ``None``.
      total_time_s: end-to-end seconds of :func:`run_seeds`, data preparation included.
      device: where it ran.
    """

    tutorial: str
    framework: str
    seeds: list[int]
    results: list[RunResult]
    summary: dict[str, dict[str, float]]
    wall_time_s: float
    compile_time_s: float | None
    total_time_s: float
    device: str

    def table(self, max_rows: int = 20) -> tuple[list[str], list[list[str]], list[list[str]]]:
        """``(columns, per-seed rows, mean/std/min/max rows)`` as text, for printing.

        Thousands of rows cost seconds to lay out and nobody reads them: beyond ``max_rows``
        seeds, the first and last ``max_rows // 2`` are shown around a ``(N more)`` row (the
        JSON holds every seed).
        """
        names = list(self.summary)

        def row(seed: int, r: RunResult) -> list[str]:
            values = [
                r.epoch_metrics["loss"][-1] if n == LAST_EPOCH_LOSS else r.metrics[n] for n in names
            ]
            return [str(seed), *(f"{v:.6g}" for v in values)]

        rows = [row(s, r) for s, r in zip(self.seeds, self.results, strict=True)]
        if len(rows) > max_rows:
            half = max_rows // 2
            hidden = [f"({len(rows) - 2 * half} more)", *("..." for _ in names)]
            rows = [*rows[:half], hidden, *rows[-half:]]
        stats = [
            [stat, *(f"{self.summary[n][stat]:.6g}" for n in names)]
            for stat in ("mean", "std", "min", "max")
        ]
        return ["seed", *names], rows, stats

    def timing(self) -> str:
        """One line: training, compile and end-to-end seconds, and where it ran."""
        timing = f"{self.wall_time_s:.3f} s training"
        if self.compile_time_s:
            timing += f" + {self.compile_time_s:.2f} s compile"
        return (
            f"{timing}, {self.total_time_s:.2f} s in all (data preparation included) "
            f"on {self.device}"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict holding the summary and every seed's full result."""
        out = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "results"
        }
        out["results"] = [r.to_json() for r in self.results]
        return _jsonable(out)


def summarize(results: Sequence[RunResult]) -> dict[str, dict[str, float]]:
    """Mean, std (ddof=0), min and max over runs of every final metric and the last epoch's loss.

    Metrics that are not numbers (or missing from some run) are left out.
    """
    names = [k for k, v in results[0].metrics.items() if isinstance(v, int | float)]
    columns = {
        name: [r.metrics.get(name) for r in results]
        for name in names
        if all(isinstance(r.metrics.get(name), int | float) for r in results)
    }
    columns[LAST_EPOCH_LOSS] = [float(r.epoch_metrics["loss"][-1]) for r in results]
    summary = {}
    for name, values in columns.items():
        v = np.asarray(values, dtype=np.float64)
        summary[name] = {
            "mean": float(np.mean(v)),
            "std": float(np.std(v)),
            "min": float(np.min(v)),
            "max": float(np.max(v)),
        }
    return summary


def seed_list(config: TrainConfig, seeds: int | Sequence[int]) -> list[int]:
    """``K`` -> ``config.seed, ..., config.seed + K - 1``; a sequence is taken as given."""
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"the number of seeds must be at least 1, got {seeds}")
        return list(range(config.seed, config.seed + int(seeds)))
    out = [int(s) for s in seeds]
    if not out or any(s < 0 for s in out):
        raise ConfigError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
    return out


def run_seeds(
    tutorial_id: str,
    config: TrainConfig | None = None,
    seeds: int | Sequence[int] = 8,
    *,
    framework: str = "jax",
    devices: int | None = None,
    mesh: Any = None,
) -> SeedsResult:
    """Trains ``seeds`` independent runs of a tutorial and summarises their final metrics.

    In JAX the runs are one compiled program (the tutorial's single-seed program, vmapped over
    seeds); each seed draws its own initial parameters and, where the tutorial shuffles, its own
    batch order, exactly as ``tutorial.run("jax", config.replace(seed=s))`` would. The torch
    references have no vmap: ``framework="torch"`` runs the seeds one after another (the baseline
    to compare against).

    Args:
      tutorial_id: a training tutorial.
      config: the shared config (default: the tutorial's defaults); its ``seed`` is the first seed
        when ``seeds`` is a count.
      seeds: a count K (seeds ``config.seed .. config.seed + K - 1``) or the seeds themselves.
      framework: ``"jax"`` or ``"torch"``.
      devices: JAX only: split the SEED axis over this many devices (each trains whole models);
        the number of seeds must be a multiple of it.
      mesh: a ready mesh instead of ``devices``.

    Returns:
      A :class:`SeedsResult`.

    Raises:
      ConfigError: a tutorial whose training data depend on the seed (none in the catalogue), or
        an invalid combination of arguments.
    """
    tutorial = _training_tutorial(tutorial_id)
    check_run(tutorial, framework, config)  # as strict as the CLI: framework, config type
    config = config or tutorial.config()
    seeds = seed_list(config, seeds)
    check_work(tutorial, config, framework=framework, seeds=len(seeds))
    start = time.perf_counter()
    if framework == "torch":
        if devices is not None or mesh is not None:
            raise ConfigError("the torch references run seeds one after another on one device")
        results = [tutorial.run("torch", config.replace(seed=s)) for s in seeds]
        wall, compile_s, device = sum(r.wall_time_s for r in results), None, results[0].device
    elif framework == "jax":
        if mesh is None and devices is not None:
            mesh = device_mesh(devices, device=config.device)
        results = _jax_seeds(tutorial, config, seeds, mesh)
        wall, compile_s, device = (
            results[0].wall_time_s,
            results[0].compile_time_s,
            results[0].device,
        )
    else:
        raise ConfigError(f"framework must be 'jax' or 'torch', got {framework!r}")
    return SeedsResult(
        tutorial=tutorial.id,
        framework=framework,
        seeds=seeds,
        results=results,
        summary=summarize(results),
        wall_time_s=wall,
        compile_time_s=compile_s,
        total_time_s=time.perf_counter() - start,
        device=device,
    )


def _jax_seeds(tutorial: registry.Tutorial, config: TrainConfig, seeds: list[int], mesh):
    """All seeds of the tutorial's experiment in one vmapped program (data built once)."""
    from jaxtut.train import train_seeds

    return train_seeds(tutorial.experiment(config), seeds, mesh=mesh)


def _training_tutorial(tutorial_id: str) -> registry.Tutorial:
    tutorial = registry.get(tutorial_id)
    if not tutorial.trains:
        raise ConfigError(
            f"{tutorial.id} is not a training tutorial; many seeds and devices apply to training"
        )
    return tutorial
