"""Parity tiers 0-3 for every training tutorial, with a sensitivity check for each tier-3 check.

Tier 0  structure: the JAX params tree maps one-to-one onto the torch state_dict.
Tier 1  forward at a shared init: outputs and loss agree.
Tier 2  gradients at a shared init: every leaf agrees.
Tier 3  training: the full default run from the same init on the same batches, every step.

Every tolerance comes from :data:`jaxtut.parity.TOLERANCES` (justified there and in
docs/parity.md) or, for the float32 end-of-run metrics, from FLOAT32_FINAL below.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from jaxtut import registry
from jaxtut.convert import from_state_dict, to_state_dict
from jaxtut.data.batching import BatchPlan
from jaxtut.parity import (
    TOLERANCES,
    ULP_FACTOR,
    check_pair,
    compare_arrays,
    compare_series,
    compare_trees,
    rel_diff,
    run_pair,
    shared_init,
    swap_two_batches,
)
from jaxtut.train import evaluate_at
from jaxtut.tutorial_data import tutorial_data
from parity_tests.conftest import SUITE_STEPS, default_config, full_pair, suite_plan

TRAINING = registry.ids(training_only=True)
# Tier 3 over the default run: the tutorials of SUITE_STEPS take minutes and are marked slow.
TIER3 = [pytest.param(t, marks=pytest.mark.slow) if t in SUITE_STEPS else t for t in TRAINING]
DTYPES = ("float32", "float64")

# Parameter counts, pinned: a silent change of architecture must fail here first.
PARAM_COUNTS = {
    "linreg_scratch": 1,
    "linreg_linear": 2,
    "linreg_make_regression": 2,
    "perceptron": 2,
    "mlp_1_10_1": 10 + 10 + 10 + 1,
    "logreg_breast_cancer": 30 + 1,
    "mnist_logreg": 784 * 10 + 10,
    "mnist_mlp": 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10,
    "mnist_cnn": 32 * 9 + 32 + 64 * 32 * 9 + 64 + 9216 * 128 + 128 + 128 * 10 + 10,
}


# Where JAX vs torch exceeds the stated loss tolerance and passes only by the one-ulp yardstick
# (docs/parity.md, "The one-ulp yardstick"), measured on this project's CPU. Pinned: tier 3 fails if
# the yardstick is needed anywhere else, and test_tier3_torch_against_itself measures the same
# yardstick on torch for these cases.
CONDITIONING_BOUND = [
    ("mlp_1_10_1", "float32"),
    ("mlp_1_10_1", "float64"),
    ("perceptron", "float32"),
    # Adadelta divides by the root of a running mean of squared gradients: where a gradient is
    # almost zero (dead ReLUs, dropped units) its float32 rounding noise becomes a full step.
    # Measured: JAX vs torch 0.13 over the first 100 steps, torch vs torch one ulp apart 0.22.
    ("mnist_cnn", "float32"),
]
STATED = {"float64": "trajectory_float64", "float32": "trajectory_float32_first100"}


def check_yardstick_needed_only_where_pinned(tutorial_id, dtype, losses):
    stated = TOLERANCES[STATED[dtype]]
    if losses.max_rel > stated:
        assert (tutorial_id, dtype) in CONDITIONING_BOUND, (
            f"{tutorial_id} {dtype}: JAX vs torch {losses.max_rel:.1e} exceeds the stated "
            f"{stated:.0e} and passes only by the one-ulp yardstick: investigate, then update "
            "CONDITIONING_BOUND and docs/parity.md"
        )


def first_batch(config):
    """The batch of the run's first step, as both frameworks see it."""
    data = tutorial_data(config)
    x, y = data.train
    if data.plan is None:
        return x, y
    idx = data.plan.batches(0)[0]
    return x[idx], y[idx]


# --- Tier 0: structure --------------------------------------------------------------------------


@pytest.mark.parametrize("tutorial_id", TRAINING)
def test_tier0_structure(tutorial_id, record):
    tutorial = registry.get(tutorial_id)
    config = default_config(tutorial_id)
    torch_sd = shared_init(tutorial_id, config)
    template = jax.eval_shape(lambda: tutorial.trainer().init(jax.random.key(0), np.float32))
    jax_sd = to_state_dict(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template))

    assert sorted(jax_sd) == sorted(torch_sd), "parameter names differ"
    for name in torch_sd:
        assert jax_sd[name].shape == torch_sd[name].shape, name
        assert jax_sd[name].dtype == torch_sd[name].dtype, name
    count = sum(v.size for v in torch_sd.values())
    assert count == PARAM_COUNTS[tutorial_id]

    # torch -> JAX -> torch is exact (bit for bit).
    back = to_state_dict(from_state_dict(torch_sd, template))
    exact = all(np.array_equal(back[k], torch_sd[k]) for k in torch_sd)
    record(
        tutorial_id,
        "0 structure",
        "float32",
        check="round trip torch->jax->torch",
        passed=exact,
        max_abs=0.0 if exact else float("inf"),
        tolerance=0.0,
        note=f"{count} parameters",
    )
    assert exact


# --- Tiers 1 and 2: one evaluation at a shared init ---------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tutorial_id", TRAINING)
def test_tier1_tier2_forward_and_grads(tutorial_id, dtype, record):
    tutorial = registry.get(tutorial_id)
    tutorial.torch_module()
    from jaxtut.torch_ref.train import evaluate_at as torch_evaluate_at

    config = default_config(tutorial_id, dtype)
    init = shared_init(tutorial_id, config)
    batch = first_batch(config)
    ours = evaluate_at(tutorial.trainer(), config, init, batch)
    ref = torch_evaluate_at(tutorial.experiment(config), init, batch)

    # Outputs and gradients: max abs difference scaled by the array's (leaf's) magnitude.
    tol_f = TOLERANCES[f"forward_{dtype}"]
    fwd = compare_arrays("forward output", ours["output"], ref["output"], tol_f, scaled=True)
    record(tutorial_id, "1 forward", dtype, fwd, note="max abs / max |output|")
    loss = compare_arrays("loss", ours["loss"], ref["loss"], tol_f)
    record(tutorial_id, "1 forward", dtype, loss)

    tol_g = TOLERANCES[f"grads_{dtype}"]
    grads = compare_trees("grads", ours["grads"], ref["grads"], tol_g, scaled=True)
    record(tutorial_id, "2 gradients", dtype, grads, note="per leaf: max abs / max |grad|")

    assert fwd.passed, fwd
    assert loss.passed, loss
    assert grads.passed, grads


# --- Tier 3: the full default run ---------------------------------------------------------------


@pytest.mark.parametrize("tutorial_id", TIER3)
def test_tier3_float64_every_step(tutorial_id, record):
    pair = full_pair(tutorial_id, "float64")
    losses, params = check_pair(pair, "float64")
    note = f"{len(pair.jax.losses)} steps; one-ulp spread {pair.ulp_spread():.1e}"
    record(tutorial_id, "3 trajectory", "float64", losses, note=note)
    record(tutorial_id, "3 trajectory", "float64", params)
    assert len(pair.jax.losses) == len(pair.torch.losses)
    assert losses.passed, losses
    assert params.passed, params
    check_yardstick_needed_only_where_pinned(tutorial_id, "float64", losses)


@pytest.mark.parametrize("tutorial_id", TIER3)
def test_tier3_float32(tutorial_id, record):
    """The first 100 steps, then the final metrics within FLOAT32_FINAL's absolute bounds."""
    pair = full_pair(tutorial_id, "float32")
    checks = check_pair(pair, "float32")
    for c in checks:
        if c.name.startswith("final"):
            note = "absolute bound"
        else:
            note = f"one-ulp spread {pair.ulp_spread(steps=100):.1e}"
        record(tutorial_id, "3 trajectory", "float32", c, note=note)
    failed = [str(c) for c in checks if not c.passed]
    assert not failed, failed
    check_yardstick_needed_only_where_pinned(tutorial_id, "float32", checks[0])


@pytest.mark.parametrize(
    ("tutorial_id", "dtype"),
    [
        pytest.param(*c, marks=pytest.mark.slow) if c[0] in SUITE_STEPS else c
        for c in CONDITIONING_BOUND
    ],
)
def test_tier3_torch_against_itself(tutorial_id, dtype, record):
    """The one-ulp yardstick measured on the reference: JAX vs torch within it too.

    torch's run from the shared init is compared with torch's runs from it nudged one ulp up and
    one ulp down, the way JAX is compared with torch. JAX vs torch must be within the stated
    tolerance or ULP_FACTOR times that torch spread, whichever is larger: the same rule as tier 3,
    with the problem's conditioning measured on torch instead of on JAX.
    """
    pair = full_pair(tutorial_id, dtype)
    steps = 100 if dtype == "float32" else len(pair.torch.losses)
    spread = 0.0
    for direction in (np.inf, -np.inf):
        nudged = {k: np.nextafter(v, direction).astype(v.dtype) for k, v in pair.init.items()}
        plan = suite_plan(tutorial_id, pair.config)
        run = registry.get(tutorial_id).run("torch", pair.config, init_params=nudged, plan=plan)
        torch_vs_torch = compare_series("", pair.torch.losses[:steps], run.losses[:steps], 1.0)
        spread = max(spread, torch_vs_torch.max_rel)
    stated = TOLERANCES[STATED[dtype]]
    losses = dataclasses.replace(
        pair.losses(max(stated, ULP_FACTOR * spread), steps=steps),
        name=f"losses, {steps} steps, vs torch's one-ulp spread",
    )
    note = f"torch vs torch one ulp apart: {spread:.1e} (stated tolerance {stated:.0e})"
    record(tutorial_id, "3 trajectory", dtype, losses, note=note)
    assert losses.passed, losses


def test_tier3_mnist_cnn_short(record):
    """The CNN's first 40 steps (dropout on, Adadelta), float64, every step: the fast tier 3.

    The 300-step runs above are marked slow; this one keeps the CNN's trajectory in `make test`.
    """
    pair = full_pair("mnist_cnn", "float64", steps=40, nudge=False)  # held to 1e-10 alone
    losses, params = check_pair(pair, "float64")
    note = f"{len(pair.jax.losses)} steps (the first of the default run)"
    record("mnist_cnn", "3 trajectory", "float64", losses, note=note)
    record("mnist_cnn", "3 trajectory", "float64", params, note=note)
    assert len(pair.jax.losses) == 40
    assert losses.passed, losses
    assert params.passed, params


# --- The CNN over a full float32 epoch ------------------------------------------------------------

# Two float32 CNN runs that differ by rounding alone (JAX vs torch, either one from its start
# nudged by one or two ulps, torch on one thread instead of two) are decorrelated step by step
# within 100-150 steps, and their end-of-epoch test metrics differ like two draws of one noise.
# Measured over eleven such full-epoch runs from the shared seed-0 start (docs/parity.md, "The
# CNN over a full float32 epoch"): test accuracy std 5.5e-4 (five or six test images), test loss
# std 1.5e-3, with no offset between the frameworks (mean accuracy: JAX's three runs 0.9859,
# torch's eight 0.9862). The stated floor is three standard deviations of the difference of two
# such runs, 3 * sqrt(2) * std, rounded up: 2.4e-3 and 6.3e-3. It keeps two torch nudges that
# happen to land close together from failing an honest JAX run: with the 4x rule alone that
# happens ~3% of the time once the metrics are decorrelated (the spread is then two samples of
# the same noise).
CNN_FINAL_STATED = {"test_accuracy": 2.4e-3, "test_loss": 6.3e-3}


def _nudged(init, direction):
    return {k: np.nextafter(v, direction).astype(v.dtype) for k, v in init.items()}


@pytest.mark.slow
def test_tier3_mnist_cnn_float32_full_epoch(record):
    """The CNN's full float32 epoch against what torch's own one-ulp spread allows.

    Five runs of the default epoch from the torch-drawn seed-0 start, on the same batches with
    the same dropout masks: JAX, torch, torch from its start nudged one ulp up and one ulp down,
    and the sensitivity twin (torch with lr x 1.01).

    * Every step's loss: JAX vs torch within ``max(stated, ULP_FACTOR * running max of torch's
      one-ulp spread)``, step by step (jaxtut.compare's envelope). Once the envelope reaches 1
      the check is vacuous (two positive losses never differ by more than 1 relative), which
      the record says; the twin must be rejected while it is not.
    * The end-of-epoch test accuracy and test loss: JAX vs torch within
      ``max(CNN_FINAL_STATED, ULP_FACTOR * |torch - torch nudged|)``. The twin is measured
      against the same bound and reported: a 1% learning-rate change is a smaller effect than
      the chaos of one float32 epoch, and the record says whether this bound tells it apart.
    """
    tutorial = registry.get("mnist_cnn")
    config = default_config("mnist_cnn", "float32")
    steps = tutorial.experiment(config).plan.steps_per_epoch
    pair = full_pair("mnist_cnn", "float32", steps=steps, nudge=False)  # the whole epoch
    nudged = [
        tutorial.run("torch", config, init_params=_nudged(pair.init, d)) for d in (np.inf, -np.inf)
    ]
    twin = tutorial.run("torch", config.replace(lr=config.lr * 1.01), init_params=pair.init)
    assert len(pair.jax.losses) == steps

    stated = TOLERANCES["trajectory_float32_first100"]
    spread = np.max([rel_diff(pair.torch.losses, r.losses) for r in nudged], axis=0)
    envelope = np.maximum(stated, ULP_FACTOR * np.maximum.accumulate(np.nan_to_num(spread, nan=1)))
    vacuous = np.flatnonzero(envelope >= 1.0)
    judged = int(vacuous[0]) if vacuous.size else steps  # steps where a run can still fail

    def per_step(run):
        rel = np.nan_to_num(rel_diff(pair.jax.losses, run.losses), nan=np.inf)
        outside = np.flatnonzero(~(rel <= envelope))
        worst = int(np.argmax(rel / envelope))
        return rel, outside, worst

    rel, outside, worst = per_step(pair.torch)
    record(
        "mnist_cnn",
        "3 trajectory",
        "float32",
        check=f"losses, all {steps} steps, vs torch's one-ulp envelope",
        passed=outside.size == 0,
        max_abs=float(np.abs(pair.jax.losses - pair.torch.losses)[worst]),
        max_rel=float(rel[worst]),
        tolerance=float(envelope[worst]),
        where=f"step {worst} (worst ratio to the envelope: {rel[worst] / envelope[worst]:.2f})",
        note=f"JAX vs torch {rel.max():.1e} at worst (step {int(np.argmax(rel))}); torch one-ulp "
        f"spread {spread[:100].max():.1e} over 100 steps, {spread.max():.1e} over the epoch; "
        f"the envelope reaches 1 at step {judged}",
    )

    twin_rel, twin_outside, _ = per_step(twin)
    first = int(twin_outside[0]) if twin_outside.size else None
    finals = []
    for name in ("test_accuracy", "test_loss"):
        ours, ref = pair.jax.metrics[name], pair.torch.metrics[name]
        torch_spread = max(abs(ref - r.metrics[name]) for r in nudged)
        bound = max(CNN_FINAL_STATED[name], ULP_FACTOR * torch_spread)
        twin_diff = abs(ours - twin.metrics[name])
        finals.append((name, abs(ours - ref), bound, twin_diff))
        record(
            "mnist_cnn",
            "3 trajectory",
            "float32",
            check=f"final {name}, full epoch, vs torch's one-ulp spread",
            passed=abs(ours - ref) <= bound,
            max_abs=abs(ours - ref),
            tolerance=bound,
            where=f"jax {ours:.4f}, torch {ref:.4f}, torch one ulp up/down "
            + "/".join(f"{r.metrics[name]:.4f}" for r in nudged),
            note=f"bound max({CNN_FINAL_STATED[name]:.1e} stated, {ULP_FACTOR:g} x "
            f"{torch_spread:.1e}); lr x1.01 twin {twin.metrics[name]:.4f}: "
            + ("rejected" if twin_diff > bound else "NOT rejected (within the chaos)"),
        )
    record(
        "mnist_cnn",
        "sensitivity lr x1.01",
        "float32",
        check=f"losses, all {steps} steps, rejected",
        passed=first is not None and first < judged,
        max_abs=float(np.abs(pair.jax.losses - twin.losses)[first or 0]),
        max_rel=float(twin_rel[first or 0]),
        tolerance=float(envelope[first or 0]),
        where=f"first step outside the envelope: {first}",
        note=f"the envelope is vacuous from step {judged}; at the end of the epoch "
        + ", ".join(
            f"{name} |jax - twin| {diff:.1e} vs bound {bound:.1e} "
            + ("(rejected)" if diff > bound else "(NOT rejected)")
            for name, _, bound, diff in finals
        ),
    )
    print(f"per-step worst ratio {rel[worst] / envelope[worst]:.3f} at step {worst}; twin {first}")
    print(finals)
    assert outside.size == 0, f"JAX vs torch outside the envelope at steps {outside[:10]}"
    for name, diff, bound, _ in finals:
        assert diff <= bound, f"final {name}: |jax - torch| {diff:.2e} > bound {bound:.2e}"
    assert first is not None and first < judged, "the lr x1.01 twin was not rejected"


# --- Sensitivity: every tier-3 comparison rejects a perturbed run ---------------------------------


def _short_plan(plan: BatchPlan, steps: int = 20) -> BatchPlan:
    return BatchPlan(idx=plan.idx[:1, :steps], mask=plan.mask[:1, :steps])


# linreg_scratch reaches its optimum w = 2 exactly (to the last bit) long before epoch 100 whatever
# the learning rate, so its *final parameters* cannot reveal a perturbed run; its sensitivity runs
# stop after 10 epochs, while w is still moving (the loss check rejects the full run too).
SENSITIVITY_EPOCHS = {"linreg_scratch": 10}


def _perturbed_pair(tutorial_id: str, dtype: str, kind: str | None):
    """A run whose torch side differs by ``kind``: ``lr`` (x1.01), ``swap`` (two batches), or
    ``None`` for the unperturbed control of the same (possibly shortened) run."""
    config = default_config(tutorial_id, dtype)
    if tutorial_id in SENSITIVITY_EPOCHS:
        config = config.replace(epochs=SENSITIVITY_EPOCHS[tutorial_id])
    elif kind is None and not registry.get(tutorial_id).uses_mnist:
        return full_pair(tutorial_id, dtype)
    if kind is None and not registry.get(tutorial_id).uses_mnist:
        return run_pair(tutorial_id, config)
    if registry.get(tutorial_id).uses_mnist:
        # Twenty steps are plenty to see a 1% lr change or a swap; the full run is not needed.
        # float64 needs no one-ulp run: its stated tolerance is the larger (docs/parity.md).
        short = _short_plan(tutorial_data(config.replace(epochs=1)).plan)
        nudge = dtype == "float32"
        if kind is None:
            return run_pair(tutorial_id, config, plans=lambda _: (short, short), nudge=nudge)
        if kind == "swap":
            swapped = lambda _: (short, swap_two_batches(short))  # noqa: E731
            return run_pair(tutorial_id, config, plans=swapped, nudge=nudge)
        return run_pair(
            tutorial_id,
            config,
            torch_config=config.replace(lr=config.lr * 1.01),
            plans=lambda _: (short, short),
            nudge=nudge,
        )
    if kind == "swap":
        return run_pair(tutorial_id, config, plans=lambda p: (p, swap_two_batches(p)))
    return run_pair(tutorial_id, config, torch_config=config.replace(lr=config.lr * 1.01))


# The tutorials with at least two batches per epoch, whose batch order a swap can perturb. Pinned
# rather than read from the data at collection time, so that a missing MNIST folder fails the MNIST
# tests one by one instead of the whole module; the test below checks the list against the data.
SWAPPABLE = ["perceptron", "mlp_1_10_1", "mnist_logreg", "mnist_mlp", "mnist_cnn"]


def test_swappable_list_matches_the_batch_plans():
    def swappable(tutorial_id: str) -> bool:
        plan = tutorial_data(default_config(tutorial_id)).plan
        return plan is not None and plan.steps_per_epoch >= 2

    assert [t for t in TRAINING if swappable(t)] == SWAPPABLE


# The CNN's twins take about a minute each (compiling and evaluating 10,000 test images in
# float64 dominate, not the steps): slow, so that `make test` stays under 15 minutes on the 2-core
# CPU. `make parity-report` runs them; in `make test` the CNN has its 40-step float64 tier 3.
CNN_SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    ("tutorial_id", "dtype"),
    [
        pytest.param(t, d, marks=CNN_SLOW) if t == "mnist_cnn" else (t, d)
        for t in TRAINING
        for d in DTYPES
    ],
)
def test_sensitivity_lr(tutorial_id, dtype, record):
    """lr x 1.01 on the torch side must fail the very comparisons tier 3 passes.

    The comparison is :func:`check_pair`, the one tier 3 asserts; the unperturbed control of the
    same run passes it.
    """
    control = check_pair(_perturbed_pair(tutorial_id, dtype, None), dtype)
    assert all(c.passed for c in control), [str(c) for c in control]
    checks = check_pair(_perturbed_pair(tutorial_id, dtype, "lr"), dtype)
    # The trajectory checks must reject it: every step's losses and, in float64, the final
    # params; in float32 the first 100 steps' losses.
    trajectory = checks[:2] if dtype == "float64" else checks[:1]
    for c in trajectory:
        record(
            tutorial_id,
            "sensitivity lr x1.01",
            dtype,
            c,
            passed=not c.passed,
            check=f"{c.name} rejected",
        )
    assert not any(c.passed for c in trajectory), [str(c) for c in trajectory]


@pytest.mark.parametrize(
    "tutorial_id", [pytest.param(t, marks=CNN_SLOW) if t == "mnist_cnn" else t for t in SWAPPABLE]
)
def test_sensitivity_swapped_batches(tutorial_id, record):
    """Two swapped batches on the torch side must fail the float64 trajectory comparison."""
    control = check_pair(_perturbed_pair(tutorial_id, "float64", None), "float64")
    assert all(c.passed for c in control), [str(c) for c in control]
    losses = check_pair(_perturbed_pair(tutorial_id, "float64", "swap"), "float64")[0]
    record(
        tutorial_id,
        "sensitivity swap",
        "float64",
        losses,
        passed=not losses.passed,
        check="losses rejected",
    )
    assert not losses.passed, losses
