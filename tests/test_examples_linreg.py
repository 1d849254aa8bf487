"""The linear- and logistic-regression examples run end to end (quick mode) and say the right thing.

The four scripts run concurrently in subprocesses, from a temporary working directory, with
``JAXTUT_EXAMPLE_QUICK=1`` (fewer epochs) and ``JAXTUT_EXAMPLE_OUT`` pointing at a temporary
directory, so nothing is written into the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "linreg_scratch": ["prediction at x = 6", "max |loss difference|", "w over the first steps"],
    "linreg_linear": ["prediction at x = 6", "max |loss difference|", "linear.weight"],
    "linreg_make_regression": ["least squares: weight 70.7728", "wrote ", "max |loss difference|"],
    "logreg_breast_cancer": ["epoch: 0, loss:", "test accuracy identical after every epoch: True"],
}

pytest.importorskip("torch")  # the examples' second half compares with the PyTorch reference


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Runs every example once; returns ``{name: (returncode, stdout, stderr, out_dir)}``."""
    work = tmp_path_factory.mktemp("examples")
    env = dict(os.environ, JAXTUT_EXAMPLE_QUICK="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    procs = {}
    for name in EXAMPLES:
        out_dir = work / name
        out_dir.mkdir()
        procs[name] = (
            subprocess.Popen(
                [sys.executable, str(ROOT / "examples" / f"{name}.py")],
                cwd=out_dir,
                env=dict(env, JAXTUT_EXAMPLE_OUT=str(out_dir / "out")),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            out_dir,
        )
    results = {}
    for name, (proc, out_dir) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        results[name] = (proc.returncode, stdout, stderr, out_dir)
    return results


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_runs(outputs, name):
    returncode, stdout, stderr, _ = outputs[name]
    assert returncode == 0, stderr[-3000:]
    for text in EXAMPLES[name]:
        assert text in stdout, f"{text!r} missing from the output of {name}"


def test_make_regression_example_writes_its_plot_outside_the_repo(outputs):
    _, _, _, out_dir = outputs["linreg_make_regression"]
    png = out_dir / "out" / "linreg_make_regression-jax.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
