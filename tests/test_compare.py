"""jaxtut.compare: a correct port passes; deliberately broken ports fail and name the culprit.

The pair is small on purpose (a 6-8-8-1 network, 48 samples, batch 16, two epochs: 6 steps) so
that every case runs in a few seconds; the example script (tests/test_examples_compare.py) runs a
realistic one. Each broken port is one mistake a porter makes, and each test asserts the tier and
the step or leaf that the verdict names.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jaxtut
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
