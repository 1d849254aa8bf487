# %% [markdown]
# # Linear regression on noisy data: `make_regression` and a plot of the fit
#
# Twenty points from scikit-learn's `make_regression(n_samples=20, n_features=1, noise=20,
# random_state=1)`: a random line plus Gaussian noise. The model is again `Linear(1, 1)` with the
# mean squared error and SGD (lr 0.01), trained for 1000 full-batch epochs. Because of the noise
# the loss cannot reach zero; the best any line can do is the least-squares fit, which we compute
# in closed form to check that gradient descent got there.
#
# The figure (data as red dots, fitted line in blue) is written to `reports/examples/` in the
# repository, or to the directory in `JAXTUT_EXAMPLE_OUT`. Set `JAXTUT_EXAMPLE_QUICK=1` to run
# fewer epochs (the test suite does).

# %%
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxtut.configs import LinregMakeRegressionConfig
from jaxtut.convert import to_state_dict
from jaxtut.data import make_regression_data
from jaxtut.plots import plot_fit
from jaxtut.tutorials import linreg

QUICK = os.environ.get("JAXTUT_EXAMPLE_QUICK") == "1"
OUT = Path(
    os.environ.get("JAXTUT_EXAMPLE_OUT") or Path(__file__).resolve().parents[1] / "reports/examples"
)
config = LinregMakeRegressionConfig(epochs=300 if QUICK else 1000)
print(config)

# %% [markdown]
# ## The data and the best possible line
#
# `make_regression_data` returns the arrays both frameworks train on, as (20, 1) columns.
# `np.linalg.lstsq` on `[x, 1]` gives the weight and bias that minimise the squared error.

# %%
x, y = make_regression_data(config.dtype)
design = np.hstack([x, np.ones_like(x)]).astype(np.float64)
(best_weight, best_bias), *_ = np.linalg.lstsq(design, y.astype(np.float64).ravel(), rcond=None)
print(f"x: {x.shape}, y: {y.shape}; least squares: weight {best_weight:.4f}, bias {best_bias:.4f}")

# %% [markdown]
# ## Training in JAX
#
# The model and loss are the ones of the `linreg_linear` example (`linreg.LinearRegression` and
# `linreg.mse_loss`); only the data differ.

# %%
result = linreg.run_make_regression(config)
for epoch in (0, 9, 99, config.epochs - 1):
    print(f"epoch {epoch + 1:5d}  loss {result.losses[epoch]:.4f}")
m = result.metrics
print(f"fitted: weight {m['weight']:.4f}, bias {m['bias']:.4f}, final loss {m['final_loss']:.4f}")
print(f"compiled in {result.compile_time_s:.2f} s, trained in {result.wall_time_s * 1e3:.2f} ms")

# %%
path = plot_fit(result, x, y, OUT / "linreg_make_regression-jax.png")
print(f"wrote {path}")

# %% [markdown]
# ## The PyTorch reference from the same initial parameters

# %%
try:
    from jaxtut.torch_ref import linreg as torch_linreg
except ImportError:
    torch_linreg = None
    print("PyTorch is not installed: pip install 'jaxtut[torch]' to run the comparison")

if torch_linreg is not None:
    init = to_state_dict(linreg.linear_init(jax.random.key(config.seed), jnp.float32))
    jax_run = linreg.run_make_regression(config, init_params=init)
    torch_run = torch_linreg.run_make_regression(config, init_params=init)
    diff = np.abs(jax_run.losses - torch_run.losses)
    print(f"max |loss difference| over {len(diff)} steps: {diff.max():.3e}")
    print(f"  (relative to the first loss: {diff.max() / torch_run.losses[0]:.3e})")
    print(
        f"weights: jax {jax_run.metrics['weight']:.5f}, torch {torch_run.metrics['weight']:.5f}; "
        f"biases: jax {jax_run.metrics['bias']:.5f}, torch {torch_run.metrics['bias']:.5f}"
    )
