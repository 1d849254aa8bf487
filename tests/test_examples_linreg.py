"""The linear- and logistic-regression examples run end to end (quick mode) and say the right thing.

The four scripts are background jobs (tests/background.py), each run in an empty folder of its own
with ``JAXTUT_EXAMPLE_QUICK=1`` (fewer epochs) and ``JAXTUT_EXAMPLE_OUT=out`` (a folder inside
it), so nothing is written into the repository.
"""

from __future__ import annotations

import pytest

import background

EXAMPLES = {
    "linreg_scratch": ["prediction at x = 6", "max |loss difference|", "w over the first steps"],
    "linreg_linear": ["prediction at x = 6", "max |loss difference|", "linear.weight"],
    "linreg_make_regression": ["least squares: weight 70.7728", "wrote ", "max |loss difference|"],
    "logreg_breast_cancer": ["epoch: 0, loss:", "test accuracy identical after every epoch: True"],
}

pytest.importorskip("torch")  # the examples' second half compares with the PyTorch reference


JOBS = {
    name: background.example(name, JAXTUT_EXAMPLE_QUICK="1", JAXTUT_EXAMPLE_OUT="out")
    for name in EXAMPLES
}


@pytest.mark.parametrize("name", [background.param(name, JOBS[name]) for name in EXAMPLES])
def test_example_runs(name):
    stdout = background.succeeded(JOBS[name]).stdout
    for text in EXAMPLES[name]:
        assert text in stdout, f"{text!r} missing from the output of {name}"


@pytest.mark.background(JOBS["linreg_make_regression"])
def test_make_regression_example_writes_its_plot_outside_the_repo():
    run = background.succeeded(JOBS["linreg_make_regression"])
    png = run.cwd / "out" / "linreg_make_regression-jax.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
