# %% [markdown]
# # Logistic regression on the breast-cancer data
#
# Scikit-learn's Wisconsin breast-cancer table has 569 tumours described by 30 measurements,
# labelled malignant (0) or benign (1). We split it 80/20 (`random_state=42`), standardise the
# features with statistics of the training part only, and fit one linear unit squashed by a
# sigmoid, `sigmoid(Linear(30, 1))`, with binary cross-entropy and SGD (lr 0.01) for 100
# full-batch epochs. After every epoch the predicted probabilities of the test tumours are
# rounded to 0 or 1 and compared with the labels: the test accuracy.
#
# The loss is PyTorch's `BCELoss` reproduced exactly, including its clamp of each log term at
# -100, which keeps the loss finite when a probability is exactly 0 or 1.
#
# Set `JAXTUT_EXAMPLE_QUICK=1` to run fewer epochs (the test suite does).

# %%
import inspect
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxtut.configs import LogregBreastCancerConfig
from jaxtut.convert import to_state_dict
from jaxtut.tutorials import logreg

QUICK = os.environ.get("JAXTUT_EXAMPLE_QUICK") == "1"
config = LogregBreastCancerConfig(epochs=30 if QUICK else 100)
print(config)

# %% [markdown]
# ## The JAX model and loss

# %%
print(inspect.getsource(logreg.LogisticRegression))
print(inspect.getsource(logreg._bce_terms))
print(inspect.getsource(logreg.loss))

# %% [markdown]
# ## Training in JAX
#
# `extras["log"]` holds the lines the tutorial prints every `eval_every` (10) epochs: the loss of
# that epoch (before its update) and the test accuracy after it.

# %%
result = logreg.run(config)
for epoch, loss, accuracy in result.extras["log"]:
    print(f"epoch: {epoch}, loss: {loss:.3f}, accuracy: {accuracy:.3f}")
print(f"final test accuracy: {result.metrics['test_accuracy']:.3f}")
print(f"compiled in {result.compile_time_s:.2f} s, trained in {result.wall_time_s * 1e3:.2f} ms")

# %% [markdown]
# ## The PyTorch reference from the same initial parameters
#
# The JAX kernel is (30, 1), PyTorch's weight is (1, 30): `to_state_dict` transposes it.

# %%
try:
    from jaxtut.torch_ref import logreg as torch_logreg
except ImportError:
    torch_logreg = None
    print("PyTorch is not installed: pip install 'jaxtut[torch]' to run the comparison")

if torch_logreg is not None:
    params = logreg.TRAINERS["logreg_breast_cancer"].init(jax.random.key(config.seed), jnp.float32)
    init = to_state_dict(params)
    print({k: v.shape for k, v in init.items()})
    jax_run = logreg.run(config, init_params=init)
    torch_run = torch_logreg.run(config, init_params=init)
    diff = np.abs(jax_run.losses - torch_run.losses)
    print(f"max |loss difference| over {len(diff)} steps: {diff.max():.3e}")
    print(f"  (relative to the first loss: {diff.max() / torch_run.losses[0]:.3e})")
    same = np.array_equal(
        jax_run.epoch_metrics["test_accuracy"], torch_run.epoch_metrics["test_accuracy"]
    )
    print(f"test accuracy identical after every epoch: {same}")
    print(
        f"final test accuracy: jax {jax_run.metrics['test_accuracy']:.3f}, "
        f"torch {torch_run.metrics['test_accuracy']:.3f}"
    )

# %% [markdown]
# ## How much the initial draw matters
#
# With 114 test tumours, one more or one fewer correct answer moves the accuracy by 0.009. The
# PyTorch reference with its *own* seed-0 draw (`torch.manual_seed(0)`, PyTorch's random numbers
# rather than JAX's) starts elsewhere and can end one or two tumours apart; the training loss at
# the end is almost the same.

# %%
if torch_logreg is not None:
    own = torch_logreg.run(config)
    print(
        f"torch, own draw: test accuracy {own.metrics['test_accuracy']:.3f}, "
        f"final loss {own.metrics['final_loss']:.3f}"
    )
    print(
        f"jax, own draw:   test accuracy {result.metrics['test_accuracy']:.3f}, "
        f"final loss {result.metrics['final_loss']:.3f}"
    )
