"""Data for the tutorials: MNIST, scikit-learn tables, toy data and batch schedules.

Everything is plain NumPy so that the JAX models and the PyTorch references read identical
arrays. Nothing heavy is imported here: TFDS and scikit-learn load only when first used.
"""

from jaxtut.data._dtypes import as_dtype
from jaxtut.data.batching import BatchPlan, full_batch, sequential_batches, shuffled_batches
from jaxtut.data.mnist import (
    ENV_VAR,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    SHA256,
    Mnist,
    clear_mnist_cache,
    load_mnist,
    load_mnist_tfds,
    mnist_arrays,
    normalize,
    parse_idx,
    read_idx_file,
    to_tensor,
)
from jaxtut.data.tabular import breast_cancer, linear_toy, make_regression_data, perceptron_toy

__all__ = [
    "ENV_VAR",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "SHA256",
    "BatchPlan",
    "Mnist",
    "as_dtype",
    "breast_cancer",
    "clear_mnist_cache",
    "full_batch",
    "linear_toy",
    "load_mnist",
    "load_mnist_tfds",
    "make_regression_data",
    "mnist_arrays",
    "normalize",
    "parse_idx",
    "perceptron_toy",
    "read_idx_file",
    "sequential_batches",
    "shuffled_batches",
    "to_tensor",
]
