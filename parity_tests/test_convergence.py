"""Parity tier 4: from independent initialisations, both frameworks reach the same answer.

Here each framework draws its own initial parameters from its own RNG (JAX with PyTorch-style
initialisers, torch with its defaults), so agreement is about where training goes, not about
matching arithmetic:

* the linear regressions (and the perceptron, whose data are exactly linear) reach the
  least-squares solution of ``numpy.linalg.lstsq``. The tolerance derives from the remaining
  gradient: for a quadratic loss ``theta - theta* = H^-1 grad``, so a run whose full-batch gradient
  is below ``GRAD_TOL`` is within ``GRAD_TOL / lambda_min(H)`` of the optimum. The test asserts
  both, so an unconverged run fails on its gradient and a wrong optimum fails on its distance;
* the 1-10-1 network is not convex in its parameters (a deep linear network; from some
  initialisations its per-sample updates oscillate for hundreds of epochs or diverge, in both
  frameworks), so there is no optimum to reach in 100 epochs; instead the distributions of the
  final loss over K seeds must be indistinguishable (Mann-Whitney U, p > 0.01, divergence = +inf);
* logistic regression reaches the same test-accuracy band in both frameworks, and a training loss
  within a stated margin of scikit-learn's unregularised fit (100 epochs of plain gradient descent
  do not reach the optimum; the margin says how far they get);
* the MNIST models: K seeds per framework (JAX seeds vmapped in one compiled program, torch in a
  loop); Welch's t-test on the final test accuracies must not reject equality at the 1% level. The
  CNN does the same on a CI budget: the first 80 steps of each seed, JAX seeds in a loop.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.stats

from jaxtut import registry
from jaxtut.parity import truncate
from jaxtut.train import train, train_seeds
from jaxtut.tutorial_data import tutorial_data
from parity_tests.conftest import default_config

SEEDS = (0, 1, 2, 3, 4)

# Gradient thresholds (float32 runs): a converged float32 run sits at a gradient of roughly
# 1e-5..1e-4 (the loss's rounding noise); linreg_linear's 2000 epochs leave its slow mode at ~1e-3
# (measured up to 5.5e-4); the perceptron's 100 epochs of per-sample SGD with momentum leave a
# full-batch gradient of 2e-3 (JAX) to 1.4e-2 (torch) at seed 0.
GRAD_TOL = {
    "linreg_scratch": 1e-4,
    "linreg_linear": 5e-3,
    "linreg_make_regression": 1e-2,
    "perceptron": 5e-2,
}


def _design(tutorial_id, config):
    """``(X with a bias column when the model has one, y)`` in float64, from the shared data."""
    x, y = (np.asarray(a, np.float64).reshape(len(a), -1) for a in tutorial_data(config).train)
    if tutorial_id != "linreg_scratch":  # every other model has a bias
        x = np.hstack([x, np.ones((len(x), 1))])
    return x, y[:, 0]


def _effective(tutorial_id, params):
    """The fitted linear map ``(weights..., bias)`` of a result's parameters."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    if tutorial_id == "linreg_scratch":
        return p["w"]
    (wkey,) = [k for k in p if k.endswith("weight")]
    (bkey,) = [k for k in p if k.endswith("bias")]
    return np.concatenate([p[wkey].ravel(), p[bkey]])


@pytest.mark.parametrize("framework", ["jax", "torch"])
@pytest.mark.parametrize("tutorial_id", list(GRAD_TOL))
def test_tier4_least_squares(tutorial_id, framework, record):
    tutorial = registry.get(tutorial_id)
    for seed in SEEDS:
        config = default_config(tutorial_id, seed=seed)
        result = tutorial.run(framework, config)  # own init from the seed, no shared params
        x, y = _design(tutorial_id, config)
        theta_star = np.linalg.lstsq(x, y, rcond=None)[0]
        theta = _effective(tutorial_id, result.params)
        hessian = 2 * x.T @ x / len(x)  # of the mean squared error
        grad = 2 * x.T @ (x @ theta - y) / len(x)
        grad_norm = float(np.linalg.norm(grad))
        bound = GRAD_TOL[tutorial_id] / float(np.linalg.eigvalsh(hessian)[0])
        distance = float(np.linalg.norm(theta - theta_star))
        ok = grad_norm <= GRAD_TOL[tutorial_id] and distance <= bound
        fit = f"{np.round(theta, 4).tolist()} vs {np.round(theta_star, 4).tolist()}"
        record(
            tutorial_id,
            "4 convergence",
            "float32",
            check=f"{framework} vs lstsq, seed {seed}",
            max_abs=distance,
            tolerance=bound,
            passed=ok,
            note=f"|grad| {grad_norm:.2e} (tol {GRAD_TOL[tutorial_id]:.0e}); theta {fit}",
        )
        assert grad_norm <= GRAD_TOL[tutorial_id], f"seed {seed}: not converged, |grad| {grad_norm}"
        assert distance <= bound, f"seed {seed}: {theta} vs lstsq {theta_star}"


# Margin of the final training loss above scikit-learn's unregularised optimum, measured ~0.24
# after 100 epochs of GD at lr 0.01 in both frameworks; 0.35 bounds it with headroom while a run
# that stalls near its starting loss (~0.7) fails.
LOGREG_LOSS_MARGIN = 0.35
# The band: every seed >= 0.93 and each framework's mean over seeds >= 0.95. A single seed can end
# a test sample short of 0.95 (JAX seed 0: 108/114 = 0.947; over seeds 0-29 JAX ranged 0.947-0.982
# and torch 0.939-0.982), so 0.95 is held on the mean, where it is a property of the method.
LOGREG_ACCURACY_FLOOR = 0.93
LOGREG_ACCURACY_MEAN = 0.95


def test_tier4_logreg_breast_cancer(record):
    from sklearn.linear_model import LogisticRegression

    config = default_config("logreg_breast_cancer")
    x, y = tutorial_data(config).train
    # C = inf: no regularisation, the plain maximum-likelihood fit that GD is heading for.
    sk = LogisticRegression(C=np.inf, max_iter=10_000).fit(np.asarray(x, np.float64), y.ravel())
    p = np.clip(sk.predict_proba(np.asarray(x, np.float64))[:, 1], 1e-12, 1 - 1e-12)
    t = y.ravel().astype(np.float64)
    sk_loss = float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))

    accuracies = {"jax": [], "torch": []}
    for framework in accuracies:
        for seed in SEEDS:
            result = registry.get("logreg_breast_cancer").run(framework, config.replace(seed=seed))
            loss = float(result.losses[-1])
            acc = result.metrics["test_accuracy"]
            accuracies[framework].append(acc)
            ok = acc >= LOGREG_ACCURACY_FLOOR and 0 <= loss - sk_loss <= LOGREG_LOSS_MARGIN
            record(
                "logreg_breast_cancer",
                "4 convergence",
                "float32",
                check=f"{framework} seed {seed}: accuracy and loss vs sklearn",
                max_abs=loss - sk_loss,
                tolerance=LOGREG_LOSS_MARGIN,
                passed=ok,
                note=f"test accuracy {acc:.3f} (floor {LOGREG_ACCURACY_FLOOR}); "
                f"loss {loss:.4f} vs sklearn {sk_loss:.4f}",
            )
            assert acc >= LOGREG_ACCURACY_FLOOR
            assert 0 <= loss - sk_loss <= LOGREG_LOSS_MARGIN
    for framework, accs in accuracies.items():
        assert np.mean(accs) >= LOGREG_ACCURACY_MEAN, (framework, accs)
    gap = abs(np.mean(accuracies["jax"]) - np.mean(accuracies["torch"]))
    assert gap <= 2 / 114, accuracies  # within two test samples on average


# K seeds per framework. Welch's t-test (unequal variances) on the final test accuracies; the two
# samples are "statistically indistinguishable" when p > 0.01. Reported with mean and std.
K_SEEDS = 8
ALPHA = 0.01


@pytest.mark.parametrize("tutorial_id", ["mnist_logreg", "mnist_mlp"])
def test_tier4_mnist_seeds(tutorial_id, record):
    tutorial = registry.get(tutorial_id)
    config = default_config(tutorial_id)
    seeds = list(range(K_SEEDS))
    jax_runs = train_seeds(tutorial.experiment(config), seeds)
    jax_acc = np.array([r.metrics["test_accuracy"] for r in jax_runs])
    torch_acc = np.array(
        [tutorial.run("torch", config.replace(seed=s)).metrics["test_accuracy"] for s in seeds]
    )
    p_value = float(scipy.stats.ttest_ind(jax_acc, torch_acc, equal_var=False).pvalue)
    note = (
        f"jax {jax_acc.mean():.4f} +- {jax_acc.std(ddof=1):.4f}, "
        f"torch {torch_acc.mean():.4f} +- {torch_acc.std(ddof=1):.4f}, K={K_SEEDS}, "
        f"Welch p = {p_value:.3f} (reject if < {ALPHA})"
    )
    record(
        tutorial_id,
        "4 convergence",
        "float32",
        check="test accuracy over seeds",
        max_abs=abs(jax_acc.mean() - torch_acc.mean()),
        passed=p_value > ALPHA,
        note=note,
    )
    print(note)
    assert p_value > ALPHA, note


# The CNN on a CI budget. A full epoch costs ~1 min per run and framework on this 2-core CPU, and
# evaluating all 10,000 test images ~4 s (JAX) to ~9 s (torch) per run, so K full runs would take
# half an hour. Instead each run is the first CNN_STEPS steps of its seed's own shuffled epoch (the
# plan cut with jaxtut.parity.truncate, as conftest.suite_plan cuts the tier-3 runs), and accuracy
# is measured on the first CNN_TEST_SAMPLES test images, the same for every run. Measured on this
# machine (docs/parity.md, "The CNN's tier 4 on a CI budget"):
# * 80 steps reach ~93% (seeds 0-7: JAX 0.929 +- 0.010, torch 0.929 +- 0.009) with a seed-to-seed
#   std of ~1%; after 50 steps it is 1.9%, early runs being prone to a slow seed (one JAX seed at
#   0.86), which a t-test handles badly; 120 steps cost 50% more for no smaller std (0.96%).
# * K = 6: with std 1% per framework, Welch's test (10 degrees of freedom) rejects at p < 0.01 a
#   difference of means above ~1.8 points and detects a true difference of ~2.3 points 80% of the
#   time. Measured against the JAX seeds of this test: torch at lr 0.25 (0.896 +- 0.011) is
#   rejected (p = 2e-4), at lr 0.1 (0.858) too; at lr 0.5 (0.925) or 2.0 (0.932) it is not:
#   Adadelta's adaptive steps make 80 steps nearly indifferent to a factor 2 in lr. This tier
#   catches a port that learns visibly worse; exact agreement is tiers 1-3's business.
# * The test takes 66 s on an idle machine (JAX 6 x 4.6 s plus compiling, torch 6 x 4.8 s);
#   K = 8 would take ~85 s; 2000 test images instead of 10,000 save ~40 s (1.8 s per JAX run,
#   5.1 s per torch run).
CNN_SEEDS = 6
CNN_STEPS = 80
CNN_TEST_SAMPLES = 2000


def _cnn_budget(experiment):
    """``experiment`` cut to the CNN budget, for any seed: its first steps, fewer test images."""
    replan = experiment.replan
    return experiment.replace(
        plan=truncate(experiment.plan, CNN_STEPS),
        epochs=1,
        replan=lambda seed: truncate(replan(seed), CNN_STEPS),
        eval=tuple(a[:CNN_TEST_SAMPLES] for a in experiment.eval),
    )


def test_tier4_mnist_cnn_seeds(record):
    """K seeds per framework, each from its own init, dropout draws and batch order; Welch's t.

    JAX draws its parameters from ``key(seed)`` and its dropout masks on the device from
    ``fold_in(key(seed), step)``; torch draws its default init after ``manual_seed(seed)`` and
    its own ``F.dropout`` masks (the masks the parity runs hand over from JAX are switched off
    here). The seed sets are disjoint, so no JAX run shares a batch order with a torch run: the
    two samples are independent, as Welch's test assumes.
    """
    from jaxtut.torch_ref.train import train as train_torch

    experiment = _cnn_budget(registry.get("mnist_cnn").experiment(default_config("mnist_cnn")))
    jax_seeds = range(CNN_SEEDS)
    torch_seeds = range(CNN_SEEDS, 2 * CNN_SEEDS)
    # A loop, not train_seeds: vmapped over the seeds, the six runs took 57 s against 29 s in a
    # loop (idle machine). Under vmap the per-seed kernels turn the input gradient's convolution
    # into one grouped convolution (feature_group_count=K), which XLA:CPU runs slowly.
    jax_acc = np.array([train(experiment.with_seed(s)).metrics["test_accuracy"] for s in jax_seeds])
    own_dropout = experiment.replace(jax=dataclasses.replace(experiment.jax, noise=None))
    torch_acc = np.array(
        [train_torch(own_dropout.with_seed(s)).metrics["test_accuracy"] for s in torch_seeds]
    )
    p_value = float(scipy.stats.ttest_ind(jax_acc, torch_acc, equal_var=False).pvalue)
    note = (
        f"{CNN_STEPS} steps, first {CNN_TEST_SAMPLES} test images: "
        f"jax {jax_acc.mean():.4f} +- {jax_acc.std(ddof=1):.4f}, "
        f"torch {torch_acc.mean():.4f} +- {torch_acc.std(ddof=1):.4f}, K={CNN_SEEDS}, "
        f"Welch p = {p_value:.3f} (reject if < {ALPHA})"
    )
    record(
        "mnist_cnn",
        "4 convergence",
        "float32",
        check=f"test accuracy over seeds ({CNN_STEPS} steps)",
        max_abs=abs(jax_acc.mean() - torch_acc.mean()),
        passed=p_value > ALPHA,
        note=note,
    )
    print(note)
    assert p_value > ALPHA, note


# The 1-10-1 network: K seeds per framework, JAX vmapped in one program, torch in a loop.
MLP_SEEDS = 32


def test_tier4_mlp_1_10_1_seed_distribution(record):
    tutorial = registry.get("mlp_1_10_1")
    config = default_config("mlp_1_10_1")
    seeds = list(range(MLP_SEEDS))
    jax_runs = train_seeds(tutorial.experiment(config), seeds)
    jax_loss = np.array([r.metrics["final_loss"] for r in jax_runs])
    torch_loss = np.array(
        [tutorial.run("torch", config.replace(seed=s)).metrics["final_loss"] for s in seeds]
    )
    a, b = (np.nan_to_num(v, nan=np.inf) for v in (jax_loss, torch_loss))
    p_value = float(scipy.stats.mannwhitneyu(a, b).pvalue)
    note = (
        f"median final loss jax {np.median(a):.2e}, torch {np.median(b):.2e}; diverged "
        f"jax {int(np.sum(~np.isfinite(a)))}/{MLP_SEEDS}, torch {int(np.sum(~np.isfinite(b)))}"
        f"/{MLP_SEEDS}; Mann-Whitney p = {p_value:.3f} (reject if < {ALPHA})"
    )
    record(
        "mlp_1_10_1",
        "4 convergence",
        "float32",
        check="final loss over seeds",
        passed=p_value > ALPHA,
        note=note,
    )
    assert p_value > ALPHA, note
