"""jaxtut.compare: a correct port passes; deliberately broken ports fail and name the culprit.

The pair is small on purpose (a 6-8-8-1 network, 48 samples, batch 16, two epochs: 6 steps) so
that every case runs in a few seconds; the example script (tests/test_examples_compare.py) runs a
realistic one. Each broken port is one mistake a porter makes, and each test asserts the tier and
the step or leaf that the verdict names.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jaxtut
from jaxtut import layers
from jaxtut.errors import ConfigError
from jaxtut.testing import assert_trains_the_same


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(6, 8)
        self.fc2 = torch.nn.Linear(8, 8)
        self.fc3 = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


class JaxNet(nnx.Module):
    def __init__(self, *, rngs, activation=jnp.tanh, fc2_bias=True):
        hi = jax.lax.Precision.HIGHEST
        self.fc1 = nnx.Linear(6, 8, rngs=rngs, precision=hi)
        self.fc2 = nnx.Linear(8, 8, rngs=rngs, precision=hi, use_bias=fc2_bias)
        self.fc3 = nnx.Linear(8, 1, rngs=rngs, precision=hi)
        self.activation = activation

    def __call__(self, x):
        return self.fc3(self.activation(self.fc2(self.activation(self.fc1(x)))))


def apply(params, x):
    """The same network as a pure function of a params dict (what convert hooks produce)."""
    h = jnp.tanh(x @ params["fc1"]["kernel"] + params["fc1"]["bias"])
    h = jnp.tanh(h @ params["fc2"]["kernel"] + params["fc2"]["bias"])
    return h @ params["fc3"]["kernel"] + params["fc3"]["bias"]


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 6))
    y = np.sin(x[:, :1] * 2.0) + 0.1 * x[:, 1:2]
    return x, y


def pair(lr=0.05, **kwargs):
    torch.manual_seed(0)
    model = TorchNet()
    settings = dict(
        loss=torch.nn.MSELoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9),
        batch_size=16,
        epochs=2,
    )
    settings.update(kwargs)
    return model, settings


def run(port, **kwargs):
    model, settings = pair(**kwargs)
    return jaxtut.compare(model, port, data(), **settings)


def test_a_correct_port_passes_float64_to_1e10_with_its_twin_rejected():
    report = run(JaxNet(rngs=nnx.Rngs(0)))
    assert report.passed, report.verdict
    by_name = {c.name: c for c in report.checks}
    assert by_name["losses, every step"].measured < 1e-13  # measured ~1e-15; suite bound 1e-10
    assert by_name["parameters after every step"].measured < 1e-12
    assert by_name["sensitivity twin"].passed  # lr x 1.01 rejected on this very problem
    assert report.verdict.startswith("PASS")


def test_a_correct_port_passes_float32_under_the_suite_rules():
    report = run(JaxNet(rngs=nnx.Rngs(0)), dtype="float32")
    assert report.passed, report.verdict
    tier3 = [c for c in report.checks if c.tier == 3 and c.tolerance is not None]
    assert all(c.tolerance >= 1e-5 for c in tier3)  # stated 1e-5, or 4x torch's own spread


def test_wrong_activation_fails_at_the_forward_pass():
    report = run(JaxNet(rngs=nnx.Rngs(0), activation=jax.nn.relu))
    assert not report.passed
    assert "tier 1 forward output" in report.verdict
    assert "step 0" in report.verdict


def test_missing_bias_fails_structure_naming_the_leaf():
    report = run(JaxNet(rngs=nnx.Rngs(0), fc2_bias=False))
    assert not report.passed
    assert "tier 0 structure" in report.verdict
    assert "torch state_dict has fc2.bias, which the JAX params lack" in report.verdict


def test_transposed_weight_fails_at_the_forward_pass():
    def convert_forgetting_a_transpose(sd):
        out = {
            name: {"kernel": sd[f"{name}.weight"].T, "bias": sd[f"{name}.bias"]}
            for name in ("fc1", "fc2", "fc3")
        }
        out["fc2"]["kernel"] = sd["fc2.weight"]  # (8, 8): the shapes agree, the maths does not
        return out

    report = run(apply, convert=convert_forgetting_a_transpose)
    assert not report.passed
    # The outputs differ from the shared start on: every later figure inherits the error.
    assert "tier 1 forward output" in report.verdict
    assert "step 0" in report.verdict


def test_sum_instead_of_mean_in_the_loss_fails_at_the_first_loss():
    report = run(JaxNet(rngs=nnx.Rngs(0)), jax_loss=lambda out, y: jnp.sum((out - y) ** 2))
    assert not report.passed
    assert "tier 1 loss" in report.verdict
    assert "step 0" in report.verdict


def test_learning_rate_off_by_one_percent_fails_at_the_first_update():
    report = run(JaxNet(rngs=nnx.Rngs(0)), jax_optimizer=jaxtut_sgd(0.05 * 1.01, 0.9))
    assert not report.passed
    assert "tier 3 parameters after every step" in report.verdict
    assert "first diverging step 0" in report.verdict  # the parameters after the first step
    assert "fc" in report.verdict  # and the leaf


def jaxtut_sgd(lr, momentum):
    from jaxtut import optim

    return optim.sgd(lr=lr, momentum=momentum)


def test_report_files_are_written(tmp_path):
    report = run(JaxNet(rngs=nnx.Rngs(0)))
    paths = report.write(tmp_path / "pair")
    assert sorted(p.suffix for p in paths) == [".json", ".md", ".png"]
    assert "PASS" in (tmp_path / "pair.md").read_text()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"data": (np.full((4, 6), np.nan), np.zeros((4, 1)))}, "NaN"),
        ({"loss": torch.nn.HuberLoss()}, "HuberLoss"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_input_is_one_clear_error(change, fragment):
    model, settings = pair()
    pair_data = change.pop("data", data())
    settings.update(change)
    with pytest.raises(ConfigError, match=fragment):
        jaxtut.compare(model, JaxNet(rngs=nnx.Rngs(0)), pair_data, **settings)


def test_a_layer_jaxtut_cannot_map_without_a_hook_is_named():
    class WithRNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(6, 4, batch_first=True)

        def forward(self, x):
            return self.rnn(x[:, None, :])[0][:, 0, :1]

    torch.manual_seed(0)
    model = WithRNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="rnn"):
        jaxtut.compare(
            model, apply, data(), loss=torch.nn.MSELoss(), optimizer=optimizer, params={}
        )


def test_pytest_helper_fails_with_the_verdict_only():
    model, settings = pair()
    with pytest.raises(pytest.fail.Exception, match="tier 1 forward output"):
        assert_trains_the_same(
            model, JaxNet(rngs=nnx.Rngs(0), activation=jax.nn.relu), data(), **settings
        )
    model, settings = pair()
    assert assert_trains_the_same(model, JaxNet(rngs=nnx.Rngs(0)), data(), **settings).passed


def test_tier4_seeds_compares_final_losses_of_independent_inits():
    from jaxtut import nn

    class TorchInit(nnx.Module):  # the port with torch's U(±1/sqrt(fan_in)) initialisation
        def __init__(self, *, rngs):
            self.fc1 = nn.torch_linear(6, 8, rngs=rngs, dtype=jnp.float64)
            self.fc2 = nn.torch_linear(8, 8, rngs=rngs, dtype=jnp.float64)
            self.fc3 = nn.torch_linear(8, 1, rngs=rngs, dtype=jnp.float64)

    def init(key):
        return nnx.to_pure_dict(nnx.state(TorchInit(rngs=nnx.Rngs(key)), nnx.Param))

    report = run(JaxNet(rngs=nnx.Rngs(0)), init=init, seeds=6, sensitivity=False)
    tier4 = [c for c in report.checks if c.tier == 4]
    assert len(tier4) == 1 and 0.0 <= tier4[0].measured <= 1.0
    assert len(report.extra["tier4"]["jax"]) == len(report.extra["tier4"]["torch"]) == 6
    assert report.passed, report.verdict  # the same initialisation law: p well above 0.01


# --- jaxtut compare pair.py ----------------------------------------------------------------------

PAIR = """
import numpy as np, torch
rng = np.random.default_rng(0)
x = rng.normal(size=(40, 3))
data = (x, x[:, :1] * 2.0 - x[:, 1:2])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
loss = torch.nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
batch_size, epochs = 10, 1
"""
PORT = """
import jax.numpy as jnp
def port(p, x):
    return jnp.tanh(x @ p["0"]["kernel"] + p["0"]["bias"]) @ p["2"]["kernel"] + p["2"]["bias"]
params = {"0": {"kernel": jnp.zeros((3, 4)), "bias": jnp.zeros(4)},
          "2": {"kernel": jnp.zeros((4, 1)), "bias": jnp.zeros(1)}}
"""


def compare_cli(tmp_path, capsys, text, *args):
    from jaxtut import cli

    pair = tmp_path / "pair.py"
    pair.write_text(text)
    code = cli.main(["compare", str(pair), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_compare_passes_and_writes_the_report(tmp_path, capsys):
    code, out, err = compare_cli(tmp_path, capsys, PAIR + PORT, "--report", str(tmp_path / "r"))
    assert code == 0, out + err
    assert "PASS pair" in out
    assert sorted(p.name for p in tmp_path.glob("r.*")) == ["r.json", "r.md", "r.png"]


def test_cli_compare_fails_with_exit_1_on_a_wrong_port(tmp_path, capsys):
    wrong = PORT.replace("jnp.tanh", "jnp.sin")
    code, out, _ = compare_cli(tmp_path, capsys, PAIR + wrong)
    assert code == 1
    assert "FAIL pair (float64) tier 1 forward output" in out


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (PAIR, "does not define port"),  # a file missing what is needed
        (PAIR + PORT.replace('"2": {', '"3": {'), "state_dict has 2.bias, 2.weight, which"),
        (PAIR + PORT.replace("(4, 1)", "(4, 2)"), "2.weight: expected shape"),  # shapes
        (PAIR.replace("torch.nn.Tanh()", "torch.nn.RNN(4, 4)") + PORT, "RNN"),  # unmappable
        (PAIR.replace("rng.normal(size=(40, 3))", "np.full((40, 3), np.nan)") + PORT, "NaN"),
        ("raise ValueError('broken')\n", "line 1: ValueError: broken"),
    ],
)
def test_cli_compare_bad_input_is_one_line_and_exit_2(tmp_path, capsys, text, fragment):
    code, out, err = compare_cli(tmp_path, capsys, text)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], err


# --- BatchNorm statistics and shared dropout masks -----------------------------------------------
#
# A small CNN with every stateful layer compare maps automatically: Conv2d(1, C, 3) -> BatchNorm2d
# -> ReLU -> MaxPool2d(2) -> Dropout(0.25) -> Flatten -> Linear -> BatchNorm1d -> ReLU ->
# Dropout(0.5) -> Linear, on 48 random 8x8 images in 3 classes, batch 16. Each broken port below
# is a real port with one porter's mistake, checked by the real harness.


class TorchCNN(torch.nn.Module):
    def __init__(self, channels=4, functional_dropout=False):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, channels, 3)
        self.bn1 = torch.nn.BatchNorm2d(channels)
        self.pool = torch.nn.MaxPool2d(2)
        self.dropout1 = torch.nn.Dropout(0.25)
        self.flatten = torch.nn.Flatten()
        self.fc1 = torch.nn.Linear(channels * 9, 16)
        self.bn2 = torch.nn.BatchNorm1d(16)
        self.dropout2 = torch.nn.Dropout(0.5)
        self.fc2 = torch.nn.Linear(16, 3)
        self.functional_dropout = functional_dropout

    def forward(self, x):  # (N, 1, 8, 8)
        h = self.dropout1(self.pool(torch.relu(self.bn1(self.conv1(x)))))  # (N, C, 3, 3)
        h = torch.relu(self.bn2(self.fc1(self.flatten(h))))
        if self.functional_dropout:  # invisible to describe: compare must refuse the pair
            h = torch.nn.functional.dropout(h, 0.1, self.training)
        return self.fc2(self.dropout2(h))


class BiasedVarianceBatchNorm2d(layers.BatchNorm2d):
    """A porter's BatchNorm that stores the biased batch variance (flax.nnx.BatchNorm's habit)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.count = 0

    def __call__(self, x):
        self.count = math.prod(x.shape[:-1])
        return super().__call__(x)

    def _update(self, mean, unbiased_var):
        super()._update(mean, unbiased_var * ((self.count - 1) / self.count))


class JaxCNN(nnx.Module):
    """The port: NHWC inside; the dropout layers draw their own keys when run on their own."""

    def __init__(
        self, *, rngs, channels=4, bn1=layers.BatchNorm2d, bn1_kwargs=None, p2=0.5,
        nnx_dropout=False, call_dropout2=True, has_dropout2=True, reshape_for_dropout1=False,
    ):  # fmt: skip
        hi = jax.lax.Precision.HIGHEST
        self.conv1 = layers.Conv2d(1, channels, 3, rngs=rngs)
        self.bn1 = bn1(channels, **(bn1_kwargs or {}))
        self.pool = layers.MaxPool2d(2)
        self.dropout1 = nnx.Dropout(0.25, rngs=rngs) if nnx_dropout else layers.Dropout(0.25)
        self.flatten = layers.Flatten()
        self.fc1 = nnx.Linear(channels * 9, 16, rngs=rngs, precision=hi)
        self.bn2 = layers.BatchNorm1d(16)
        if has_dropout2:
            self.dropout2 = layers.Dropout(p2)
        self.fc2 = nnx.Linear(16, 3, rngs=rngs, precision=hi)
        self.rngs = rngs
        self.nnx_dropout, self.call_dropout2 = nnx_dropout, call_dropout2
        self.reshape_for_dropout1 = reshape_for_dropout1

    def __call__(self, x):  # (N, 1, 8, 8), as torch gets it
        h = jnp.transpose(x, (0, 2, 3, 1))  # NHWC
        h = self.pool(jax.nn.relu(self.bn1(self.conv1(h))))  # (N, 3, 3, C)
        if self.reshape_for_dropout1:  # the mistake: a reshape to torch's shape, not a transpose
            n, hh, ww, c = h.shape
            h = self.drop1(h.reshape(n, c, hh, ww)).reshape(n, hh, ww, c)
        else:
            h = self.drop1(h)
        h = jax.nn.relu(self.bn2(self.fc1(self.flatten(h))))
        if self.call_dropout2:
            h = self.dropout2(h, key=self.rngs.dropout())
        return self.fc2(h)

    def drop1(self, h):
        return self.dropout1(h) if self.nnx_dropout else self.dropout1(h, key=self.rngs.dropout())


def cnn_data(samples=48):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(48, 1, 8, 8)), rng.integers(0, 3, size=48)
    return x[:samples], y[:samples]


def torch_cnn(channels=4, functional_dropout=False):
    torch.manual_seed(0)
    model = TorchCNN(channels, functional_dropout)
    with torch.no_grad():  # a trained model's running statistics: not the 0/1 of a fresh one
        model(torch.from_numpy(cnn_data()[0][:16]).float())
    return model


def run_cnn(port=None, *, model=None, channels=4, functional_dropout=False, samples=16, **kwargs):
    """One step by default (16 samples, one epoch, no twin): enough for a broken port's verdict."""
    model = model or torch_cnn(channels, functional_dropout)
    settings = dict(
        loss=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        batch_size=16,
        epochs=1,
        sensitivity=False,
    )
    settings.update(kwargs)
    port = port or JaxCNN(rngs=nnx.Rngs(0, dropout=1), channels=channels)
    return jaxtut.compare(model, port, cnn_data(samples), **settings)


def by_name(report):
    return {c.name: c for c in report.checks}


def test_a_cnn_with_batchnorm_and_dropout_passes_float64_to_1e10():
    model, port = torch_cnn(), JaxCNN(rngs=nnx.Rngs(0, dropout=1))
    report = run_cnn(port, model=model, samples=48, epochs=8, sensitivity=True)  # 24 steps
    assert report.passed, report.verdict
    # compare trained copies: the user's layers and statistics are as they were
    assert type(model.dropout1) is torch.nn.Dropout and type(port.dropout1) is layers.Dropout
    assert model.bn1.num_batches_tracked.item() == 1  # torch_cnn's one pass, none of compare's
    checks = by_name(report)
    # Measured (2-core CPU): losses 4e-16, parameters 5e-13, running statistics 7e-14.
    assert checks["losses, every step"].measured < 1e-13
    assert checks["parameters after every step"].measured < 1e-11
    assert checks["running statistics after every step"].measured < 1e-11
    assert checks["forward output, evaluation mode"].passed
    assert checks["evaluation output after training"].measured < 1e-12
    assert checks["sensitivity twin"].passed  # lr x 1.01 rejected on this very problem
    assert "dropout1 (moved channels-first for torch), dropout2" in checks["structure"].where
    running = report.extra["running_statistics"]
    assert len(running["rel"]) == 24 and max(running["rel"]) < 1e-11


def test_a_cnn_with_flax_dropout_passes_float32_under_its_envelope():
    # dropout1 is a stock flax.nnx.Dropout here: its own x / (1 - rate), the shared mask.
    port = JaxCNN(rngs=nnx.Rngs(0, dropout=1), nnx_dropout=True)
    report = run_cnn(port, samples=48, dtype="float32", epochs=8)  # 24 steps
    assert report.passed, report.verdict
    checks = by_name(report)
    assert checks["running statistics after every step"].tolerance >= 1e-5


@pytest.mark.parametrize(
    ("port_kwargs", "tier_and_check", "leaf"),
    [
        # flax's momentum (keep 0.9 of the old value) in torch's convention (weigh the new 0.1)
        ({"bn1_kwargs": {"momentum": 0.9}}, "tier 3 running statistics after every step",
         "first diverging step 0 bn1.running_"),
        ({"bn1": BiasedVarianceBatchNorm2d}, "tier 3 running statistics after every step",
         "first diverging step 0 bn1.running_var"),
        ({"bn1_kwargs": {"eps": 1e-3}}, "tier 1 forward output", "output index"),
        ({"p2": 0.4}, "tier 1 forward output", "evaluation mode agrees"),
        ({"reshape_for_dropout1": True}, "tier 1 forward output", "evaluation mode agrees"),
        ({"call_dropout2": False}, "tier 0 structure",
         "dropout dropout2: torch runs it once per forward pass on (16, 16), the JAX port never"),
    ],
    ids=["momentum", "biased-variance", "eps", "dropout-p", "mask-layout", "dropout-not-called"],
)  # fmt: skip
def test_a_broken_cnn_port_fails_naming_the_tier_and_leaf(port_kwargs, tier_and_check, leaf):
    report = run_cnn(JaxCNN(rngs=nnx.Rngs(0, dropout=1), **port_kwargs))
    assert not report.passed
    assert tier_and_check in report.verdict, report.verdict
    assert leaf in report.verdict, report.verdict


def test_a_torch_dropout_without_a_jax_counterpart_is_one_line_naming_it():
    with pytest.raises(ConfigError, match=r"torch layer dropout2 .* has no JAX counterpart") as e:
        run_cnn(JaxCNN(rngs=nnx.Rngs(0, dropout=1), has_dropout2=False, call_dropout2=False))
    assert "\n" not in str(e.value)


def test_an_ambiguous_mask_layout_is_refused_not_guessed():
    # 3 channels on a 3x3 map: (N, 3, 3, 3) is its own channels-last form.
    report = run_cnn(channels=3)
    assert "tier 0 structure" in report.verdict
    assert "cannot tell whether the port is channels-last" in report.verdict


def test_a_functional_dropout_in_the_torch_forward_is_detected():
    report = run_cnn(functional_dropout=True)
    assert "tier 0 structure" in report.verdict
    assert "random beyond its nn.Dropout layers" in report.verdict
    assert "F.dropout" in report.verdict


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_the_shared_mask_is_applied_with_torch_arithmetic_bit_for_bit(p):
    from jaxtut.compare_port import MaskedDropout
    from jaxtut.runtime import jax_runtime
    from jaxtut.torch_ref.layers import SharedDropout

    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 5, 5, 3)).astype(np.float32)
    mask = layers.dropout_mask(rng, x.shape, p)
    with jax_runtime("float32", "cpu"):
        wrapped = MaskedDropout(layers.Dropout(p))
        wrapped.mask.set_value(jnp.asarray(mask.ravel()))  # one call, flattened
        mine = np.asarray(wrapped(jnp.asarray(x)))
    torch_layer = SharedDropout(p)
    torch_layer.set_mask(np.moveaxis(mask, -1, 1))
    theirs = torch_layer(torch.from_numpy(np.moveaxis(x, -1, 1))).numpy()
    np.testing.assert_array_equal(mine, np.moveaxis(theirs, 1, -1))
