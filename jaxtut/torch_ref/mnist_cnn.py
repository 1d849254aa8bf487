"""PyTorch reference for ``mnist_cnn``: the pytorch/examples MNIST ``Net``, NCHW as written there.

What differs from ``mnist/main.py``, and why:

* ``Dropout`` modules become ``F.dropout`` calls that, when the caller passes ``masks``, are
  replaced by multiplying by those masks: torch's own draw cannot be reproduced in JAX, so for
  parity both frameworks take the same masks
  (:func:`jaxtut.tutorials.mnist_cnn.numpy_dropout_masks`, values 0 or ``1 / (1 - p)``, exactly
  what ``F.dropout`` multiplies by). The masks come in the JAX layout; the first is transposed
  here to NCHW. Without masks, ``F.dropout`` runs as usual.
* The loss is ``NLLLoss`` on the ``log_softmax`` output (the example's ``F.nll_loss``).

In the catalogue (``jaxtut run mnist_cnn --framework torch``) the classic loop every reference
shares (:mod:`jaxtut.torch_ref.train`) trains it with the example's Adadelta(1.0) and
StepLR(1, 0.7) and the JAX run's masks (``fold_in(key(seed), step)``); :func:`sgd_steps` runs
plain SGD with given masks for the module's own tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jaxtut.tutorial_data import runner

P_DROPOUT1, P_DROPOUT2 = 0.25, 0.5


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x, masks=None):  # x: (B, 1, 28, 28) -> (B, 10) log-probabilities
        x = F.relu(self.conv1(x))  # (B, 32, 26, 26)
        x = F.relu(self.conv2(x))  # (B, 64, 24, 24)
        x = F.max_pool2d(x, 2)  # (B, 64, 12, 12)
        x = self._dropout(x, P_DROPOUT1, None if masks is None else masks[0])
        x = torch.flatten(x, 1)  # (B, 9216) in C, H, W order
        x = F.relu(self.fc1(x))
        x = self._dropout(x, P_DROPOUT2, None if masks is None else masks[1])
        return F.log_softmax(self.fc2(x), dim=1)

    def _dropout(self, x, p, mask):
        if mask is None:
            return F.dropout(x, p, training=self.training)
        return x * mask


MODELS = {"mnist_cnn": Net}
CRITERIA = {"mnist_cnn": nn.NLLLoss()}


def test(model: Net, eval_data) -> dict[str, float]:
    """The example's ``test()``: mean NLL and accuracy over the test set in batches of 1000."""
    x_test, y_test = eval_data
    loss, correct = 0.0, 0
    for start in range(0, len(x_test), 1000):
        x, y = x_test[start : start + 1000], y_test[start : start + 1000]
        output = model(x)
        loss += F.nll_loss(output, y, reduction="sum").item()
        correct += (output.argmax(dim=1) == y).sum().item()
    return {"test_loss": loss / len(x_test), "test_accuracy": correct / len(x_test)}


EVALUATE = {"mnist_cnn": test}
run = runner("mnist_cnn", "torch")


def initial_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    """``Net()``'s default initialisation after ``torch.manual_seed(seed)``, as NumPy float32."""
    torch.manual_seed(seed)
    return {k: v.detach().numpy().copy() for k, v in Net().state_dict().items()}


def masks_to_torch(masks: Sequence[np.ndarray], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Shared masks from the JAX layout: ``(B, 12, 12, 64) -> (B, 64, 12, 12)``, ``(B, 128)``."""
    m1, m2 = masks
    return (
        torch.from_numpy(np.ascontiguousarray(np.asarray(m1).transpose(0, 3, 1, 2))).to(dtype),
        torch.from_numpy(np.array(m2)).to(dtype),  # a copy: JAX's host arrays are read-only
    )


def build(state_dict: dict[str, np.ndarray], dtype: torch.dtype = torch.float32) -> Net:
    """A ``Net`` holding ``state_dict`` (NumPy arrays) in ``dtype``, in training mode."""
    model = Net().to(dtype)
    model.load_state_dict(
        {k: torch.from_numpy(np.asarray(v)).to(dtype) for k, v in state_dict.items()}
    )
    return model


def sgd_steps(
    model: Net,
    batches: Sequence[tuple[np.ndarray, np.ndarray]],
    masks: Callable[[int], Sequence[np.ndarray]],
    *,
    lr: float,
    momentum: float = 0.0,
) -> tuple[list[float], list[dict[str, np.ndarray]]]:
    """The example's training loop with SGD and shared dropout masks.

    Args:
      model: the network (trained in place).
      batches: ``(x (B, 1, 28, 28), y (B,))`` NumPy arrays of each step.
      masks: ``step -> (m1, m2)`` in the JAX layout (e.g. ``numpy_dropout_masks``).
      lr: learning rate.
      momentum: SGD momentum.

    Returns:
      ``(losses, params)``: each step's loss (before its update) and the ``state_dict`` (NumPy)
      after each step.
    """
    dtype = next(model.parameters()).dtype
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    criterion = nn.NLLLoss()
    model.train()
    losses, params = [], []
    for step, (x, y) in enumerate(batches):
        data = torch.from_numpy(np.asarray(x)).to(dtype)
        target = torch.from_numpy(np.asarray(y, np.int64))
        optimizer.zero_grad()
        loss = criterion(model(data, masks_to_torch(masks(step), dtype)), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        params.append({k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
    return losses, params
