"""The canonical PyTorch MNIST CNN (pytorch/examples ``mnist/main.py``) in JAX, fast on the CPU.

``conv1`` Conv2d(1, 32, 3), ReLU, ``conv2`` Conv2d(32, 64, 3), ReLU, MaxPool2d(2), Dropout(0.25),
Flatten, ``fc1`` Linear(9216, 128), ReLU, Dropout(0.5), ``fc2`` Linear(128, 10), LogSoftmax;
NLLLoss; batch 64, test batch 1000; ``Normalize((0.1307,), (0.3081,))``.

Differences from the torch model, each deliberate:

* **NHWC / HWIO.** JAX's (and XLA:CPU's fast) layout. Flattening a ``(12, 12, 64)`` map orders
  its features H, W, C instead of torch's C, H, W, so ``fc1``'s kernel rows are permuted when
  weights move between the two (:func:`from_torch` / :func:`to_torch`).
* **How the convolutions are computed.** A convolution's *gradient* inside a rolled ``lax.scan``
  runs about 10x slower on XLA:CPU than the same step jitted on its own: XLA canonicalises
  convolutions for its Eigen fast path only in the entry computation, and the weight and input
  gradients that JAX's autodiff emits have non-canonical dimension numbers (docs/benchmarks.md,
  "Convolution inside lax.scan on XLA:CPU"). :func:`conv2d` therefore has its own VJP: the
  forward pass and the weight gradient are matmuls over the input's 3x3 patches (im2col; the
  patches are built once and reused), and the input gradient is a convolution written in the
  canonical NHWC/HWIO form, which stays on the fast path inside any loop. It computes the same
  function (checked against ``lax.conv_general_dilated`` and torch in tests/test_mnist_cnn.py).
* **Dropout masks are inputs.** ``F.dropout`` draws from torch's generator, which JAX cannot
  reproduce, so the loss takes its two masks in the batch: arrays of 0 and ``1 / (1 - p)``
  (torch's inverted scaling: ``x * bernoulli(1 - p) / (1 - p)``). For parity both frameworks
  use :func:`numpy_dropout_masks` (a NumPy generator seeded by ``(seed, step)``, drawn in the
  JAX layout; the torch reference transposes the first mask to NCHW); a JAX-only run draws them
  on the device with :func:`jax_dropout_masks` (``fold_in(key, step)``).
* **Precision.** Every matmul and convolution asks for ``Precision.HIGHEST``.

Example:
  >>> import jax
  >>> params = init(jax.random.key(0), jax.numpy.float32)
  >>> forward(params, jax.numpy.zeros((2, 28, 28, 1))).shape
  (2, 10)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax import lax

from jaxtut import layers, nn
from jaxtut.configs import MnistCnnConfig
from jaxtut.convert import from_state_dict, to_state_dict
from jaxtut.experiment import Experiment, Trainer
from jaxtut.train import masked_mean
from jaxtut.tutorial_data import (
    CNN_MEAN,
    CNN_STD,
    catalogue_experiment,
    reference,
    runner,
    tutorial_data,
)

MEAN, STD = CNN_MEAN, CNN_STD  # transforms.Normalize((0.1307,), (0.3081,))
P_DROPOUT1, P_DROPOUT2 = 0.25, 0.5
BATCH_SIZE, TEST_BATCH_SIZE = 64, 1000
POOLED = (12, 12, 64)  # the (H, W, C) map that fc1 flattens
HIGHEST = lax.Precision.HIGHEST
_NHWC = ("NHWC", "HWIO", "NHWC")


# --- The convolution -----------------------------------------------------------------------


def _patches(x: jax.Array, kh: int, kw: int) -> jax.Array:
    """``(B, H, W, C) -> (B, H', W', kh*kw*C)``: each output pixel's receptive field.

    The feature order (kernel row, kernel column, channel) is that of ``kernel.reshape(-1, O)``
    for an HWIO kernel, so ``patches @ kernel.reshape(-1, O)`` is the valid convolution.
    """
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    return jnp.concatenate(
        [x[:, i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-1
    )


# The weight gradient's batch slices (the patch-matrix transpose it avoids: see _conv_bwd).
WGRAD_CHUNKS = 4


@jax.custom_vjp
def conv2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Valid, stride-1 2-D cross-correlation: ``(B, H, W, C) * (kh, kw, C, O) -> (B, H', W', O)``.

    The same function as ``lax.conv_general_dilated(x, kernel, (1, 1), "VALID")`` in NHWC/HWIO
    (torch's ``Conv2d`` without bias), computed so that it stays fast inside ``lax.scan`` on
    XLA:CPU (see the module docstring).
    """
    return _conv_fwd(x, kernel)[0]


def _conv_fwd(x, kernel):
    kh, kw, c, o = kernel.shape
    patches = _patches(x, kh, kw)  # (B, H', W', kh*kw*C)
    y = jnp.dot(patches, kernel.reshape(kh * kw * c, o), precision=HIGHEST)  # (B, H', W', O)
    return y, (patches, kernel)


def _conv_bwd(residuals, g):  # g: (B, H', W', O)
    patches, kernel = residuals
    kh, kw, c, o = kernel.shape
    # dL/dkernel = patches^T g, contracted over batch and output pixels: (kh*kw*C, O), as the
    # sum of WGRAD_CHUNKS batched products over slices of the batch. One contraction over all
    # B*H'*W' rows makes XLA:CPU transpose the whole patch matrix (42 MB for conv2) before its
    # dot; a batched dot reads it in place (docs/benchmarks.md: about 5% of a training step).
    n = math.gcd(patches.shape[0], WGRAD_CHUNKS)
    dkernel = lax.dot_general(
        patches.reshape(n, -1, kh * kw * c),
        g.reshape(n, -1, o),
        (((1,), (1,)), ((0,), (0,))),
        precision=HIGHEST,
    ).sum(0)
    # dL/dx is the full correlation of g with the spatially flipped kernel whose in/out axes are
    # swapped: (kh, kw, O, C), canonical NHWC/HWIO, so XLA:CPU runs it with Eigen in any loop.
    # (Unused for conv1, whose input is data: XLA removes it.)
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    dx = lax.conv_general_dilated(
        g,
        flipped,
        (1, 1),
        [(kh - 1, kh - 1), (kw - 1, kw - 1)],
        dimension_numbers=_NHWC,
        precision=HIGHEST,
    )  # (B, H, W, C)
    return dx, dkernel.reshape(kh, kw, c, o)


conv2d.defvjp(_conv_fwd, _conv_bwd)


# --- The model -----------------------------------------------------------------------------


class Conv2d(nnx.Module):
    """``torch.nn.Conv2d(in, out, k)`` (stride 1, no padding) in NHWC, with torch's default init.

    torch draws the weight with kaiming-uniform (a = sqrt(5)), whose bound simplifies to
    ``1/sqrt(fan_in)`` with ``fan_in = in * k * k``, and the bias from the same range.
    """

    def __init__(self, in_ch: int, out_ch: int, k: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        init = nn.torch_uniform(1.0 / math.sqrt(in_ch * k * k))
        self.kernel = nnx.Param(init(rngs.params(), (k, k, in_ch, out_ch), dtype))  # HWIO
        self.bias = nnx.Param(init(rngs.params(), (out_ch,), dtype))

    def __call__(self, x, *, train: bool = True):  # (B, H, W, in) -> (B, H-k+1, W-k+1, out)
        if train:
            return conv2d(x, self.kernel[...]) + self.bias[...]
        # Evaluation takes no gradient: XLA's own convolution, forward only, is canonical and
        # fast in any loop, and needs no patch matrix (660 MB for a test batch of 1000).
        y = lax.conv_general_dilated(
            x, self.kernel[...], (1, 1), "VALID", dimension_numbers=_NHWC, precision=HIGHEST
        )
        return y + self.bias[...]


class Net(nnx.Module):
    """The MNIST CNN; ``__call__(x, masks)`` returns log-probabilities ``(B, 10)``."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.conv1 = Conv2d(1, 32, 3, rngs=rngs, dtype=dtype)
        self.conv2 = Conv2d(32, 64, 3, rngs=rngs, dtype=dtype)
        self.fc1 = nn.torch_linear(9216, 128, rngs=rngs, dtype=dtype)
        self.fc2 = nn.torch_linear(128, 10, rngs=rngs, dtype=dtype)

    def __call__(self, x, masks=None):
        """``x``: (B, 28, 28, 1); ``masks``: ``(m1 (B, 12, 12, 64), m2 (B, 128))`` or ``None``.

        ``None`` is evaluation mode (``model.eval()``): dropout is the identity.
        """
        train = masks is not None
        x = jax.nn.relu(self.conv1(x, train=train))  # (B, 26, 26, 32)
        x = jax.nn.relu(self.conv2(x, train=train))  # (B, 24, 24, 64)
        x = layers.max_pool_tiles(x, (2, 2))  # MaxPool2d(2), torch's gradient: (B, 12, 12, 64)
        b = x.shape[0]
        if masks is not None:
            x = x * masks[0]  # Dropout(0.25)
        x = x.reshape(b, -1)  # Flatten in H, W, C order: (B, 9216)
        x = jax.nn.relu(self.fc1(x))  # (B, 128)
        if masks is not None:
            x = x * masks[1]  # Dropout(0.5)
        return jax.nn.log_softmax(self.fc2(x), axis=-1)  # (B, 10)


def init(key: jax.Array, dtype: Any = jnp.float32) -> nn.Params:
    """torch-style initial parameters as a plain nested dict (``conv1``..``fc2``)."""
    return nn.init_params(Net, key, dtype=dtype)


def _nhwc(x: jax.Array) -> jax.Array:
    """Images as ``(B, 28, 28, 1)``, from that or from torch's ``(B, 1, 28, 28)``.

    With a single channel both layouts hold the pixels in the same order: a free reshape.
    """
    return x.reshape(x.shape[0], 28, 28, 1)


def forward(params: nn.Params, x: jax.Array) -> jax.Array:
    """Evaluation-mode forward pass (no dropout): ``(B, 28, 28, 1) -> (B, 10)`` log-probs."""
    return nn.apply(Net, params, _nhwc(x))


def nll(log_probs: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-sample ``NLLLoss(reduction="none")``: ``-log_probs[i, y_i]``."""
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]


def loss(params: nn.Params, batch: tuple, mask: jax.Array | None = None) -> jax.Array:
    """Training loss: ``NLLLoss`` of the train-mode network, mean over real samples.

    Args:
      params: the parameters.
      batch: ``(x (B, 28, 28, 1), y (B,) int, (m1, m2))``: images, labels and the two dropout
        masks (:func:`numpy_dropout_masks` or :func:`jax_dropout_masks`).
      mask: the padding mask of a short last batch, or ``None``.
    """
    x, y, masks = batch
    return masked_mean(nll(nn.apply(Net, params, _nhwc(x), masks), y), mask)


# --- Dropout masks ---------------------------------------------------------------------------


def mask_shapes(batch: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The two masks' shapes, in the JAX (NHWC) layout."""
    return (batch, *POOLED), (batch, 128)


def numpy_dropout_masks(seed: int, step: int, batch: int, dtype: Any = np.float32):
    """Dropout masks of one step, shared by both frameworks for parity.

    Drawn by ``np.random.default_rng((seed, step))``, so any step's masks can be regenerated
    without replaying the run. Each element keeps its input with probability ``1 - p``; a kept
    element is scaled by ``1 / (1 - p)`` computed in ``dtype``, as torch's ``F.dropout`` does.

    Returns:
      ``(m1 (batch, 12, 12, 64), m2 (batch, 128))`` of ``dtype``, values 0 or ``1 / (1 - p)``.
    """
    rng = np.random.default_rng((seed, step))
    dt = np.dtype(dtype)
    masks = []
    for shape, p in zip(mask_shapes(batch), (P_DROPOUT1, P_DROPOUT2), strict=True):
        keep = rng.random(shape) < 1.0 - p
        masks.append(keep.astype(dt) * (dt.type(1) / dt.type(1.0 - p)))
    return tuple(masks)


def jax_dropout_masks(key: jax.Array, batch: int, dtype: Any = jnp.float32):
    """The same masks' distribution drawn on the device, for JAX-only runs.

    Each element gets an ``n``-bit random field ``u``, the fewest bits (1, 2, 4 or 8) that make
    ``2**n p`` whole, and is dropped iff ``u < 2**n p``: exactly Bernoulli(p) (2 bits for 0.25,
    1 for 0.5). The generator's cost is per 32-bit word, and each word here is ``32 / n``
    elements' draws (16 for ``Dropout(0.25)``); ``jax.random.bernoulli`` spends a word per
    element, and so does ``jax.random.bits`` with ``uint8`` (it truncates one word per byte).
    Field ``i`` of word ``w`` is element ``i * words + w`` (field-major), so that XLA, which fuses
    the mask into its consumers, extracts it with one shift per contiguous run of elements: the
    element-major order (``w * 32 / n + i``) made the max-pool's backward pass 3.5x slower.
    docs/benchmarks.md has the measurements.
    """
    masks = []
    keys = jax.random.split(key)
    for k, shape, p in zip(keys, mask_shapes(batch), (P_DROPOUT1, P_DROPOUT2), strict=True):
        n = next((n for n in (1, 2, 4, 8) if p * 2**n == round(p * 2**n)), None)
        if n is None:
            raise ValueError(f"dropout p={p} is not a multiple of 1/256")
        size, per_word = math.prod(shape), 32 // n
        words = jax.random.bits(k, (1, -(-size // per_word)), jnp.uint32)
        shifts = lax.broadcasted_iota(jnp.uint32, (per_word, 1), 0) * jnp.uint32(n)
        fields = (words >> shifts) & jnp.uint32(2**n - 1)  # (per_word, words): field-major
        keep = fields.reshape(-1)[:size].reshape(shape) >= round(p * 2**n)
        masks.append(keep.astype(dtype) * (jnp.asarray(1, dtype) / jnp.asarray(1.0 - p, dtype)))
    return tuple(masks)


# --- Training steps ---------------------------------------------------------------------------


def make_train_step(optimizer: optax.GradientTransformation):
    """One training step for :func:`jaxtut.loops.fit_epochs`, dropout masks drawn on the device.

    The returned ``step(consts, carry, xs)`` takes ``consts = (x_train, y_train, key)``,
    ``carry = (params, opt_state)`` and one step's ``xs = (idx (B,), pad_mask (B,) or None,
    step number)``; it gathers the batch on the device, draws the masks from
    ``fold_in(key, step number)``, and returns the new carry and the step's loss (computed
    before the update, as PyTorch's loop reports it). Build it once and reuse it: the function
    object is what a stepwise loop's compiled step is cached under.
    """

    def step(consts, carry, xs):
        x_train, y_train, key = consts
        params, opt_state = carry
        idx, pad_mask, number = xs
        masks = jax_dropout_masks(jax.random.fold_in(key, number), idx.shape[0], x_train.dtype)
        batch = (x_train[idx], y_train[idx], masks)  # gathered on the device: (B, 28, 28, 1)
        value, grads = jax.value_and_grad(loss)(params, batch, pad_mask)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    return step


# --- Data and evaluation ---------------------------------------------------------------------


def mnist_cnn_arrays(data_dir: Any = None, dtype: Any = "float32"):
    """``ToTensor()`` + ``Normalize((0.1307,), (0.3081,))`` images as ``(N, 28, 28, 1)``.

    The catalogue's arrays (:func:`jaxtut.tutorial_data.tutorial_data`) with the channel axis.

    Returns:
      ``(x_train, y_train, x_test, y_test)``; labels int32 (JAX's index type).
    """
    data = tutorial_data(MnistCnnConfig(data_dir=data_dir, dtype=np.dtype(dtype).name, epochs=1))
    (x_train, y_train), (x_test, y_test) = data.train, data.eval
    x_train = x_train.reshape(len(x_train), 28, 28, 1)  # one channel: a free reshape
    x_test = x_test.reshape(len(x_test), 28, 28, 1)
    return x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32)


def evaluate(params: nn.Params, eval_data: tuple) -> dict[str, jax.Array]:
    """The example's ``test()``: mean NLL and accuracy over the test set in batches of 1000.

    The test set (10,000 samples) is split into ``N / 1000`` batches evaluated one after another
    (``lax.map``), as the example's ``DataLoader(batch_size=1000)`` does; a trailing partial
    batch is evaluated on its own.
    """
    x, y = eval_data
    n = len(x)
    full = n - n % TEST_BATCH_SIZE

    def batch_stats(xy):
        xb, yb = xy
        log_probs = forward(params, xb)
        return jnp.sum(nll(log_probs, yb)), jnp.sum(jnp.argmax(log_probs, -1) == yb)

    shape = (full // TEST_BATCH_SIZE, TEST_BATCH_SIZE)
    xs = (x[:full].reshape(shape + x.shape[1:]), y[:full].reshape(shape))
    losses, correct = jax.tree.map(jnp.sum, lax.map(batch_stats, xs))
    if full < n:
        rest = batch_stats((x[full:], y[full:]))
        losses, correct = losses + rest[0], correct + rest[1]
    return {"test_loss": losses / n, "test_accuracy": correct / n}


# --- Weights from and to torch ---------------------------------------------------------------

# fc1 reads the pooled (12, 12, 64) map flattened in H, W, C order; torch flattens C, H, W.
FLATTEN_CHW = (("fc1", (64, 12, 12)),)


def from_torch(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A torch ``Net`` ``state_dict`` (NumPy) as this module's params tree (:mod:`jaxtut.convert`).

    Conv weights ``(O, I, kh, kw) -> (kh, kw, I, O)``; Linear weights transposed; ``fc1``'s rows
    reordered for the NHWC flatten. Values are copied, never recomputed.
    """
    dtype = np.asarray(state_dict["fc1.weight"]).dtype
    template = jax.eval_shape(lambda: init(jax.random.key(0), dtype))
    return from_state_dict(state_dict, template, flatten_chw=dict(FLATTEN_CHW))


def to_torch(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The inverse of :func:`from_torch`: params (or gradients) as a torch ``state_dict``."""
    return to_state_dict(params, flatten_chw=dict(FLATTEN_CHW))


# --- The catalogue entry ----------------------------------------------------------------------

TRAINER = Trainer(
    tutorial="mnist_cnn",
    init=init,
    loss=loss,
    forward=forward,
    evaluate=evaluate,
    noise=jax_dropout_masks,  # the same masks reach torch (TorchSide.noise)
    flatten_chw=FLATTEN_CHW,
)
TRAINERS = {"mnist_cnn": TRAINER}


def experiment(config: MnistCnnConfig | None = None) -> Experiment:
    """``mnist_cnn`` as an :class:`~jaxtut.experiment.Experiment`: Adadelta(1.0) and
    StepLR(1, 0.7) by default, dropout masks drawn from ``fold_in(key(seed), step)`` and shared
    with the torch reference."""
    return catalogue_experiment(
        TRAINER,
        config or MnistCnnConfig(),
        torch=reference("mnist_cnn", "mnist_cnn", noise="masks_to_torch"),
    )


EXPERIMENTS = {"mnist_cnn": experiment}
run = runner("mnist_cnn", "jax")
