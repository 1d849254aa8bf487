"""Hostile input, through the CLI and the Python API: every case fails early, in one line, safely.

Issue 14, item by item: outputs never replace what is not a regular file and are checked before
any work (1, 3); oversized work is refused up front (2); user errors are one jaxtut error on both
the JAX and the torch side (3); no silent wrong results: seeds never alias, a run at chance
accuracy fails, the perceptron plots (4); the Python API is as strict as the CLI (5); SIGTERM,
permissions and the decompression cap (6). Property-based tests (Hypothesis) cover the argument and
config validation over generated inputs.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxtut import artifacts, budget, cli, configs, io, registry, runtime
from jaxtut.checkpoint import check_state_dict, load_params, save_params
from jaxtut.errors import BudgetError, ConfigError, DataError, JaxtutError, OutputError, Terminated

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(args))
    except SystemExit as exit_:  # argparse's refusals
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def fake_result(tutorial: str, **metrics: float):
    """A finished run without running anything (for output and verdict tests)."""
    from jaxtut.result import RunResult

    return RunResult(
        tutorial=tutorial,
        framework="jax",
        config={},
        losses=np.array([1.0, 0.5, 0.25]),
        epoch_metrics={"loss": np.array([1.0, 0.5, 0.25])},
        metrics=dict(metrics),
        params={
            "linear.weight": np.ones((1, 1), np.float32),
            "linear.bias": np.zeros(1, np.float32),
        },
        wall_time_s=0.0,
    )


def no_temporaries(folder: Path) -> None:
    leftovers = [p.name for p in folder.rglob(".*") if p.is_file()]
    assert not leftovers, leftovers


# --- 1. Outputs: regular files only, symlinks written through, checked before work --------------


def test_refuses_to_replace_a_fifo_or_a_socket(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        for path in (fifo, sock_path):
            with pytest.raises(OutputError, match="not a regular file"):
                io.write_json(path, {"a": 1})
            with pytest.raises(OutputError, match="not a regular file"):
                io.check_output(path)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    finally:
        sock.close()
    no_temporaries(tmp_path)


def test_refuses_a_character_device_through_a_symlink(tmp_path):
    link = tmp_path / "null.json"
    link.symlink_to("/dev/null")
    with pytest.raises(OutputError, match="not a regular file"):
        io.write_json(link, {})
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_symlinks_are_written_through(tmp_path):
    target = tmp_path / "runs" / "7.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    io.write_json(link, {"run": 7})
    assert link.is_symlink() and json.loads(target.read_text()) == {"run": 7}
    dangling = tmp_path / "next.json"
    dangling.symlink_to(tmp_path / "runs" / "8.json")
    io.write_text(dangling, "x")
    assert dangling.is_symlink() and (tmp_path / "runs" / "8.json").read_text() == "x"
    no_temporaries(tmp_path)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d, "is a folder"),
        (lambda d: "", "must be a file path"),
        (lambda d: str(d) + "/", "give a file name"),
        (lambda d: (d / "f.txt").write_text("") or d / "f.txt" / "r.json", "not a folder"),
        (lambda d: Path("/proc/self/jaxtut-probe.json"), "not writable"),
    ],
)
def test_unwritable_outputs_are_found_up_front(tmp_path, make, match):
    with pytest.raises(OutputError, match=match):
        io.check_output(make(tmp_path))


def test_a_read_only_folder_is_found_up_front(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root writes anyway: then so does the check, and the write works
            assert io.check_output(folder / "r.json") == folder / "r.json"
        else:
            with pytest.raises(OutputError, match="not writable"):
                io.check_output(folder / "r.json")
    finally:
        folder.chmod(0o755)


def test_two_outputs_on_one_path_are_refused(tmp_path):
    (tmp_path / "a.json").symlink_to(tmp_path / "b.json")
    with pytest.raises(OutputError, match="--json and --save both write"):
        io.check_outputs(
            {"--json": tmp_path / "b.json", "--plot": None, "--save": tmp_path / "a.json"}
        )


def test_a_failed_write_is_one_error_and_leaves_nothing(tmp_path):
    def full_disk(_):
        raise OSError(28, "No space left on device")

    with (
        pytest.raises(OutputError, match="No space left"),
        io.atomic_path(tmp_path / "r.json") as tmp,
    ):
        full_disk(tmp)
    with pytest.raises(Terminated), io.atomic_path(tmp_path / "r.json") as tmp:
        tmp.write_text("half")
        raise Terminated
    assert list(tmp_path.iterdir()) == []


def test_every_file_kind_gets_the_same_permissions(tmp_path):
    from jaxtut import plots

    result = fake_result("linreg_linear", test_accuracy=1.0)
    old = os.umask(0o027)
    try:
        paths = [
            io.write_json(tmp_path / "r.json", {}),
            io.write_text(tmp_path / "r.md", "x"),
            save_params(tmp_path / "r.safetensors", result.params),
            plots.plot_losses([result], tmp_path / "r.png"),
        ]
        assert {stat.S_IMODE(os.stat(p).st_mode) for p in paths} == {0o640}
        existing = tmp_path / "r.json"
        existing.chmod(0o600)
        io.write_json(existing, {"again": True})
        assert stat.S_IMODE(os.stat(existing).st_mode) == 0o600  # a replaced file keeps its mode
    finally:
        os.umask(old)


def test_cli_checks_outputs_before_training(tmp_path, capsys):
    code, out, err = run_cli(capsys, "run", "perceptron", "--json", str(tmp_path))
    assert code == 2 and "result:" not in out
    one_line(err, "is a folder")
    code, out, err = run_cli(
        capsys, "run", "perceptron", "--json", str(tmp_path / "x"), "--plot", str(tmp_path / "x")
    )
    assert code == 2 and "result:" not in out
    one_line(err, "--json and --plot both write")
    code, _, err = run_cli(capsys, "parity", "perceptron", "--plot", "")
    assert code == 2
    one_line(err, "expected a file path")
    code, _, err = run_cli(capsys, "run", "perceptron", "--json", f"{tmp_path}/new/")
    assert code == 2 and not (tmp_path / "new").exists()
    one_line(err, "not a folder")


def test_tour_never_deletes_a_folder_that_is_not_a_report(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("years of work")
    code, _, err = run_cli(capsys, "tour", "--out", str(tmp_path))
    assert code == 2 and (tmp_path / "thesis.tex").read_text() == "years of work"
    one_line(err, "thesis.tex")


# --- 2. Work and memory budgets, refused in well under 2 s --------------------------------------


@pytest.fixture(scope="module")
def warm_modules():
    for tutorial_id in ("perceptron", "linreg_linear"):
        tutorial = registry.get(tutorial_id)
        budget.plan_work(tutorial, tutorial.default_config())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "perceptron", "--seeds", "1000000"], "of memory up front"),
        (["run", "linreg_linear", "--epochs", "200000000"], "optimisation steps per run"),
        (["run", "perceptron", "--framework", "torch", "--epochs", "3000000"], "PyTorch steps"),
        (["parity", "linreg_linear", "--steps", "100000000"], "PyTorch steps"),
        (["parity", "perceptron", "--steps", "100000"], "exceeds the run's 600 steps"),
        (["run", "perceptron", "--seed", str(2**32 - 2), "--seeds", "5"], "largest seed"),
    ],
)
def test_oversized_work_is_refused_fast(capsys, warm_modules, args, fragment):
    # Imports are a per-process cost (measured apart, in the hand-over); what is timed here is
    # the refusal itself, which must not grow with the work refused.
    start = time.perf_counter()
    code, out, err = run_cli(capsys, *args)
    assert time.perf_counter() - start < 2.0
    assert code == 2 and "result:" not in out
    one_line(err, fragment)


def test_the_memory_estimate_follows_the_plan():
    tutorial = registry.get("perceptron")
    config = tutorial.default_config()
    one = budget.plan_work(tutorial, config)
    many = budget.plan_work(tutorial, config, seeds=1000)
    assert (one.epochs, one.steps_per_epoch, one.batch_slots, one.params) == (100, 6, 1, 2)
    assert many.host_bytes > 900 * (one.host_bytes - 4 * one.params * 8 * 1)
    with pytest.raises(BudgetError, match="memory"):
        budget.check_work(tutorial, config, limits=budget.Limits(host_bytes=one.host_bytes - 1))
    assert budget.check_work(tutorial, config, limits=budget.Limits(host_bytes=one.host_bytes))


def test_parity_header_names_the_epochs_that_run(capsys):
    code, out, _ = run_cli(capsys, "parity", "linreg_linear", "--steps", "3", "--dtype", "float64")
    assert code == 0
    assert "epochs=3," in out.splitlines()[0] and "epochs=2000" not in out


def test_demonstrations_are_sized_too():
    with pytest.raises(BudgetError, match="steps"):
        budget.check_demo(registry.get("autograd"), configs.AutogradConfig(steps=10**9))
    with pytest.raises(BudgetError, match="matrix"):
        budget.check_demo(
            registry.get("normal_equation"),
            configs.NormalEquationConfig(n_samples=10**7, n_features=10**5),
        )


# --- 3. One jaxtut error, one line, exit 2, on both sides ---------------------------------------


@pytest.fixture(scope="module")
def init_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("init")
    good = {"fc1.weight": np.ones((1, 1), np.float32), "fc1.bias": np.zeros(1, np.float32)}
    files = {
        "garbage": folder / "garbage.safetensors",
        "integer": folder / "int.safetensors",
        "nan": folder / "nan.safetensors",
        "shape": folder / "shape.safetensors",
    }
    files["garbage"].write_bytes(b"\xff" * 64)
    save_params(files["integer"], {k: v.astype(np.int64) for k, v in good.items()})
    save_params(files["nan"], {**good, "fc1.weight": np.full((1, 1), np.nan, np.float32)})
    save_params(files["shape"], {**good, "fc1.weight": np.ones((2, 1), np.float32)})
    return files


@pytest.mark.parametrize("framework", ["jax", "torch"])
@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("garbage", "not a valid safetensors"),
        ("integer", "not floating point"),
        ("nan", "NaN or infinite"),
        ("shape", "shape"),
    ],
)
def test_bad_init_files(capsys, init_files, framework, kind, fragment):
    code, _, err = run_cli(
        capsys, "run", "perceptron", "--framework", framework, "--init", str(init_files[kind])
    )
    assert code == 2
    one_line(err, fragment)


@pytest.mark.parametrize("framework", ["jax", "torch"])
@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--lr", "1e300", "overflows to infinity in float32"),
        ("--lr", "1e-50", "underflows to 0 in float32"),
        ("--seed", str(2**32), "2**32 - 1"),
        ("--seed", str(10**30), "2**32 - 1"),
    ],
)
def test_bad_numbers_are_refused_on_both_sides(capsys, framework, option, value, fragment):
    code, _, err = run_cli(capsys, "run", "perceptron", "--framework", framework, option, value)
    assert code == 2
    one_line(err, fragment)


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_the_largest_seed_runs(capsys, framework):
    code, _, err = run_cli(
        capsys, "run", "perceptron", "--framework", framework, "--epochs", "1",
        "--seed", str(runtime.MAX_SEED),
    )  # fmt: skip
    assert code == 0, err


# --- 4. No silent wrong results ------------------------------------------------------------------


def test_seeds_never_alias():
    """torch's CPU generator keeps 32 bits of a seed (2**32 drew seed 0's weights): refused."""
    import torch

    torch.manual_seed(2**32)
    wrapped = torch.rand(2)
    torch.manual_seed(0)
    assert torch.equal(wrapped, torch.rand(2))  # the aliasing that the limit exists for
    for framework in ("jax", "torch"):
        with pytest.raises(ConfigError, match=r"2\*\*32 - 1"):
            registry.get("perceptron").run(framework, configs.PerceptronConfig(seed=2**32))
    first, last = (
        registry.get("perceptron").run("jax", configs.PerceptronConfig(epochs=1, seed=s))
        for s in (0, runtime.MAX_SEED)
    )
    assert not np.array_equal(first.params["fc1.weight"], last.params["fc1.weight"])


def test_prng_key_keeps_every_key_used_before():
    import jax

    for seed in (0, 1, 2**32 - 1):  # every seed a run used before keeps its key
        np.testing.assert_array_equal(
            jax.random.key_data(runtime.prng_key(seed)), jax.random.key_data(jax.random.key(seed))
        )


@given(st.lists(st.integers(0, runtime.MAX_SEED), min_size=2, max_size=20, unique=True))
@FAST
def test_distinct_seeds_give_distinct_keys(seeds):
    import jax

    data = np.asarray(jax.random.key_data(runtime.prng_keys(seeds)))
    assert len({tuple(row) for row in data}) == len(seeds)
    for x64 in (False, True):  # the very key jax.random.key makes, in either mode
        with jax.enable_x64(x64):
            np.testing.assert_array_equal(
                jax.random.key_data(jax.random.key(seeds[0])),
                jax.random.key_data(runtime.prng_key(seeds[0])),
            )


@given(
    st.one_of(st.integers(runtime.MAX_SEED + 1, 2**80), st.integers(max_value=-1), st.booleans())
)
@settings(max_examples=30, deadline=None)
def test_unrepresentable_seeds_are_refused(seed):
    with pytest.raises(ConfigError, match="seed"):
        runtime.prng_key(seed)
    with pytest.raises(ConfigError, match="seed"):
        configs.PerceptronConfig(seed=seed)


def test_many_keys_are_built_in_linear_time():
    start = time.perf_counter()
    keys = runtime.prng_keys(range(10_000))
    assert keys.shape == (10_000,) and time.perf_counter() - start < 1.0


@pytest.mark.parametrize("framework", ["jax", "torch"])
def test_perceptron_plots_its_fit(tmp_path, capsys, framework):
    path = tmp_path / "fit.png"
    code, _, err = run_cli(
        capsys, "run", "perceptron", "--framework", framework, "--epochs", "2", "--plot", str(path)
    )
    assert code == 0, err
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_chance_accuracy_is_a_failure(monkeypatch, capsys, tmp_path):
    labels = np.array([0, 1, 1, 1])
    assert budget.chance_accuracy(labels) == 0.75
    assert budget.chance_accuracy(np.array([[0.0], [1.0], [1.0]])) == pytest.approx(2 / 3)
    result = fake_result("logreg_breast_cancer", test_accuracy=0.75)
    assert budget.check_chance(result, labels) is not None  # no better than always guessing 1
    assert budget.check_chance(result, labels=np.array([0, 1])) is None  # it beats 50%
    assert budget.check_chance(fake_result("linreg_linear"), labels) is None  # no accuracy
    labels = budget.eval_labels(
        registry.get("logreg_breast_cancer"), configs.LogregBreastCancerConfig()
    )
    floor = budget.chance_accuracy(labels)  # the real test split's majority class
    assert 0.5 < floor < 0.7

    def at_chance(self, framework="jax", config=None, **kwargs):
        return fake_result("logreg_breast_cancer", test_accuracy=floor)

    monkeypatch.setattr(registry.Tutorial, "run", at_chance)
    code, _, err = run_cli(
        capsys, "run", "logreg_breast_cancer", "--json", str(tmp_path / "r.json")
    )
    assert code == 1 and not (tmp_path / "r.json").exists()
    one_line(err, "no better than chance", f"{floor:.4f}")


# --- 5. The Python API validates as strictly as the CLI -----------------------------------------


@pytest.mark.parametrize(
    ("framework", "config", "fragment"),
    [
        ("pytorch", None, "framework must be one of"),
        (None, None, "framework must be one of"),
        ("jax", configs.MnistMlpConfig(), "takes a PerceptronConfig"),
        ("torch", configs.LinregLinearConfig(), "takes a PerceptronConfig"),
        ("jax", {"epochs": 2}, "takes a PerceptronConfig"),
        ("jax", 42, "takes a PerceptronConfig"),
    ],
)
def test_the_api_refuses_what_the_cli_refuses(framework, config, fragment):
    with pytest.raises(ConfigError, match=fragment):
        registry.get("perceptron").run(framework, config)


def test_the_api_checks_init_params():
    tutorial = registry.get("perceptron")
    bad = {"fc1.weight": np.ones((1, 1), np.int64), "fc1.bias": np.zeros(1, np.int64)}
    for framework in ("jax", "torch"):
        with pytest.raises(ConfigError, match="not floating point"):
            tutorial.run(framework, init_params=bad)
        with pytest.raises(ConfigError, match="must map parameter names"):
            tutorial.run(framework, init_params=[1.0, 2.0])
    with pytest.raises(ConfigError, match=r"missing fc1\.bias"):
        check_state_dict(
            {"fc1.weight": np.ones((1, 1))}, {"fc1.weight": np.ones((1, 1)), "fc1.bias": np.ones(1)}
        )


def test_run_seeds_checks_its_framework():
    from jaxtut import scaling

    with pytest.raises(ConfigError, match="framework"):
        scaling.run_seeds("perceptron", None, 2, framework="tensorflow")


FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.integers(-5, 10).map(np.int64),
    st.floats(-10, 10).map(np.float32),
)


@given(
    st.dictionaries(
        st.sampled_from(["seed", "epochs", "lr", "momentum", "batch_size", "drop_last", "dtype"]),
        FIELD_VALUES,
        max_size=4,
    )
)
@FAST
def test_configs_accept_only_valid_values(changes):
    """Any field values: a config that validates, or a ConfigError (never another exception)."""
    try:
        config = configs.PerceptronConfig(**changes)
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    assert type(config.seed) is int and 0 <= config.seed <= runtime.MAX_SEED
    assert type(config.epochs) is int and config.epochs >= 1
    assert (
        type(config.lr) is float
        and np.float32(config.lr) > 0
        and np.isfinite(np.float32(config.lr))
    )
    assert type(config.momentum) is float and 0 <= config.momentum < 1
    assert config.batch_size is None or (type(config.batch_size) is int and config.batch_size >= 1)
    assert type(config.drop_last) is bool
    json.dumps(config.to_dict())  # every accepted config serialises


OPTION_TEXT = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)


@given(
    st.sampled_from(["--epochs", "--lr", "--seed", "--batch-size", "--seeds"]),
    OPTION_TEXT,
    st.sampled_from(["perceptron", "linreg_linear", "logreg_breast_cancer"]),
)
@FAST
def test_cli_options_validate_or_fail_in_one_line(option, text, tutorial_id):
    """Parsing, config and budget checks (no training): a valid plan or one usage error."""
    parser = cli.build_parser()
    try:
        args = parser.parse_args(["run", tutorial_id, f"{option}={text}"])
    except SystemExit as exit_:
        assert exit_.code == cli.EXIT_USAGE
        return
    tutorial = registry.get(tutorial_id)
    try:
        config = cli._config(args, tutorial)
        work = budget.check_work(tutorial, config, seeds=args.seeds or 1)
    except JaxtutError as err:
        assert "\n" not in str(err)
        return
    assert work.steps >= 1 and config.epochs >= 1


@given(st.one_of(st.text(max_size=8), st.none(), st.integers(), st.builds(object)))
@settings(max_examples=40, deadline=None)
def test_frameworks_are_checked(framework):
    tutorial = registry.get("perceptron")
    if framework in configs.FRAMEWORKS:
        configs.check_run(tutorial, framework, None)
    else:
        with pytest.raises(ConfigError):
            configs.check_run(tutorial, framework, None)


@given(st.text(alphabet="ab./ \\-_\x00", max_size=12))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_output_paths_resolve_or_fail_in_one_line(tmp_path, name):
    try:
        target = io.check_output(tmp_path / name if name.strip() else name)
    except OutputError as err:
        assert "\n" not in str(err)
    except ValueError:  # an embedded NUL: Python's own refusal, before any file is touched
        assert "\x00" in name
    else:
        assert not target.is_dir()
    no_temporaries(tmp_path)


# --- 6. SIGTERM, interrupted writes, decompression ----------------------------------------------


def test_sigterm_matches_ctrl_c(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxtut", "run", "linreg_linear", "--framework", "torch",
         "--epochs", "5000000", "--json", str(out / "r.json")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "linreg_linear" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == cli.EXIT_TERMINATED, stderr
    one_line(stderr, "terminated; no output files were written")
    assert not out.exists() or not any(out.iterdir())


def test_an_interrupt_after_one_output_says_so(tmp_path, capsys, monkeypatch):
    def terminated(*args, **kwargs):
        raise Terminated

    monkeypatch.setattr(artifacts, "plot_run", terminated)
    json_path, png = tmp_path / "r.json", tmp_path / "r.png"
    code, _, err = run_cli(
        capsys,
        "run",
        "linreg_linear",
        "--epochs",
        "3",
        "--json",
        str(json_path),
        "--plot",
        str(png),
    )
    assert code == cli.EXIT_TERMINATED
    one_line(err, f"terminated; wrote {json_path}; not written: {png}")
    assert json_path.is_file() and not png.exists()
    no_temporaries(tmp_path)


def test_decompression_is_capped(tmp_path, monkeypatch):
    from jaxtut.data import mnist

    bomb = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bomb.write_bytes(gzip.compress(b"\0" * 4096))
    monkeypatch.setattr(mnist, "MAX_DECOMPRESSED_BYTES", 1024)
    with pytest.raises(DataError, match="decompresses to more than"):
        mnist.read_idx_file(bomb, expected_magic=mnist.LABELS_MAGIC)


def test_load_params_refuses_a_folder(tmp_path):
    with pytest.raises(DataError, match="not a regular file"):
        load_params(tmp_path)
