"""What every PyTorch reference shares: seeding, dtype and device, parameter I/O, results.

The references keep the tutorials' own loops (zero_grad, forward, loss, backward, step) in their
modules; only the plumbing around those loops lives here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from jaxtut.configs import Config
from jaxtut.errors import DeviceError
from jaxtut.result import RunResult
from jaxtut.runtime import versions


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[name]


def torch_device(name: str) -> torch.device:
    """``"cpu"`` or ``"gpu"`` (CUDA); raises :class:`DeviceError` when CUDA is absent."""
    if name == "gpu":
        if not torch.cuda.is_available():
            raise DeviceError("no CUDA device is available to PyTorch (it sees: cpu)")
        return torch.device("cuda", 0)
    return torch.device("cpu")


@contextlib.contextmanager
def torch_runtime(config: Config) -> Iterator[torch.device]:
    """Pins float32 matmuls to full precision (no TF32) for the run, as the JAX side does."""
    device = torch_device(config.device)
    previous = torch.get_float32_matmul_precision()
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield device
    finally:
        torch.set_float32_matmul_precision(previous)
        torch.backends.cudnn.allow_tf32 = cudnn_tf32


def tensor(array: np.ndarray, config: Config, *, device: torch.device) -> torch.Tensor:
    """A tensor copy of ``array`` on ``device``; floating arrays take the run's dtype."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    if t.is_floating_point():
        t = t.to(torch_dtype(config.dtype))
    return t.to(device)


def build_model(
    model_cls: Callable[[], torch.nn.Module],
    config: Config,
    init_params: Mapping[str, np.ndarray] | None,
    device: torch.device,
) -> torch.nn.Module:
    """Seeds torch, builds the model (default init, float32), casts it and loads ``init_params``.

    Initialising in float32 and then casting means a float64 run starts from the very values a
    float32 run does (float32 -> float64 is exact).
    """
    torch.manual_seed(config.seed)
    model = model_cls().to(device=device, dtype=torch_dtype(config.dtype))
    if init_params is not None:
        load_state_dict(model, init_params)
    return model


def state_dict_numpy(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The model's ``state_dict`` as NumPy copies."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_state_dict(model: torch.nn.Module, state_dict: Mapping[str, np.ndarray]) -> None:
    """Loads NumPy arrays into ``model`` (strict: names and shapes must match).

    Raises:
      ConfigError: a name or shape does not match, or a tensor is not floating point or not
        finite (:func:`jaxtut.checkpoint.check_state_dict`), so the torch side refuses what
        the JAX side refuses, with one line instead of torch's multi-line ``RuntimeError``.
    """
    from jaxtut.checkpoint import check_state_dict

    ref = model.state_dict()
    check_state_dict(state_dict, ref)
    tensors = {
        k: torch.from_numpy(np.array(v)).to(dtype=ref[k].dtype, device=ref[k].device)
        if k in ref
        else torch.from_numpy(np.array(v))
        for k, v in state_dict.items()
    }
    model.load_state_dict(tensors, strict=True)


def initial_state_dict(model_cls: Callable[[], torch.nn.Module], config: Config):
    """The parameters the reference starts from for ``config.seed``, as NumPy arrays."""
    return state_dict_numpy(build_model(model_cls, config, None, torch.device("cpu")))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Wall-clock seconds of a run, synchronising the device before reading the clock."""

    def __init__(self, device: torch.device):
        self.device = device
        sync(device)
        self.start = time.perf_counter()

    def stop(self) -> float:
        sync(self.device)
        return time.perf_counter() - self.start


def make_result(
    tutorial: str,
    config: Any,
    *,
    losses: list[float] | np.ndarray,
    epoch_metrics: dict[str, Any],
    metrics: dict[str, float],
    params: dict[str, np.ndarray],
    wall_time_s: float,
    device: torch.device,
    extras: dict[str, Any] | None = None,
) -> RunResult:
    """Packs a PyTorch run into the shared :class:`RunResult`.

    ``config`` is a tutorial config or an :class:`~jaxtut.experiment.Experiment` (recorded as
    the JAX side records it).
    """
    return RunResult(
        tutorial=tutorial,
        framework="torch",
        config=config.record() if hasattr(config, "record") else config.to_dict(),
        losses=np.asarray(losses, dtype=np.float64),
        epoch_metrics={k: np.asarray(v, dtype=np.float64) for k, v in epoch_metrics.items()},
        metrics={k: float(v) for k, v in metrics.items()},
        params=params,
        wall_time_s=wall_time_s,
        compile_time_s=None,
        versions=versions(torch=True),
        device=f"{device.type}:{device.index or 0}",
        extras=extras or {},
    )
