"""PyTorch reference for ``autograd``: the gradients of seeds 003 and 004 and SGD on ``|y_ - y|``.

The code is the tutorials' own: tensors with ``requires_grad=True``, ``backward()``, ``.grad``,
``torch.optim.SGD`` with ``backward``/``step``/``zero_grad``. What differs from the sources, and
why:

* ``Variable(...)`` (seed 003) is gone from PyTorch's API: tensors carry ``requires_grad``
  themselves.
* ``w = torch.randn(1)`` draws from the global generator after ``torch.manual_seed(config.seed)``
  (the source does not seed). ``dy/dw`` does not depend on ``w``.
* The optimisation records ``y`` and the loss at every step (``losses`` and ``extras["y"]``).
* The target ``y_`` is a plain tensor. The source gives it ``requires_grad=True``: harmless,
  since the optimiser never steps it, but its ``.grad`` then accumulates (nothing zeroes it;
  it ends at 20 after 100 steps), and a target is data, not something to differentiate.

Bugs in the sources, fixed here:

* 004: ``torch.randn(1, require_gradients=True)``: the keyword is ``requires_grad``
  (``require_gradients`` raises ``TypeError``).
* 004: ``y = (x*y).sum()`` uses ``y`` before it exists; the weighted sum is ``(x*w).sum()``.
* 004: ``y.grad()``: ``grad`` is an attribute, not a method, and the gradient that was asked for
  lives on the leaf ``w`` (``w.grad``; ``y`` is not a leaf and keeps none). The label
  ``dy/dx`` is ``dy/dw``.
* 003: ``torch.optim.SGD([x, y], lr=0.1)`` also hands the optimiser the unrelated ``x`` of the
  previous snippet, whose ``.grad`` (4.5 everywhere, from ``out.backward()``) is still set: the
  first ``step()`` silently moves ``x`` from 1.0 to 0.55. Only ``y`` is optimised here.
* 003: the comments claim ``y_`` and ``y`` both end at 3.0. ``y_`` never changes (5.0), and ``y``
  climbs to the target and then oscillates around it: in float32 it reaches ``4.999998`` after
  20 steps, overshoots to ``5.099998``, and alternates between the two; it ends at ``4.999998``
  and never equals 5.0. The text also swaps the roles: ``y`` is what is learnt and ``y_`` the
  target.
"""

from __future__ import annotations

import numpy as np
import torch

from jaxtut.configs import AutogradConfig
from jaxtut.result import RunResult
from jaxtut.torch_ref._common import Stopwatch, make_result, torch_dtype, torch_runtime
from jaxtut.tutorials.autograd import trajectory_facts


def run(config: AutogradConfig | None = None) -> RunResult:
    """Runs the three demonstrations in PyTorch; the result has the shape of the JAX ``run``'s."""
    config = config or AutogradConfig()
    dtype = torch_dtype(config.dtype)
    with torch_runtime(config) as device:
        clock = Stopwatch(device)

        # 1. d mean(3 (x + 2)^2) / dx = 4.5 everywhere.
        x = torch.ones(2, 2, dtype=dtype, device=device, requires_grad=True)
        y = x + 2
        z = y * y * 3
        out = z.mean()
        out.backward()
        grad_x = x.grad.detach().cpu().numpy().copy()

        # 2. d sum(x * w) / dw = sum(x) = 10.
        torch.manual_seed(config.seed)
        xs = torch.tensor([1, 2, 3, 4], device=device)  # int64; x * w promotes to w's dtype
        w = torch.randn(1, dtype=dtype).to(device).requires_grad_(True)
        y = (xs * w).sum()
        y.backward()
        grad_w = w.grad.detach().cpu().numpy().copy()

        # 3. SGD on |y_ - y|: only y is a parameter.
        y = torch.tensor([config.y_start], dtype=dtype, device=device, requires_grad=True)
        y_ = torch.tensor([config.target], dtype=dtype, device=device)
        optimizer = torch.optim.SGD([y], lr=config.lr)
        ys, losses, grads = [], [], []
        for _ in range(config.steps):
            loss = (y_ - y).abs()  # minimises the absolute difference
            ys.append(y.item())
            losses.append(loss.item())
            loss.backward()
            grads.append(y.grad.item())
            optimizer.step()
            optimizer.zero_grad()
        ys.append(y.item())
        seconds = clock.stop()

    metrics = {
        "grad_x": float(grad_x.flat[0]) if np.all(grad_x == grad_x.flat[0]) else float("nan"),
        "grad_w": float(grad_w[0]),
        **trajectory_facts(np.asarray(ys), config.target),
    }
    return make_result(
        "autograd",
        config,
        losses=losses,
        epoch_metrics={},
        metrics=metrics,
        params={"y": y.detach().cpu().numpy().copy()},
        wall_time_s=seconds,
        device=device,
        extras={
            "grad_x": grad_x.tolist(),
            "grad_w": grad_w.tolist(),
            "w": w.detach().cpu().numpy().tolist(),
            "y": ys,
            "grad_y": grads,
        },
    )
