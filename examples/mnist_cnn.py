# %% [markdown]
# # MNIST with a small CNN: two convolutions, max-pooling, dropout, two linear layers
#
# The network of the PyTorch examples repository's MNIST script: `conv1` (1 -> 32 channels, 3x3)
# and `conv2` (32 -> 64, 3x3), each followed by a ReLU, a 2x2 max-pool that leaves a 12x12 map of
# 64 channels, dropout with p = 0.25, a flatten to 9216 features, `fc1` 9216 -> 128 with a ReLU,
# dropout with p = 0.5, and `fc2` 128 -> 10 ending in a log-softmax. The loss is the negative
# log-likelihood of the right digit. Adadelta (lr 1.0) trains it on shuffled batches of 64, and a
# StepLR scheduler multiplies the learning rate by 0.7 after every epoch. Pixels are normalised
# with MNIST's own mean and std (0.1307, 0.3081).
#
# Three things differ from a line-by-line translation; the first two are shown at work below:
#
# 1. JAX keeps images channels-last (NHWC) and convolution kernels as HWIO; torch uses NCHW and
#    OIHW. Flattening the pooled map therefore orders the 9216 features differently, and `fc1`'s
#    weight has to be permuted when parameters move between the frameworks.
# 2. Dropout draws random numbers that JAX cannot reproduce from torch's generator (nor torch from
#    JAX's), so the masks are inputs of the loss. For a parity check JAX draws them and hands the
#    very same arrays to torch.
# 3. Every matmul and convolution runs at full float32 precision on both sides.
#
# The MNIST files are read from `$JAXTUT_DATA_DIR` (a folder with the four IDX files) and fall
# back to TensorFlow Datasets. Set `JAXTUT_EXAMPLE_QUICK=1` for a short run: a few dozen training
# steps instead of the 938 of one epoch, and a shorter parity check.

# %%
import inspect
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxtut.configs import MnistCnnConfig
from jaxtut.convert import flatten_permutation
from jaxtut.parity import compare_series, compare_trees, truncate
from jaxtut.train import train
from jaxtut.tutorials import mnist_cnn as cnn

QUICK = os.environ.get("JAXTUT_EXAMPLE_QUICK") == "1"
QUICK_STEPS = 40  # instead of the epoch's 938 steps of 64 (the last one holds 32)
PARITY_STEPS = 5 if QUICK else 100
config = MnistCnnConfig()
print(config)

# %% [markdown]
# ## The data
#
# Both frameworks read the same NumPy arrays, kept in torch's `(N, 1, 28, 28)`. With a single
# channel, NCHW and NHWC hold the pixels in the same order, so the JAX model's `(N, 28, 28, 1)`
# view is a free reshape. The batch plan is one shuffled permutation per epoch, read by both.

# %%
experiment = cnn.experiment(config)
x_train, y_train = experiment.train
x_test, y_test = experiment.eval
print("train:", x_train.shape, x_train.dtype, f"mean {x_train.mean():.3f}, std {x_train.std():.3f}")
print("test:", x_test.shape)
plan = experiment.plan
print(f"{plan.steps_per_epoch} steps per epoch; real samples in the last one: {plan.counts[0, -1]}")

# %% [markdown]
# ## The model, channels-last
#
# Attribute names mirror the torch `Net` (`conv1`, `conv2`, `fc1`, `fc2`), so every parameter has
# one counterpart in the torch `state_dict`. Evaluation mode is `masks=None`: dropout is then the
# identity, as after `model.eval()`.

# %%
print(inspect.getsource(cnn.Net))
shapes = jax.eval_shape(lambda: cnn.init(jax.random.key(0)))  # shapes only, nothing computed
for name, leaf in jax.tree_util.tree_leaves_with_path(shapes):
    print(jax.tree_util.keystr(name), leaf.shape)

# %% [markdown]
# ## Moving weights between the layouts
#
# A torch conv weight `(out, in, kh, kw)` becomes an HWIO kernel `(kh, kw, in, out)`: a transpose.
# `fc1` needs more. torch flattens the pooled `(64, 12, 12)` map channel by channel, so its input
# feature `c*144 + h*12 + w` is JAX's feature `(h*12 + w)*64 + c`. `from_torch` reorders the rows
# of `fc1`'s kernel by that permutation. The check: the same torch-drawn weights give the same
# log-probabilities in both frameworks, and give wrong ones if the permutation is left out.

# %%
perm = flatten_permutation((64, 12, 12))
print(
    "JAX's flat features 0..3 are torch's features", perm[:4].tolist(), "(channels 0..3 of pixel 0)"
)

try:
    import torch

    from jaxtut.torch_ref import mnist_cnn as torch_cnn
except ImportError:
    torch = None
    print("PyTorch is not installed: pip install 'jaxtut[torch]' to run the comparisons")

if torch is not None:
    torch_init = torch_cnn.initial_state_dict(seed=0)  # torch's default init, as NumPy arrays
    jax_params = cnn.from_torch(torch_init)
    print("conv1:", torch_init["conv1.weight"].shape, "->", jax_params["conv1"]["kernel"].shape)
    print("fc1:  ", torch_init["fc1.weight"].shape, "->", jax_params["fc1"]["kernel"].shape)

    images = x_test[:8]
    net = torch_cnn.build(torch_init).eval()
    with torch.no_grad():
        torch_out = net(torch.from_numpy(images.reshape(-1, 1, 28, 28).copy())).numpy()
    jax_out = np.asarray(cnn.forward(jax_params, images))
    print(
        f"log-probabilities, JAX vs torch: max difference {np.abs(jax_out - torch_out).max():.1e}"
    )

    unpermuted = {layer: dict(leaves) for layer, leaves in jax_params.items()}  # a copy to edit
    unpermuted["fc1"]["kernel"] = torch_init["fc1.weight"].T  # rows still in torch's C, H, W order
    wrong = np.asarray(cnn.forward(unpermuted, images))
    print(f"without the permutation:       max difference {np.abs(wrong - torch_out).max():.1e}")

# %% [markdown]
# ## Dropout masks as data
#
# Each mask holds 0 or `1 / (1 - p)`: a kept unit is scaled up so that the layer's expected output
# is unchanged, which is what torch's `F.dropout` multiplies by. A JAX run draws step `s`'s masks
# from `fold_in(key(seed), s)`, so any step's masks can be drawn again without replaying the run;
# that is how the torch reference receives them (the first mask transposed to NCHW).

# %%
draw = jax.jit(cnn.jax_dropout_masks, static_argnums=1)
m1, m2 = draw(jax.random.fold_in(jax.random.key(config.seed), 0), 64)
for mask, p in ((m1, cnn.P_DROPOUT1), (m2, cnn.P_DROPOUT2)):
    kept = float(jnp.mean(mask > 0))
    values = np.unique(np.asarray(mask)).tolist()
    print(f"mask {mask.shape}: p = {p}, kept {kept:.3f}, values {values}")

# %% [markdown]
# ## Training in JAX
#
# The whole run (every step, the batch gathering and the masks) is one compiled program. In quick
# mode it is the first steps of the epoch's batch plan (`truncate`).

# %%
run = experiment.with_plan(truncate(plan, QUICK_STEPS)) if QUICK else experiment
result = train(run)
losses = result.losses
for step in (0, len(losses) // 4, len(losses) // 2, len(losses) - 1):
    print(f"step {step:4d}: training loss {losses[step]:.4f}")
print(f"compiled in {result.compile_time_s:.2f} s; {len(losses)} steps ", end="")
print(f"and the evaluation ran in {result.wall_time_s:.2f} s")

# %% [markdown]
# ## Evaluation
#
# The test set in batches of 1000, without dropout: the mean negative log-likelihood and the
# fraction of digits classified correctly.

# %%
print(f"after {len(losses)} steps: test loss {result.metrics['test_loss']:.4f}, ", end="")
print(f"JAX test accuracy {result.metrics['test_accuracy']:.4f}")

# %% [markdown]
# ## Parity with torch from the same start
#
# Both frameworks start from the torch-drawn parameters and train the same batches with the same
# dropout masks. In float64 their per-step losses agree to rounding (about 1e-15): the two
# programs compute the same function. In float32 they agree to about 1e-7 for some thirty steps and
# then drift apart (0.13 relative by step 100): Adadelta divides each update by the root of a
# running mean of squared gradients, so where a gradient is almost zero (a dead ReLU, a dropped
# unit) its float32 rounding noise becomes a full step. torch drifts from itself sooner and as far
# when its start moves by one unit in the last place, so the parity suite holds float32 to that
# measured spread, and the end of an epoch to the spread of its test metrics (docs/parity.md).
# Quick mode runs the float64 check over five steps; a full run adds float32 over 100 steps. The
# test set is cut to 200 images here: this part checks the training steps, not the accuracy.

# %%
if torch is not None:
    from jaxtut.torch_ref.train import train as train_torch

    for dtype in ("float64",) if QUICK else ("float64", "float32"):
        short = cnn.experiment(config.replace(dtype=dtype))
        short = short.with_plan(truncate(short.plan, PARITY_STEPS))
        short = short.replace(eval=tuple(a[:200] for a in short.eval))
        jax_run = train(short, init_params=torch_init)
        torch_run = train_torch(short, init_params=torch_init)
        rel = compare_series("losses", jax_run.losses, torch_run.losses, 1.0)
        params = compare_trees("params", jax_run.params, torch_run.params, 1.0, scaled=True)
        print(f"{dtype}: {PARITY_STEPS} steps, ", end="")
        print(f"max per-step loss difference (relative) {rel.max_rel:.1e}")
        print(
            f"{dtype}: max parameter difference after them (relative to the leaf) "
            f"{params.max_rel:.1e}"
        )
