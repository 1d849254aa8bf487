"""Compilation, caching and timing of whole-run programs.

Programs are compiled ahead of time (``jit(...).lower(...).compile()``) once per key and argument
signature, so compile time is measured apart from the run and a repeated run never re-traces;
:data:`TRACE_COUNTS` lets tests prove it. Calls are timed only once their inputs have arrived and
until their outputs are ready.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Hashable
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding

# How many times each compiled program was traced (incremented in traced code, which runs only
# while tracing). Tests use it to prove that a run never re-traces.
TRACE_COUNTS: collections.Counter[str] = collections.Counter()

_COMPILED: dict[Hashable, Any] = {}


def count_trace(name: str) -> None:
    """Records one trace of ``name``; call it from the body of a function about to be jitted."""
    TRACE_COUNTS[name] += 1


def compile_once(
    key: Hashable, fn: Callable, *args: Any, out_shardings: Any = None
) -> tuple[Callable, float]:
    """Ahead-of-time compiles ``fn`` for ``args`` once per key and argument signature.

    Args:
      key: names the program (with its static parameters).
      fn: the pure function to compile.
      *args: example arguments (placed where the program will run).
      out_shardings: passed to ``jax.jit`` (e.g. a replicated ``NamedSharding``); part of the
        cache key.

    Returns:
      ``(executable, seconds spent tracing and compiling now)``; the seconds are 0.0 on a cache
      hit. The signature covers shapes, dtypes and placement (the device, or the full sharding:
      mesh and partition spec), so a float64, GPU or sharded run compiles its own program and never
      evicts another.
    """
    leaves, treedef = jax.tree.flatten(args)
    signature = tuple(
        (tuple(np.shape(x)), str(getattr(x, "dtype", type(x))), _placement_of(x)) for x in leaves
    )
    cache_key = (key, treedef, signature, None if out_shardings is None else str(out_shardings))
    exe = _COMPILED.get(cache_key)
    if exe is not None:
        return exe, 0.0
    start = time.perf_counter()
    jitted = jax.jit(fn) if out_shardings is None else jax.jit(fn, out_shardings=out_shardings)
    exe = jitted.lower(*args).compile()
    seconds = time.perf_counter() - start
    _COMPILED[cache_key] = exe
    return exe, seconds


def _placement_of(x: Any) -> str:
    """Where an argument lives: its sharding (device(s), mesh, partition spec), or ``host``."""
    sharding = getattr(x, "sharding", None)
    if sharding is None:
        return "host"
    if isinstance(sharding, NamedSharding):
        ids = ",".join(str(d.id) for d in sharding.mesh.devices.flat)
        return f"{sharding.mesh.axis_names}[{ids}]:{sharding.spec}"
    return ",".join(sorted(str(d) for d in x.devices()))


def timed_call(exe: Callable, *args: Any) -> tuple[Any, float]:
    """Runs a compiled executable and waits for its outputs; returns ``(outputs, seconds)``.

    The arguments are waited for first: ``jax.device_put`` returns before its copy is done, and
    the transfer of a training set must not be timed as training.
    """
    jax.block_until_ready(args)
    start = time.perf_counter()
    out = jax.block_until_ready(exe(*args))
    return out, time.perf_counter() - start


def to_numpy(tree: Any) -> Any:
    """Copies a pytree of device arrays to host NumPy arrays."""
    return jax.tree.map(lambda x: np.asarray(x), tree)
