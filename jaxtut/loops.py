"""How a training run loops over its steps: a stated, per-model choice.

The catalogue's default is one compiled program per run, epochs and steps as nested ``lax.scan``
(:mod:`jaxtut.train`). That is not always fastest on XLA:CPU, for two measured reasons
(docs/benchmarks.md, "Convolution inside lax.scan on XLA:CPU" and "Loop strategy per tutorial"):

* XLA:CPU canonicalises convolutions for its Eigen fast path only in the entry computation, so a
  convolution gradient inside a while loop body is emitted as a naive loop nest (10-20x slower);
* a while loop costs a fixed amount per trip (condition, tuple bookkeeping, buffer copies), which
  a step of a few hundred nanoseconds notices.

:class:`LoopStrategy` names the three ways to loop, and :func:`fit_epochs` runs a step function
with any of them, with the same results:

* ``scan``: rolled ``lax.scan`` (the whole run one program; the default);
* ``unrolled``: ``lax.scan(..., unroll=k)``: k steps per loop trip, fewer trips; ``k`` equal to
  the number of steps removes the loop (compile time grows with ``k``);
* ``stepwise``: one compiled step per Python iteration. The carry (parameters, optimizer state)
  stays on the device, each step's inputs are sliced on the device inside the compiled step from
  the arrays of the whole run, and the step compiles once for all steps and all calls.

Example:
  >>> import jax.numpy as jnp
  >>> def step(total, x):
  ...     return total + x, total
  >>> xs = jnp.arange(6.0).reshape(2, 3)  # (epochs, steps)
  >>> for kind, k in [("scan", 1), ("unrolled", 3), ("stepwise", 1)]:
  ...     total, ys, _ = fit_epochs(step, jnp.float32(0), xs, strategy=LoopStrategy(kind, k))
  ...     print(kind, float(total), ys.shape)
  scan 15.0 (2, 3)
  unrolled 15.0 (2, 3)
  stepwise 15.0 (2, 3)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import lax

Kind = Literal["scan", "unrolled", "stepwise"]
KINDS: tuple[str, ...] = ("scan", "unrolled", "stepwise")


@dataclasses.dataclass(frozen=True)
class LoopStrategy:
    """How :func:`fit_epochs` loops over the steps of a run.

    Attributes:
      kind: ``"scan"`` (rolled ``lax.scan``), ``"unrolled"`` (``lax.scan`` with ``unroll``
        steps per loop trip) or ``"stepwise"`` (one compiled step per Python iteration).
      unroll: steps per loop trip; must be 1 for ``scan`` and ``stepwise``, at least 2 for
        ``unrolled``.
    """

    kind: Kind = "scan"
    unroll: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown loop kind {self.kind!r}; expected one of {KINDS}")
        if not isinstance(self.unroll, int) or isinstance(self.unroll, bool):
            raise ValueError(f"unroll must be an int, got {self.unroll!r}")
        if self.kind == "unrolled" and self.unroll < 2:
            raise ValueError(f"an unrolled loop needs unroll >= 2, got {self.unroll}")
        if self.kind != "unrolled" and self.unroll != 1:
            raise ValueError(f"unroll={self.unroll} only applies to kind='unrolled'")

    @property
    def fused(self) -> bool:
        """Whether the whole run is one compiled program (``scan`` and ``unrolled``)."""
        return self.kind != "stepwise"

    def __str__(self) -> str:
        return f"unrolled x{self.unroll}" if self.kind == "unrolled" else self.kind


SCAN = LoopStrategy()
STEPWISE = LoopStrategy("stepwise")


def fit_epochs(
    step_fn: Callable[[Any, Any], tuple[Any, Any]],
    carry: Any,
    xs: Any,
    *,
    strategy: LoopStrategy = SCAN,
    steps: int | None = None,
    epochs: int | None = None,
    epoch_fn: Callable[[Any], Any] | None = None,
    consts: Any = None,
) -> tuple[Any, Any, Any]:
    """Runs ``step_fn`` over every step of every epoch with the chosen loop strategy.

    ``scan`` and ``unrolled`` are pure and meant to be called under ``jit`` (the training core
    compiles the whole run). ``stepwise`` is a host loop: call it eagerly, never under a trace;
    it compiles ``step_fn`` (and ``epoch_fn``) once per argument signature and reuses them for
    every later call with the same functions and shapes.

    Args:
      step_fn: ``(carry, x) -> (carry, y)``, one training step, as for ``lax.scan``; ``x`` is
        one step's slice of ``xs`` (or ``None``). Pass the same function object from call to
        call for ``stepwise`` to reuse its compiled step.
      carry: the initial carry (parameters, optimizer state, ...), a pytree of arrays.
      xs: a pytree of arrays with leading axes ``(epochs, steps, ...)``, or ``None`` when the
        steps take no per-step input (then ``epochs`` and ``steps`` are required).
      strategy: how to loop.
      steps: steps per epoch when ``xs`` is ``None``.
      epochs: number of epochs when ``xs`` is ``None``.
      epoch_fn: optional ``carry -> metrics`` (a pytree of arrays) evaluated after each epoch.
      consts: optional loop-invariant arrays (the training set, a PRNG key); when given,
        ``step_fn`` is called as ``step_fn(consts, carry, x)``. Passing them here rather than
        closing over them keeps them arguments of the compiled program, not constants baked
        into it.

    Returns:
      ``(final carry, ys, metrics)``: ``ys`` stacks the steps' outputs with leading axes
      ``(epochs, steps)``; ``metrics`` stacks ``epoch_fn``'s outputs over epochs (``None``
      without ``epoch_fn``).
    """
    if xs is None:
        if epochs is None or steps is None:
            raise ValueError("without xs, pass epochs= and steps=")
    else:
        shape = jax.tree.leaves(xs)[0].shape
        epochs, steps = shape[0], shape[1]
    if strategy.kind == "stepwise":
        return _stepwise(step_fn, carry, xs, epochs, steps, epoch_fn, consts)

    def step(carry, x):
        return step_fn(carry, x) if consts is None else step_fn(consts, carry, x)

    if epoch_fn is None:
        # One loop over all epochs * steps: unrolling then also applies across epoch boundaries
        # (a full-batch run is many epochs of one step each).
        flat = None if xs is None else jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), xs)
        carry, ys = lax.scan(step, carry, flat, length=epochs * steps, unroll=strategy.unroll)
        ys = jax.tree.map(lambda a: a.reshape(epochs, steps, *a.shape[1:]), ys)
        return carry, ys, None

    def epoch(carry, epoch_xs):
        carry, ys = lax.scan(step, carry, epoch_xs, length=steps, unroll=strategy.unroll)
        return carry, (ys, epoch_fn(carry))

    carry, (ys, metrics) = lax.scan(epoch, carry, xs, length=epochs)
    return carry, ys, metrics


# step_fn / epoch_fn are static arguments (hashable functions), so each compiled function is
# traced once per (function, argument shapes) and then served from JAX's own cache; epoch and step
# are traced int32 scalars, so moving to the next step never recompiles. The outputs buffer is
# donated so that writing one step's output into it is in place.
@functools.partial(jax.jit, static_argnums=0, donate_argnums=2)
def _indexed_step(step_fn, carry, ys, xs, consts, epoch, step):
    """``step_fn`` on step ``(epoch, step)`` of ``xs``, its output written into ``ys``."""
    x = None if xs is None else jax.tree.map(lambda a: a[epoch, step], xs)  # sliced on device
    carry, y = step_fn(carry, x) if consts is None else step_fn(consts, carry, x)
    ys = jax.tree.map(lambda buf, v: buf.at[epoch, step].set(v), ys, y)
    return carry, ys


@functools.partial(jax.jit, static_argnums=0)
def _call(fn, carry):
    return fn(carry)


def _stepwise(step_fn, carry, xs, epochs, steps, epoch_fn, consts):
    """The host loop of :func:`fit_epochs`: one compiled-step call per step."""
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((carry, xs, consts))):
        raise ValueError(
            "a stepwise loop runs on the host: call fit_epochs outside jit, or use kind='scan'"
        )
    x_shape = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[2:], a.dtype), xs)
    args = (carry, x_shape) if consts is None else (consts, carry, x_shape)
    _, y_shape = jax.eval_shape(step_fn, *args)
    ys = jax.tree.map(lambda a: jnp.zeros((epochs, steps, *a.shape), a.dtype), y_shape)
    metrics = []
    for e in range(epochs):
        for s in range(steps):
            carry, ys = _indexed_step(step_fn, carry, ys, xs, consts, jnp.int32(e), jnp.int32(s))
        if epoch_fn is not None:
            metrics.append(_call(epoch_fn, carry))
    stacked = None if epoch_fn is None else jax.tree.map(lambda *m: jnp.stack(m), *metrics)
    return carry, ys, stacked
