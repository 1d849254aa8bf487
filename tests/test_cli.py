"""The ``jaxtut`` command, run as a user runs it: through a subprocess."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxtut import cli, registry
from jaxtut.parity import parity

from mnist_dir import find_mnist_dir

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = find_mnist_dir()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def jaxtut(*args: str, env: dict | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", "jaxtut", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=timeout,
    )


def assert_one_line_error(proc, *fragments: str):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_list_lists_every_id():
    proc = jaxtut("list")
    assert proc.returncode == 0
    for tutorial_id in registry.ids():
        assert tutorial_id in proc.stdout


def test_run_writes_json_and_png(tmp_path):
    out = tmp_path / "new" / "dir"
    proc = jaxtut(
        "run",
        "linreg_linear",
        "--epochs",
        "300",
        "--json",
        str(out / "r.json"),
        "--plot",
        str(out / "r.png"),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "r.json").read_text())
    assert result["tutorial"] == "linreg_linear" and result["framework"] == "jax"
    assert len(result["losses"]) == 300 and result["config"]["epochs"] == 300
    png = (out / "r.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000
    assert sorted(p.name for p in out.iterdir()) == ["r.json", "r.png"]  # no temporaries


def test_run_torch_and_loss_plot(tmp_path):
    proc = jaxtut(
        "run",
        "logreg_breast_cancer",
        "--framework",
        "torch",
        "--epochs",
        "20",
        "--plot",
        str(tmp_path / "loss.png"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "test_accuracy" in proc.stdout
    assert (tmp_path / "loss.png").read_bytes().startswith(PNG_MAGIC)


def test_parity_prints_the_table_and_passes():
    proc = jaxtut("parity", "perceptron", "--steps", "12", "--dtype", "float64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for header in ("JAX loss", "torch loss", "abs diff", "rel diff"):
        assert header in proc.stdout
    assert "step 11" in proc.stdout and "PASS" in proc.stdout


def test_parity_fails_when_the_sides_differ(monkeypatch, capsys):
    """Through the Python API: torch gets lr x 1.01; the CLI's parity command must exit 1."""
    import jaxtut.parity as parity_module

    real = parity_module.run_pair

    def perturbed(tutorial_id, config=None, **kwargs):
        return real(
            tutorial_id,
            config,
            torch_config=config.replace(lr=config.lr * 1.01),
            plans=kwargs.get("plans"),
        )

    monkeypatch.setattr(parity_module, "run_pair", perturbed)
    assert cli.main(["parity", "perceptron", "--steps", "30", "--dtype", "float64"]) == 1
    assert "FAIL" in capsys.readouterr().out
    monkeypatch.undo()
    config = registry.get("perceptron").default_config(dtype="float64")
    _, checks = parity("perceptron", config, steps=30, torch_config=config)
    assert all(c.passed for c in checks)  # the same call without the perturbation passes


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "mnist_mpl"], ["unknown tutorial 'mnist_mpl'", "did you mean 'mnist_mlp'"]),
        (["run", "perceptron", "--epochs", "0"], ["--epochs", "positive integer"]),
        (["run", "perceptron", "--lr", "abc"], ["--lr"]),
        (["run", "perceptron", "--dtype", "float16"], ["--dtype", "invalid choice"]),
        (["run", "tensors", "--epochs", "3"], ["tensors", "no option epochs"]),
        (["parity", "tensors"], ["not a training tutorial"]),
        (["run", "mnist_mlp", "--data-dir", "/nonexistent/mnist"], ["/nonexistent/mnist"]),
        (["run", "perceptron", "--init", "/nonexistent.safetensors"], ["does not exist"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragments):
    assert_one_line_error(jaxtut(*args), *fragments)


def test_gpu_requested_but_absent():
    import jax

    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("this machine has a GPU: the absent-GPU message cannot be produced here")
    assert_one_line_error(jaxtut("run", "perceptron", "--device", "gpu"), "no JAX gpu", "cpu")


def test_missing_torch_names_the_extra(tmp_path):
    blocker = tmp_path / "block"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text("raise ImportError('No module named torch')\n")
    env = {"PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"}
    for args in (["run", "perceptron", "--framework", "torch"], ["parity", "perceptron"]):
        assert_one_line_error(jaxtut(*args, env=env), "jaxtut[torch]")
    assert jaxtut("run", "perceptron", "--epochs", "2", env=env).returncode == 0  # JAX still runs


def test_corrupt_mnist_is_reported(tmp_path):
    if MNIST_DIR is None or not (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("the real MNIST files are not available as .gz")
    for name in os.listdir(MNIST_DIR):
        shutil.copy(Path(MNIST_DIR) / name, tmp_path / name)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(labels.read_bytes()))
    data[100] ^= 0xFF
    labels.write_bytes(gzip.compress(bytes(data)))
    assert_one_line_error(jaxtut("run", "mnist_logreg", "--data-dir", str(tmp_path)), "t10k-labels")


def test_divergence_is_not_a_success(tmp_path):
    proc = jaxtut("run", "linreg_linear", "--lr", "10", "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 1
    assert "diverged at step" in proc.stderr
    assert not (tmp_path / "r.json").exists()


def test_ctrl_c_leaves_no_files(tmp_path):
    if MNIST_DIR is None:
        pytest.skip("the real MNIST files are not available")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            # `python -m jaxtut` with Python's SIGINT handler restored first. A shell without job
            # control starts background jobs with SIGINT ignored and children inherit that (a
            # `make test &` would then fail here); a foreground command has the handler. (Not a
            # preexec_fn: forking a process that runs JAX's threads is unsafe, and warns.)
            "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "runpy.run_module('jaxtut', run_name='__main__', alter_sys=True)",
            "run",
            "mnist_mlp",
            "--framework",
            "torch",
            "--json",
            str(out / "r.json"),
            "--plot",
            str(out / "r.png"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Unbuffered: through a pipe, Python's stdout is block-buffered, so the header line could
        # arrive only when the run ends and the interrupt would come too late to test anything.
        env={**os.environ, "JAXTUT_DATA_DIR": str(MNIST_DIR), "PYTHONUNBUFFERED": "1"},
    )
    try:
        # Wait until training has started (the first progress line needs a whole epoch, so
        # interrupt on the header line instead).
        deadline = time.monotonic() + 120
        line = ""
        while "mnist_mlp" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        time.sleep(1.0)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not out.exists() or not any(out.iterdir())


def test_save_init_round_trip_is_exact(tmp_path):
    """JAX -> file -> torch -> file -> JAX gives back the very same parameters."""
    import jax
    import safetensors.torch

    from jaxtut.checkpoint import load_params, save_params
    from jaxtut.convert import from_state_dict, to_state_dict
    from jaxtut.torch_ref.perceptron import MODELS

    tutorial = registry.get("mlp_1_10_1")
    result = tutorial.run("jax", tutorial.default_config(epochs=3))
    save_params(tmp_path / "jax.safetensors", result.params)

    model = MODELS["mlp_1_10_1"]()
    model.load_state_dict(safetensors.torch.load_file(tmp_path / "jax.safetensors"))
    safetensors.torch.save_file(model.state_dict(), tmp_path / "torch.safetensors")

    back, _ = load_params(tmp_path / "torch.safetensors")
    template = jax.eval_shape(lambda: tutorial.trainer().init(jax.random.key(0), np.float32))
    params = to_state_dict(from_state_dict(back, template))
    for k, v in result.params.items():
        np.testing.assert_array_equal(params[k], v)

    # And the CLI path: --save then --init resumes from the saved parameters.
    path = tmp_path / "cli.safetensors"
    assert jaxtut("run", "perceptron", "--epochs", "5", "--save", str(path)).returncode == 0
    proc = jaxtut("run", "perceptron", "--framework", "torch", "--epochs", "1", "--init", str(path))
    assert proc.returncode == 0, proc.stderr
