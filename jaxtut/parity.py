"""Comparing a JAX run with its PyTorch reference: same start, same batches, every step.

The harness never hopes for equal random numbers: :func:`shared_init` draws the initial parameters
with torch from the seed, and both frameworks start from exactly those values (converted). Both
train the one :class:`~jaxtut.experiment.Experiment` of the tutorial: the same arrays, the same
:class:`~jaxtut.data.BatchPlan`.

Comparisons return :class:`Comparison` records that say which leaf or step failed, by how much and
where, so a failing parity test points at the culprit rather than at "arrays differ".

Tolerances (:data:`TOLERANCES`) are stated once, here, with the measurement that justifies each;
``docs/parity.md`` explains them. The CLI and the parity suite use the same functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxtut import registry
from jaxtut.configs import TrainConfig
from jaxtut.result import RunResult

# Relative tolerances. Measured on this project's CPU runs (see reports/parity.md for the figures):
# float64 trajectories agree to ~1e-15 (reduction order is the only difference), so 1e-10 leaves
# five orders of margin while still catching any real semantic difference (an lr change of 1% moves
# losses by ~1e-3). float32 single evaluations differ by a few ulps of the output (matmul blocking),
# hence 1e-6 for outputs and losses and 1e-5 for gradients (a gradient is a difference of similar
# terms and loses a digit). float32 trajectories drift chaotically on the long runs, so only the
# first 100 steps are held to 1e-5.
TOLERANCES: dict[str, float] = {
    "forward_float32": 1e-6,
    "forward_float64": 1e-12,
    "grads_float32": 1e-5,
    "grads_float64": 1e-12,
    "trajectory_float64": 1e-10,
    "trajectory_float32_first100": 1e-5,
}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The outcome of comparing two arrays, series or trees.

    Attributes:
      name: what was compared (``"losses"``, ``"params"``, ``"fc1.weight"``...).
      max_abs: the largest absolute difference.
      max_rel: the largest relative difference (see :func:`rel_diff`).
      tolerance: the relative tolerance it was held to.
      where: the worst element: leaf name and index, or step number.
      detail: per-leaf comparisons for trees.
    """

    name: str
    max_abs: float
    max_rel: float
    tolerance: float
    where: str = ""
    detail: tuple[Comparison, ...] = ()

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_rel) and self.max_rel <= self.tolerance)

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict} {self.name}: max rel {self.max_rel:.3e} (tol {self.tolerance:.0e}), "
            f"max abs {self.max_abs:.3e} at {self.where}"
        )


def rel_diff(a: np.ndarray, b: np.ndarray, *, scale: float | None = None) -> np.ndarray:
    """Elementwise ``|a - b| / max(|a|, |b|, scale)``.

    The ``scale`` floor keeps entries that are near zero in both arrays (a bias that converged to
    0, a loss at the optimum) from turning a harmless 1e-9 absolute difference into a huge ratio;
    by default it is 1e-3 of the larger array's largest magnitude.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if scale is None:
        finite = np.concatenate([np.abs(a[np.isfinite(a)]), np.abs(b[np.isfinite(b)])])
        scale = 1e-3 * np.max(finite, initial=0.0)
    denom = np.maximum(np.maximum(np.abs(a), np.abs(b)), max(scale, np.finfo(np.float64).tiny))
    return np.abs(a - b) / denom


def compare_arrays(
    name: str, a: Any, b: Any, tolerance: float, *, scaled: bool = False
) -> Comparison:
    """Compares two arrays of the same shape; non-finite entries count as failures.

    Args:
      name: what is compared, for messages.
      a: one side (any array-like).
      b: the other side, same shape.
      tolerance: the relative tolerance.
      scaled: measure differences relative to the largest magnitude in the arrays
        (``max |a - b| / max(|a|, |b|)``) instead of elementwise. Right for a forward output or a
        gradient, whose small entries are sums of cancelling terms and carry only the absolute
        error of the large ones.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return Comparison(name, np.inf, np.inf, tolerance, f"shape {a.shape} vs {b.shape}")
    if a.size == 0:
        return Comparison(name, 0.0, 0.0, tolerance, "empty")
    if scaled:
        finite = np.concatenate([np.abs(a[np.isfinite(a)]), np.abs(b[np.isfinite(b)])])
        scale = max(np.max(finite, initial=0.0), np.finfo(np.float64).tiny)
        rel = np.abs(a - b) / scale
    else:
        rel = rel_diff(a, b)
    rel = np.where(np.isfinite(a) & np.isfinite(b), rel, np.inf)
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape)
    where = f"index {tuple(int(i) for i in worst)}" if a.ndim else "scalar"
    return Comparison(name, float(np.max(np.abs(a - b))), float(rel[worst]), tolerance, where)


def compare_series(name: str, a: Any, b: Any, tolerance: float) -> Comparison:
    """Compares per-step series (losses); ``where`` names the worst step."""
    c = compare_arrays(name, a, b, tolerance)
    if c.where.startswith("index"):
        c = dataclasses.replace(c, where="step " + c.where.removeprefix("index (").rstrip(",)"))
    return c


def compare_trees(
    name: str,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    tolerance: float,
    *,
    scaled: bool = False,
) -> Comparison:
    """Compares two ``state_dict``-shaped trees leaf by leaf and names the worst leaf.

    A key present on one side only is a failure named in ``where``; ``scaled`` applies per leaf
    (see :func:`compare_arrays`).
    """
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        return Comparison(name, np.inf, np.inf, tolerance, f"keys differ: {only}")
    leaves = tuple(compare_arrays(k, a[k], b[k], tolerance, scaled=scaled) for k in sorted(a))
    worst = max(leaves, key=lambda c: c.max_rel)
    return Comparison(
        name,
        max(c.max_abs for c in leaves),
        worst.max_rel,
        tolerance,
        f"{worst.name} {worst.where}",
        leaves,
    )


# float32 end-of-run bounds (JAX vs torch from the same init), as absolute differences of final
# metrics. float32 trajectories drift apart chaotically, so these are calibrated from the drift
# measured on this project's CPU runs (reports/parity.md lists the measured values) with roughly
# 10x headroom; accuracies are fractions of the test set (1/114 is one breast-cancer test sample).
FLOAT32_FINAL: dict[str, dict[str, float]] = {
    "linreg_scratch": {"prediction": 1e-4},
    "linreg_linear": {"prediction": 1e-3},
    "linreg_make_regression": {"loss": 1e-2},
    "perceptron": {"weight": 1e-4, "bias": 1e-4},
    "mlp_1_10_1": {"loss": 1e-3},
    "logreg_breast_cancer": {"test_accuracy": 1 / 114, "loss": 1e-4},
    "mnist_logreg": {"test_accuracy": 2e-3, "loss": 1e-3},
    "mnist_mlp": {"test_accuracy": 3e-3, "loss": 1e-3},
}


# Some trajectories are more sensitive than any two implementations are exact. The 1-10-1
# network's per-sample updates, for one, amplify a one-ulp difference ~1e4-fold within 100 steps
# (measured: from 5e-14 at step 400 to 2e-10 at step 500 in float64), and no two BLAS libraries
# round identically (XLA contracts x*w + b into one FMA, torch's addmm rounds twice; the 10-term
# dot sums in a different order). The yardstick is the problem's own conditioning: the JAX run
# against itself from parameters nudged by one ulp. A loss comparison is held to the stated
# tolerance or to ULP_FACTOR times that spread, whichever is larger. On every tutorial but the
# 1-10-1 network (float64) and the two per-sample tutorials (float32) the stated tolerance is the
# larger one, so the factor changes nothing there.
ULP_FACTOR = 4.0


def final_metric(result: RunResult, name: str) -> float:
    """A final metric of a run; ``loss`` is the mean training loss of the last epoch."""
    if name == "loss":
        return float(result.epoch_metrics["loss"][-1])
    return float(result.metrics[name])


def check_pair(pair: Pair, dtype: str) -> list[Comparison]:
    """The tier-3 verdicts on a pair of runs, exactly as the parity suite asserts them.

    float64: every step's loss and the final parameters within ``trajectory_float64``.
    float32: the first 100 steps' losses within ``trajectory_float32_first100`` and the final
    metrics of :data:`FLOAT32_FINAL` within their absolute bounds (``max_rel`` holds the absolute
    difference for those, so ``passed`` reads the same way).

    The loss tolerance is raised to ``ULP_FACTOR`` times the pair's one-ulp spread when that is
    larger (see :data:`ULP_FACTOR`); the comparison's ``tolerance`` field shows the value used.
    """
    if dtype == "float64":
        tol = TOLERANCES["trajectory_float64"]
        loss_tol = max(tol, ULP_FACTOR * pair.ulp_spread())
        return [pair.losses(loss_tol), pair.params(tol)]
    tol = TOLERANCES["trajectory_float32_first100"]
    loss_tol = max(tol, ULP_FACTOR * pair.ulp_spread(steps=100))
    checks = [pair.losses(loss_tol, steps=100)]
    checks[0] = dataclasses.replace(checks[0], name="losses, first 100 steps")
    for name, bound in FLOAT32_FINAL.get(pair.tutorial, {}).items():
        a, b = final_metric(pair.jax, name), final_metric(pair.torch, name)
        diff = abs(a - b)
        checks.append(Comparison(f"final {name}", diff, diff, bound, f"jax {a:.6g}, torch {b:.6g}"))
    return checks


# --- Running both frameworks -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pair:
    """A JAX run and a torch run of one tutorial from the same parameters on the same batches."""

    tutorial: str
    config: TrainConfig
    init: dict[str, np.ndarray]
    jax: RunResult
    torch: RunResult
    nudged: RunResult | None = None

    def losses(self, tolerance: float, *, steps: int | None = None) -> Comparison:
        n = len(self.jax.losses) if steps is None else steps
        return compare_series("losses", self.jax.losses[:n], self.torch.losses[:n], tolerance)

    def ulp_spread(self, *, steps: int | None = None) -> float:
        """How far the JAX run moves when its initial parameters move by one ulp.

        The largest relative loss difference (as :func:`compare_series` measures it) between the
        JAX run and the same JAX run started from parameters nudged by one unit in the last place;
        0.0 when the pair was run without the nudged run.
        """
        if self.nudged is None:
            return 0.0
        n = len(self.jax.losses) if steps is None else steps
        return compare_series("", self.jax.losses[:n], self.nudged.losses[:n], 1.0).max_rel

    def params(self, tolerance: float) -> Comparison:
        return compare_trees("final params", self.jax.params, self.torch.params, tolerance)


def shared_init(tutorial_id: str, config: TrainConfig) -> dict[str, np.ndarray]:
    """The torch reference's initial parameters for ``config.seed``, as a NumPy ``state_dict``."""
    tutorial = registry.get(tutorial_id)
    tutorial.torch_module()  # one clear error when torch is missing
    from jaxtut.torch_ref.train import initial_state_dict

    return initial_state_dict(tutorial.experiment(config))


def run_pair(
    tutorial_id: str,
    config: TrainConfig | None = None,
    *,
    init: Mapping[str, np.ndarray] | None = None,
    torch_config: TrainConfig | None = None,
    plans: Callable[[Any], tuple[Any, Any]] | None = None,
    nudge: bool = True,
    mesh: Any = None,
) -> Pair:
    """Runs ``tutorial_id`` in JAX and in PyTorch from the same parameters on the same batches.

    Both frameworks train the one :class:`~jaxtut.experiment.Experiment` built from ``config``:
    the same arrays and the same batch plan objects.

    Args:
      tutorial_id: a training tutorial.
      config: the run's config (defaults to the tutorial's defaults).
      init: initial parameters; ``None`` draws them with torch from ``config.seed``.
      torch_config: a different config for the torch side only (a sensitivity check uses this to
        perturb one side, e.g. ``lr * 1.01``); defaults to ``config``.
      plans: optional ``plan -> (jax plan, torch plan)`` to feed the sides different batch orders
        (a sensitivity check swaps two batches on one side).
      nudge: also run JAX from ``init`` nudged by one ulp, for :meth:`Pair.ulp_spread`.
      mesh: a 1-D ``"data"`` mesh for the JAX runs (data parallel), or ``None``.
    """
    from jaxtut.train import train

    tutorial = registry.get(tutorial_id)
    tutorial.torch_module()  # one clear error when torch is missing
    from jaxtut.torch_ref.train import initial_state_dict
    from jaxtut.torch_ref.train import train as train_torch

    config = config or tutorial.config()
    experiment = tutorial.experiment(config)
    init = dict(init) if init is not None else initial_state_dict(experiment)
    jax_side = torch_side = experiment
    if torch_config is not None:
        torch_side = tutorial.experiment(torch_config)
    if plans is not None:
        plan_j, plan_t = plans(experiment.plan)
        jax_side, torch_side = jax_side.with_plan(plan_j), torch_side.with_plan(plan_t)
    loop = torch_side.torch.loop or train_torch
    jax_result = train(jax_side, init_params=init, mesh=mesh)
    torch_result = loop(torch_side, init_params=init)
    nudged = None
    if nudge:
        up = {k: np.nextafter(v, np.inf).astype(v.dtype) for k, v in init.items()}
        nudged = train(jax_side, init_params=up, mesh=mesh)
    return Pair(tutorial_id, config, init, jax_result, torch_result, nudged)


def loss_rows(pair: Pair, max_rows: int = 20) -> list[tuple[str, float, float]]:
    """Per-step rows for short runs, else per-epoch rows, thinned to about ``max_rows``."""
    steps = len(pair.jax.losses)
    if steps <= max_rows:
        pairs = zip(pair.jax.losses, pair.torch.losses, strict=True)
        return [(f"step {i}", a, b) for i, (a, b) in enumerate(pairs)]
    ja, ta = pair.jax.epoch_metrics["loss"], pair.torch.epoch_metrics["loss"]
    label = "epoch"
    if len(ja) == 1:  # one long epoch: sample steps instead
        ja, ta, label = pair.jax.losses, pair.torch.losses, "step"
    keep = np.unique(np.linspace(0, len(ja) - 1, min(max_rows, len(ja))).astype(int))
    return [(f"{label} {i}", ja[i], ta[i]) for i in keep]


def parity_json(pair: Pair, checks: list[Comparison]) -> dict[str, Any]:
    """Both runs and the verdicts, JSON-ready (what ``jaxtut parity --json`` writes)."""
    return {
        "tutorial": pair.tutorial,
        "config": pair.config.to_dict(),
        "passed": all(c.passed for c in checks),
        "checks": [
            {
                "name": c.name,
                "max_abs": c.max_abs,
                "max_rel": c.max_rel,
                "tolerance": c.tolerance,
                "passed": c.passed,
                "where": c.where,
            }
            for c in checks
        ],
        "jax": pair.jax.to_json(),
        "torch": pair.torch.to_json(),
    }


def truncate(plan, steps: int):
    """The first ``steps`` steps of a plan (across epochs), as a one-epoch plan."""
    from jaxtut.data.batching import BatchPlan
    from jaxtut.errors import ConfigError

    total = plan.epochs * plan.steps_per_epoch
    if steps > total:
        raise ConfigError(f"--steps {steps} exceeds the run's {total} steps")
    idx = plan.idx.reshape(total, -1)[:steps][None]
    mask = plan.mask.reshape(total, -1)[:steps][None]
    return BatchPlan(idx=np.ascontiguousarray(idx), mask=np.ascontiguousarray(mask))


def parity(
    tutorial_id: str,
    config: TrainConfig,
    *,
    steps: int | None = None,
    torch_config: TrainConfig | None = None,
    mesh: Any = None,
) -> tuple[Pair, list[Comparison]]:
    """Runs both frameworks from the same init on the same batches and judges the result.

    Args:
      tutorial_id: a training tutorial.
      config: the shared config.
      steps: stop after this many steps (``None``: the full run). A full-batch tutorial (one
        step per epoch) trains ``steps`` epochs; a batched one the first ``steps`` steps of its
        plan, as one epoch.
      torch_config: a different config for the torch side (to demonstrate a failure).
      mesh: a 1-D ``"data"`` mesh for the JAX runs, or ``None``.

    Returns:
      ``(pair, checks)``: the two runs and the parity suite's tier-3 comparisons for the dtype.
    """
    plans = None
    if steps is not None:
        if registry.get(tutorial_id).experiment(config).plan is None:  # full batch
            config = config.replace(epochs=steps)
            torch_config = torch_config and torch_config.replace(epochs=steps)
        else:
            plans = lambda plan: (truncate(plan, steps), truncate(plan, steps))  # noqa: E731
    pair = run_pair(tutorial_id, config, torch_config=torch_config, plans=plans, mesh=mesh)
    return pair, check_pair(pair, config.dtype)


def swap_two_batches(plan):
    """A copy of ``plan`` with the first two steps of the first epoch swapped."""
    from jaxtut.data.batching import BatchPlan

    idx, mask = plan.idx.copy(), plan.mask.copy()
    idx[0, [0, 1]] = idx[0, [1, 0]]
    mask[0, [0, 1]] = mask[0, [1, 0]]
    return BatchPlan(idx=idx, mask=mask)
