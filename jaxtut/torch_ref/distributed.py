"""The MNIST references trained data-parallel with ``torch.distributed`` (gloo) and DDP.

The loop is the tutorials' own (``zero_grad``, forward, loss, ``backward``, ``step``), with the
model wrapped in ``DistributedDataParallel``, so that ``jaxtut parity`` can hold a P-process JAX
run against a P-process PyTorch run. What each rank does, and why:

* Every rank loads the whole data set and reads the same :class:`~jaxtut.data.BatchPlan` (same
  seed), then takes ITS contiguous slice of every global batch: rank ``r`` of ``P`` takes
  positions ``r * B / P .. (r + 1) * B / P`` of the padded batch of ``B`` slots, keeping the real
  (unmasked) samples. This is the slice that a JAX process feeds for its devices.
* DDP averages gradients over ranks, which equals the gradient of the global mean only when
  every rank holds the same number of samples. The last batch of an MNIST epoch is short
  (``60000 = 937 * 64 + 32``), so its slices are unequal (with 2 ranks: 32 and 0 real samples).
  Instead of padding or dropping samples, each rank's loss is its SUM over its samples times
  ``P / (global count)``; DDP's average over ranks then gives exactly ``sum / count`` over the
  global batch, PyTorch's mean, for any split (an empty slice contributes a zero gradient). With
  a power-of-two ``P`` the scaling is exact in floating point.
* The reported loss of a step is the all-reduced sum divided by the global count: the global
  batch's mean, what the single-process loop's ``loss.item()`` prints.
* The batch size (padded slots) must be a multiple of ``P``, as on the JAX side.

GPUs (NCCL, one GPU per rank) follow the same code path but were not tested here.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import optim
from torch.nn.parallel import DistributedDataParallel

from jaxtut.configs import MnistLogregConfig, MnistMlpConfig
from jaxtut.errors import ConfigError
from jaxtut.result import RunResult
from jaxtut.torch_ref._common import (
    Stopwatch,
    build_model,
    make_result,
    state_dict_numpy,
    tensor,
    torch_runtime,
)
from jaxtut.torch_ref.mnist import CRITERIA, MODELS
from jaxtut.tutorial_data import tutorial_data

SUPPORTED = {"mnist_logreg": MnistLogregConfig, "mnist_mlp": MnistMlpConfig}


def check_supported(tutorial_id: str) -> None:
    """Raises :class:`ConfigError` unless ``tutorial_id`` has a data-parallel torch reference."""
    if tutorial_id not in SUPPORTED:
        raise ConfigError(
            f"{tutorial_id} has no data-parallel PyTorch reference; "
            f"the torch side supports {', '.join(SUPPORTED)}"
        )


def init_process_group(
    address: str | None, world_size: int | None, rank: int | None, *, timeout_s: int = 120
) -> tuple[int, int]:
    """Joins a gloo process group: ``tcp://address`` with explicit ranks, else ``env://``.

    ``env://`` reads ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE`` and ``RANK`` (what
    ``torchrun`` sets). Returns ``(rank, world size)``.
    """
    if not dist.is_initialized():
        backend = "gloo"
        if address is not None:
            dist.init_process_group(
                backend,
                init_method=f"tcp://{address}",
                world_size=world_size,
                rank=rank,
                timeout=datetime.timedelta(seconds=timeout_s),
            )
        else:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size()


def run_ddp(
    tutorial_id: str,
    config: MnistLogregConfig | MnistMlpConfig | None = None,
    init_params: Mapping[str, np.ndarray] | None = None,
    *,
    plan=None,
    progress=None,
) -> RunResult:
    """Trains an MNIST reference with DDP over the initialized process group.

    Args:
      tutorial_id: ``mnist_logreg`` or ``mnist_mlp``.
      config: the run's config (default: the tutorial's).
      init_params: initial parameters; ``None`` draws them with ``torch.manual_seed(config.seed)``
        (the same on every rank).
      plan: overrides the shared batch plan.
      progress: ``(epochs done, epochs, mean loss of the epoch)`` after every epoch.

    Returns:
      The same :class:`RunResult` on every rank (the parameters are kept equal by DDP).
    """
    check_supported(tutorial_id)
    if not dist.is_initialized():
        raise ConfigError("run_ddp needs a torch.distributed process group (init_process_group)")
    config = config or SUPPORTED[tutorial_id]()
    rank, world = dist.get_rank(), dist.get_world_size()
    data = tutorial_data(config)
    plan = data.plan if plan is None else plan
    if plan.batch_size % world:
        raise ConfigError(
            f"a batch of {plan.batch_size} samples does not split evenly over {world} processes; "
            f"use a batch size that is a multiple of {world}"
        )
    share = plan.batch_size // world
    lo, hi = rank * share, (rank + 1) * share
    with torch_runtime(config) as device:
        x_train, y_train = (tensor(a, config, device=device) for a in data.train)
        x_test, y_test = (tensor(a, config, device=device) for a in data.eval)
        model = build_model(MODELS[tutorial_id], config, init_params, device)
        ddp = DistributedDataParallel(model)
        # The criterion's SUM; see the module docstring for the scaling that makes DDP's average
        # over ranks the mean over the global batch.
        criterion = type(CRITERIA[tutorial_id])(reduction="sum")
        optimizer = optim.SGD(ddp.parameters(), lr=config.lr, momentum=config.momentum)

        losses = []
        clock = Stopwatch(device)
        for epoch in range(plan.epochs):
            for step in range(plan.steps_per_epoch):
                mask = plan.mask[epoch, step]
                count = int(mask.sum())
                mine = plan.idx[epoch, step, lo:hi][mask[lo:hi]]  # this rank's real samples
                idx = torch.from_numpy(mine).to(device)
                images, labels = x_train[idx], y_train[idx]
                optimizer.zero_grad()
                output = ddp(images)
                local_sum = criterion(output, labels)
                (local_sum * (world / count)).backward()
                optimizer.step()
                total = local_sum.detach().clone()
                dist.all_reduce(total)
                losses.append(total.item() / count)
            if progress is not None:
                progress(epoch + 1, plan.epochs, float(np.mean(losses[-plan.steps_per_epoch :])))
        with torch.no_grad():
            accuracy = (model(x_test).argmax(dim=1) == y_test).double().mean().item()
        seconds = clock.stop()
    result = make_result(
        tutorial_id,
        config,
        losses=losses,
        epoch_metrics={
            "loss": np.asarray(losses).reshape(plan.epochs, plan.steps_per_epoch).mean(axis=1)
        },
        metrics={"test_accuracy": accuracy},
        params=state_dict_numpy(model),
        wall_time_s=seconds,
        device=device,
    )
    result.device = f"{device.type} x{world} (torch DDP, gloo)"
    return result
