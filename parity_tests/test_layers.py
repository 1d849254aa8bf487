"""Parity of jaxtut.layers with torch.nn: forward, gradients, short trajectories, and the defaults.

Tier 1 (forward) and tier 2 (gradients of ``sum(out * R)`` for a fixed random cotangent ``R``,
w.r.t. the input and every parameter; BatchNorm's updated running statistics too) run per layer
and option in float32 and float64. The JAX layer is built from the torch module by
:func:`jaxtut.torch_ref.layers.describe` / ``jax_layer`` and loaded with ``from_state_dict``, so
the automatic mapping is exercised on every case. Tier 3 trains two tiny models that contain every
layer (a CNN and a sequence model) with SGD from torch's parameters on the same batches and the
same dropout masks, comparing every step's loss, then the final parameters and statistics.

The "semantics" tests pin each default where torch and Flax/JAX differ (docs/parity.md, "Layers:
semantic differences"); each shows the difference exists and that jaxtut follows torch.

Tolerances (relative; forward, gradients and final parameters scaled per leaf by its largest
magnitude, see ``jaxtut.parity.compare_arrays``), from the worst figures measured on this CPU over
all cases (jax 0.10.2, torch 2.13.0):

- float64: forward 5.2e-16, gradients 7.7e-16, running statistics 1.8e-16; over 30 SGD steps
  losses 4.9e-16 and final parameters 3.2e-15. Held to 1e-13: 30x above the worst, and seven
  orders below the smallest semantic difference pinned here (nnx.LayerNorm's eps: 6.5e-6).
- float32: forward 1.6e-7, gradients 6.3e-7 (one to five ulps: oneDNN and XLA order their sums
  differently), running statistics 1.1e-7; over 30 steps losses 2.4e-7 and final parameters
  1.2e-6. Held to 2e-6 (forward, gradients) and 2e-5 (trajectories compound the rounding).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats
import torch
from flax import nnx

from jaxtut import layers as L
from jaxtut.convert import (
    flatten_permutation,
    from_state_dict,
    merge_trees,
    split_tree,
    to_channels_first,
    to_channels_last,
    to_state_dict,
)
from jaxtut.errors import ConfigError
from jaxtut.nn import torch_linear
from jaxtut.parity import compare_arrays, compare_series, compare_trees
from jaxtut.runtime import jax_runtime
from jaxtut.torch_ref._common import state_dict_numpy
from jaxtut.torch_ref.layers import SharedDropout, describe, jax_layer

# torch's note that an even 'same' kernel costs a padded copy of the input: the case under test.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

DTYPES = ("float32", "float64")
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}
TOL = {
    ("forward", "float64"): 1e-13,
    ("grads", "float64"): 1e-13,
    ("trajectory", "float64"): 1e-13,
    ("forward", "float32"): 2e-6,
    ("grads", "float32"): 2e-6,
    ("trajectory", "float32"): 2e-5,
}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Runs torch single-threaded here, restoring the setting after the module.

    The tensors are tiny, so a second intra-op thread has nothing to do but spin-wait, and on a
    busy 2-core machine that spinning cost 8 s of CPU for the 30-step float64 CNN run (0.1 s
    single-threaded). Single-threaded torch is still the reference: the parity is unchanged.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- Tiers 1 and 2, one layer at a time ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One torch layer configuration and the input it is checked on (torch layout)."""

    id: str
    make: Callable[[], torch.nn.Module]
    shape: tuple[int, ...]
    channels_first: bool = True  # the input (and output) move channels-last for JAX
    train: bool = True
    index_input: int = 0  # > 0: integer input in [0, index_input) (Embedding)


CASES = (
    Case("Conv1d", lambda: torch.nn.Conv1d(3, 4, 3), (2, 3, 9)),
    Case(
        "Conv1d-stride-pad-dil-groups",
        lambda: torch.nn.Conv1d(4, 6, 4, stride=2, padding=1, dilation=2, groups=2),
        (2, 4, 11),
    ),
    Case(
        "Conv1d-same-even-nobias",
        lambda: torch.nn.Conv1d(3, 4, 4, padding="same", bias=False),
        (2, 3, 9),
    ),
    Case("Conv2d", lambda: torch.nn.Conv2d(3, 5, 3), (2, 3, 7, 6)),
    Case(
        "Conv2d-rect-stride-pad-dil-groups",
        lambda: torch.nn.Conv2d(
            4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2
        ),
        (2, 4, 8, 7),
    ),
    Case("Conv2d-same-even", lambda: torch.nn.Conv2d(3, 4, 4, padding="same"), (2, 3, 7, 6)),
    Case("Conv2d-depthwise", lambda: torch.nn.Conv2d(4, 8, 3, groups=4), (2, 4, 6, 6)),
    Case("MaxPool2d", lambda: torch.nn.MaxPool2d(2), (2, 3, 8, 7)),
    Case("MaxPool2d-rect-tiles", lambda: torch.nn.MaxPool2d((2, 3)), (2, 3, 8, 7)),
    Case("MaxPool2d-k3-s2-p1", lambda: torch.nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 8, 7)),
    Case("MaxPool2d-ceil-pad", lambda: torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 3, 8, 9)),
    Case("MaxPool2d-dilated", lambda: torch.nn.MaxPool2d(2, 1, 1, dilation=2), (2, 3, 7, 7)),
    Case("AvgPool2d", lambda: torch.nn.AvgPool2d(2), (2, 3, 8, 7)),
    Case(
        "AvgPool2d-pad-exclude",
        lambda: torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        (2, 3, 8, 7),
    ),
    Case("AvgPool2d-ceil-pad", lambda: torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True), (2, 3, 8, 9)),
    Case(
        "AvgPool2d-ceil-pad-exclude",
        lambda: torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        (2, 3, 8, 9),
    ),
    Case("AvgPool2d-divisor", lambda: torch.nn.AvgPool2d(2, divisor_override=3), (2, 3, 6, 6)),
    Case("BatchNorm1d-NC", lambda: torch.nn.BatchNorm1d(4), (6, 4)),
    Case("BatchNorm1d-NCL", lambda: torch.nn.BatchNorm1d(4), (3, 4, 5)),
    Case("BatchNorm2d", lambda: torch.nn.BatchNorm2d(3), (2, 3, 4, 5)),
    Case("BatchNorm2d-eval", lambda: torch.nn.BatchNorm2d(3), (2, 3, 4, 5), train=False),
    Case("BatchNorm2d-cumulative", lambda: torch.nn.BatchNorm2d(3, momentum=None), (2, 3, 4, 5)),
    Case("BatchNorm2d-no-affine", lambda: torch.nn.BatchNorm2d(3, affine=False), (2, 3, 4, 5)),
    Case(
        "BatchNorm2d-untracked-eval",
        lambda: torch.nn.BatchNorm2d(3, track_running_stats=False),
        (2, 3, 4, 5),
        train=False,
    ),
    Case("LayerNorm", lambda: torch.nn.LayerNorm(6), (3, 4, 6), channels_first=False),
    Case(
        "LayerNorm-no-affine",
        lambda: torch.nn.LayerNorm(6, elementwise_affine=False),
        (3, 4, 6),
        channels_first=False,
    ),
    Case("Embedding", lambda: torch.nn.Embedding(10, 4), (3, 7), False, index_input=10),
    Case(
        "Embedding-padding",
        lambda: torch.nn.Embedding(10, 4, padding_idx=0),
        (3, 7),
        False,
        index_input=10,
    ),
    Case(
        "Embedding-padding-neg",
        lambda: torch.nn.Embedding(10, 4, padding_idx=-1),
        (3, 7),
        False,
        index_input=10,
    ),
    Case("Dropout", lambda: SharedDropout(0.3), (4, 3, 5, 5)),
    Case("Dropout-eval", lambda: torch.nn.Dropout(0.3), (4, 3, 5, 5), train=False),
    Case("GELU", lambda: torch.nn.GELU(), (4, 50), channels_first=False),
    Case("GELU-tanh", lambda: torch.nn.GELU(approximate="tanh"), (4, 50), channels_first=False),
    Case("Flatten", lambda: torch.nn.Flatten(), (2, 3, 4, 5)),
)


def _torch_layer(case: Case, dtype: str, rng: np.random.Generator) -> torch.nn.Module:
    """The torch layer in ``dtype`` (drawn in float32 from seed 0, then cast), with its constant
    initialisations (norm scales and shifts, running statistics) replaced by random values so
    that they are actually tested."""
    torch.manual_seed(0)
    module = case.make().to(TORCH_DTYPE[dtype])
    norms = (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm)
    if isinstance(module, norms):
        with torch.no_grad():
            for name, t in [*module.named_parameters(), *module.named_buffers()]:
                if name == "num_batches_tracked":
                    t.fill_(3)
                elif name in ("weight", "running_var"):
                    t.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, t.shape)))
                else:
                    t.copy_(torch.from_numpy(rng.normal(0.0, 0.5, t.shape)))
    return module.train(case.train)


def _to_jax(x: np.ndarray, case: Case) -> np.ndarray:
    return to_channels_last(x) if case.channels_first else x


def _from_jax(y, case: Case) -> np.ndarray:
    return to_channels_first(np.asarray(y)) if case.channels_first else np.asarray(y)


def _run_both(case: Case, dtype: str):
    """Forward and backward of ``sum(out * R)`` in both frameworks; NumPy results, torch layout."""
    rng = np.random.default_rng(1)
    t_layer = _torch_layer(case, dtype, rng)
    init = state_dict_numpy(t_layer)  # before the forward updates the running statistics
    if case.index_input:
        x = rng.integers(0, case.index_input, case.shape)
        x[0, :2] = [0, case.index_input - 1]  # both padding rows (0 and -1) are looked up
        t_x = torch.from_numpy(x)
    else:
        x = rng.normal(size=case.shape).astype(dtype)
        t_x = torch.from_numpy(x).requires_grad_(True)
    mask = L.dropout_mask(rng, case.shape, 0.3) if "Dropout" in case.id else None
    if isinstance(t_layer, SharedDropout):
        t_layer.set_mask(mask)
    t_out = t_layer(t_x)
    cot = rng.normal(size=tuple(t_out.shape)).astype(dtype)
    (t_out * torch.from_numpy(cot)).sum().backward()
    torch_res = {
        "out": t_out.detach().numpy(),
        "grads": {k: p.grad.numpy() for k, p in t_layer.named_parameters()},
        "stats": {k: b.numpy() for k, b in t_layer.named_buffers()},
    }
    if not case.index_input:
        torch_res["grads"]["input"] = t_x.grad.numpy()

    # Flatten's output is (N, C*H*W) in torch and (N, H*W*C) here: compare in torch's order.
    perm = flatten_permutation(case.shape[1:]) if case.id == "Flatten" else None

    def out_to_jax(a):
        return a[:, perm] if perm is not None else _to_jax(a, case)

    def out_from_jax(a):
        return np.asarray(a)[:, np.argsort(perm)] if perm is not None else _from_jax(a, case)

    with jax_runtime(dtype):
        (spec,) = describe(t_layer).layers
        graphdef, params, stats = _abstract_split(
            lambda: jax_layer(spec, rngs=nnx.Rngs(0), dtype=jnp.dtype(dtype))
        )
        full = from_state_dict(init, merge_trees(params, stats))
        params, stats = split_tree(full, stats)
        j_x = jnp.asarray(_to_jax(x, case))
        j_cot = jnp.asarray(out_to_jax(cot))
        extra = () if mask is None else (jnp.asarray(to_channels_last(mask)),)

        def loss(params, x):
            out, new_stats = L.apply(graphdef, params, stats, x, *extra, train=case.train)
            return jnp.sum(out * j_cot), (out, new_stats)

        argnums = 0 if case.index_input else (0, 1)
        # One compiled program per case: op-by-op dispatch would compile every primitive apart.
        grad_fn = jax.jit(jax.grad(loss, argnums=argnums, has_aux=True))
        grads, (out, new_stats) = grad_fn(params, j_x)
        g_params, g_x = (grads, None) if case.index_input else grads
        jax_res = {
            "out": out_from_jax(out),
            "grads": to_state_dict(jax.tree.map(np.asarray, g_params)),
            "stats": to_state_dict(jax.tree.map(np.asarray, new_stats)),
        }
        if g_x is not None:
            jax_res["grads"]["input"] = _from_jax(g_x, case)
    return jax_res, torch_res


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_forward_and_grads(case, dtype, record):
    jax_res, torch_res = _run_both(case, dtype)
    layer = f"layer {case.id}"
    fwd = compare_arrays(
        "output", jax_res["out"], torch_res["out"], TOL["forward", dtype], scaled=True
    )
    grads = compare_trees(
        "grads", jax_res["grads"], torch_res["grads"], TOL["grads", dtype], scaled=True
    )
    record(layer, "1 forward", dtype, fwd)
    record(layer, "2 gradients", dtype, grads)
    assert fwd.passed, str(fwd)
    assert grads.passed, str(grads)
    if torch_res["stats"]:
        # Running statistics after the step (train) or untouched (eval); the counter exactly.
        stats = compare_trees(
            "batch stats", jax_res["stats"], torch_res["stats"], TOL["forward", dtype]
        )
        record(layer, "2 batch stats", dtype, stats)
        assert stats.passed, str(stats)
        assert jax_res["stats"]["num_batches_tracked"].dtype == np.int64
        np.testing.assert_array_equal(
            jax_res["stats"]["num_batches_tracked"], torch_res["stats"]["num_batches_tracked"]
        )


def test_embedding_padding_row_gets_no_gradient():
    jax_res, torch_res = _run_both(
        CASES[[c.id for c in CASES].index("Embedding-padding")], "float64"
    )
    assert np.all(torch_res["grads"]["weight"][0] == 0)
    assert np.all(jax_res["grads"]["weight"][0] == 0)
    assert np.any(jax_res["grads"]["weight"][1:] != 0)


# --- Cross-entropy -------------------------------------------------------------------------------

CE_OPTIONS = (
    {},
    {"label_smoothing": 0.1},
    {"ignore_index": 2},
    {"weight": True, "ignore_index": 2},
    {"weight": True, "label_smoothing": 0.2, "ignore_index": 2},
    {"weight": True, "label_smoothing": 0.2, "ignore_index": 2, "reduction": "none"},
    {"weight": True, "label_smoothing": 0.2, "ignore_index": 2, "reduction": "sum"},
)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "options", CE_OPTIONS, ids=lambda o: "-".join(map(str, o.items())) or "default"
)
def test_cross_entropy(options, dtype, record):
    rng = np.random.default_rng(2)
    logits = (rng.normal(size=(12, 5)) * 3).astype(dtype)
    labels = rng.integers(0, 5, 12)
    labels[:3] = 2  # some targets are the ignore_index when it is 2
    weight = rng.uniform(0.2, 2.0, 5).astype(dtype) if options.get("weight") else None
    kw = {**options, "weight": weight}
    t_logits = torch.from_numpy(logits).requires_grad_(True)
    t_w = None if weight is None else torch.from_numpy(weight)
    t_loss = torch.nn.functional.cross_entropy(
        t_logits, torch.from_numpy(labels), **{**kw, "weight": t_w}
    )
    t_loss.backward(torch.ones_like(t_loss))
    with jax_runtime(dtype):

        def f(z):
            out = L.cross_entropy(z, jnp.asarray(labels), **kw)
            return jnp.sum(out), out

        g, out = jax.jit(jax.grad(f, has_aux=True))(jnp.asarray(logits))
    name = f"cross_entropy {options or 'default'}"
    loss = compare_arrays("loss", np.asarray(out), t_loss.detach().numpy(), TOL["forward", dtype])
    grad = compare_arrays(
        "grad", np.asarray(g), t_logits.grad.numpy(), TOL["grads", dtype], scaled=True
    )
    record(name, "1 forward", dtype, loss)
    record(name, "2 gradients", dtype, grad)
    assert loss.passed, str(loss)
    assert grad.passed, str(grad)


def test_cross_entropy_weighted_mean_divides_by_target_weights():
    # A pinned consequence, computed independently of both implementations: with weights the mean
    # is sum(w[y] * nll) / sum(w[y]), not / count. All targets ignored: nan, as torch.
    rng = np.random.default_rng(3)
    logits, labels = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    w = rng.uniform(0.5, 2.0, 4)
    lp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    nll = -lp[np.arange(6), labels] * w[labels]
    with jax_runtime("float64"):
        ce = jax.jit(
            lambda z, y: (L.cross_entropy(z, y, weight=w), L.cross_entropy(z, y * 0 - 100))
        )
        ours, none = (float(v) for v in ce(jnp.asarray(logits), jnp.asarray(labels)))
    assert ours == pytest.approx(nll.sum() / w[labels].sum(), rel=1e-14)
    assert abs(ours - nll.mean()) > 1e-3
    t_none = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.full((6,), -100))
    assert np.isnan(none) and torch.isnan(t_none)


# --- Flatten order and the automatic mapping -----------------------------------------------------


class TorchCNN(torch.nn.Module):
    """Every image layer: conv (same, even kernel), BN, ReLU, max pool, grouped strided conv, GELU,
    average pool (ceil mode, padding), dropout, flatten, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(2, 4, 4, padding="same")
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.pool1 = torch.nn.MaxPool2d(2)
        self.conv2 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
        self.act = torch.nn.GELU()
        self.pool2 = torch.nn.AvgPool2d(2, padding=1, ceil_mode=True, count_include_pad=False)
        self.drop = SharedDropout(0.25)
        self.flat = torch.nn.Flatten()
        self.fc = torch.nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):  # (N, 2, 10, 10)
        x = self.pool1(torch.relu(self.bn1(self.conv1(x))))  # (N, 4, 5, 5)
        x = self.pool2(self.act(self.conv2(x)))  # (N, 6, 3, 3) -> (N, 6, 2, 2)
        return self.fc(self.flat(self.drop(x)))  # (N, 3)


class JaxCNN(nnx.Module):
    """:class:`TorchCNN` in NHWC with the same attribute names."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.conv1 = L.Conv2d(2, 4, 4, padding="same", rngs=rngs, dtype=dtype)
        self.bn1 = L.BatchNorm2d(4, dtype=dtype)
        self.pool1 = L.MaxPool2d(2)
        self.conv2 = L.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, rngs=rngs, dtype=dtype)
        self.act = L.GELU()
        self.pool2 = L.AvgPool2d(2, padding=1, ceil_mode=True, count_include_pad=False)
        self.drop = L.Dropout(0.25)
        self.flat = L.Flatten()
        self.fc = torch_linear(6 * 2 * 2, 3, rngs=rngs, dtype=dtype)

    def __call__(self, x, mask=None):  # (N, 10, 10, 2)
        x = self.pool1(jax.nn.relu(self.bn1(self.conv1(x))))  # (N, 5, 5, 4)
        x = self.pool2(self.act(self.conv2(x)))  # (N, 2, 2, 6)
        return self.fc(self.flat(self.drop(x, mask)))  # features in (H, W, C) order


def test_describe_maps_the_cnn_and_finds_the_flatten():
    model = TorchCNN()
    before = state_dict_numpy(model)
    found = describe(model, torch.zeros(2, 2, 10, 10))
    assert found.flatten_chw == {"fc": (6, 2, 2)}
    assert [s.path for s in found.layers] == [n for n, _ in model.named_children()]
    assert found.layers[-1].jax == "flax.nnx.Linear"
    after = state_dict_numpy(model)  # the probe run left the buffers and the mode alone
    assert all(np.array_equal(before[k], after[k]) for k in before) and model.training
    # Every spec builds its JAX layer; together they hold the torch model's parameter shapes.
    built = {
        s.path: nnx.eval_shape(lambda s=s: jax_layer(s, rngs=nnx.Rngs(0)))
        for s in found.layers
        if s.jax.startswith(("jaxtut.", "flax."))
    }
    assert isinstance(built["fc"], nnx.Linear) and isinstance(built["bn1"], L.BatchNorm2d)
    shapes = {
        f"{path}.{k}": tuple(v.shape)
        for path, layer in built.items()
        for k, v in to_state_dict(
            jax.tree.map(lambda t: np.zeros(t.shape, t.dtype), merge_trees(*L.split(layer)[1:]))
        ).items()
    }
    assert shapes == {k: v.shape for k, v in before.items()}


def test_describe_names_the_first_unmappable_layer():
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4),
        torch.nn.Sequential(torch.nn.ReLU(), torch.nn.LSTM(4, 4), torch.nn.RNN(4, 4)),
    )
    with pytest.raises(ConfigError, match=r"layer 1\.1 \(LSTM\) cannot be mapped"):
        describe(model)
    with pytest.raises(ConfigError, match=r"layer 0 \(Conv2d\).*padding_mode='reflect'"):
        describe(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding_mode="reflect")))
    with pytest.raises(ConfigError, match=r"layer \(root\) \(LayerNorm\).*several axes"):
        describe(torch.nn.LayerNorm((3, 4)))


def test_describe_finds_a_functional_flatten_and_refuses_an_unseen_pool():
    class Net(torch.nn.Module):
        def __init__(self, pool_functionally):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.pool_functionally = pool_functionally
            self.fc = torch.nn.Linear(2 * 2 * 2 if pool_functionally else 2 * 4 * 4, 1)

        def forward(self, x):  # (N, 1, 6, 6)
            x = self.conv(x)
            if self.pool_functionally:
                x = torch.nn.functional.max_pool2d(x, 2)
            return self.fc(torch.flatten(x, 1))

    assert describe(Net(False), torch.zeros(1, 1, 6, 6)).flatten_chw == {"fc": (2, 4, 4)}
    with pytest.raises(ConfigError, match=r"layer fc .*flatten_chw explicitly"):
        describe(Net(True), torch.zeros(1, 1, 6, 6))


def test_flatten_permutation_matches_the_layouts():
    x = np.random.default_rng(4).normal(size=(2, 3, 4, 5))
    perm = flatten_permutation((3, 4, 5))
    np.testing.assert_array_equal(to_channels_last(x).reshape(2, -1), x.reshape(2, -1)[:, perm])


# --- Converters ----------------------------------------------------------------------------------


def test_converters_round_trip_exactly_both_ways():
    torch.manual_seed(0)
    model = TorchCNN()
    model.drop.set_mask(np.ones((3, 6, 2, 2), bool))
    with torch.no_grad():
        model(torch.randn(3, 2, 10, 10))  # one training step: non-trivial running statistics
    torch_sd = state_dict_numpy(model)
    assert torch_sd["bn1.num_batches_tracked"] == 1
    template = merge_trees(*_abstract_split(lambda: JaxCNN(rngs=nnx.Rngs(0)))[1:])
    chw = {"fc": (6, 2, 2)}
    jax_tree = from_state_dict(torch_sd, template, flatten_chw=chw)
    back = to_state_dict(jax_tree, flatten_chw=chw)
    assert set(back) == set(torch_sd)
    for k, v in torch_sd.items():
        assert back[k].dtype == v.dtype, k
        np.testing.assert_array_equal(back[k], v, err_msg=k)
    # JAX -> torch -> JAX, from arbitrary values in the JAX tree's shapes and dtypes.
    rng = np.random.default_rng(12)
    ours = jax.tree.map(lambda t: rng.normal(size=t.shape).astype(t.dtype), template)
    again = from_state_dict(to_state_dict(ours, flatten_chw=chw), template, flatten_chw=chw)
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(ours), jax.tree.leaves(again), strict=True
    ):
        np.testing.assert_array_equal(a, b, err_msg=str(path))
    # The layouts are the ones documented: HWIO <-> OIHW, scale -> weight, buffers by name.
    np.testing.assert_array_equal(
        jax_tree["conv1"]["kernel"], torch_sd["conv1.weight"].transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(jax_tree["bn1"]["scale"], torch_sd["bn1.weight"])
    assert jax_tree["bn1"]["num_batches_tracked"].dtype == np.int32


def test_converters_name_the_key_and_both_shapes():
    _, params, stats = _abstract_split(lambda: JaxCNN(rngs=nnx.Rngs(0)))
    params, stats = jax.tree.map(lambda t: np.zeros(t.shape, t.dtype), (params, stats))
    sd = to_state_dict(merge_trees(params, stats))
    sd["conv2.weight"] = np.zeros((6, 2, 3, 2), np.float32)
    with pytest.raises(
        ConfigError,
        match=r"conv2.weight: expected shape \(6, 2, 3, 3\), "
        r"got \(6, 2, 3, 2\)",
    ):
        from_state_dict(sd, merge_trees(params, stats))
    with pytest.raises(ConfigError, match="flatten_chw names 'fc2'"):
        to_state_dict(params, flatten_chw={"fc2": (6, 2, 2)})
    with pytest.raises(ConfigError, match=r"fc.weight: flatten_chw \(6, 3, 3\) has 54"):
        from_state_dict(to_state_dict(params), params, flatten_chw={"fc": (6, 3, 3)})
    with pytest.raises(ConfigError, match=r"two parameters map to the torch key 'm\.weight'"):
        to_state_dict({"m": {"kernel": np.zeros((2, 2)), "scale": np.zeros(2)}})


# --- Tier 3: short trajectories ------------------------------------------------------------------


class TorchSeq(torch.nn.Module):
    """Embedding (padding), Conv1d ('same', even kernel, dilation), LayerNorm, tanh GELU,
    BatchNorm1d (cumulative), dropout, mean over time, Linear."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(12, 6, padding_idx=0)
        self.conv = torch.nn.Conv1d(6, 8, 4, padding="same", dilation=2)
        self.norm = torch.nn.LayerNorm(8)
        self.act = torch.nn.GELU(approximate="tanh")
        self.bn = torch.nn.BatchNorm1d(8, momentum=None)
        self.drop = SharedDropout(0.2)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, idx):  # (N, T) int
        x = self.conv(self.emb(idx).transpose(1, 2))  # (N, 8, T)
        x = self.act(self.norm(x.transpose(1, 2)))  # (N, T, 8)
        x = self.drop(self.bn(x.transpose(1, 2)))  # (N, 8, T)
        return self.fc(x.mean(dim=2))  # (N, 4)


class JaxSeq(nnx.Module):
    """:class:`TorchSeq` channels-last: no transposes."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.emb = L.Embedding(12, 6, padding_idx=0, rngs=rngs, dtype=dtype)
        self.conv = L.Conv1d(6, 8, 4, padding="same", dilation=2, rngs=rngs, dtype=dtype)
        self.norm = L.LayerNorm(8, dtype=dtype)
        self.act = L.GELU(approximate="tanh")
        self.bn = L.BatchNorm1d(8, momentum=None, dtype=dtype)
        self.drop = L.Dropout(0.2)
        self.fc = torch_linear(8, 4, rngs=rngs, dtype=dtype)

    def __call__(self, idx, mask=None):  # (N, T) int
        x = self.act(self.norm(self.conv(self.emb(idx))))  # (N, T, 8)
        x = self.drop(self.bn(x), mask)
        return self.fc(jnp.mean(x, axis=1))  # (N, 4)


def _trajectory_data(model: str, steps: int, rng: np.random.Generator):
    """Batches (torch layout), labels and dropout keep-masks (torch layout) for every step."""
    if model == "cnn":
        x = rng.normal(size=(steps, 8, 2, 10, 10))
        y = rng.integers(0, 3, (steps, 8))
        masks = L.dropout_mask(rng, (steps, 8, 6, 2, 2), 0.25)
    else:
        x = rng.integers(0, 12, (steps, 8, 7))
        x[:, :, -2:] = 0  # padded tails
        y = rng.integers(0, 4, (steps, 8))
        y[:, 0] = -100  # ignored targets
        masks = L.dropout_mask(rng, (steps, 8, 8, 7), 0.2)
    return x, y, masks


def _loss_kw(model: str, dtype: str) -> dict:
    if model == "cnn":
        return {"weight": np.array([0.5, 1.0, 2.0], dtype), "label_smoothing": 0.1}
    return {"label_smoothing": 0.05}


def _torch_trajectory(model: str, dtype: str, steps: int, lr: float, *, torch_lr=None):
    torch.manual_seed(0)
    net = (TorchCNN() if model == "cnn" else TorchSeq()).to(TORCH_DTYPE[dtype])
    init = state_dict_numpy(net)
    xs, ys, masks = _trajectory_data(model, steps, np.random.default_rng(5))
    kw = {
        k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
        for k, v in _loss_kw(model, dtype).items()
    }
    opt = torch.optim.SGD(net.parameters(), lr=torch_lr or lr)
    losses = []
    for x, y, m in zip(xs, ys, masks, strict=True):
        net.drop.set_mask(m)
        x = torch.from_numpy(x.astype(dtype) if model == "cnn" else x)
        loss = torch.nn.functional.cross_entropy(net(x), torch.from_numpy(y), **kw)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return init, np.array(losses), state_dict_numpy(net)


def _abstract_split(factory):
    """``L.split`` of a module built abstractly: shapes and dtypes, no random numbers drawn
    (eager initialisation would compile every random op apart; torch supplies the values)."""
    return L.split(nnx.eval_shape(factory))


def _jax_program(model: str, dtype: str, cache: dict):
    """The model's graph definition, abstract trees and jitted SGD step; built once per run."""
    if (model, dtype) not in cache:
        cls = JaxCNN if model == "cnn" else JaxSeq
        graphdef, params, stats = _abstract_split(lambda: cls(rngs=nnx.Rngs(0), dtype=dtype))
        kw = _loss_kw(model, dtype)
        opt = optax.sgd(LR)

        def loss_fn(params, stats, x, y, m):
            logits, new_stats = L.apply(graphdef, params, stats, x, m, train=True)
            return L.cross_entropy(logits, y, **kw), new_stats

        def step(carry, batch):
            params, stats, opt_state = carry
            (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, *batch)
            updates, opt_state = opt.update(g, opt_state, params)
            return (optax.apply_updates(params, updates), stats, opt_state), loss

        # One compiled step called per batch: a convolution inside a rolled lax.scan compiles
        # and runs far slower on XLA:CPU (issue 13), and these runs are short.
        cache[model, dtype] = (params, stats, opt, jax.jit(step))
    return cache[model, dtype]


def _jax_trajectory(model: str, dtype: str, steps: int, init, cache: dict, *, flatten_chw=None):
    with jax_runtime(dtype):
        params, stats, opt, step = _jax_program(model, dtype, cache)
        full = from_state_dict(init, merge_trees(params, stats), flatten_chw=flatten_chw)
        params, stats = split_tree(full, stats)
        xs, ys, masks = _trajectory_data(model, steps, np.random.default_rng(5))
        masks = np.moveaxis(masks, 2, -1)  # (steps, N, C, *spatial) -> (steps, N, *spatial, C)
        if model == "cnn":
            xs = np.moveaxis(xs, 2, -1).astype(dtype)
        carry = jax.tree.map(jnp.asarray, (params, stats))
        carry = (*carry, opt.init(carry[0]))
        losses = []
        for batch in zip(xs, ys, masks, strict=True):
            carry, loss = step(carry, batch)
            losses.append(loss)
        params, stats, _ = carry
        final = to_state_dict(
            jax.tree.map(np.asarray, merge_trees(params, stats)), flatten_chw=flatten_chw
        )
    return np.asarray(losses), final


STEPS, LR = 30, 0.1
CHW = {"cnn": {"fc": (6, 2, 2)}, "seq": None}


@pytest.fixture(scope="module")
def programs():
    """Compiled JAX steps shared by the tier-3 runs and their sensitivity twins."""
    return {}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", ["cnn", "seq"])
def test_tier3_trajectory(model, dtype, record, programs):
    init, t_losses, t_final = _torch_trajectory(model, dtype, STEPS, LR)
    j_losses, j_final = _jax_trajectory(model, dtype, STEPS, init, programs, flatten_chw=CHW[model])
    tol = TOL["trajectory", dtype]
    losses = compare_series(f"losses ({STEPS} steps)", j_losses, t_losses, tol)
    # Parameters per leaf relative to the leaf's largest magnitude: entries near zero carry only
    # the absolute error of the large ones (as for gradients).
    final = compare_trees("final params and stats", j_final, t_final, tol, scaled=True)
    record(f"layers {model}", "3 trajectory", dtype, losses)
    record(f"layers {model}", "3 trajectory", dtype, final)
    assert losses.passed, str(losses)
    assert final.passed, str(final)
    assert t_final[next(k for k in t_final if k.endswith("num_batches_tracked"))] == STEPS


# --- Sensitivity twins: the same comparisons reject a wrong flatten order or lr ------------------


def test_sensitivity_wrong_flatten_order_is_rejected(record, programs):
    init, t_losses, _ = _torch_trajectory("cnn", "float64", 3, LR)
    j_losses, _ = _jax_trajectory("cnn", "float64", 3, init, programs, flatten_chw=None)
    c = compare_series(
        "losses, no flatten permutation", j_losses, t_losses, TOL["trajectory", "float64"]
    )
    record("layers cnn", "sensitivity", "float64", c, passed=not c.passed)
    assert not c.passed and c.max_rel > 1e-4, str(c)


def test_sensitivity_lr_one_percent_is_rejected(record, programs):
    init, t_losses, _ = _torch_trajectory("seq", "float64", 5, LR, torch_lr=LR * 1.01)
    j_losses, _ = _jax_trajectory("seq", "float64", 5, init, programs)
    c = compare_series("losses, torch lr x 1.01", j_losses, t_losses, TOL["trajectory", "float64"])
    record("layers seq", "sensitivity", "float64", c, passed=not c.passed)
    assert not c.passed, str(c)


# --- Semantic differences from the Flax/JAX defaults, pinned -------------------------------------
# Each test builds and calls the Flax/JAX modules inside one jitted function: eagerly, every
# primitive of their initialisers would be compiled apart, which costs seconds on this CPU.


def test_conv_defaults_padding_and_init_differ_from_flax(record):
    x = jnp.asarray(np.random.default_rng(6).normal(size=(1, 8, 8, 3)), jnp.float32)

    @jax.jit
    def build(x):
        flax_conv = nnx.Conv(3, 64, (3, 3), rngs=nnx.Rngs(0))
        ours = L.Conv2d(3, 64, 3, rngs=nnx.Rngs(1))
        return (
            flax_conv(x).shape,
            ours(x),
            flax_conv.kernel[...],
            flax_conv.bias[...],
            (ours.kernel[...], ours.bias[...]),
        )

    flax_shape, y, f_w, f_b, (o_w, o_b) = build(x)
    assert flax_shape == (1, 8, 8, 64)  # flax: padding='SAME'
    assert y.shape == (1, 6, 6, 64)  # torch: padding=0
    assert torch.nn.Conv2d(3, 64, 3)(torch.zeros(1, 3, 8, 8)).shape == (1, 64, 6, 6)
    # Initialisation: torch's law U(+-1/sqrt(fan_in)) for kernel and bias; flax lecun-normal/0.
    bound = 1 / np.sqrt(3 * 9)
    torch.manual_seed(0)
    t_conv = torch.nn.Conv2d(3, 64, 3)
    t_w = t_conv.weight.detach().numpy().ravel()
    ks = scipy.stats.ks_2samp(np.asarray(o_w).ravel(), t_w)
    assert ks.pvalue > 0.01
    assert np.abs(o_w).max() <= bound and np.abs(o_b).max() <= bound and np.any(o_b != 0)
    assert np.abs(t_conv.bias.detach().numpy()).max() <= bound
    assert np.abs(f_w).max() > bound and np.all(np.asarray(f_b) == 0)
    record(
        "Conv2d",
        "semantics",
        "float32",
        check="kernel init vs torch's draws (KS statistic)",
        max_rel=float(ks.statistic),
        tolerance=None,
        passed=True,
        note=f"KS p={ks.pvalue:.2f}; flax: lecun-normal, zero bias, padding SAME",
    )


def test_pool_stride_default_and_padding_value(record):
    x = -np.abs(np.random.default_rng(7).normal(size=(1, 6, 6, 2))).astype(np.float32) - 1

    @jax.jit
    def pools(x):
        zero_padded = jax.lax.reduce_window(
            jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))),
            -jnp.inf,
            jax.lax.max,
            (1, 3, 3, 1),
            (1, 1, 1, 1),
            "VALID",
        )
        return (
            nnx.max_pool(x, (2, 2)),
            nnx.avg_pool(x, (2, 2)),
            L.MaxPool2d(2)(x),
            L.MaxPool2d(3, 1, 1)(x),
            zero_padded,
        )

    flax_max, flax_avg, ours2, ours3, zero_padded = pools(jnp.asarray(x))
    # Stride: torch defaults to the kernel size, flax's pools to 1.
    assert flax_max.shape == flax_avg.shape == (1, 5, 5, 2)
    assert ours2.shape == (1, 3, 3, 2)
    # Max pool padding is -inf, never selected: on an all-negative input a zero-padded pool
    # would return 0 at every border window.
    t = torch.nn.MaxPool2d(3, 1, 1)(torch.from_numpy(to_channels_first(x))).numpy()
    ours = to_channels_first(np.asarray(ours3))
    np.testing.assert_array_equal(ours, t)
    assert (t < 0).all() and (np.asarray(zero_padded)[:, 0] == 0).all()
    record(
        "MaxPool2d",
        "semantics",
        "float32",
        check="padding -inf (max |ours - torch|)",
        max_abs=float(np.max(np.abs(ours - t))),
        tolerance=0.0,
        passed=True,
        note="zero padding would give 0 on borders of a negative input",
    )


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    # After a ReLU whole windows are 0; torch gives the gradient to the first element only.
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = 1.0
    t_x = torch.from_numpy(x).requires_grad_(True)
    torch.nn.MaxPool2d(2)(t_x).sum().backward()
    with jax_runtime("float64"):
        g = jax.jit(jax.grad(lambda x: jnp.sum(L.MaxPool2d(2)(x))))(
            jnp.asarray(to_channels_last(x))
        )
        g_max = jax.grad(lambda x: jnp.sum(jnp.max(x.reshape(2, 2, 2, 2), axis=(1, 3))))(
            jnp.asarray(x[0, 0])
        )
    np.testing.assert_array_equal(to_channels_first(np.asarray(g)), t_x.grad.numpy())
    assert np.asarray(g_max)[0, 2] == 0.25  # jnp.max shares the gradient among four ties


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 2},
        {"kernel_size": (2, 3)},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": 2, "ceil_mode": True},
    ],
    ids=["tiles", "rect-tiles", "k3-s2-p1", "ceil"],
)
def test_max_pool_gradient_with_many_ties_matches_torch(kwargs):
    # Small integers tie in most windows: both the tiled path (stride = kernel, no padding:
    # layers.max_pool_tiles and its own VJP) and the general one must pick torch's element.
    x = np.random.default_rng(3).integers(0, 3, size=(2, 3, 9, 11)).astype(np.float64)
    t_x = torch.from_numpy(x).requires_grad_(True)
    t_y = torch.nn.MaxPool2d(**kwargs)(t_x)
    weights = np.random.default_rng(4).normal(size=t_y.shape)  # a distinct gradient per window
    (t_y * torch.from_numpy(weights)).sum().backward()
    with jax_runtime("float64"):
        g = jax.jit(
            jax.grad(lambda x: jnp.sum(L.MaxPool2d(**kwargs)(x) * to_channels_last(weights)))
        )(jnp.asarray(to_channels_last(x)))
    np.testing.assert_array_equal(to_channels_first(np.asarray(g)), t_x.grad.numpy())


def test_max_pool_tiles_rejects_a_map_the_tiles_do_not_cover():
    with pytest.raises(ConfigError, match="5x4 map is not tiled by 2x2"):
        L.max_pool_tiles(jnp.zeros((1, 5, 4, 1)), (2, 2))


def test_avg_pool_ceil_mode_divisor(record):
    x = np.random.default_rng(8).normal(size=(1, 8, 8, 2))
    with jax_runtime("float64"):
        ours = np.asarray(jax.jit(L.AvgPool2d(3, 2, 1, ceil_mode=True))(jnp.asarray(x)))
        # flax's avg_pool with the same windows (ceil mode's extra high padding made explicit)
        # divides every window by 9, also those hanging past the padding.
        flax = np.asarray(nnx.avg_pool(jnp.asarray(x), (3, 3), (2, 2), ((1, 2), (1, 2))))
    t = torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True)(torch.from_numpy(to_channels_first(x)))
    t = to_channels_last(t.numpy())
    assert ours.shape == t.shape == flax.shape == (1, 5, 5, 2)
    ok = compare_arrays("AvgPool2d ceil", ours, t, TOL["forward", "float64"], scaled=True)
    off = compare_arrays("flax avg_pool", flax, t, TOL["forward", "float64"], scaled=True)
    record(
        "AvgPool2d",
        "semantics",
        "float64",
        off,
        check="flax divisor (rejected)",
        passed=not off.passed,
        note="last row/column: torch divides by 6 or 4, flax by 9",
    )
    assert ok.passed and not off.passed
    np.testing.assert_allclose(flax[:, :4, :4], t[:, :4, :4], rtol=1e-14)  # only the edge differs
    np.testing.assert_allclose(flax[:, 4, :4] * 9 / 6, t[:, 4, :4], rtol=1e-14)


def test_batchnorm_momentum_and_unbiased_running_var(record):
    x = np.random.default_rng(9).normal(2.0, 3.0, size=(4, 3, 3, 5))  # NHWC
    n = 4 * 3 * 3
    t_bn = torch.nn.BatchNorm2d(5).double().train()
    t_bn(torch.from_numpy(to_channels_first(x)))
    with jax_runtime("float64"):
        graphdef, params, stats = L.split(L.BatchNorm2d(5, dtype=jnp.float64))

        @jax.jit
        def run(x):
            flax_bn = nnx.BatchNorm(5, rngs=nnx.Rngs(0))
            flax_09 = nnx.BatchNorm(5, momentum=0.9, rngs=nnx.Rngs(0))
            flax_bn(x.astype(jnp.float32)), flax_09(x.astype(jnp.float32))
            _, ours = L.apply(graphdef, params, stats, x, train=True)
            return ours, (flax_bn.mean[...], flax_09.mean[...], flax_09.var[...])

        ours, (f_mean, f09_mean, f09_var) = run(jnp.asarray(x))
    t_mean, t_var = t_bn.running_mean.numpy(), t_bn.running_var.numpy()
    mean, var = x.reshape(-1, 5).mean(0), x.reshape(-1, 5).var(0)
    # torch: new = 0.9 * old + 0.1 * batch, with the unbiased batch variance.
    np.testing.assert_allclose(t_mean, 0.1 * mean, rtol=1e-14)
    np.testing.assert_allclose(t_var, 0.9 + 0.1 * var * n / (n - 1), rtol=1e-14)
    np.testing.assert_allclose(ours["running_mean"], t_mean, rtol=1e-14)
    np.testing.assert_allclose(ours["running_var"], t_var, rtol=1e-14)
    # flax: new = momentum * old + (1 - momentum) * batch, momentum 0.99, biased variance (run
    # in float32 here, hence the looser rtol).
    np.testing.assert_allclose(np.asarray(f_mean), 0.01 * mean, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(f09_mean), t_mean, rtol=1e-6)
    gap = float(np.max(np.abs(np.asarray(f09_var) - t_var) / t_var))
    biased = 0.9 + 0.1 * var
    np.testing.assert_allclose(np.asarray(f09_var), biased, rtol=1e-6)
    assert gap > 1e-3  # momentum 0.9 fixes the mean, not the variance (factor n / (n - 1))
    record(
        "BatchNorm2d",
        "semantics",
        "float64",
        check="nnx.BatchNorm(momentum=0.9) running_var",
        max_rel=gap,
        tolerance=None,
        passed=True,
        note="flax stores the biased variance, torch the unbiased; n = 36",
    )


def test_batchnorm_flax_fast_variance_loses_float32_precision(record):
    # nnx.BatchNorm defaults to use_fast_variance=True: E[x^2] - E[x]^2, which cancels
    # catastrophically on offset data; torch and jaxtut use the two-pass variance. Errors are
    # measured against torch in float64 on the same float32 inputs.
    x = np.random.default_rng(10).normal(300.0, 0.5, size=(64, 4)).astype(np.float32)
    exact = torch.nn.BatchNorm1d(4).double()(torch.from_numpy(x).double()).detach().numpy()
    t32 = torch.nn.BatchNorm1d(4)(torch.from_numpy(x)).detach().numpy()
    graphdef, params, stats = L.split(L.BatchNorm1d(4))

    @jax.jit
    def run(x):
        fast = nnx.BatchNorm(4, rngs=nnx.Rngs(0))(x)
        return L.apply(graphdef, params, stats, x, train=True)[0], fast

    ours, fast = (np.asarray(a) for a in run(jnp.asarray(x)))
    err = {
        k: float(np.max(np.abs(v - exact)) / np.max(np.abs(exact)))
        for k, v in {"torch": t32, "ours": ours, "nnx": fast}.items()
    }
    record(
        "BatchNorm1d",
        "semantics",
        "float32",
        check="nnx use_fast_variance error vs float64",
        max_rel=err["nnx"],
        tolerance=None,
        passed=err["nnx"] > 100 * err["torch"],
        note=f"ours {err['ours']:.1e}, torch float32 {err['torch']:.1e}; x ~ N(300, 0.25)",
    )
    # The floor is the inputs' own rounding: ulp(300) / 0.5 = 6e-5 of the spread.
    assert err["ours"] < 1e-4 and err["torch"] < 1e-4
    assert err["nnx"] > 100 * max(err["ours"], err["torch"]), err


def test_layer_norm_eps(record):
    x = np.random.default_rng(11).normal(size=(4, 16))
    t = torch.nn.LayerNorm(16).double()(torch.from_numpy(x)).detach().numpy()
    with jax_runtime("float64"):

        @jax.jit
        def run(x):
            flax = nnx.LayerNorm(16, rngs=nnx.Rngs(0), param_dtype=jnp.float64)(x)
            flax_5 = nnx.LayerNorm(16, epsilon=1e-5, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
            return L.LayerNorm(16, dtype=jnp.float64)(x), flax, flax_5(x)

        ours, flax, flax_5 = (np.asarray(a) for a in run(jnp.asarray(x)))
    tol = TOL["forward", "float64"]
    off = compare_arrays("nnx.LayerNorm eps 1e-6", flax, t, tol, scaled=True)
    record(
        "LayerNorm",
        "semantics",
        "float64",
        off,
        check="nnx default eps 1e-6 (rejected)",
        passed=not off.passed,
    )
    assert compare_arrays("ours", ours, t, tol, scaled=True).passed
    assert compare_arrays("nnx eps 1e-5", flax_5, t, tol, scaled=True).passed
    assert not off.passed and off.max_rel > 1e-7, str(off)


def test_gelu_default_is_exact_in_torch_and_tanh_in_jax(record):
    x = np.linspace(-6, 6, 1201)
    t = torch.nn.GELU()(torch.from_numpy(x)).numpy()
    with jax_runtime("float64"):
        run = jax.jit(lambda x: (jax.nn.gelu(x), jax.nn.gelu(x, approximate=False), L.GELU()(x)))
        jax_default, jax_exact, ours = (np.asarray(a) for a in run(jnp.asarray(x)))
    tol = TOL["forward", "float64"]
    off = compare_arrays("jax.nn.gelu default", jax_default, t, tol, scaled=True)
    record(
        "GELU",
        "semantics",
        "float64",
        off,
        check="jax.nn.gelu approximate=True (rejected)",
        passed=not off.passed,
    )
    assert not off.passed and off.max_abs > 1e-4, str(off)
    assert compare_arrays("ours", ours, t, tol, scaled=True).passed
    assert compare_arrays("jax exact (erfc)", jax_exact, t, tol, scaled=True).passed


def test_dropout_masks_cannot_come_from_seeds_and_scaling_is_inverted(record):
    x = torch.ones(10_000, dtype=torch.float64)
    torch.manual_seed(0)
    t = torch.nn.functional.dropout(x, 0.3, training=True).numpy()
    j = np.asarray(jax.jit(lambda k: L.Dropout(0.3)(jnp.ones(10_000), key=k))(jax.random.key(0)))
    kept = t != 0
    agree = float(np.mean(kept == (j != 0)))
    # Independent Bernoulli(0.7) masks agree on ~0.7^2 + 0.3^2 = 58% of units, not 100%.
    assert 0.55 < agree < 0.61
    np.testing.assert_array_equal(t[kept], 1 / 0.7)  # inverted: kept units scaled by 1/(1-p)
    # The same NumPy mask in both gives identical outputs (SharedDropout vs Dropout(mask=)).
    mask = L.dropout_mask(0, (10_000,), 0.3)
    shared = SharedDropout(0.3)
    shared.set_mask(mask)
    with jax_runtime("float64"):
        ours = np.asarray(L.Dropout(0.3)(jnp.ones(10_000, jnp.float64), jnp.asarray(mask)))
    np.testing.assert_array_equal(ours, shared(x).numpy())
    with pytest.raises(ConfigError, match="set_mask"):
        shared(x)  # a mask is used once
    record(
        "Dropout",
        "semantics",
        "float64",
        check="torch vs JAX masks from seed 0 (agreement)",
        max_rel=agree,
        tolerance=None,
        passed=True,
        note="shared NumPy masks: bit-identical outputs",
    )


def test_embedding_padding_idx_vs_nnx_embed():
    idx = jnp.array([[0, 3, 0, 5]])

    @jax.jit
    def grads():
        ours = L.Embedding(8, 3, padding_idx=0, rngs=nnx.Rngs(0))
        flax = nnx.Embed(8, 3, rngs=nnx.Rngs(0))
        g_ours = nnx.grad(lambda m: jnp.sum(m(idx) ** 2 + m(idx)))(ours)
        g_flax = nnx.grad(lambda m: jnp.sum(m(idx) ** 2 + m(idx)))(flax)
        return ours.embedding[...], g_ours.embedding[...], g_flax.embedding[...]

    weight, g_ours, g_flax = (np.asarray(a) for a in grads())
    assert np.all(weight[0] == 0)  # torch zeroes the row at init
    assert np.all(g_ours[0] == 0)
    assert np.all(g_flax[0] != 0)  # nnx.Embed has no padding_idx
