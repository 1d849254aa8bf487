# %% [markdown]
# # Tensors in JAX, next to PyTorch
#
# A JAX array plays the part of a PyTorch tensor: an n-dimensional block of numbers with a dtype
# and a device. Most of the vocabulary carries over (`jnp.zeros`, `+`, slicing, `.shape`), but
# three design choices change how code looks:
#
# 1. arrays are **immutable**: there is no `add_`, no `out=`, no item assignment;
# 2. randomness takes an **explicit key** instead of a hidden global seed;
# 3. 64-bit types (`int64`, `float64`) exist only when **x64** is switched on.
#
# Run this file top to bottom (`python examples/tensors.py`) or open it as a notebook.

# %%
import jax
import jax.numpy as jnp
import numpy as np

from jaxtut.runtime import jax_runtime

# %% [markdown]
# ## Creating arrays
#
# Integer lists become integer arrays and `zeros` gives floats. Under JAX's default
# configuration the integers are int32 (PyTorch: int64).

# %%
print("jnp.array([1, 2, 3]):", jnp.array([1, 2, 3]), jnp.array([1, 2, 3]).dtype)
print("jnp.zeros((2, 3)) + 2:\n", jnp.zeros((2, 3)) + 2)
print("jnp.ones((3, 1)):\n", jnp.ones((3, 1)))

# %% [markdown]
# Random numbers need a key. One key gives one draw: split it to get as many independent keys as
# you need. The same key always gives the same numbers, which is what makes JAX programs
# reproducible without global state.

# %%
key = jax.random.key(0)
k1, k2, k3 = jax.random.split(key, 3)
print("normal (3, 3, 3) first row:", jax.random.normal(k1, (3, 3, 3))[0, 0])
u = jax.random.uniform(k2, (5, 3))
print(f"uniform [0, 1) (5, 3): min {u.min():.4f}, max {u.max():.4f}")
print("randint [0, 5) (3, 3):\n", jax.random.randint(k3, (3, 3), 0, 5))
same = bool((jax.random.normal(k1, (3,)) == jax.random.normal(k1, (3,))).all())
print("same key, same numbers:", same)

# %% [markdown]
# `torch.empty` returns whatever was in memory. `jnp.empty` returned zeros up to jax 0.10; from
# jax 0.11 it may hand out an uninitialised buffer too (it does on a GPU). Only its shape and
# dtype are promised: fill an array before reading it, in both frameworks.

# %%
e = jnp.empty((5, 2))
print("jnp.empty((5, 2)):", e.shape, e.dtype)

# %% [markdown]
# ## Dtypes, and why 64 bits need x64
#
# Without x64, asking for int64 gives int32 with a warning, and float64 NumPy data is rounded to
# float32. `jax_runtime("float64")` (a context manager of this project) switches x64 on for a
# block; inside it every dtype of PyTorch's list exists. Note that x64 also makes float64 the
# default float, so name float32 when you mean it (PyTorch's default stays float32).

# %%
print("float64 NumPy -> JAX without x64:", jnp.asarray(np.array([0.1])).dtype)
with jax_runtime("float64"):
    for name in ("int64", "bool", "float32", "int32", "int8", "int16", "float64"):
        print(f"  jnp.array([0, 1, 2], dtype=jnp.{name}) ->", jnp.array([0, 1, 2], dtype=name))
    x = jnp.zeros((5, 2), dtype=jnp.int64)
    print("x.shape:", x.shape, " x.size (element count, torch's numel):", x.size)

# %% [markdown]
# ## Arithmetic without mutation
#
# `x + y` and `jnp.add(x, y)` are the same. PyTorch's `add(x, y, out=result)` and in-place
# `y.add_(result)` have no JAX spelling: you compute a new array and rebind the name. For
# updating part of an array, `.at[index].set(v)` / `.add(v)` return an updated copy.

# %%
with jax_runtime("float64"):
    y = jnp.asarray(np.random.default_rng(0).random((5, 2)).astype(np.float32))
    result = jnp.add(x, y)  # int64 + float32 -> float32, as in PyTorch (NumPy: float64)
    y_before = y
    y = y.at[...].add(result)  # "y.add_(result)"
    print("result dtype:", result.dtype)
    print("y doubled, old y untouched:", bool((y == 2 * y_before).all()))
    print("one element updated:", y.at[0, 0].set(-1.0)[0])
    try:
        y[0, 0] = -1.0
    except TypeError:
        print("item assignment: TypeError (arrays are immutable)")

# %% [markdown]
# ## Indexing and reshaping
#
# Indexing is NumPy's; `.item()` gives a Python number. PyTorch's `view(shape)` is `reshape` here
# (JAX's `.view` means reinterpreting the bits as another dtype, as in NumPy).

# %%
print("y[0][0] =", y[0][0], " y[0, 0] =", y[0, 0], " .item() =", y[0, 0].item())
print("first column:", y[:, 0])
print("second row:", y[1, :])
print("reshape(1, 10):", y.reshape(1, 10).shape, " reshape(2, 5):", y.reshape(2, 5).shape)
grid = jnp.arange(1, 17).reshape(4, 4)
print("4x4 grid reshaped to (16, 1):", grid.reshape(16, 1).shape, "(2-D; reshape(-1) is 1-D)")

# %% [markdown]
# ## NumPy interop
#
# `torch.from_numpy(g)` shares memory with `g`; `jnp.asarray(g)` copies. The copy can still be
# in flight when `asarray` returns, so wait for it (`block_until_ready`) before you write to
# `g`. And never write to a NumPy array after handing it to `jax.device_put`: on CPU that may
# alias an aligned buffer instead of copying (jax-ml/jax#37830). `np.asarray(a)` goes back.

# %%
g = np.zeros(5)
a = jnp.asarray(g).block_until_ready()
g[0] = 1.0
print("after g[0] = 1, the JAX array still reads:", a)
print("back to NumPy:", type(np.asarray(a)).__name__)

# %% [markdown]
# ## Devices
#
# PyTorch makes tensors on the CPU until told otherwise. JAX puts them on its default device,
# which is the first accelerator when there is one; `jax.device_put` moves an array explicitly.

# %%
print("JAX devices:", jax.devices())
print("default device of a new array:", jnp.zeros(1).devices())
print("moved to:", jax.device_put(y, jax.devices("cpu")[0]).devices())

# %% [markdown]
# ## The same tour, recorded in both frameworks
#
# `jaxtut.tutorials.tensors.operations` performs every step of the PyTorch tutorial in JAX and
# records it; `jaxtut.torch_ref.tensors.operations` does the same in PyTorch. The deterministic
# steps must match exactly: value, dtype, shape and device. The random ones use different
# generators and are compared by shape, dtype and range only.

# %%
from jaxtut.torch_ref import tensors as torch_tensors
from jaxtut.tutorials import tensors

jax_ops = tensors.operations(seed=0)
torch_ops = {op.name: op for op in torch_tensors.operations(seed=0)}
verdicts = {"exact": 0, "random": 0, "unspecified": 0, "differs": 0}
print(f"{'operation':24} {'JAX':44} {'dtype':8} {'shape':10} verdict")
for op in jax_ops:
    t = torch_ops[op.name]
    same = (op.value, op.dtype, op.shape, op.device) == (t.value, t.dtype, t.shape, t.device)
    if op.kind == "exact":
        verdict = "same" if same else "MISMATCH"
    elif op.kind == "differs":
        verdict = f"differs: torch {t.value}"
    else:
        verdict = "same shape/dtype" if (op.dtype, op.shape) == (t.dtype, t.shape) else "MISMATCH"
    verdicts[op.kind] += verdict != "MISMATCH"
    print(f"{op.name:24} {op.code[:44]:44} {op.dtype:8} {op.shape!s:10} {verdict}")
print(
    f"exact matches: {verdicts['exact']}/{sum(op.kind == 'exact' for op in jax_ops)};"
    f" random ops consistent: {verdicts['random']}/3"
)
