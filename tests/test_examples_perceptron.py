"""The perceptron, 1-10-1 and MNIST examples run end to end (quick mode) and say the right thing.

Each script runs in a subprocess from a temporary working directory of its own with
``JAXTUT_EXAMPLE_QUICK=1`` (fewer epochs; one epoch for the MNIST MLP and logistic regression,
40 steps for the CNN). The scripts run two at a time,
with ``OMP_NUM_THREADS=1``: on a two-core machine PyTorch's two worker threads spin at every op's
barrier when another process holds a core, which made one MNIST epoch take minutes instead of a
second under load (the float32 comparison figures shift in the last digits; the lines checked here
do not depend on them). The MNIST examples read ``$JAXTUT_DATA_DIR``, which defaults here to
``../shared/datasets/mnist`` next to the project root; they are skipped when no MNIST files are
found there.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxtut.data import ENV_VAR, SHA256

ROOT = Path(__file__).resolve().parents[1]
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
TIME_LIMIT_S = 60.0

pytest.importorskip("torch")  # the examples' second half compares with the PyTorch reference


def _mnist_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else ROOT.parent / "shared" / "datasets" / "mnist"


def _has_mnist(path: Path) -> bool:
    return all((path / f"{n}.gz").is_file() or (path / n).is_file() for n in SHA256)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Runs every example once; returns ``{name: (returncode, stdout, stderr, seconds)}``."""
    work = tmp_path_factory.mktemp("examples")
    env = dict(os.environ, JAXTUT_EXAMPLE_QUICK="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    env[ENV_VAR] = str(_mnist_dir())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    def run(name):
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, str(ROOT / "examples" / f"{name}.py")],
                cwd=work / name,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            result = (proc.returncode, proc.stdout, proc.stderr)
        except subprocess.TimeoutExpired as err:
            result = (None, err.stdout or "", err.stderr or "")
        return name, (*result, time.perf_counter() - start)

    names = [n for n in EXAMPLES if n not in USES_MNIST or _has_mnist(_mnist_dir())]
    for name in names:
        (work / name).mkdir()
    # Two at a time on two cores: each script is mostly compiling and single-threaded Python
    # (torch is held to one thread above); pairs took 49 s where a queue took 66 here.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, names))


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_runs(outputs, name):
    if name not in outputs:
        pytest.skip(f"MNIST files not found in {_mnist_dir()}; set {ENV_VAR}")
    returncode, stdout, stderr, seconds = outputs[name]
    assert returncode == 0, stderr[-3000:]
    for text in EXAMPLES[name]:
        assert text in stdout, f"{text!r} missing from the output of {name}"
    assert seconds < TIME_LIMIT_S, f"{name} took {seconds:.1f} s"


def _number_after(stdout: str, label: str) -> float:
    match = re.search(re.escape(label) + r"\s*([-+0-9.e]+)", stdout)
    assert match, f"{label!r} not found"
    return float(match.group(1))


def test_perceptron_example_reports_float64_agreement(outputs):
    _, stdout, _, _ = outputs["perceptron"]
    assert _number_after(stdout, "float64: max per-step loss difference") <= 1e-12
    assert _number_after(stdout, "float64: max parameter difference") <= 1e-12
    assert _number_after(stdout, "float32: max per-step loss difference") <= 1e-4


def test_mlp_example_reports_float64_agreement_over_the_first_100_steps(outputs):
    _, stdout, _, _ = outputs["mlp_1_10_1"]
    assert _number_after(stdout, "float64:   over the first 100 steps") <= 1e-12


def test_cnn_example_shows_the_layouts_and_float64_agreement(outputs):
    if "mnist_cnn" not in outputs:
        pytest.skip(f"MNIST files not found in {_mnist_dir()}; set {ENV_VAR}")
    _, stdout, _, _ = outputs["mnist_cnn"]
    # The converted weights give torch's outputs (float32 rounding), and only with the flatten
    # permutation of fc1's rows.
    assert _number_after(stdout, "log-probabilities, JAX vs torch: max difference") <= 1e-5
    assert _number_after(stdout, "without the permutation:       max difference") >= 1e-3
    assert (
        _number_after(stdout, "float64: 5 steps, max per-step loss difference (relative)") <= 1e-12
    )
