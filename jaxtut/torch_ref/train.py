"""The PyTorch side of an :class:`~jaxtut.experiment.Experiment`: the classic training loop.

``zero_grad``, forward, criterion, ``backward``, ``step``, and ``loss.item()`` collected every
step, over the batches of the experiment's :class:`~jaxtut.data.BatchPlan` (the real, unpadded
indices of every step, in the order JAX reads them), on tensors built once from the experiment's
arrays. The optimizer is built from the experiment's optimizer spec (``spec.to_torch``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from jaxtut.experiment import Experiment
from jaxtut.result import RunResult
from jaxtut.torch_ref._common import (
    Stopwatch,
    load_state_dict,
    make_result,
    state_dict_numpy,
    torch_dtype,
    torch_runtime,
)


def build(experiment: Experiment, init_params: Mapping[str, np.ndarray] | None, device):
    """Seeds torch with the experiment's seed, builds the model and casts it to the run's dtype.

    Initialising in float32 and then casting means a float64 run starts from the very values a
    float32 run does (float32 -> float64 is exact). ``init_params`` (a NumPy ``state_dict``)
    replaces the drawn parameters.
    """
    torch.manual_seed(experiment.seed)
    model = experiment.torch.model().to(device=device, dtype=torch_dtype(experiment.dtype))
    if init_params is not None:
        load_state_dict(model, init_params)
    return model


def initial_state_dict(experiment: Experiment) -> dict[str, np.ndarray]:
    """The parameters the torch side starts from for ``experiment.seed``, as NumPy arrays."""
    return state_dict_numpy(build(experiment, None, torch.device("cpu")))


def tensors(tree: Any, dtype: str, device) -> Any:
    """NumPy arrays (a tuple, list or dict of them) as tensors: floats in ``dtype``, ints int64."""
    if tree is None:
        return None
    if isinstance(tree, Mapping):
        return {k: tensors(v, dtype, device) for k, v in tree.items()}
    if isinstance(tree, tuple | list):
        return type(tree)(tensors(v, dtype, device) for v in tree)
    array = np.ascontiguousarray(tree)
    # torch.from_numpy shares memory and warns on read-only arrays (the cached MNIST arrays).
    t = torch.from_numpy(array if array.flags.writeable else array.copy())
    t = t.to(torch_dtype(dtype)) if t.is_floating_point() else t.long()
    return t.to(device)


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _evaluate(fn, model: torch.nn.Module, eval_data: Any) -> dict[str, float]:
    """``fn(model, eval_data)`` in evaluation mode (no dropout), without gradients."""
    model.eval()
    try:
        with torch.no_grad():
            return fn(model, eval_data)
    finally:
        model.train()


def _noise(experiment: Experiment):
    """``(step, real samples, batch size) -> arrays``: the JAX side's per-step noise, on the host.

    The same function with the same keys (``fold_in(key(seed), step)``) as in the JAX program,
    computed with JAX on the CPU and handed to torch: both frameworks see identical dropout
    masks, which no seeding of torch's own generator could give.
    """
    make = experiment.jax.noise
    if make is None:
        return None
    import jax

    from jaxtut.runtime import jax_runtime, prng_key

    with jax_runtime(experiment.dtype, "cpu"):
        key = prng_key(experiment.seed)
    dtype = np.dtype(experiment.dtype)
    draw = jax.jit(make, static_argnums=(1, 2))

    def noise(step: int, real: int, batch: int):
        with jax_runtime(experiment.dtype, "cpu"):
            arrays = draw(jax.random.fold_in(key, step), batch, dtype)
            return jax.tree.map(lambda a: np.asarray(a)[:real], arrays)

    return noise


def train(
    experiment: Experiment,
    *,
    init_params: Mapping[str, np.ndarray] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> RunResult:
    """Trains ``experiment``'s torch side; returns a :class:`RunResult` like the JAX side's.

    Args:
      experiment: the experiment (its ``torch`` side must be set).
      init_params: initial parameters as a NumPy ``state_dict``; ``None`` keeps torch's default
        initialisation under ``torch.manual_seed(experiment.seed)``.
      progress: optional ``(epochs done, epochs, mean loss of the epoch) -> None``.
    """
    side = experiment.torch
    plan = experiment.plan
    with torch_runtime(experiment) as device:
        x_train, y_train = tensors(experiment.train, experiment.dtype, device)
        eval_data = tensors(experiment.eval, experiment.dtype, device)
        model = build(experiment, init_params, device)
        criterion = side.criterion()
        optimizer = experiment.optimizer.to_torch(model.parameters())
        noise = _noise(experiment)
        losses, per_epoch = [], {}
        steps = experiment.steps_per_epoch
        clock = Stopwatch(device)
        for epoch in range(experiment.epochs):
            batches = [None] if plan is None else plan.batches(epoch)
            for s, idx in enumerate(batches):
                if idx is None:
                    inputs, targets = x_train, y_train
                else:
                    idx = torch.from_numpy(idx).to(device)
                    inputs, targets = x_train[idx], y_train[idx]
                optimizer.zero_grad()
                if noise is None:
                    output = model(inputs)
                else:  # the JAX run's masks of this step, its real samples only
                    extra = noise(epoch * steps + s, len(inputs), plan.batch_size)
                    output = model(inputs, side.noise(extra, model_dtype(model)))
                loss = criterion(output, targets)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            if side.epoch_eval is not None:
                for k, v in _evaluate(side.epoch_eval, model, eval_data).items():
                    per_epoch.setdefault(k, []).append(float(v))
            if progress is not None:
                progress(epoch + 1, experiment.epochs, float(np.mean(losses[-steps:])))
        metrics = {}
        if side.evaluate is not None:
            metrics = {k: float(v) for k, v in _evaluate(side.evaluate, model, eval_data).items()}
        seconds = clock.stop()
    epoch_losses = np.asarray(losses).reshape(experiment.epochs, steps).mean(axis=1)
    result = make_result(
        experiment.name,
        experiment,
        losses=losses,
        epoch_metrics={"loss": epoch_losses, **per_epoch},
        metrics=metrics,
        params=state_dict_numpy(model),
        wall_time_s=seconds,
        device=device,
    )
    return result if experiment.finish is None else experiment.finish(result)


def evaluate_at(
    experiment: Experiment, state_dict: Mapping[str, np.ndarray], batch: Any
) -> dict[str, Any]:
    """Forward output, loss and gradients at ``state_dict`` on one batch (parity tiers 1-2).

    The torch counterpart of :func:`jaxtut.train.evaluate_at`: the output in evaluation mode,
    the loss and gradients of a training step (with the JAX run's first-step noise, if any).
    """
    side = experiment.torch
    with torch_runtime(experiment) as device:
        model = build(experiment, state_dict, device)
        x, y = tensors(batch, experiment.dtype, device)
        output = _evaluate(lambda m, data: m(data), model, x)
        noise = _noise(experiment)
        if noise is None:
            train_output = model(x)
        else:
            extra = noise(0, len(x), len(x))
            train_output = model(x, side.noise(extra, model_dtype(model)))
        loss = side.criterion()(train_output, y)
        loss.backward()
        grads = {name: p.grad.detach().cpu().numpy().copy() for name, p in model.named_parameters()}
        return {
            "output": output.detach().cpu().numpy(),
            "loss": float(loss.item()),
            "grads": grads,
        }
