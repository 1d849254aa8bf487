"""Timing utilities shared by every benchmark: statistics, clocks, recompilation guards, machine.

Rules every benchmark here follows, and that these helpers make easy to keep:

* compile (or first-call) time is measured apart from the steady state, and the first call also
  serves as the warm-up;
* the steady state is the median of ``repeats`` timed calls, reported with their min and max; a
  run of under :data:`SHORT_RUN_S` is warmed up longer and sampled more (:func:`steady_samples`);
* a timed call ends only when the device has finished (``jax.block_until_ready``,
  ``torch.cuda.synchronize``), so asynchronous dispatch cannot make anything look faster;
* nothing compiles inside a timed loop: :func:`no_recompile` fails the benchmark if JAX compiled
  a program, a counted trace ran, or ``torch.compile`` captured a new graph during the repeats.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

# Compilations seen by JAX's monitoring hook, process-wide (installed once by install_jax_hook).
_JAX_COMPILES = collections.Counter()
_HOOK_INSTALLED = False

# Traces of the functions the benchmarks jit themselves (incremented while tracing only).
BENCH_TRACES: collections.Counter[str] = collections.Counter()


class RecompileError(AssertionError):
    """Something compiled during timed repeats: the measurement would include compile time."""


@dataclasses.dataclass(frozen=True)
class Stats:
    """Median, min and max of repeated measurements, in seconds (or any unit)."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def scaled(self, factor: float) -> Stats:
        """The same statistics multiplied by ``factor`` (e.g. per run -> per step)."""
        return Stats(self.median * factor, self.min * factor, self.max * factor, self.n)

    def to_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.min, "max": self.max, "n": self.n}


def install_jax_hook() -> None:
    """Counts every XLA backend compilation in this process (idempotent).

    JAX reports each compilation to ``jax.monitoring`` listeners; counting them catches compiles
    that no trace counter sees (an eager op with a new shape in a setup path, for instance).
    """
    global _HOOK_INSTALLED
    if _HOOK_INSTALLED:
        return
    import jax.monitoring

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        if event.endswith("backend_compile_duration"):
            _JAX_COMPILES["backend"] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    _HOOK_INSTALLED = True


def jax_compiles() -> int:
    """XLA compilations so far in this process (needs :func:`install_jax_hook`)."""
    return _JAX_COMPILES["backend"]


def _torch_graphs() -> int:
    """Graphs captured by ``torch.compile`` so far (0 if dynamo was never imported)."""
    import sys

    if "torch._dynamo" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@contextlib.contextmanager
def no_recompile(
    label: str, *trace_counters: Callable[[], int], any_jax_compile: bool = True
) -> Iterator[None]:
    """Fails with :class:`RecompileError` if anything compiles inside the block.

    Checks JAX's compilation count, ``torch.compile``'s graph count, and any extra counters given
    (e.g. ``lambda: TRACE_COUNTS["mnist_mlp"]``). While the block runs, dynamo is also told to
    raise on a guard failure, so a ``torch.compile`` recompilation fails at once.

    Args:
      label: names the benchmark in the error message.
      *trace_counters: callables returning a count that must not change.
      any_jax_compile: count every XLA compilation in the process, not only the given traces.
        Turn it off only where a compile outside the timed call is known and harmless.
    """
    import sys

    def snapshot() -> tuple[int, ...]:
        jax_count = jax_compiles() if any_jax_compile else 0
        return (jax_count, _torch_graphs(), *(c() for c in trace_counters))

    before = snapshot()
    dynamo_config = None
    if "torch._dynamo" in sys.modules:
        import torch._dynamo.config as dynamo_config

        previous = dynamo_config.error_on_recompile
        dynamo_config.error_on_recompile = True
    try:
        yield
    finally:
        if dynamo_config is not None:
            dynamo_config.error_on_recompile = previous
    after = snapshot()
    if after != before:
        names = ["JAX compilations", "torch.compile graphs"] + [
            f"trace counter {i}" for i in range(len(trace_counters))
        ]
        changed = [f"{n}: {a - b}" for n, a, b in zip(names, after, before, strict=True) if a != b]
        raise RecompileError(f"{label}: compiled during timed repeats ({', '.join(changed)})")


def wait(value: Any = None, *, torch_device: Any = None) -> Any:
    """Blocks until ``value`` (a JAX pytree) and the torch device, if given, are done."""
    if value is not None:
        import jax

        jax.block_until_ready(value)
    if torch_device is not None and getattr(torch_device, "type", "cpu") == "cuda":
        import torch

        torch.cuda.synchronize(torch_device)
    return value


def clock(fn: Callable[[], Any], *, torch_device: Any = None) -> tuple[Any, float]:
    """Calls ``fn`` and returns ``(its output, seconds)``, waiting for the device before stopping.

    A JAX output is blocked on; with ``torch_device`` on CUDA, the device is synchronised before
    the clock starts and before it stops.
    """
    wait(torch_device=torch_device)
    start = time.perf_counter()
    out = fn()
    wait(out if _is_jax(out) else None, torch_device=torch_device)
    return out, time.perf_counter() - start


def _is_jax(value: Any) -> bool:
    import sys

    if "jax" not in sys.modules:
        return False
    import jax

    return any(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(value))


# A run shorter than SHORT_RUN_S is still settling after one call (measured: a 600-step perceptron
# run took 103, 90, 82, 81, 75 us on its first five repeats, then 66-83 us), and five samples of it
# are mostly jitter. Such runs are called untimed for WARMUP_S more, then sampled until MIN_TIMED_S
# of them have been timed (at least `repeats`, at most MAX_REPEATS samples). Longer runs get
# exactly `repeats` samples after their first call.
SHORT_RUN_S = 0.01
WARMUP_S = 0.1
MIN_TIMED_S = 0.2
MAX_REPEATS = 2000


def steady_samples(
    timed: Callable[[], float], repeats: int, min_timed_s: float = MIN_TIMED_S
) -> list[float]:
    """Steady-state samples of a run whose first (compiling) call has already been made.

    Args:
      timed: performs one run and returns its seconds (it does its own waiting for the device, and
        any untimed set-up, such as fresh donated buffers, happens inside it but off its clock).
      repeats: the number of samples for a run of at least :data:`SHORT_RUN_S`; the minimum
        otherwise.
      min_timed_s: a short run is sampled until this many of its seconds have been timed
        (``--quick`` lowers it: its timings are a smoke test, not figures).

    Returns:
      The timed samples; the first one decides whether the run counts as short.
    """
    samples = [timed()]
    if samples[0] >= SHORT_RUN_S:
        return samples + [timed() for _ in range(repeats - 1)]
    deadline = time.perf_counter() + WARMUP_S
    while time.perf_counter() < deadline:
        timed()
    samples = []
    while len(samples) < repeats or (sum(samples) < min_timed_s and len(samples) < MAX_REPEATS):
        samples.append(timed())
    return samples


def timed_repeats(
    fn: Callable[[], Any],
    repeats: int,
    *,
    label: str,
    traces: Callable[[], int] | None = None,
    torch_device: Any = None,
    min_timed_s: float = MIN_TIMED_S,
) -> tuple[float, Stats]:
    """``fn``'s first call timed apart, then its steady state, with nothing compiling in between.

    Each call is timed by :func:`clock` (waiting for the device); the samples are taken by
    :func:`steady_samples` (``repeats``, ``min_timed_s``) inside :func:`no_recompile` (``label``
    names it, ``traces`` is an extra counter that must not move). Returns ``(first call seconds,
    steady-state Stats)``.
    """
    _, first = clock(fn, torch_device=torch_device)
    counters = () if traces is None else (traces,)
    with no_recompile(label, *counters):
        samples = steady_samples(
            lambda: clock(fn, torch_device=torch_device)[1], repeats, min_timed_s
        )
    return first, Stats.of(samples)


def per_call(
    fn: Callable[[], Any], repeats: int, *, min_seconds: float = 0.02, torch_device: Any = None
) -> Stats:
    """Per-call time of a fast function: each repeat times a loop of ``n`` calls, divided by ``n``.

    ``n`` is calibrated once so that a repeat lasts at least ``min_seconds`` (clock resolution and
    loop overhead then stay negligible). Each call must wait for its own result (the caller's
    ``fn`` blocks or synchronises), since it is per-call latency that is measured.
    """
    fn()  # warm-up
    n = 1
    while True:
        _, elapsed = clock(lambda n=n: [fn() for _ in range(n)], torch_device=torch_device)
        if elapsed >= min_seconds or n >= 1 << 20:
            break
        # Grow towards the target in one or two jumps (at most 16x at a time).
        n *= max(2, min(16, int(min_seconds / max(elapsed, 1e-9)) + 1))
    samples = []
    for _ in range(repeats):
        _, seconds = clock(lambda: [fn() for _ in range(n)], torch_device=torch_device)
        samples.append(seconds / n)
    return Stats.of(samples)


# --- The machine --------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (or ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def machine_info(device: str) -> dict[str, Any]:
    """Everything a timing depends on: CPU, threads, devices, flags and framework versions."""
    import jax
    import torch

    from jaxtut.runtime import resolve_jax_device, versions

    jax_device = resolve_jax_device(device)
    info: dict[str, Any] = {
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "jax_device": f"{jax_device.platform}:{jax_device.id}",
        "jax_device_kind": jax_device.device_kind,
        "jax_devices": [str(d) for d in jax.devices()],
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "env": {
            k: os.environ.get(k)
            for k in (
                "XLA_FLAGS",
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "XLA_PYTHON_CLIENT_PREALLOCATE",
                "XLA_PYTHON_CLIENT_MEM_FRACTION",
                "TORCHINDUCTOR_CACHE_DIR",
            )
        },
        "versions": versions(torch=True),
    }
    info["numpy_blas"] = _numpy_blas()
    return info


def machine_id(info: dict[str, Any]) -> str:
    """A file-name-safe id: ``cpu-<model>-<n>cores`` or ``gpu-<device name>``."""
    if info["device"] == "gpu":
        return f"gpu-{slug(info['torch_cuda_device'] or info['jax_device_kind'])}"
    return f"cpu-{slug(info['cpu_model'])}-{info['cpu_count']}cores"


def _memory_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1)


def _numpy_blas() -> str | None:
    """The BLAS NumPy links (e.g. ``openblas 0.3.x``), from its build configuration."""
    try:
        import numpy as np

        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # the layout of show_config differs between NumPy releases
        return None
