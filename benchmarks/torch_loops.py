"""PyTorch training loops rebuilt from the catalogue's models, for the variants the references lack.

The eager benchmark calls each tutorial's own torch reference. ``torch.compile`` of the step, the
``DataLoader(TensorDataset)`` input pipeline and many sequential seeds need a loop whose step can be
swapped, so :class:`TorchLoop` rebuilds the reference's loop from ``MODELS[id]`` and
``CRITERIA[id]`` of ``jaxtut.torch_ref.<module>``: gather the step's samples from pre-built
tensors by the shared batch plan, ``zero_grad``, forward, loss, ``backward``, ``optimizer.step``,
and ``loss.item()`` every step, as the references (and the tutorials) do.

Two small differences from the references, neither of which changes the work per step: the update
is always ``optim.SGD`` (``linreg_scratch``'s reference writes ``w -= lr * w.grad`` by hand, the
same update with momentum 0), and only the evaluations that cost anything are repeated (the
breast-cancer test accuracy after every epoch, the MNIST test accuracy at the end).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import optim

from jaxtut import registry
from jaxtut.configs import TrainConfig
from jaxtut.data.batching import BatchPlan
from jaxtut.torch_ref._common import build_model, tensor
from jaxtut.tutorial_data import TutorialData

# Tutorials whose reference measures a test accuracy inside its timed loop (the others' final
# metrics are a forward pass on a handful of samples, too cheap to matter).
EVALUATED = ("logreg_breast_cancer", "mnist_logreg", "mnist_mlp")


class TorchLoop:
    """One model, its optimizer and its data on a device, trained by a swappable step.

    Args:
      tutorial_id: a training tutorial of the catalogue.
      config: its config (seed, dtype, lr, momentum).
      data: the tutorial's arrays (:func:`jaxtut.tutorial_data.tutorial_data`).
      device: the torch device (from :func:`jaxtut.torch_ref._common.torch_runtime`).
      compiled: run the forward and loss through ``torch.compile`` (see the comment below).
    """

    def __init__(
        self,
        tutorial_id: str,
        config: TrainConfig,
        data: TutorialData,
        device: torch.device,
        *,
        compiled: bool = False,
    ):
        module = registry.get(tutorial_id).torch_module()
        self.tutorial_id = tutorial_id
        self.device = device
        self.model = build_model(module.MODELS[tutorial_id], config, None, device)
        self.criterion = module.CRITERIA[tutorial_id]
        self.optimizer = optim.SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum)
        self.x, self.y = (tensor(a, config, device=device) for a in data.train)
        self.eval = None
        if data.eval is not None and tutorial_id in EVALUATED:
            self.eval = tuple(tensor(a, config, device=device) for a in data.eval)
        # torch.compile cannot trace `loss.backward()` into one graph with the forward: a compiled
        # whole step breaks there, and its resumed half recompiled until dynamo's limit and then
        # ran eagerly. So the forward and loss are compiled (AOTAutograd compiles their backward
        # too), as `torch.compile(model)` would; the optimizer step stays eager, because compiling
        # it as well measured 1.28 s against 0.71 s per MNIST epoch on the 2-core CPU. Static
        # shapes: MNIST's short last batch compiles once more rather than going dynamic.
        self._loss = torch.compile(self._forward_loss, dynamic=False) if compiled else None

    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.model(x), y)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad()
        loss = (self._loss or self._forward_loss)(x, y)
        loss.backward()
        self.optimizer.step()
        return loss

    def _batch(self, idx: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        if idx is None:
            return self.x, self.y
        i = torch.from_numpy(idx).to(self.device)
        return self.x[i], self.y[i]

    def _accuracy(self) -> float:
        x, y = self.eval
        with torch.no_grad():
            out = self.model(x)
            predicted = out.round() if out.shape[-1] == 1 else out.argmax(dim=1)
            return predicted.eq(y).double().mean().item()

    def run(self, plan: BatchPlan | None, epochs: int) -> list[float]:
        """Trains ``epochs`` epochs following ``plan`` (``None``: one full-batch step per epoch).

        Returns:
          The per-step losses (read with ``loss.item()`` every step, as the references do).
        """
        losses = []
        per_epoch_eval = self.tutorial_id == "logreg_breast_cancer"
        for epoch in range(epochs):
            batches = [None] if plan is None else plan.batches(epoch)
            for idx in batches:
                losses.append(self.step(*self._batch(idx)).item())
            if per_epoch_eval:
                self._accuracy()
        if self.eval is not None and not per_epoch_eval:
            self._accuracy()
        return losses

    def run_loader(self, loader: Any, steps: int) -> list[float]:
        """Trains on the first ``steps`` batches of a ``DataLoader``, moving each to the device."""
        losses = []
        for images, labels in itertools.islice(loader, steps):
            images, labels = images.to(self.device), labels.to(self.device)
            losses.append(self.step(images, labels).item())
        if self.eval is not None:
            self._accuracy()
        return losses
