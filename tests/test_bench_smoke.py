"""The benchmarks: a ``--quick`` run end to end, and the pure pieces (FLOP counts, targets).

No timing is asserted anywhere: this machine's timings are too noisy for that (other processes
share its two cores), and the benchmarks' job is to measure, not to pass. The smoke run checks
that every section reaches the JSON, the Markdown and the chart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report, targets, timing
from benchmarks.roofline import flops_per_epoch
from benchmarks.training import OWN_BENCHMARK
from jaxtut import registry
from jaxtut.data import ENV_VAR

import background
from mnist_dir import find_mnist_dir

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = find_mnist_dir()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# One ``python -m benchmarks --quick`` run shared by the smoke tests (~80 s alone on 2 cores), in
# the background (tests/background.py). Without the MNIST files the MNIST rows are recorded as
# skipped (pointing at a missing folder keeps the loader from trying a download). One torch
# thread: with two threads on two busy cores, torch's small ops spin at barriers and a quick run
# can take many minutes (see tests/test_mnist.py).
QUICK_RUN = background.Job(
    "bench-quick",
    ("-m", "benchmarks", "--quick", "--torch-threads", "1", "--out", "."),
    env=((ENV_VAR, str(MNIST_DIR or "no-mnist")),),
    timeout_s=900,
)
needs_quick_run = pytest.mark.background(QUICK_RUN)


@pytest.fixture(scope="module")
def quick_run() -> tuple[dict, str, bytes, background.Finished]:
    run = background.succeeded(QUICK_RUN)
    [json_path] = run.cwd.glob("*-quick.json")
    md = json_path.with_suffix(".md").read_text()
    png = json_path.with_suffix(".png").read_bytes()
    return json.loads(json_path.read_text()), md, png, run


@needs_quick_run
def test_quick_run_writes_json_markdown_and_chart(quick_run):
    results, md, png, _ = quick_run
    assert list(results) == ["machine_id", "run", *report.SECTIONS]
    assert results["run"]["quick"] is True
    for heading in report.MD_HEADINGS:
        assert heading in md
    assert png.startswith(PNG_MAGIC)


@needs_quick_run
def test_quick_run_times_every_training_tutorial(quick_run):
    results, _, _, _ = quick_run
    records = {r["tutorial"]: r for r in results["training"]}
    assert set(records) == set(registry.ids(training_only=True))
    for tid, record in records.items():
        if record.get("skipped") == OWN_BENCHMARK:
            assert registry.get(tid).trainer().noise is not None, tid
            continue
        if record.get("skipped"):
            assert registry.get(tid).uses_mnist and MNIST_DIR is None, record["skipped"]
            continue
        variants = {v["variant"]: v for v in record["variants"]}
        assert {"jax_fused", "jax_step", "torch_eager"} <= set(variants)
        assert variants["torch_eager"]["ratio_vs_torch_eager"] == pytest.approx(1.0)
        for v in variants.values():
            for key in ("per_step_s", "per_epoch_s", "per_run_s"):
                stats = v[key]
                assert stats["min"] <= stats["median"] <= stats["max"]
            assert v["repeats"] >= 3 and v["recompilations"] == 0
        assert variants["jax_fused"]["compile_s"] > 0
    assert "numpy" in {v["variant"] for v in records["linreg_scratch"]["variants"]}
    assert "torch_compile" in {v["variant"] for v in records["perceptron"]["variants"]}


@needs_quick_run
def test_quick_run_has_every_other_benchmark(quick_run):
    results, _, _, _ = quick_run
    assert results["roofline"]["peak"]["peak_gflops"] > 0
    assert {s["tutorial"] for s in results["seeds"]} == {"mnist_mlp", "perceptron"}
    perceptron = next(s for s in results["seeds"] if s["tutorial"] == "perceptron")
    assert [row["k"] for row in perceptron["counts"]] == [1, 8, 64]
    sin = results["micro"]["sin"]
    assert {r["framework"] for r in sin["sin"]} == {"numpy", "torch", "jax"}
    assert sin["memory_bandwidth_gbps"] > 0
    frameworks = {r["framework"] for r in results["micro"]["normal_equation"]["rows"]}
    assert frameworks == {"numpy", "torch", "jax"}
    listed = {t["id"] for t in results["targets"]}
    assert listed == {t.id for t in targets.TARGETS}
    for t in results["targets"]:
        assert {"measured", "threshold", "met", "note"} <= set(t)
        if t["device"] == "gpu":
            assert t["met"] is None  # a CPU run does not judge GPU targets


def test_mnist_mlp_flops_match_the_issue():
    counts = flops_per_epoch("mnist_mlp")
    assert counts["conventional"] == pytest.approx(39.3e9, rel=1e-3)
    assert counts["minimal"] == pytest.approx(27.26e9, rel=1e-3)


def test_targets_report_misses_with_their_margin():
    def variant(name: str, seconds: float) -> dict:
        return {
            "variant": name,
            "ratio_vs_torch_eager": 5e-5 / seconds,
            "per_step_s": {"median": seconds},
        }

    # Fused 5x faster than eager, against a bound of 10x: missed, at half the bound.
    logreg = {
        "tutorial": "logreg_breast_cancer",
        "variants": [variant("jax_fused", 1e-5), variant("torch_eager", 5e-5)],
    }
    judged = {t["id"]: t for t in targets.evaluate({"training": [logreg]}, "cpu", quick=False)}
    missed = judged["logreg_fused_vs_eager"]
    assert missed["met"] is False and "MISSED" in missed["note"] and "0.50x" in missed["note"]
    assert judged["mnist_mlp_fused_vs_eager"]["met"] is None  # not measured


def _fake_run(seconds: float):
    calls = []

    def timed() -> float:
        calls.append(seconds)
        return seconds

    return timed, calls


def test_steady_samples_keeps_repeats_for_long_runs():
    timed, calls = _fake_run(timing.SHORT_RUN_S * 2)
    assert timing.steady_samples(timed, 5) == [timing.SHORT_RUN_S * 2] * 5
    assert len(calls) == 5  # no extra warm-up for a run that is not short


def test_steady_samples_warms_up_and_samples_short_runs_longer():
    seconds = timing.MIN_TIMED_S / 400  # 400 samples reach MIN_TIMED_S
    timed, calls = _fake_run(seconds)
    samples = timing.steady_samples(timed, 5)
    assert len(samples) in (400, 401)  # 401 if the float sum of 400 falls short by an ulp
    assert len(calls) > 1 + 400  # the probe, untimed warm-up calls, then the samples
    tiny, _ = _fake_run(1e-9)
    assert len(timing.steady_samples(tiny, 5)) == timing.MAX_REPEATS  # capped
    # --quick's lower budget: a tenth of the samples, never fewer than `repeats`.
    assert len(timing.steady_samples(timed, 5, timing.MIN_TIMED_S / 10)) in (40, 41)
    assert len(timing.steady_samples(timed, 50, timing.MIN_TIMED_S / 10)) == 50


@pytest.mark.parametrize("script, args", [("mnist_cnn", []), ("loop_strategy", ["mnist_cnn"])])
def test_benchmark_script_without_mnist_is_one_line_and_exit_2(script, args, tmp_path):
    # An empty folder: the loader reports the missing file without trying a download.
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script}", "--data-dir", str(tmp_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"python -m benchmarks.{script}: error: MNIST file train-images-idx3-ubyte[.gz] not found "
        f"in {tmp_path}; set JAXTUT_DATA_DIR to a folder with the four MNIST IDX files, or pass "
        "--data-dir"
    ], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
