# %% [markdown]
# # Linear regression in closed form: JAX, NumPy and PyTorch on the same data
#
# For a design matrix `X` (one row per sample, a first column of ones for the intercept) and
# responses `y`, the least-squares coefficients solve the *normal equation*
# `X^T X beta = X^T y`, so `beta = (X^T X)^-1 X^T y`. Written with an explicit inverse it is a
# classic first exercise; in practice one *solves* the system, or runs least squares on `X`
# directly, which never forms `X^T X` and so never squares its condition number.
#
# Run this file top to bottom (`python examples/normal_equation.py`) or open it as a notebook.

# %%
import jax
import jax.numpy as jnp
import numpy as np

from jaxtut.configs import NormalEquationConfig
from jaxtut.tutorials import normal_equation

# %% [markdown]
# ## One data set for everybody
#
# Ten samples, five columns, drawn once with NumPy's generator. Every framework below receives
# these very numbers, so their answers can be compared digit by digit.

# %%
config = NormalEquationConfig()  # seed 0, float32, 10 x 5
X, y = normal_equation.normal_equation_data(config)
print("X:", X.shape, X.dtype, " first column:", X[:, 0])
print("y:", y.shape, y.dtype)
print(f"condition number of X: {np.linalg.cond(X.astype(np.float64)):.2f}")

# %% [markdown]
# ## The JAX version
#
# `normal_equation.fit` is a pure function of `(X, y)`, jitted once. Its matrix products ask for
# `Precision.HIGHEST`: on a GPU, JAX's default float32 matmul may use TF32, which keeps only 10
# bits of mantissa and would spoil the comparison.

# %%
fit = jax.jit(normal_equation.fit)
betas = fit(jnp.asarray(X), jnp.asarray(y))
for method in normal_equation.METHODS:
    print(f"{method:8}", np.asarray(betas[method]))

# %% [markdown]
# ## How close is each method to the truth?
#
# The yardstick is `numpy.linalg.lstsq` in float64 on the same (float32) data. In float32 every
# method should be within 1e-5 of it, in float64 within 1e-12.

# %%
reference = normal_equation.lstsq_reference(X, y)
for method in normal_equation.METHODS:
    diff = np.max(np.abs(np.asarray(betas[method], np.float64) - reference))
    print(f"JAX {method:8} max |beta - lstsq| = {diff:.2e}")

# %% [markdown]
# ## NumPy and PyTorch
#
# `run_numpy` is the same three fits in NumPy; `jaxtut.torch_ref.normal_equation.run` is the
# tutorial's PyTorch code (`torch.inverse(torch.matmul(torch.t(X), X))` and so on) plus
# `torch.linalg.solve` and `torch.linalg.lstsq`. Each returns a `RunResult`; its metrics hold
# the deviation of each method from the yardstick.

# %%
from jaxtut.torch_ref import normal_equation as torch_normal_equation

for dtype, band in (("float32", 1e-5), ("float64", 1e-12)):
    cfg = config.replace(dtype=dtype)
    results = {
        "jax": normal_equation.run(cfg),
        "numpy": normal_equation.run_numpy(cfg),
        "torch": torch_normal_equation.run(cfg),
    }
    for framework, r in results.items():
        diffs = "  ".join(
            f"{m} {r.metrics[f'max_abs_diff_{m}']:.1e}" for m in normal_equation.METHODS
        )
        verdict = "within" if r.metrics["max_abs_diff_vs_lstsq"] <= band else "OUTSIDE"
        print(f"{dtype} {framework:5} {diffs}  -> {verdict} {band:g}")
    jt = max(
        np.max(
            np.abs(
                np.subtract(results["jax"].extras["betas"][m], results["torch"].extras["betas"][m])
            )
        )
        for m in normal_equation.METHODS
    )
    print(f"{dtype} JAX vs torch, largest difference over all methods: {jt:.1e}")

# %% [markdown]
# With a well-conditioned `X` all three methods agree to within rounding. The differences grow
# with the condition number: the inverse and the normal equation pay for `cond(X)^2`, least
# squares on `X` only for `cond(X)`. Try a nearly collinear column to see it.

# %%
X_bad = X.astype(np.float64).copy()
X_bad[:, 2] = X_bad[:, 1] + 1e-4 * X_bad[:, 2]
bad = fit(jnp.asarray(X_bad, jnp.float32), jnp.asarray(y))
ref_bad = normal_equation.lstsq_reference(X_bad.astype(np.float32), y)
print(f"nearly collinear X, condition number {np.linalg.cond(X_bad):.0f}:")
for method in normal_equation.METHODS:
    diff = np.max(np.abs(np.asarray(bad[method], np.float64) - ref_bad))
    print(f"  float32 {method:8} max |beta - lstsq| = {diff:.2e}")
