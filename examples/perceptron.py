# %% [markdown]
# # A one-weight perceptron: learning y = 3x one sample at a time
#
# Six pairs, (1, 3), (2, 6), ..., (6, 18), and a single `Linear(1, 1)` layer called `fc1`:
# `out = w * x + b`. The loss is the squared error `(label - out) ** 2` of one sample, and every
# sample gets its own SGD update (lr 0.01, momentum 0.5), in table order, for 100 epochs: 600
# updates in all. The weight should end near 3 and the bias near 0.
#
# Momentum keeps a running buffer `b = 0.5 * b + gradient` and steps along `-lr * b`, so each
# update also remembers the previous ones. `optax.sgd(lr, momentum)` is exactly PyTorch's
# `optim.SGD(lr, momentum)`, which is why the comparison at the end can match step for step.
#
# Set `JAXTUT_EXAMPLE_QUICK=1` to run fewer epochs (the test suite does).

# %%
import inspect
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxtut.configs import PerceptronConfig
from jaxtut.tutorial_data import tutorial_data
from jaxtut.tutorials import perceptron

QUICK = os.environ.get("JAXTUT_EXAMPLE_QUICK") == "1"
config = PerceptronConfig(epochs=20 if QUICK else 100)
print(config)

# %% [markdown]
# ## The data and the order of the updates
#
# Both frameworks read their inputs from `tutorial_data`: the samples as `(6, 1)` columns and a
# batch plan that lists, for every step, which sample it uses (here: one sample, in order).

# %%
data = tutorial_data(config)
x, y = data.train
print("x:", x.ravel(), " y:", y.ravel())
print("samples of the first 8 steps:", data.plan.idx.reshape(-1)[:8])

# %% [markdown]
# ## The JAX model and loss
#
# The model is a Flax NNX module whose layer is named `fc1`, like the PyTorch `Net`, so its
# parameters map one-to-one onto the `state_dict` keys `fc1.weight` and `fc1.bias`. Training never
# holds a stateful module: the parameters are a plain dict and the loss is a pure function of them.

# %%
print(inspect.getsource(perceptron.Perceptron))
params = perceptron.PERCEPTRON.init(jax.random.key(config.seed), jnp.float32)
print("initial parameters:", jax.tree.map(lambda a: a.tolist(), params))
first_loss = perceptron.perceptron_loss(params, (x[:1], y[:1]))
print(f"loss of the first sample at the start: {float(first_loss):.4f}")

# %% [markdown]
# ## Training
#
# `run_perceptron` compiles the whole run (all epochs and steps) into one program. The source
# printed the loss of each epoch's first sample; so do we, every few epochs.

# %%
result = perceptron.run_perceptron(config)
steps = data.plan.steps_per_epoch
for epoch in range(0, config.epochs, max(config.epochs // 10, 1)):
    print(f"epoch {epoch:3d} - loss: {result.losses[epoch * steps]:.6g}")
m = result.metrics
print(f"JAX: weight {m['weight']:.4f}, bias {m['bias']:.4f}")
print(f"JAX: prediction at x = 1: {m['prediction']:.4f}")
print(f"compiled in {result.compile_time_s:.2f} s, trained in {result.wall_time_s * 1e3:.2f} ms")

# %% [markdown]
# ## The PyTorch reference from the same initial parameters
#
# The reference keeps the source's loop (zero_grad, forward, loss, backward, step), fixed for
# modern PyTorch. `initial_state_dict` gives the parameters PyTorch draws for the seed; both
# frameworks start from them and see the same samples, so their per-step losses should agree up
# to float32 rounding. In float64 they agree to about 1e-14.

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
        init = initial_state_dict(torch_perceptron.Net, cfg)
        jax_run = perceptron.run_perceptron(cfg, init)
        torch_run = torch_perceptron.run_perceptron(cfg, init)
        loss_diff = np.abs(jax_run.losses - torch_run.losses).max()
        param_diff = max(np.abs(jax_run.params[k] - torch_run.params[k]).max() for k in init)
        print(f"{dtype}: max per-step loss difference {loss_diff:.3e}")
        print(f"{dtype}: max parameter difference {param_diff:.3e}")
        m = torch_run.metrics
        print(
            f"{dtype}: torch weight {m['weight']:.4f}, bias {m['bias']:.4f}, "
            f"prediction at x = 1: {m['prediction']:.4f}"
        )
