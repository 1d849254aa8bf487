# %% [markdown]
# # Linear regression from scratch: one weight learns y = 2x
#
# The training set is five points on the line y = 2x (x = 1..5); the test point is x = 6, where
# a trained model should answer 12. The "network" is a single weight `w` with no bias, so the
# model is just `w * x` and the loss is the mean squared error.
#
# The tutorial writes this three times, and so does this example:
#
# 1. NumPy with a hand-written gradient, kept exactly as the source has it. Its `backward` is
#    `np.dot(2*x, w*x - y).mean()`: the dot product is already a number, so `.mean()` changes
#    nothing and the step uses the *sum* of the per-sample gradients, five times the gradient of
#    the mean. The weight overshoots 2 on every step and the error shrinks tenfold each time.
# 2. JAX: `jax.grad` of the true mean, the whole run compiled into one program.
# 3. PyTorch autograd (`loss.backward()`, then `w -= lr * w.grad` under `no_grad`), started from
#    the very same weight as the JAX run, to compare the two step by step.
#
# Set `JAXTUT_EXAMPLE_QUICK=1` to run fewer epochs (the test suite does).

# %%
import inspect
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxtut.configs import LinregScratchConfig
from jaxtut.convert import to_state_dict
from jaxtut.tutorials import linreg

QUICK = os.environ.get("JAXTUT_EXAMPLE_QUICK") == "1"
config = LinregScratchConfig(epochs=30 if QUICK else 100)
print(config)

# %% [markdown]
# ## The JAX model and loss
#
# Parameters are a plain dict, `{"w": array of shape (1,)}`; the model and the loss are pure
# functions of it. `run_scratch` hands them to the shared trainer, which differentiates the loss
# with `jax.grad` and runs all epochs inside one compiled `lax.scan`.

# %%
print(inspect.getsource(linreg.scratch_forward))
print(inspect.getsource(linreg.scratch_loss))

# %%
result = linreg.run_scratch(config)
every = max(config.epochs // 10, 1)
for epoch in range(0, config.epochs, every):
    print(f"epoch {epoch:3d}  loss {result.losses[epoch]:.6f}")
print(f"final w = {result.params['w'][0]:.6f}")
print(f"prediction at x = 6: {result.metrics['prediction']:.3f}")
print(f"compiled in {result.compile_time_s:.2f} s, trained in {result.wall_time_s * 1e3:.2f} ms")

# %% [markdown]
# ## The NumPy version with the source's gradient
#
# Same data and learning rate, but the step is `w <- w - 0.01 * sum_i 2 x_i (w x_i - y_i)`.
# On this data that is `w <- w + 1.1 (2 - w)`: watch the weight jump past 2 and come back.

# %%
print(inspect.getsource(linreg.numpy_gradient))
numpy_result = linreg.run_scratch_numpy(config)
print("w over the first steps:", np.round(numpy_result.extras["weights"][:6], 6))
print(f"prediction at x = 6: {numpy_result.metrics['prediction']:.3f}")

# %% [markdown]
# ## Comparing with the PyTorch reference from the same starting weight
#
# Draw the JAX initial weight, convert it to a PyTorch `state_dict` (here the key is simply `w`),
# and start both frameworks from it. Per-step losses are recorded before each update, as the
# tutorial prints `loss`.

# %%
try:
    from jaxtut.torch_ref import linreg as torch_linreg
except ImportError:
    torch_linreg = None
    print("PyTorch is not installed: pip install 'jaxtut[torch]' to run the comparison")

if torch_linreg is not None:
    init = to_state_dict(linreg.scratch_init(jax.random.key(config.seed), jnp.float32))
    jax_run = linreg.run_scratch(config, init_params=init)
    torch_run = torch_linreg.run_scratch(config, init_params=init)
    diff = np.abs(jax_run.losses - torch_run.losses)
    print(f"initial w: {init['w'][0]:.6f}")
    print(f"max |loss difference| over {len(diff)} steps: {diff.max():.3e}")
    print(f"  (relative to the first loss: {diff.max() / torch_run.losses[0]:.3e})")
    print(f"first-step losses: jax {jax_run.losses[0]:.7f}, torch {torch_run.losses[0]:.7f}")
    print(
        f"final w: jax {jax_run.params['w'][0]:.7f}, torch {torch_run.params['w'][0]:.7f}; "
        f"predictions {jax_run.metrics['prediction']:.3f} / {torch_run.metrics['prediction']:.3f}"
    )
