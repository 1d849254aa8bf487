# %% [markdown]
# # A 1-10-1 network without activation: still a straight line
#
# Same data as the perceptron example (y = 3x from six pairs, one sample per update, 100
# epochs), but the model is two layers, `fc1 = Linear(1, 10)` and `fc2 = Linear(10, 1)`, applied
# as `fc2(fc1(x))` with nothing in between. The loss is `MSELoss` and the optimizer
# `SGD(lr=0.01, momentum=0.01)`.
#
# Without an activation the two layers compose into one linear map,
# `out = (W2 @ W1) x + (W2 @ b1 + b2)`: 31 parameters that can only ever describe a line. We check
# that at the end by collapsing the trained layers into a slope and an intercept, and by asking the
# network about x = 7, outside the training data.
#
# Set `JAXTUT_EXAMPLE_QUICK=1` to run fewer epochs (the test suite does).

# %%
import inspect
import os

import jax
import numpy as np

from jaxtut.configs import Mlp1101Config
from jaxtut.tutorials import perceptron

QUICK = os.environ.get("JAXTUT_EXAMPLE_QUICK") == "1"
config = Mlp1101Config(epochs=20 if QUICK else 100)
print(config)

# %% [markdown]
# ## The JAX model and loss
#
# Layer names mirror the PyTorch `Net` (`fc1`, `fc2`), so the parameters convert one-to-one to its
# `state_dict`. `MSELoss` of one sample is that sample's squared error; the shared loss averages
# over the batch, which for one sample is the same number.

# %%
print(inspect.getsource(perceptron.MLP))
shapes = jax.tree.map(lambda a: a.shape, perceptron.MLP_TRAINER.init(jax.random.key(0), "float32"))
print("parameter shapes (JAX layout, kernels are (in, out)):", shapes)

# %% [markdown]
# ## Training
#
# The whole run is compiled once. We print each epoch's first-sample loss every few epochs, as the
# source did.

# %%
result = perceptron.run_mlp(config)
steps = 6
for epoch in range(0, config.epochs, max(config.epochs // 10, 1)):
    print(f"epoch {epoch:3d} - loss: {result.losses[epoch * steps]:.6g}")
m = result.metrics
print(f"JAX: prediction at x = 1: {m['prediction']:.4f} (target 3)")
print(f"JAX: prediction at x = 7: {m['prediction_at_7']:.4f} (target 21, never seen in training)")
print(f"compiled in {result.compile_time_s:.2f} s, trained in {result.wall_time_s * 1e3:.2f} ms")

# %% [markdown]
# ## The two layers are one line
#
# `result.params` uses PyTorch's names and layouts (`fc1.weight` is (10, 1), `fc2.weight` is
# (1, 10)), so the composition reads as in the formula above.

# %%
p = result.params
slope = (p["fc2.weight"] @ p["fc1.weight"]).item()
intercept = (p["fc2.weight"] @ p["fc1.bias"] + p["fc2.bias"]).item()
print(f"collapsed network: out = {slope:.4f} * x + {intercept:.4f}")

# %% [markdown]
# ## The PyTorch reference from the same initial parameters
#
# Both frameworks start from the parameters PyTorch draws for the seed and see the same samples.
# They round a few operations differently (which terms of a sum are added first, whether
# `w * x + b` is one fused operation), and this network's training, which swings back and forth
# before it settles, magnifies those last-bit differences over the epochs: the first 100 steps
# agree far more closely than the last ones. A one-bit change of the initial parameters inside JAX
# alone moves the late steps just as much; it is rounding, not a different computation.

# %%
try:
    from jaxtut.torch_ref import perceptron as torch_perceptron
    from jaxtut.torch_ref._common import initial_state_dict
except ImportError:
    torch_perceptron = None
    print("PyTorch is not installed: pip install 'jaxtut[torch]' to run the comparison")

if torch_perceptron is not None:
    for dtype in ("float32", "float64"):
        cfg = config.replace(dtype=dtype)
        init = initial_state_dict(torch_perceptron.MLPNet, cfg)
        jax_run = perceptron.run_mlp(cfg, init)
        torch_run = torch_perceptron.run_mlp(cfg, init)
        rel = np.abs(jax_run.losses - torch_run.losses) / np.abs(torch_run.losses)
        param_diff = max(np.abs(jax_run.params[k] - torch_run.params[k]).max() for k in init)
        print(f"{dtype}: max per-step loss difference (relative) {rel.max():.3e}")
        print(f"{dtype}:   over the first 100 steps {rel[:100].max():.3e}")
        print(f"{dtype}: max parameter difference {param_diff:.3e}")
        print(
            f"{dtype}: predictions at x = 1 and 7: jax {jax_run.metrics['prediction']:.4f}, "
            f"{jax_run.metrics['prediction_at_7']:.4f}; torch {torch_run.metrics['prediction']:.4f}"
            f", {torch_run.metrics['prediction_at_7']:.4f}"
        )
    # The yardstick: JAX against itself, from initial parameters one float64 ulp away.
    nudged = perceptron.run_mlp(cfg, {k: np.nextafter(v, np.inf) for k, v in init.items()})
    rel = np.abs(nudged.losses - jax_run.losses) / np.abs(jax_run.losses)
    print(f"float64: JAX vs JAX with the init nudged by one ulp: {rel.max():.3e}")
