# %% [markdown]
# # Automatic differentiation in JAX, next to PyTorch
#
# PyTorch records operations on tensors that have `requires_grad=True` and fills each leaf's
# `.grad` when you call `backward()`. JAX differentiates *functions*: `jax.grad(f)` is a new
# function that returns the gradient of `f` with respect to its first argument. Nothing is
# stored on the arrays, so there is nothing to zero between steps.
#
# Run this file top to bottom (`python examples/autograd.py`) or open it as a notebook.

# %%
import jax
import jax.numpy as jnp
import numpy as np

from jaxtut.tutorials import autograd

# %% [markdown]
# ## A gradient you can check by hand
#
# With `y = x + 2`, `z = 3 y^2` and `out = mean(z)` over four entries,
# `d out / dx = 6 y / 4 = 4.5` at `x = 1`. Every number on the way is a small binary fraction,
# so the gradient is exactly 4.5, in float32 as in float64.


# %%
def out_of(x):
    y = x + 2
    z = y * y * 3
    return z.mean()


x = jnp.ones((2, 2))
print("out =", out_of(x))
print("d out/dx =\n", jax.grad(out_of)(x))

# %% [markdown]
# ## A gradient that ignores the weight's value
#
# For `y = sum(x * w)` with `x = [1, 2, 3, 4]` and a one-element `w`, `dy/dw = sum(x) = 10`,
# whatever `w` is. The weight is drawn from an explicit key; PyTorch would use `torch.randn(1)`
# with `requires_grad=True`.

# %%
xs = jnp.array([1, 2, 3, 4])
w = jax.random.normal(jax.random.key(0), (1,))
print("w =", w, " dy/dw =", jax.grad(lambda w: (xs * w).sum())(w))

# %% [markdown]
# ## Minimising |5 - y| with SGD
#
# Start at `y = 3` and take 100 SGD steps with learning rate 0.1 on `|5 - y|`. The slope is -1
# while `y < 5`, so each step adds 0.1. The original tutorial says `y` ends at 3.0; it does not.
#
# In JAX the loop is a `lax.scan` over steps with Optax's `sgd`, compiled once.
# `autograd.sgd_on_abs` records `y` before every step, the loss and the gradient. The values below
# are printed in full, as the exact decimal value of each float32 number.

# %%
lr = jnp.float32(0.1)
traj = jax.jit(autograd.sgd_on_abs, static_argnames="steps")(
    jnp.array([3.0]), jnp.array([5.0]), lr, steps=100
)
y = np.asarray(traj["y"]).reshape(-1)
for step in (0, 1, 19, 20, 21, 22, 23, 99):
    print(f"y before step {step:2d}: {y[step]}")
print(f"y after the last step: {y[100]}")

# %% [markdown]
# Twenty steps of +0.1 in float32 reach 4.999998 (`5 - 2**-19`; 0.1 is not a binary fraction),
# never exactly 5. Step 20 takes `y` past the target to 5.099998, where the slope is +1, and from
# then on `y` alternates between the two values. A constant learning rate on `|.|` cannot settle:
# the step size never shrinks.

# %%
facts = autograd.trajectory_facts(y, 5.0)
print("first step that starts beyond 5:", int(facts["first_overshoot_step"]))
print("ever exactly 5.0:", bool(facts["hits_target"]))
print("final y:", facts["y_final"])

# %% [markdown]
# ## The slope of |x| at 0
#
# `|x|` has no derivative at 0, so each library picks a value. PyTorch uses `sign(0) = 0`; JAX's
# `jnp.abs` uses 1. It matters only if `y` lands exactly on the target: PyTorch would then stop,
# JAX would step on. `autograd.torch_abs` is `jnp.abs` with PyTorch's rule (a `custom_jvp`), and
# the tutorial uses it so both frameworks agree. Starting at 4.0 with lr 0.5 lands on 5.0:

# %%
print("jax.grad(jnp.abs)(0.0)        =", jax.grad(jnp.abs)(0.0))
print("jax.grad(autograd.torch_abs)(0.0) =", jax.grad(autograd.torch_abs)(0.0))
for name, fn in (("torch_abs", autograd.torch_abs), ("jnp.abs", jnp.abs)):
    t = autograd.sgd_on_abs(jnp.array([4.0]), jnp.array([5.0]), jnp.float32(0.5), 5, abs_fn=fn)
    print(f"with {name:9}: y =", np.asarray(t["y"]).reshape(-1).tolist())

# %% [markdown]
# One more way to write the SGD step, without Optax, to show there is no magic in it:

# %%
y_ = jnp.array([3.0])
for _ in range(3):
    g = jax.grad(lambda y: autograd.abs_loss(y, jnp.array([5.0])))(y_)
    y_ = y_ - lr * g
print("three hand-written steps:", y_)
print("same as the scan's y before step 3:", bool((y_ == traj["y"][3]).all()))

# %% [markdown]
# ## The PyTorch reference and the comparison
#
# `jaxtut.torch_ref.autograd.run` is the tutorial's PyTorch code with its bugs fixed (see that
# module's docstring: `require_gradients`, `(x*y)`, `y.grad()`, and an optimiser that was also
# handed an unrelated `x`). Both runs must agree exactly, step by step.

# %%
from jaxtut.torch_ref import autograd as torch_autograd

rj, rt = autograd.run(), torch_autograd.run()
print("grad_x: jax", rj.metrics["grad_x"], " torch", rt.metrics["grad_x"])
print("grad_w: jax", rj.metrics["grad_w"], " torch", rt.metrics["grad_w"])
print("losses identical at every step:", bool(np.array_equal(rj.losses, rt.losses)))
print("y identical at every step:", rj.extras["y"] == rt.extras["y"])
print("final y: jax", rj.metrics["y_final"], " torch", rt.metrics["y_final"])
