# %% [markdown]
# # MNIST with a small MLP: 784-128-64-10 with ReLUs
#
# Pixels are scaled to [0, 1] and then normalised with mean 0.5 and std 0.5 (torchvision's
# `Normalize((0.5,), (0.5,))`), so they lie in [-1, 1]. Three linear layers, `fc1` 784->128,
# `fc2` 128->64 and `fc3` 64->10, with ReLUs between them, end in a log-softmax; the loss is the
# negative log-likelihood of the right digit (`NLLLoss`). Plain SGD (lr 0.003) on shuffled batches
# of 64 for five epochs reaches roughly 90% test accuracy.
#
# 60000 is not a multiple of 64: each epoch ends with a batch of 32, as PyTorch's `DataLoader`
# does. JAX pads that batch to 64 and masks the padding out of the mean, so every step has the same
# shape and the run compiles once.
#
# The MNIST files are read from `$JAXTUT_DATA_DIR` (a folder with the four IDX files) and fall
# back to TensorFlow Datasets. Set `JAXTUT_EXAMPLE_QUICK=1` to train one epoch only.

# %%
import inspect
import os

import numpy as np

from jaxtut.configs import MnistMlpConfig
from jaxtut.tutorial_data import tutorial_data
from jaxtut.tutorials import mnist

QUICK = os.environ.get("JAXTUT_EXAMPLE_QUICK") == "1"
config = MnistMlpConfig(epochs=1 if QUICK else 5)
print(config)

# %% [markdown]
# ## The data and the short last batch

# %%
data = tutorial_data(config)
x_train, y_train = data.train
print("train:", x_train.shape, x_train.dtype, f"pixel range [{x_train.min()}, {x_train.max()}]")
plan = data.plan
print(f"{plan.steps_per_epoch} steps per epoch; real samples in the last one: {plan.counts[0, -1]}")

# %% [markdown]
# ## The JAX model and loss
#
# Attribute names mirror the PyTorch `Net` (`fc1`, `fc2`, `fc3`). The loss takes the padding mask
# and averages over real samples only.

# %%
print(inspect.getsource(mnist.MLP))
print(inspect.getsource(mnist.mlp_loss))

# %% [markdown]
# ## Training

# %%
result = mnist.run_mlp(config)
for epoch, loss in enumerate(result.epoch_metrics["loss"]):
    print(f"epoch {epoch + 1}: mean training loss {loss:.4f}")
print(f"JAX test accuracy: {result.metrics['test_accuracy']:.4f}")
print(f"compiled in {result.compile_time_s:.2f} s, trained in {result.wall_time_s:.2f} s")

# %% [markdown]
# ## The PyTorch reference from the same initial parameters
#
# The reference runs the tutorial's loop over the same batch plan, with the short last batch
# unpadded. From the same initial parameters the per-step losses agree to float32 rounding, which
# grows slowly over the steps. We compare one epoch: PyTorch takes several seconds per epoch here,
# where the compiled JAX run takes well under one.

# %%
try:
    from jaxtut.torch_ref import mnist as torch_mnist
    from jaxtut.torch_ref._common import initial_state_dict
except ImportError:
    torch_mnist = None
    print("PyTorch is not installed: pip install 'jaxtut[torch]' to run the comparison")

if torch_mnist is not None:
    cfg = config.replace(epochs=1)
    init = initial_state_dict(torch_mnist.Net, cfg)
    jax_run = mnist.run_mlp(cfg, init)
    torch_run = torch_mnist.run_mlp(cfg, init)
    rel = np.abs(jax_run.losses - torch_run.losses) / np.abs(torch_run.losses)
    param_diff = max(np.abs(jax_run.params[k] - torch_run.params[k]).max() for k in init)
    print(f"compared over {len(rel)} steps (1 epoch)")
    print(f"max per-step loss difference (relative): {rel.max():.3e}, first step {rel[0]:.3e}")
    print(f"max parameter difference: {param_diff:.3e}")
    print(
        f"test accuracy after 1 epoch: jax {jax_run.metrics['test_accuracy']:.4f}, "
        f"torch {torch_run.metrics['test_accuracy']:.4f}"
    )
    print(f"torch trained in {torch_run.wall_time_s:.2f} s, jax in {jax_run.wall_time_s:.2f} s")
