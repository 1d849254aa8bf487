# %% [markdown]
# # Linear regression with `Linear(1, 1)`: y = 2x, MSE, SGD
#
# The same five points as the scratch example (y = 2x for x = 1..5, predict x = 6), now with a
# linear layer that has a weight *and* a bias, PyTorch's mean-squared-error loss and plain SGD
# (lr 0.01) for 2000 full-batch epochs. The bias makes the problem slower to solve than the
# one-weight version: the loss surface is a long, narrow valley, so it takes thousands of steps
# for the prediction at x = 6 to settle at 12.000.
#
# In JAX the layer is a Flax NNX module whose attribute is named `linear`, exactly like the
# PyTorch reference, so the parameters convert one-to-one to the `state_dict` keys
# `linear.weight` (1, 1) and `linear.bias` (1,).
#
# Set `JAXTUT_EXAMPLE_QUICK=1` to run fewer epochs (the test suite does).

# %%
import inspect
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxtut.configs import LinregLinearConfig
from jaxtut.convert import to_state_dict
from jaxtut.tutorials import linreg

QUICK = os.environ.get("JAXTUT_EXAMPLE_QUICK") == "1"
config = LinregLinearConfig(epochs=200 if QUICK else 2000)
print(config)

# %% [markdown]
# ## The JAX model and loss

# %%
print(inspect.getsource(linreg.LinearRegression))
print(inspect.getsource(linreg.mse_loss))

# %%
result = linreg.run_linear(config)
every = max(config.epochs // 4, 1)
for epoch in range(0, config.epochs, every):
    print(f"epoch {epoch:5d}  loss {result.losses[epoch]:.5f}")
print("final parameters:", {k: v.ravel().tolist() for k, v in result.params.items()})
print(f"prediction at x = 6: {result.metrics['prediction']:.3f}")
print(f"compiled in {result.compile_time_s:.2f} s, trained in {result.wall_time_s * 1e3:.2f} ms")

# %% [markdown]
# ## The PyTorch reference from the same initial parameters
#
# Draw the JAX initial parameters, convert them to a `state_dict` (the kernel is transposed to
# PyTorch's (out, in) layout) and train both frameworks from them.

# %%
try:
    from jaxtut.torch_ref import linreg as torch_linreg
except ImportError:
    torch_linreg = None
    print("PyTorch is not installed: pip install 'jaxtut[torch]' to run the comparison")

if torch_linreg is not None:
    init = to_state_dict(linreg.linear_init(jax.random.key(config.seed), jnp.float32))
    print("initial state_dict:", {k: v.ravel().tolist() for k, v in init.items()})
    jax_run = linreg.run_linear(config, init_params=init)
    torch_run = torch_linreg.run_linear(config, init_params=init)
    diff = np.abs(jax_run.losses - torch_run.losses)
    print(f"max |loss difference| over {len(diff)} steps: {diff.max():.3e}")
    print(f"  (relative to the first loss: {diff.max() / torch_run.losses[0]:.3e})")
    print(
        f"predictions at x = 6: jax {jax_run.metrics['prediction']:.4f}, "
        f"torch {torch_run.metrics['prediction']:.4f}"
    )
    print(f"torch trained in {torch_run.wall_time_s:.3f} s (one Python step per epoch)")
