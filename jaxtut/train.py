"""The shared functional training core: one compiled program per run.

A tutorial supplies a pure ``loss_fn(params, batch, mask) -> scalar`` and its data; :func:`fit`
turns them into a whole training run, epochs and steps as nested ``lax.scan``s, so that the run is
traced and compiled once and executes without returning to Python. Batches are gathered on the
device from index arrays (:class:`jaxtut.data.BatchPlan`) that the PyTorch reference consumes too,
which is what makes the two frameworks see the same samples in the same order.

A short last batch is padded to the full batch size with a mask, so every step has one static
shape; the loss divides by the number of real samples and matches PyTorch's mean over the short
batch.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxtut.configs import TrainConfig
from jaxtut.convert import from_state_dict, to_state_dict
from jaxtut.data.batching import BatchPlan
from jaxtut.result import RunResult
from jaxtut.runtime import jax_runtime, versions

# How many times each compiled program was traced (incremented in traced code, which runs only
# while tracing). Tests use it to prove that a run never re-traces.
TRACE_COUNTS: collections.Counter[str] = collections.Counter()

_COMPILED: dict[Hashable, Any] = {}


def count_trace(name: str) -> None:
    """Records one trace of ``name``; call it from the body of a function about to be jitted."""
    TRACE_COUNTS[name] += 1


def masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Mean over the leading axis, over real samples only when a padding ``mask`` is given."""
    if mask is None:
        return jnp.mean(values)
    mask = mask.astype(values.dtype).reshape(mask.shape + (1,) * (values.ndim - mask.ndim))
    count = jnp.sum(mask) * (values.size // mask.size)
    return jnp.sum(values * mask) / count


def sgd(lr: jax.Array, momentum: jax.Array) -> optax.GradientTransformation:
    """``torch.optim.SGD(lr, momentum)`` (no dampening, no Nesterov, no weight decay) in Optax.

    Both keep a buffer ``b <- momentum * b + g`` that starts at ``g`` on the first step and update
    ``p <- p - lr * b``; Optax's trace starts at zero, and ``momentum * 0 + g == g`` exactly, so the
    two agree from the first step. With ``momentum == 0`` the buffer is ``g`` itself.
    """
    return optax.sgd(learning_rate=lr, momentum=momentum)


def fit(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    data: Any,
    hparams: dict[str, jax.Array],
    *,
    idx: jax.Array | None,
    mask: jax.Array | None,
    epochs: int,
    steps_per_epoch: int,
    epoch_eval: Callable[[Any], dict[str, jax.Array]] | None = None,
    opt_state: Any = None,
) -> tuple[Any, Any, jax.Array, dict[str, jax.Array]]:
    """A whole SGD training run as one pure function (call it under ``jit``).

    Args:
      loss_fn: ``loss_fn(params, batch, mask)``; ``batch`` has the structure of ``data``;
        ``mask`` is the batch's padding mask, or ``None`` when no batch is padded.
      params: the initial parameters (any pytree).
      data: a pytree of arrays whose leading axis indexes samples, already on the device.
      hparams: ``{"lr": ..., "momentum": ...}`` as arrays of the run's dtype (PyTorch casts them to
        the parameters' dtype too), traced so that changing them does not recompile.
      idx: ``(epochs, steps, batch)`` sample indices, or ``None`` to use all of ``data`` each step.
      mask: ``(epochs, steps, batch)`` padding mask matching ``idx``, or ``None``.
      epochs: number of epochs (static).
      steps_per_epoch: steps per epoch (static; used when ``idx`` is ``None``).
      epoch_eval: optional ``params -> {name: scalar}`` evaluated after every epoch.
      opt_state: the optimizer state to resume from (a run split into chunks of epochs passes
        it from chunk to chunk); ``None`` starts fresh.

    Returns:
      ``(final params, final optimizer state, per-step losses of shape (epochs * steps,),
      per-epoch eval metrics)``. Each step's loss is computed before that step's update, as
      PyTorch's loop reports it.
    """
    opt = sgd(hparams["lr"], hparams["momentum"])

    def step(carry, xs):
        params, opt_state = carry
        if xs is None:
            batch, batch_mask = data, None
        else:
            i, m = xs
            batch = jax.tree.map(lambda a: a[i], data)  # gather on device: (B, ...)
            batch_mask = m
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, batch_mask)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def epoch(carry, xs):
        carry, losses = jax.lax.scan(step, carry, xs, length=steps_per_epoch)
        metrics = epoch_eval(carry[0]) if epoch_eval is not None else {}
        return carry, (losses, metrics)

    xs = None if idx is None else (idx, mask)
    carry = (params, opt.init(params) if opt_state is None else opt_state)
    (params, opt_state), (losses, metrics) = jax.lax.scan(epoch, carry, xs, length=epochs)
    return params, opt_state, losses.reshape(-1), metrics


def compile_once(key: Hashable, fn: Callable, *args: Any) -> tuple[Callable, float]:
    """Ahead-of-time compiles ``fn`` for ``args`` once per key and argument signature.

    Returns:
      ``(executable, seconds spent tracing and compiling now)``; the seconds are 0.0 on a cache
      hit. The signature covers shapes, dtypes and devices, so a float64 or GPU run compiles its own
      program and never evicts another.
    """
    leaves, treedef = jax.tree.flatten(args)
    signature = tuple(
        (tuple(np.shape(x)), str(getattr(x, "dtype", type(x))), _device_of(x)) for x in leaves
    )
    cache_key = (key, treedef, signature)
    exe = _COMPILED.get(cache_key)
    if exe is not None:
        return exe, 0.0
    start = time.perf_counter()
    exe = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - start
    _COMPILED[cache_key] = exe
    return exe, seconds


def _device_of(x: Any) -> str:
    devices = getattr(x, "devices", None)
    return ",".join(sorted(str(d) for d in devices())) if callable(devices) else "host"


def timed_call(exe: Callable, *args: Any) -> tuple[Any, float]:
    """Runs a compiled executable and waits for its outputs; returns ``(outputs, seconds)``."""
    start = time.perf_counter()
    out = jax.block_until_ready(exe(*args))
    return out, time.perf_counter() - start


def to_numpy(tree: Any) -> Any:
    """Copies a pytree of device arrays to host NumPy arrays."""
    return jax.tree.map(lambda x: np.asarray(x), tree)


@dataclasses.dataclass(frozen=True)
class Trainer:
    """What a training tutorial plugs into :func:`run_training`: pure functions only.

    Attributes:
      tutorial: catalogue id (also the trace counter's name).
      init: ``(key, dtype) -> params``, PyTorch-style initialisation from a JAX key.
      loss: ``(params, batch, mask) -> scalar`` training loss (``mask`` may be ``None``).
      forward: ``(params, x) -> output``, the model's forward pass (what the torch model returns).
      evaluate: optional ``(params, eval_data) -> {name: scalar}`` run once after training.
      epoch_eval: optional ``(params, eval_data) -> {name: scalar}`` run after every epoch.
    """

    tutorial: str
    init: Callable[[jax.Array, Any], Any]
    loss: Callable[..., jax.Array]
    forward: Callable[[Any, Any], jax.Array]
    evaluate: Callable[[Any, Any], dict[str, jax.Array]] | None = None
    epoch_eval: Callable[[Any, Any], dict[str, jax.Array]] | None = None


def run_training(
    trainer: Trainer,
    config: TrainConfig,
    train_data: Any,
    *,
    eval_data: Any = None,
    plan: BatchPlan | None = None,
    init_params: Mapping[str, np.ndarray] | None = None,
    extras: Callable[[Any], dict[str, Any]] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> RunResult:
    """Trains ``trainer`` on ``train_data`` in one compiled program; returns a :class:`RunResult`.

    Args:
      trainer: the tutorial's pure functions.
      config: epochs, lr, momentum, seed, dtype and device of the run.
      train_data: pytree of NumPy arrays (leading axis = samples), already in ``config.dtype``.
      eval_data: pytree of NumPy arrays passed to ``evaluate`` / ``epoch_eval``.
      plan: which samples each step sees; ``None`` means every step sees all of ``train_data``
        (full-batch gradient descent, one step per epoch).
      init_params: initial parameters as a PyTorch ``state_dict`` of NumPy arrays (e.g. drawn by
        the torch reference, for parity); ``None`` draws them in JAX from ``config.seed``.
      extras: optional ``final params (NumPy tree) -> dict`` of tutorial-specific outputs, run on
        the host after training.
      progress: optional ``(epochs done, epochs, mean loss of the last chunk) -> None``. When
        given, the run executes as up to :data:`PROGRESS_CHUNKS` calls of one compiled program
        covering an equal number of epochs each, the parameters and optimizer state passed from
        call to call on the device; without it, the whole run is a single call.
    """
    epochs = plan.epochs if plan is not None else config.epochs
    steps = plan.steps_per_epoch if plan is not None else 1
    with jax_runtime(config.dtype, config.device) as device:
        dtype = jnp.dtype(config.dtype)
        if init_params is None:
            params = trainer.init(jax.random.key(config.seed), dtype)
        else:
            template = jax.eval_shape(lambda: trainer.init(jax.random.key(0), dtype))
            params = from_state_dict(init_params, template)
        idx = mask = None
        if plan is not None:
            idx = plan.idx.astype(np.int32)
            # A run without padding passes no mask at all, so its loss is a plain mean (the same
            # reduction PyTorch uses) and the padded program is compiled only when needed.
            mask = None if plan.mask.all() else plan.mask
        hparams = {
            "lr": np.asarray(config.lr, dtype),
            "momentum": np.asarray(config.momentum, dtype),
        }
        opt_state = sgd(hparams["lr"], hparams["momentum"]).init(params)
        args = (params, opt_state, hparams, train_data, eval_data, idx, mask)
        args = jax.device_put(args, device)
        chunk = epochs if progress is None else _chunk_epochs(epochs)
        program = _program(trainer, chunk, steps)
        if chunk == epochs:
            exe, compile_s = compile_once((trainer, epochs, steps), program, *args)
            outputs, run_s = timed_call(exe, *args)
            if progress is not None:
                progress(epochs, epochs, float(np.mean(np.asarray(outputs[2]))))
        else:
            outputs, run_s, compile_s = _run_chunked(
                trainer, program, args, epochs, chunk, progress
            )
        outputs = to_numpy(outputs)
    return _result(trainer, config, outputs, epochs, steps, run_s, compile_s, device, extras)


# A run with a progress callback is cut into at most this many calls of one compiled program.
PROGRESS_CHUNKS = 20


def _chunk_epochs(epochs: int) -> int:
    """The fewest epochs per call that divide ``epochs`` into at most PROGRESS_CHUNKS calls.

    Equal chunks keep a single compiled shape; one epoch per call when there are few epochs.
    """
    return min(
        d for d in range(1, epochs + 1) if epochs % d == 0 and epochs // d <= PROGRESS_CHUNKS
    )


def _run_chunked(trainer, program, args, epochs, chunk, progress):
    """Runs ``program`` (compiled for ``chunk`` epochs) ``epochs // chunk`` times."""
    params, opt_state, hparams, data, eval_data, idx, mask = args

    def piece(a, i):
        return None if a is None else a[i * chunk : (i + 1) * chunk]

    first = (params, opt_state, hparams, data, eval_data, piece(idx, 0), piece(mask, 0))
    exe, compile_s = compile_once((trainer, chunk, "chunk"), program, *first)
    losses, per_epoch, run_s = [], [], 0.0
    metrics = {}
    for i in range(epochs // chunk):
        call = (params, opt_state, hparams, data, eval_data, piece(idx, i), piece(mask, i))
        (params, opt_state, chunk_losses, chunk_epochs, metrics), seconds = timed_call(exe, *call)
        run_s += seconds
        losses.append(chunk_losses)
        per_epoch.append(chunk_epochs)
        progress((i + 1) * chunk, epochs, float(np.mean(np.asarray(chunk_losses))))
    losses = jnp.concatenate(losses)
    per_epoch = jax.tree.map(lambda *xs: jnp.concatenate(xs), *per_epoch)
    return (params, opt_state, losses, per_epoch, metrics), run_s, compile_s


def _program(trainer: Trainer, epochs: int, steps: int) -> Callable:
    """The whole run as one pure function of its inputs (what gets compiled)."""

    def program(params, opt_state, hparams, data, eval_data, idx, mask):
        count_trace(trainer.tutorial)
        epoch_eval = None
        if trainer.epoch_eval is not None:
            epoch_eval = functools.partial(trainer.epoch_eval, eval_data=eval_data)
        final, opt_state, losses, per_epoch = fit(
            trainer.loss,
            params,
            data,
            hparams,
            idx=idx,
            mask=mask,
            epochs=epochs,
            steps_per_epoch=steps,
            epoch_eval=epoch_eval,
            opt_state=opt_state,
        )
        metrics = {} if trainer.evaluate is None else trainer.evaluate(final, eval_data)
        return final, opt_state, losses, per_epoch, metrics

    return program


def _result(trainer, config, outputs, epochs, steps, run_s, compile_s, device, extras):
    final, _, losses, per_epoch, metrics = outputs
    losses = np.asarray(losses, dtype=np.float64)
    epoch_metrics = {"loss": losses.reshape(epochs, steps).mean(axis=1)}
    epoch_metrics.update({k: np.asarray(v, np.float64) for k, v in per_epoch.items()})
    return RunResult(
        tutorial=trainer.tutorial,
        framework="jax",
        config=config.to_dict(),
        losses=losses,
        epoch_metrics=epoch_metrics,
        metrics={k: float(v) for k, v in metrics.items()},
        params=to_state_dict(final),
        wall_time_s=run_s,
        compile_time_s=compile_s,
        versions=versions(),
        device=f"{device.platform}:{device.id}",
        extras={} if extras is None else extras(final),
    )


def run_training_seeds(
    trainer: Trainer,
    config: TrainConfig,
    train_data: Any,
    *,
    seeds: list[int],
    plans: list[BatchPlan] | None = None,
    eval_data: Any = None,
) -> list[RunResult]:
    """Trains one independent model per seed in ONE compiled program (``vmap`` over seeds).

    Each seed draws its own initial parameters (JAX, PyTorch-style init) and, when ``plans`` are
    given, follows its own batch order; the data and hyperparameters are shared. The compiled
    program is the single-seed program vmapped, so per-seed results equal single-seed runs up to
    reduction order.

    Args:
      trainer: the tutorial's pure functions.
      config: shared hyperparameters (its ``seed`` is ignored in favour of ``seeds``).
      train_data: as for :func:`run_training`.
      seeds: one seed per model.
      plans: one batch plan per seed (same shapes), or ``None`` for full-batch training.
      eval_data: as for :func:`run_training`.

    Returns:
      One :class:`RunResult` per seed, in order; ``wall_time_s`` and ``compile_time_s`` are the
      totals of the whole vmapped program.
    """
    epochs = plans[0].epochs if plans else config.epochs
    steps = plans[0].steps_per_epoch if plans else 1
    with jax_runtime(config.dtype, config.device) as device:
        dtype = jnp.dtype(config.dtype)
        keys = jnp.stack([jax.random.key(s) for s in seeds])
        params = jax.jit(jax.vmap(lambda k: trainer.init(k, dtype)))(keys)
        idx = mask = None
        if plans:
            idx = np.stack([p.idx for p in plans]).astype(np.int32)
            masks = np.stack([p.mask for p in plans])
            mask = None if masks.all() else masks
        hparams = {
            "lr": np.asarray(config.lr, dtype),
            "momentum": np.asarray(config.momentum, dtype),
        }
        opt_state = jax.vmap(sgd(hparams["lr"], hparams["momentum"]).init)(params)
        args = (params, opt_state, hparams, train_data, eval_data, idx, mask)
        args = jax.device_put(args, device)
        axes = (0, 0, None, None, None, None if idx is None else 0, None if mask is None else 0)
        program = jax.vmap(_program(trainer, epochs, steps), in_axes=axes)
        exe, compile_s = compile_once(("seeds", trainer, epochs, steps), program, *args)
        outputs, run_s = timed_call(exe, *args)
        outputs = to_numpy(outputs)
    results = []
    for i, seed in enumerate(seeds):
        one = jax.tree.map(lambda x, i=i: x[i], outputs)
        one_config = config.replace(seed=seed)
        results.append(
            _result(trainer, one_config, one, epochs, steps, run_s, compile_s, device, None)
        )
    return results


def evaluate_at(
    trainer: Trainer, config: TrainConfig, state_dict: Mapping[str, np.ndarray], batch: Any
) -> dict[str, Any]:
    """Forward output, loss and gradients at given parameters on one batch (parity tiers 1-2).

    Args:
      trainer: the tutorial's pure functions.
      config: supplies dtype and device.
      state_dict: parameters in PyTorch names and layouts.
      batch: ``(x, y)`` NumPy arrays in the tutorial's layout (labels in any integer dtype).

    Returns:
      ``{"output": array, "loss": float, "grads": state_dict-shaped gradients}`` as NumPy.
    """
    with jax_runtime(config.dtype, config.device) as device:
        dtype = jnp.dtype(config.dtype)
        template = jax.eval_shape(lambda: trainer.init(jax.random.key(0), dtype))
        params = jax.device_put(from_state_dict(state_dict, template), device)
        x, y = batch
        if np.issubdtype(np.asarray(y).dtype, np.integer):
            y = np.asarray(y, np.int32)
        x, y = jax.device_put((x, y), device)
        output = jax.jit(trainer.forward)(params, x)
        loss, grads = jax.jit(jax.value_and_grad(trainer.loss))(params, (x, y), None)
        return {
            "output": np.asarray(output),
            "loss": float(loss),
            "grads": to_state_dict(to_numpy(grads)),
        }
