"""Unit tests of the shared core: configs, registry, converters, comparisons, IO, results."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import jaxtut
from jaxtut import configs as C
from jaxtut import registry
from jaxtut.convert import from_state_dict, to_state_dict
from jaxtut.errors import ConfigError, JaxtutError, UnknownTutorialError
from jaxtut.io import atomic_path, write_json
from jaxtut.parity import compare_arrays, compare_series, compare_trees, rel_diff
from jaxtut.result import RunResult, first_nonfinite


def test_import_jaxtut_does_not_import_torch():
    code = "import sys, jaxtut, jaxtut.registry, jaxtut.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registry_lists_the_catalogue():
    assert jaxtut.list_tutorials() == [
        "tensors",
        "autograd",
        "normal_equation",
        "linreg_scratch",
        "linreg_linear",
        "linreg_make_regression",
        "perceptron",
        "mlp_1_10_1",
        "logreg_breast_cancer",
        "mnist_logreg",
        "mnist_mlp",
        "mnist_cnn",
    ]
    assert registry.ids(training_only=True)[0] == "linreg_scratch"


def test_unknown_id_suggests_the_closest():
    with pytest.raises(UnknownTutorialError, match="did you mean 'mnist_mlp'"):
        registry.get("mnist_mpl")
    assert isinstance(UnknownTutorialError("x"), JaxtutError)


@pytest.mark.parametrize(
    "changes",
    [{"epochs": 0}, {"lr": -1.0}, {"lr": float("nan")}, {"dtype": "float16"}, {"device": "tpu"},
     {"batch_size": 0}, {"momentum": 1.5}, {"seed": -3}, {"nonsense": 1}],
)  # fmt: skip
def test_config_validation(changes):
    with pytest.raises(ConfigError):
        C.MnistMlpConfig().replace(**changes)


def test_config_defaults_are_the_tutorials():
    c = C.MnistMlpConfig()
    assert (c.epochs, c.lr, c.batch_size, c.momentum) == (5, 0.003, 64, 0.0)
    assert (C.PerceptronConfig().momentum, C.Mlp1101Config().momentum) == (0.5, 0.01)
    assert C.LinregLinearConfig().epochs == 2000
    assert C.MnistMlpConfig().replace(lr=None).lr == 0.003  # None means "not given"


def test_state_dict_round_trip_is_exact_and_transposes():
    rng = np.random.default_rng(0)
    params = {"fc1": {"kernel": rng.normal(size=(3, 2)), "bias": rng.normal(size=2)},
              "w": rng.normal(size=1)}  # fmt: skip
    sd = to_state_dict(params)
    assert sd["fc1.weight"].shape == (2, 3)
    np.testing.assert_array_equal(sd["fc1.weight"], params["fc1"]["kernel"].T)
    back = from_state_dict(sd, params)
    for a, b in [(back["fc1"]["kernel"], params["fc1"]["kernel"]), (back["w"], params["w"])]:
        np.testing.assert_array_equal(a, b)


def test_from_state_dict_names_the_bad_key():
    template = {"fc1": {"kernel": np.zeros((3, 2)), "bias": np.zeros(2)}}
    with pytest.raises(ConfigError, match=r"fc1.weight: expected shape \(2, 3\), got \(3, 2\)"):
        from_state_dict({"fc1.weight": np.zeros((3, 2)), "fc1.bias": np.zeros(2)}, template)
    with pytest.raises(ConfigError, match=r"missing.*fc1\.bias"):
        from_state_dict({"fc1.weight": np.zeros((2, 3))}, template)


def test_compare_trees_names_the_failing_leaf():
    a = {"fc1.weight": np.ones((2, 2)), "fc1.bias": np.ones(2)}
    b = {"fc1.weight": np.ones((2, 2)), "fc1.bias": np.array([1.0, 1.5])}
    c = compare_trees("params", a, b, 1e-10)
    assert not c.passed
    assert c.where == "fc1.bias index (1,)"
    assert c.max_abs == pytest.approx(0.5)
    assert compare_trees("params", a, a, 1e-10).passed
    assert not compare_trees("params", a, {"fc1.weight": a["fc1.weight"]}, 1.0).passed


def test_comparisons_treat_nan_as_failure_and_name_the_step():
    s = compare_series("losses", [1.0, 2.0, np.nan], [1.0, 2.0, 3.0], 1e-3)
    assert not s.passed and s.where == "step 2"
    assert not compare_arrays("x", np.ones(3), np.ones(4), 1.0).passed  # shape mismatch
    # The floor (1e-3 of the largest magnitude) keeps a 1e-12 entry next to 1.0 from counting as
    # "100% off": its 1e-12 difference is measured against 1e-3, i.e. 1e-9.
    assert rel_diff(np.array([1.0, 1e-12]), np.array([1.0, 2e-12])).max() == pytest.approx(1e-9)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert json.loads(target.read_text()) == {"a": 1}  # the old file survives
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_run_result_json_and_divergence():
    r = RunResult("x", "jax", {}, np.array([1.0, np.inf, np.nan]), {}, {}, {}, 0.0)
    assert r.diverged_at == 1 and r.diverged
    payload = json.dumps(r.to_json(), allow_nan=False)
    assert '"inf"' in payload
    assert first_nonfinite(np.array([1.0, 2.0])) is None
