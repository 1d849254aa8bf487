"""The perceptron, 1-10-1 and MNIST examples run end to end (quick mode) and say the right thing.

Each script is a background job (tests/background.py): a subprocess in an empty folder of its own,
with ``JAXTUT_EXAMPLE_QUICK=1`` (fewer epochs; one epoch for the MNIST MLP and logistic regression,
40 steps for the CNN) and ``OMP_NUM_THREADS=1``: on a two-core machine PyTorch's two worker threads
spin at every op's barrier when another process holds a core, which made one MNIST epoch take
minutes instead of a second under load (the float32 comparison figures shift in the last digits;
the lines checked here do not depend on them). The MNIST examples read the folder that
tests/mnist_dir.py finds; they are skipped when there is none.
"""

from __future__ import annotations

import re

import pytest

from jaxtut.data import ENV_VAR

import background
from mnist_dir import find_mnist_dir

EXAMPLES = {
    "perceptron": [
        "epoch   0 - loss:",
        "JAX: weight",
        "JAX: prediction at x = 1:",
        "float32: max per-step loss difference",
        "float64: max parameter difference",
        "float64: torch weight",
    ],
    "mlp_1_10_1": [
        "JAX: prediction at x = 7:",
        "collapsed network: out =",
        "float64: max per-step loss difference (relative)",
        "float64:   over the first 100 steps",
        "nudged by one ulp",
    ],
    "mnist_logreg": [
        "1 epoch(s) of 600 steps of 100",
        "JAX test accuracy:",
        "compared over 600 steps (1 epoch)",
        "max parameter difference:",
    ],
    "mnist_mlp": [
        "938 steps per epoch; real samples in the last one: 32",
        "JAX test accuracy:",
        "compared over 938 steps (1 epoch)",
        "max parameter difference:",
    ],
    "mnist_cnn": [
        "938 steps per epoch; real samples in the last one: 32",
        "log-probabilities, JAX vs torch: max difference",
        "JAX test accuracy",
        "float64: 5 steps, max per-step loss difference (relative)",
    ],
}
USES_MNIST = {"mnist_logreg", "mnist_mlp", "mnist_cnn"}
MNIST_DIR = find_mnist_dir()

pytest.importorskip("torch")  # the examples' second half compares with the PyTorch reference

JOBS = {
    name: background.example(
        name,
        JAXTUT_EXAMPLE_QUICK="1",
        OMP_NUM_THREADS="1",
        **({ENV_VAR: str(MNIST_DIR)} if name in USES_MNIST and MNIST_DIR else {}),
    )
    for name in EXAMPLES
}


def _needs(name: str):
    """The mark that starts ``name``'s job in the background, unless it cannot run here."""
    runnable = name not in USES_MNIST or MNIST_DIR is not None
    return pytest.mark.background(*([JOBS[name]] if runnable else []))


def _output(name: str) -> str:
    """The example's stdout, after checking that it exited 0 (skips it without the MNIST files)."""
    if name in USES_MNIST and MNIST_DIR is None:
        pytest.skip(f"MNIST files not found; set {ENV_VAR} or put them in ../shared/datasets/mnist")
    return background.succeeded(JOBS[name]).stdout


@pytest.mark.parametrize("name", [pytest.param(name, marks=_needs(name)) for name in EXAMPLES])
def test_example_runs(name):
    stdout = _output(name)
    for text in EXAMPLES[name]:
        assert text in stdout, f"{text!r} missing from the output of {name}"


def _number_after(stdout: str, label: str) -> float:
    match = re.search(re.escape(label) + r"\s*([-+0-9.e]+)", stdout)
    assert match, f"{label!r} not found"
    return float(match.group(1))


@_needs("perceptron")
def test_perceptron_example_reports_float64_agreement():
    stdout = _output("perceptron")
    assert _number_after(stdout, "float64: max per-step loss difference") <= 1e-12
    assert _number_after(stdout, "float64: max parameter difference") <= 1e-12
    assert _number_after(stdout, "float32: max per-step loss difference") <= 1e-4


@_needs("mlp_1_10_1")
def test_mlp_example_reports_float64_agreement_over_the_first_100_steps():
    stdout = _output("mlp_1_10_1")
    assert _number_after(stdout, "float64:   over the first 100 steps") <= 1e-12


@_needs("mnist_cnn")
def test_cnn_example_shows_the_layouts_and_float64_agreement():
    stdout = _output("mnist_cnn")
    # The converted weights give torch's outputs (float32 rounding), and only with the flatten
    # permutation of fc1's rows.
    assert _number_after(stdout, "log-probabilities, JAX vs torch: max difference") <= 1e-5
    assert _number_after(stdout, "without the permutation:       max difference") >= 1e-3
    assert (
        _number_after(stdout, "float64: 5 steps, max per-step loss difference (relative)") <= 1e-12
    )
