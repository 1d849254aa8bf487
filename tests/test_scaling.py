"""Many seeds, many devices, many processes: each equals the plain single-device run.

* Seeds: ``scaling.run_seeds`` (one vmapped program) against single runs with the same seeds,
  float64, relative difference <= 1e-12 on every step's loss and the final parameters (measured:
  0 for MNIST, ~1e-16 for the full-batch tutorials), metrics and extras equal.
* Devices: a subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the flag must
  be set before JAX starts) runs N = 1, 2, 4, 8 against one device: float64 <= 1e-12, float32 <=
  FLOAT32_TOL.
* Processes: 2 processes on 127.0.0.1 (a free port, bounded time, process groups killed in a
  ``finally``) against the single-process run, float64 <= 1e-12, for JAX and for the torch DDP
  reference.

Relative differences are :func:`jaxtut.parity.rel_diff`'s (floored at 1e-3 of the largest
magnitude, so entries that are near zero on both sides do not inflate the ratio).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxtut import cli, registry, scaling
from jaxtut.data import ENV_VAR
from jaxtut.distributed import free_port
from jaxtut.parity import compare_series, compare_trees

from mnist_dir import find_mnist_dir

ROOT = Path(__file__).resolve().parents[1]
FLOAT64_TOL = 1e-12
# float32 data-parallel runs sum the batch in per-device pieces, so single steps differ by a few
# ulps (measured on 21 MNIST steps: losses 2e-7, parameters 9e-7 relative); 1e-5 is the parity
# suite's bound for the first 100 float32 steps, and holds for these short runs.
FLOAT32_TOL = 1e-5
PROCESS_TIMEOUT_S = 60


MNIST_DIR = find_mnist_dir()
needs_mnist = pytest.mark.skipif(
    MNIST_DIR is None, reason=f"MNIST files not found: set {ENV_VAR} to a folder holding them"
)


def worst(a, b) -> float:
    """The larger of the loss and the final-parameter relative differences of two runs."""
    losses = compare_series("losses", a.losses, b.losses, 0.0)
    params = compare_trees("params", a.params, b.params, 0.0)
    return max(losses.max_rel, params.max_rel)


def env(**extra: str) -> dict[str, str]:
    out = {**os.environ, "COLUMNS": "200", **extra}
    if MNIST_DIR is not None:
        out[ENV_VAR] = str(MNIST_DIR)
    return out


# --- Many seeds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tutorial_id", "overrides"),
    [
        # each seed shuffles its own batches (one epoch of 20 batches)
        pytest.param("mnist_logreg", {"batch_size": 3000, "epochs": 1}, marks=needs_mnist),
        ("logreg_breast_cancer", {}),  # full batch, with post-processing of the result
        ("linreg_make_regression", {}),  # full batch, with extras
        ("perceptron", {}),  # one sample per step, momentum
    ],
)
def test_seeds_equal_single_runs(tutorial_id, overrides):
    tutorial = registry.get(tutorial_id)
    config = tutorial.default_config(dtype="float64", **overrides)
    sweep = scaling.run_seeds(tutorial_id, config, [3, 7])
    assert sweep.seeds == [3, 7] and len(sweep.results) == 2
    for seed, result in zip(sweep.seeds, sweep.results, strict=True):
        single = tutorial.run("jax", config.replace(seed=seed))
        assert worst(result, single) <= FLOAT64_TOL, (seed, worst(result, single))
        assert result.config["seed"] == seed
        assert result.metrics.keys() == single.metrics.keys()
        for name, value in single.metrics.items():
            assert abs(result.metrics[name] - value) <= FLOAT64_TOL * max(1.0, abs(value)), name
        assert sorted(result.epoch_metrics) == sorted(single.epoch_metrics)
        assert sorted(result.extras) == sorted(single.extras)
    # The seeds differ (their own initial parameters, and batch orders where there are any).
    assert not np.array_equal(sweep.results[0].losses, sweep.results[1].losses)
    name = next(iter(sweep.summary))
    values = [r.metrics[name] for r in sweep.results]
    assert sweep.summary[name]["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    assert sweep.summary[name]["max"] == max(values)


def test_seed_list_and_summary():
    config = registry.get("perceptron").default_config(seed=5)
    assert scaling.seed_list(config, 3) == [5, 6, 7]
    assert scaling.seed_list(config, [9, 2]) == [9, 2]
    with pytest.raises(scaling.ConfigError):
        scaling.seed_list(config, 0)
    with pytest.raises(scaling.ConfigError):
        scaling.run_seeds("tensors", None, 2)


@needs_mnist
def test_cli_sixteen_seeds_matches_single_runs(tmp_path):
    """``jaxtut run mnist_mlp --seeds 16`` (1 epoch of batch 3000): a summary of 16 real runs.

    Two seeds are checked against their single runs, in float32 as the tutorial trains (float64
    equality of shuffled MNIST seeds is checked above, on ``mnist_logreg``). lr 0.03: at the
    tutorial's 0.003 twenty steps learn nothing, which the command reports as a failure (exit 1).
    """
    out = tmp_path / "seeds.json"
    args = ["--seeds", "16", "--epochs", "1", "--batch-size", "3000", "--lr", "0.03"]
    proc = subprocess.run(
        [sys.executable, "-m", "jaxtut", "run", "mnist_mlp", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mean" in proc.stdout and "std" in proc.stdout
    sweep = json.loads(out.read_text())
    assert sweep["seeds"] == list(range(16)) and len(sweep["results"]) == 16
    accuracies = [r["metrics"]["test_accuracy"] for r in sweep["results"]]
    summary = sweep["summary"]["test_accuracy"]
    assert summary["mean"] == pytest.approx(np.mean(accuracies), rel=1e-12)
    assert summary["std"] == pytest.approx(np.std(accuracies), rel=1e-9)
    assert (summary["min"], summary["max"]) == (min(accuracies), max(accuracies))
    assert len(set(accuracies)) > 1  # sixteen different models, not one run copied
    tutorial = registry.get("mnist_mlp")
    config = tutorial.default_config(epochs=1, batch_size=3000, lr=0.03, data_dir=str(MNIST_DIR))
    for seed in (0, 13):
        single = tutorial.run("jax", config.replace(seed=seed))
        mine = sweep["results"][seed]
        assert compare_series("losses", mine["losses"], single.losses, FLOAT32_TOL).passed
        params = {k: np.asarray(v) for k, v in mine["params"].items()}
        assert compare_trees("params", params, single.params, FLOAT32_TOL).passed
        assert abs(mine["metrics"]["test_accuracy"] - single.metrics["test_accuracy"]) <= 1e-3


# --- Many devices (8 simulated CPU devices, in a subprocess) ----------------------------------

DEVICES_SCRIPT = r"""
import json
import numpy as np
import jax
from jaxtut import registry, scaling
from jaxtut.data.batching import BatchPlan
from jaxtut.errors import JaxtutError
from jaxtut.parity import compare_series, compare_trees
from jaxtut.tutorial_data import tutorial_data


def worst(a, b):
    return max(compare_series("l", a.losses, b.losses, 0.0).max_rel,
               compare_trees("p", a.params, b.params, 0.0).max_rel)


def error(fn):
    try:
        fn()
    except JaxtutError as err:
        return str(err)
    return None


out = {"device_count": jax.device_count(), "runs": {}, "errors": {}}
if MNIST:
    mlp = registry.get("mnist_logreg")
    for dtype, ns in (("float64", (1, 2, 4, 8)), ("float32", (8,))):
        config = mlp.default_config(dtype=dtype, batch_size=64)
        plan = tutorial_data(config).plan
        keep = [*range(11), plan.steps_per_epoch - 1]  # ends with the padded short batch (32 of 64)
        plan = BatchPlan(idx=np.ascontiguousarray(plan.idx[:1, keep]),
                         mask=np.ascontiguousarray(plan.mask[:1, keep]))
        single = mlp.run("jax", config, plan=plan)
        for n in ns:
            r = scaling.run(mlp.id, config, devices=n, plan=plan)
            out["runs"][f"{mlp.id}/{dtype}/{n}"] = [worst(r, single), r.device, len(r.losses)]
    odd = mlp.default_config(batch_size=63)
    out["errors"]["batch"] = error(lambda: scaling.run(mlp.id, odd, devices=2))
lin = registry.get("linreg_make_regression")  # full batch: the 20 samples are split
config = lin.default_config(dtype="float64", epochs=50)
single = lin.run("jax", config)
for n in (2, 4):
    r = scaling.run(lin.id, config, devices=n)
    out["runs"][f"{lin.id}/float64/{n}"] = [worst(r, single), r.device, len(r.losses)]
out["errors"]["samples"] = error(lambda: scaling.run(lin.id, config, devices=8))
out["errors"]["too_many"] = error(lambda: scaling.run(lin.id, config, devices=16))
# Seeds split over devices: each device trains whole models.
per = registry.get("perceptron").default_config(dtype="float64", epochs=20)
plain = scaling.run_seeds("perceptron", per, 4)
for n in (2, 4):
    sharded = scaling.run_seeds("perceptron", per, 4, devices=n)
    out["runs"][f"seeds/float64/{n}"] = [
        max(worst(a, b) for a, b in zip(sharded.results, plain.results)), sharded.device, 4]
out["errors"]["seeds"] = error(lambda: scaling.run_seeds("perceptron", per, 3, devices=2))
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def devices_report():
    script = f"MNIST = {MNIST_DIR is not None}\n" + DEVICES_SCRIPT
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_data_parallel_equals_one_device(devices_report):
    assert devices_report["device_count"] == 8
    runs = devices_report["runs"]
    expected = {f"linreg_make_regression/float64/{n}" for n in (2, 4)}
    expected |= {f"seeds/float64/{n}" for n in (2, 4)}
    if MNIST_DIR is not None:
        expected |= {f"mnist_logreg/float64/{n}" for n in (1, 2, 4, 8)}
        expected |= {"mnist_logreg/float32/8"}
    assert set(runs) == expected
    for name, (rel, device, steps) in runs.items():
        n = int(name.rsplit("/", 1)[1])
        tol = FLOAT32_TOL if "float32" in name else FLOAT64_TOL
        assert rel <= tol, (name, rel)
        assert f"x{n} (mesh 'data')" in device, (name, device)
        expected_steps = {"mnist_logreg": 12, "linreg_make_regression": 50, "seeds": 4}
        assert steps == expected_steps[name.split("/")[0]], name


def test_data_parallel_errors(devices_report):
    errors = devices_report["errors"]
    if MNIST_DIR is not None:
        assert "batch of 63 samples does not split evenly over 2 devices" in errors["batch"]
    assert "20 samples" in errors["samples"] and "8 devices" in errors["samples"]
    assert "JAX sees 8" in errors["too_many"]
    assert "XLA_FLAGS=--xla_force_host_platform_device_count=16" in errors["too_many"]
    assert "3 seeds do not split evenly over 2 devices" in errors["seeds"]


# --- Command-line errors (no JAX work) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "tensors", "--seeds", "2"], "not a training tutorial"),
        (["run", "perceptron", "--framework", "torch", "--devices", "2"], "--devices splits"),
        (["run", "perceptron", "--seeds", "2", "--init", "x.safetensors"], "drop --init"),
        (["run", "perceptron", "--seeds", "2", "--save", "x.safetensors"], "--save writes one"),
        (["run", "perceptron", "--num-processes", "2", "--process-id", "2"], "0..1"),
        (["run", "perceptron", "--coordinator", "nohost"], "HOST:PORT"),
        (["run", "perceptron", "--framework", "torch", "--num-processes", "2"], "no data-parallel"),
        (["run", "perceptron", "--devices", "64"], "XLA_FLAGS"),
        (["parity", "perceptron", "--num-processes", "2", "--process-id", "0"], "no data-parallel"),
    ],
)
def test_cli_rejects_bad_combinations(argv, fragment, capsys):
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


# --- Many processes (2 on 127.0.0.1) -----------------------------------------------------------


def launch(
    args_of: list[list[str]], logs: Path, timeout: float, procs: list | None = None
) -> list[int]:
    """Starts one ``jaxtut`` process per argument list, waits at most ``timeout`` seconds in all.

    Each process leads its own session (process group), so the ``finally`` can kill it and
    anything it started, whether the run passed, failed, or hung waiting for a peer.

    Args:
      args_of: the command line of each process.
      logs: folder for ``process<i>.log`` (stdout and stderr).
      timeout: seconds for all of them together.
      procs: a list to receive the ``Popen`` objects (for the caller to inspect).

    Returns:
      The exit codes; raises ``subprocess.TimeoutExpired`` after killing everything.
    """
    procs = [] if procs is None else procs
    try:
        for i, args in enumerate(args_of):
            log = open(logs / f"process{i}.log", "w")  # noqa: SIM115 (closed below)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "jaxtut", *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                    env=env(),
                    start_new_session=True,
                )
            )
            log.close()
        deadline = time.monotonic() + timeout
        return [p.wait(timeout=max(deadline - time.monotonic(), 0.1)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def distributed_args(base: list[str], n: int, port: int) -> list[list[str]]:
    coordinator = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n)]
    return [[*base, *coordinator, "--process-id", str(i)] for i in range(n)]


def load_result(path: Path):
    from jaxtut.result import RunResult

    d = json.loads(path.read_text())
    return RunResult(
        tutorial=d["tutorial"],
        framework=d["framework"],
        config=d["config"],
        losses=np.asarray(d["losses"]),
        epoch_metrics={k: np.asarray(v) for k, v in d["epoch_metrics"].items()},
        metrics=d["metrics"],
        params={k: np.asarray(v) for k, v in d["params"].items()},
        wall_time_s=d["wall_time_s"],
        device=d["device"],
    )


# Batch 6400: 60000 = 9 * 6400 + 2400, so the last batch holds 2400 real samples, all in process
# 0's half: process 1's slice of it is empty, the hardest split for the global-mean loss. lr 0.1:
# at the tutorial's 0.001 ten steps learn nothing, which the command reports as a failure.
MP_BASE = ["mnist_logreg", "--dtype", "float64", "--epochs", "1", "--batch-size", "6400"]
MP_BASE += ["--lr", "0.1"]


@needs_mnist
@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_two_processes_equal_one(framework, tmp_path):
    out = tmp_path / "result.json"
    base = ["run", *MP_BASE, "--framework", framework, "--json", str(out)]
    codes = launch(distributed_args(base, 2, free_port()), tmp_path, PROCESS_TIMEOUT_S)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted(tmp_path.glob("process*.log")))
    assert codes == [0, 0], logs
    many = load_result(out)
    assert "x2" in many.device, many.device
    tutorial = registry.get("mnist_logreg")
    config = tutorial.default_config(
        dtype="float64", epochs=1, batch_size=6400, lr=0.1, data_dir=str(MNIST_DIR)
    )
    one = tutorial.run(framework, config)
    assert len(many.losses) == 10
    assert worst(many, one) <= FLOAT64_TOL, worst(many, one)
    assert abs(many.metrics["test_accuracy"] - one.metrics["test_accuracy"]) <= 1e-12


def test_launch_kills_a_hung_process(tmp_path):
    """Process 0 of 2 waits for a peer that never comes: the launcher kills it at the timeout."""
    args = distributed_args(["run", "perceptron", "--epochs", "1"], 2, free_port())[:1]
    procs = []
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        launch(args, tmp_path, timeout=3, procs=procs)
    assert time.monotonic() - started < 30
    assert len(procs) == 1 and procs[0].returncode == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):  # nothing is left in its process group
        os.killpg(procs[0].pid, 0)
