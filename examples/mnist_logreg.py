# %% [markdown]
# # MNIST with logistic regression: one linear layer, ten classes
#
# Each 28x28 image is flattened to 784 pixels in [0, 1] (torchvision's `ToTensor()`), and a single
# `Linear(784, 10)` turns it into ten scores, one per digit. Cross-entropy (log-softmax of the
# scores, then the negative log-probability of the right digit) is minimised with plain SGD
# (lr 0.001) on shuffled batches of 100 for five epochs. A linear model reaches a bit over 80% test
# accuracy at this learning rate.
#
# The MNIST files are read from `$JAXTUT_DATA_DIR` (a folder with the four IDX files) and fall
# back to TensorFlow Datasets. Set `JAXTUT_EXAMPLE_QUICK=1` to train one epoch only.

# %%
import inspect
import os

import numpy as np

from jaxtut.configs import MnistLogregConfig
from jaxtut.tutorial_data import tutorial_data
from jaxtut.tutorials import mnist

QUICK = os.environ.get("JAXTUT_EXAMPLE_QUICK") == "1"
config = MnistLogregConfig(epochs=1 if QUICK else 5)
print(config)

# %% [markdown]
# ## The data
#
# `tutorial_data` returns NumPy arrays and a batch plan: a fresh random order of the 60000
# training images each epoch, cut into steps of 100. Both frameworks train from exactly these.

# %%
data = tutorial_data(config)
(x_train, y_train), (x_test, y_test) = data.train, data.eval
print("train:", x_train.shape, x_train.dtype, " test:", x_test.shape)
print(f"pixel range: [{x_train.min()}, {x_train.max()}]")
print(f"{data.plan.epochs} epoch(s) of {data.plan.steps_per_epoch} steps of {data.plan.batch_size}")

# %% [markdown]
# ## The JAX model and loss
#
# The layer is an NNX module attribute named `linear`, like the PyTorch model's, so its
# parameters convert to `linear.weight` (10, 784) and `linear.bias` (10,).

# %%
print(inspect.getsource(mnist.LogReg))
print(inspect.getsource(mnist.logreg_loss))

# %% [markdown]
# ## Training
#
# The whole run, every epoch and step, is one compiled program; batches are gathered on the device
# from the plan's indices.

# %%
result = mnist.run_logreg(config)
for epoch, loss in enumerate(result.epoch_metrics["loss"]):
    print(f"epoch {epoch + 1}: mean training loss {loss:.4f}")
print(f"JAX test accuracy: {result.metrics['test_accuracy']:.4f}")
print(f"compiled in {result.compile_time_s:.2f} s, trained in {result.wall_time_s:.2f} s")

# %% [markdown]
# ## The PyTorch reference from the same initial parameters
#
# The reference is the tutorial's own loop (zero_grad, forward, loss, backward, step) reading the
# same batch plan. Starting both frameworks from the parameters PyTorch draws for the seed, their
# per-step losses agree to float32 rounding, which grows slowly over the steps. We compare one
# epoch (PyTorch, one Python step at a time, is the slower of the two).

# %%
try:
    from jaxtut.torch_ref import mnist as torch_mnist
    from jaxtut.torch_ref._common import initial_state_dict
except ImportError:
    torch_mnist = None
    print("PyTorch is not installed: pip install 'jaxtut[torch]' to run the comparison")

if torch_mnist is not None:
    cfg = config.replace(epochs=1)
    init = initial_state_dict(torch_mnist.LogReg, cfg)
    jax_run = mnist.run_logreg(cfg, init)
    torch_run = torch_mnist.run_logreg(cfg, init)
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
