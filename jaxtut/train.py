"""The functional training core: an :class:`~jaxtut.experiment.Experiment` as one compiled program.

:func:`fit` turns an experiment's pure ``loss(params, batch, mask)`` and optimizer into a whole
training run, epochs and steps as nested ``lax.scan``s, so that the run is traced and compiled once
and executes without returning to Python. Batches are gathered on the device from the index arrays
of the experiment's :class:`~jaxtut.data.BatchPlan`, the same plan the PyTorch side reads, which is
what makes the two frameworks see the same samples in the same order.

A short last batch is padded to the full batch size with a mask, so every step has one static
shape; the loss divides by the number of real samples and matches PyTorch's mean over the short
batch.

Everything a run depends on arrives as an argument: the experiment, the initial parameters, a
progress callback, a device mesh. :func:`train_seeds` ``vmap``s the single-seed program over seeds;
with a 1-D mesh (axis ``"data"``, :mod:`jaxtut.sharding`) the same program is compiled for
``NamedSharding``-placed inputs, every batch split over the devices, so the loss (a sum over the
global batch divided by the global count) and its gradient are those of the single-device run.
Compilation, caching and timing live in :mod:`jaxtut.compiled`. See ``docs/scaling.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxtut.checkpoint import check_state_dict
from jaxtut.compiled import TRACE_COUNTS, compile_once, count_trace, timed_call, to_numpy
from jaxtut.convert import from_state_dict, to_state_dict
from jaxtut.errors import ConfigError
from jaxtut.experiment import Experiment, Trainer
from jaxtut.result import RunResult
from jaxtut.runtime import jax_runtime, prng_key, prng_keys, versions
from jaxtut.sharding import check_split, device_label, placer, runtime

__all__ = [
    "TRACE_COUNTS",
    "Experiment",
    "Trainer",
    "evaluate_at",
    "fit",
    "masked_mean",
    "train",
    "train_seeds",
]


def masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Mean over the leading axis, over real samples only when a padding ``mask`` is given."""
    if mask is None:
        return jnp.mean(values)
    mask = mask.astype(values.dtype).reshape(mask.shape + (1,) * (values.ndim - mask.ndim))
    count = jnp.sum(mask) * (values.size // mask.size)
    return jnp.sum(values * mask) / count


def fit(
    loss_fn: Callable[..., jax.Array],
    opt: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    data: Any,
    *,
    idx: jax.Array | None,
    mask: jax.Array | None,
    epochs: int,
    steps_per_epoch: int,
    epoch_eval: Callable[[Any], dict[str, jax.Array]] | None = None,
    noise: Callable[..., Any] | None = None,
    noise_key: jax.Array | None = None,
    first_step: jax.Array | int = 0,
    unroll: int = 1,
) -> tuple[Any, Any, jax.Array, dict[str, jax.Array]]:
    """A whole training run as one pure function (call it under ``jit``).

    Args:
      loss_fn: ``loss_fn(params, batch, mask)``; ``batch`` has the structure of ``data``;
        ``mask`` is the batch's padding mask, or ``None`` when no batch is padded.
      opt: the optimizer; its hyperparameters live in ``opt_state`` (traced, so changing them
        does not recompile).
      params: the initial parameters (any pytree).
      opt_state: the optimizer state to start from (``opt.init(params)``, or the state a previous
        chunk of the same run ended with).
      data: a pytree of arrays whose leading axis indexes samples, already on the device.
      idx: ``(epochs, steps, batch)`` sample indices, or ``None`` to use all of ``data`` each step.
      mask: ``(epochs, steps, batch)`` padding mask matching ``idx``, or ``None``.
      epochs: number of epochs (static).
      steps_per_epoch: steps per epoch (static; used when ``idx`` is ``None``).
      epoch_eval: optional ``params -> {name: scalar}`` evaluated after every epoch.
      noise: optional ``(key, batch_size, dtype) -> arrays`` appended to every batch (dropout
        masks), drawn from ``fold_in(noise_key, global step)``.
      noise_key: the raw data (``jax.random.key_data``) of the key of ``noise``, from the run's
        seed: plain uint32, so it is placed like any other array.
      first_step: the global number of this call's first step (a run cut into chunks).
      unroll: steps per loop trip (``lax.scan(unroll=...)``).

    Returns:
      ``(final params, final optimizer state, per-step losses of shape (epochs * steps,),
      per-epoch eval metrics)``. Each step's loss is computed before that step's update, as
      PyTorch's loop reports it.
    """

    def step(carry, xs):
        params, opt_state = carry
        i, batch_mask, number = xs
        batch = data if i is None else jax.tree.map(lambda a: a[i], data)  # gather: (B, ...)
        if noise is not None:
            x = jax.tree.leaves(batch)[0]
            key = jax.random.fold_in(jax.random.wrap_key_data(noise_key), number)
            batch = (*batch, noise(key, x.shape[0], x.dtype))
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, batch_mask)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def epoch(carry, xs):
        carry, losses = jax.lax.scan(step, carry, xs, length=steps_per_epoch, unroll=unroll)
        metrics = epoch_eval(carry[0]) if epoch_eval is not None else {}
        return carry, (losses, metrics)

    numbers = None
    if noise is not None:  # every step's global number, for its noise key
        numbers = first_step + jnp.arange(epochs * steps_per_epoch).reshape(epochs, -1)
    xs = (idx, mask, numbers)
    (params, opt_state), (losses, metrics) = jax.lax.scan(
        epoch, (params, opt_state), xs, length=epochs
    )
    return params, opt_state, losses.reshape(-1), metrics


def sgd(lr: Any, momentum: Any) -> optax.GradientTransformation:
    """``torch.optim.SGD(lr, momentum)`` (no dampening, Nesterov or weight decay) in Optax.

    Both keep a buffer ``b <- momentum * b + g`` that starts at ``g`` on the first step and
    update ``p <- p - lr * b``; Optax's trace starts at zero and ``momentum * 0 + g == g``
    exactly, so the two agree from the first step (:mod:`jaxtut.optim` covers the rest of
    ``torch.optim``).
    """
    return optax.sgd(learning_rate=lr, momentum=momentum)


def _template(trainer: Trainer, dtype) -> Any:
    """The abstract params tree (shapes and dtypes) of a trainer with its own initialiser."""
    if trainer.init is None:
        raise ConfigError(
            f"{trainer.tutorial} has no JAX initialiser; pass the initial parameters (init_params)"
        )
    return jax.eval_shape(lambda: trainer.init(jax.random.key(0), dtype))


def initial_params(experiment: Experiment, init_params: Mapping[str, np.ndarray] | None) -> Any:
    """The run's starting parameters: converted from a ``state_dict``, or drawn in JAX.

    Call inside the run's :func:`~jaxtut.runtime.jax_runtime` (the dtype and device scope).
    """
    dtype = jnp.dtype(experiment.dtype)
    if init_params is None:
        if experiment.jax.init is None:
            _template(experiment.jax, dtype)  # raises the clear error
        return experiment.jax.init(prng_key(experiment.seed), dtype)
    check_state_dict(init_params)  # integer or non-finite starts refused, as on the torch side
    trainer = experiment.jax
    return from_state_dict(
        init_params, _template(trainer, dtype), flatten_chw=dict(trainer.flatten_chw)
    )


def _optimizer(experiment: Experiment) -> optax.GradientTransformation:
    return experiment.optimizer.to_optax()


def jax_arrays(tree: Any) -> Any:
    """Host arrays as JAX takes them: integer labels as int32, JAX's native index type.

    The experiment keeps labels int64 (what PyTorch's losses want); without x64, JAX would
    narrow them anyway.
    """
    return jax.tree.map(
        lambda a: a.astype(np.int32) if np.issubdtype(np.asarray(a).dtype, np.integer) else a,
        tree,
    )


def _host_plan(experiment: Experiment):
    """``(idx, mask)`` for the device: int32 indices, and no mask at all when nothing is padded.

    A run without padding passes no mask, so its loss is a plain mean (the reduction PyTorch
    uses) and the padded program is compiled only when needed.
    """
    plan = experiment.plan
    if plan is None:
        return None, None
    return plan.idx.astype(np.int32), (None if plan.mask.all() else plan.mask)


def train(
    experiment: Experiment,
    *,
    init_params: Mapping[str, np.ndarray] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    mesh: Mesh | None = None,
) -> RunResult:
    """Trains ``experiment`` in JAX in one compiled program; returns a :class:`RunResult`.

    Args:
      experiment: what to train, on which data and batches, with which optimizer.
      init_params: initial parameters as a PyTorch ``state_dict`` of NumPy arrays (e.g. drawn by
        the torch side, for parity); ``None`` draws them in JAX from ``experiment.seed``.
      progress: optional ``(epochs done, epochs, mean loss of the last chunk) -> None``. When
        given, the run executes as up to :data:`PROGRESS_CHUNKS` calls of one compiled program
        covering an equal number of epochs each, the parameters and optimizer state passed from
        call to call on the device; without it, the whole run is a single call.
      mesh: a 1-D mesh with axis ``"data"`` to train data-parallel on, or ``None`` for one
        device. Every batch is split evenly over the mesh's devices (a batch size that is not a
        multiple of the device count is a :class:`~jaxtut.errors.ConfigError`); a full-batch run
        splits the samples instead. Parameters, optimizer state and eval data are replicated.
    """
    trainer, epochs, steps = experiment.jax, experiment.epochs, experiment.steps_per_epoch
    with runtime(experiment.dtype, experiment.device, mesh) as device:
        params = initial_params(experiment, init_params)
        opt = _optimizer(experiment)
        opt_state = opt.init(params)
        idx, mask = _host_plan(experiment)
        # Where each argument lives under a mesh: the axis split over the devices, or None for
        # replicated. Batches are split (each device gathers its slice of every global batch from
        # the replicated data); a full-batch run has no batches, so its samples are split.
        data_axis = 0 if idx is None else None
        axes = (None, None, data_axis, None, 2, 2, None, None)
        if mesh is not None:
            check_split(mesh, experiment.name, experiment.train, idx, data_axis)
        put = placer(mesh, device)
        data, eval_data = jax_arrays((experiment.train, experiment.eval))
        host = (params, opt_state, data, eval_data, idx, mask, *_noise_args(experiment, 0))
        out_shardings = None if mesh is None else NamedSharding(mesh, P())
        chunk = epochs if progress is None else _chunk_epochs(epochs)
        program = _program(trainer, opt, chunk, steps)
        key = (trainer, experiment.optimizer.structure_key())
        if chunk == epochs:
            args = tuple(put(a, axis) for a, axis in zip(host, axes, strict=True))
            exe, compile_s = compile_once(
                (*key, epochs, steps), program, *args, out_shardings=out_shardings
            )
            outputs, run_s = timed_call(exe, *args)
            if progress is not None:
                progress(epochs, epochs, float(np.mean(np.asarray(outputs[2]))))
        else:
            outputs, run_s, compile_s = _run_chunked(
                key, program, host, put, epochs, chunk, progress, out_shardings
            )
        outputs = to_numpy(outputs)
    label = device_label(device, mesh)
    return _result(experiment, outputs, run_s, compile_s, label)


# A run with a progress callback is cut into at most this many calls of one compiled program.
PROGRESS_CHUNKS = 20


def _chunk_epochs(epochs: int) -> int:
    """The fewest epochs per call that divide ``epochs`` into at most PROGRESS_CHUNKS calls.

    Equal chunks keep a single compiled shape; one epoch per call when there are few epochs.
    """
    return min(
        d for d in range(1, epochs + 1) if epochs % d == 0 and epochs // d <= PROGRESS_CHUNKS
    )


def _run_chunked(key, program, host, put, epochs, chunk, progress, out_shardings=None):
    """Runs ``program`` (compiled for ``chunk`` epochs) ``epochs // chunk`` times.

    ``host`` holds the run's arguments on the host; the constant ones are placed once, the plan's
    slice for each call as it comes (split over the mesh like the whole plan would be).
    """
    params, opt_state, data, eval_data, idx, mask, noise_key, _ = host
    params, opt_state, eval_data, noise_key = map(put, (params, opt_state, eval_data, noise_key))
    data = put(data, 0 if idx is None else None)
    steps = 1 if idx is None else idx.shape[1]

    def piece(a, i):
        return None if a is None else put(a[i * chunk : (i + 1) * chunk], 2)

    def first_step(i):  # the global number of chunk i's first step (its noise keys)
        return put(np.asarray(i * chunk * steps, np.int32))

    first = (params, opt_state, data, eval_data, piece(idx, 0), piece(mask, 0))
    first = (*first, noise_key, first_step(0))
    exe, compile_s = compile_once(
        (*key, chunk, "chunk"), program, *first, out_shardings=out_shardings
    )
    losses, per_epoch, run_s = [], [], 0.0
    metrics = {}
    for i in range(epochs // chunk):
        call = (params, opt_state, data, eval_data, piece(idx, i), piece(mask, i))
        call = (*call, noise_key, first_step(i))
        (params, opt_state, chunk_losses, chunk_epochs, metrics), seconds = timed_call(exe, *call)
        run_s += seconds
        losses.append(to_numpy(chunk_losses))
        per_epoch.append(to_numpy(chunk_epochs))
        progress((i + 1) * chunk, epochs, float(np.mean(losses[-1])))
    losses = np.concatenate(losses)
    per_epoch = jax.tree.map(lambda *xs: np.concatenate(xs), *per_epoch)
    return (params, opt_state, losses, per_epoch, metrics), run_s, compile_s


def _program(trainer: Trainer, opt, epochs: int, steps: int) -> Callable:
    """The whole run as one pure function of its inputs (what gets compiled)."""

    def program(params, opt_state, data, eval_data, idx, mask, noise_key, first_step):
        count_trace(trainer.tutorial)
        epoch_eval = None
        if trainer.epoch_eval is not None:
            epoch_eval = functools.partial(trainer.epoch_eval, eval_data=eval_data)
        final, opt_state, losses, per_epoch = fit(
            trainer.loss,
            opt,
            params,
            opt_state,
            data,
            idx=idx,
            mask=mask,
            epochs=epochs,
            steps_per_epoch=steps,
            epoch_eval=epoch_eval,
            noise=trainer.noise,
            noise_key=noise_key,
            first_step=first_step,
            unroll=trainer.unroll,
        )
        metrics = {} if trainer.evaluate is None else trainer.evaluate(final, eval_data)
        return final, opt_state, losses, per_epoch, metrics

    return program


def _noise_args(experiment: Experiment, first_step: int) -> tuple[Any, Any]:
    """``(noise key, first step)`` program arguments; ``None`` for a model without noise."""
    if experiment.jax.noise is None:
        return None, None
    return np.asarray(jax.random.key_data(prng_key(experiment.seed))), np.asarray(
        first_step, np.int32
    )


def _result(experiment: Experiment, outputs, run_s, compile_s, label) -> RunResult:
    final, _, losses, per_epoch, metrics = outputs
    losses = np.asarray(losses, dtype=np.float64)
    epoch_metrics = {
        "loss": losses.reshape(experiment.epochs, experiment.steps_per_epoch).mean(axis=1)
    }
    epoch_metrics.update({k: np.asarray(v, np.float64) for k, v in per_epoch.items()})
    result = RunResult(
        tutorial=experiment.name,
        framework="jax",
        config=experiment.record(),
        losses=losses,
        epoch_metrics=epoch_metrics,
        metrics={k: float(v) for k, v in metrics.items()},
        params=to_state_dict(final, flatten_chw=dict(experiment.jax.flatten_chw)),
        wall_time_s=run_s,
        compile_time_s=compile_s,
        versions=versions(),
        device=label,
    )
    return result if experiment.finish is None else experiment.finish(result)


@functools.cache
def _vmapped_init(trainer: Trainer, dtype) -> Callable:
    """The jitted, vmapped initialiser of a trainer: built once, so it compiles once per shape."""
    return jax.jit(jax.vmap(lambda key: trainer.init(key, dtype)))


def train_seeds(
    experiment: Experiment, seeds: Sequence[int], *, mesh: Mesh | None = None
) -> list[RunResult]:
    """Trains one independent model per seed in ONE compiled program (``vmap`` over seeds).

    Each seed draws its own initial parameters (JAX, the trainer's init) and follows its own batch
    order (``experiment.with_seed``); the data and hyperparameters are shared. The compiled
    program is the single-seed program vmapped, so per-seed results equal single-seed runs up to
    reduction order. Set-up is linear in the number of seeds: the data are built once, only the
    plans are drawn per seed.

    Args:
      experiment: the shared experiment (its ``seed`` is ignored in favour of ``seeds``).
      seeds: one seed per model.
      mesh: a 1-D ``"data"`` mesh over which the SEED axis is split: each device trains
        ``len(seeds) / devices`` whole models, which must be a whole number.

    Returns:
      One :class:`RunResult` per seed, in order; ``wall_time_s`` and ``compile_time_s`` are the
      totals of the whole vmapped program.
    """
    seeds = list(seeds)
    runs = [experiment.with_seed(s) for s in seeds]
    trainer, epochs, steps = experiment.jax, experiment.epochs, experiment.steps_per_epoch
    if mesh is not None and len(seeds) % mesh.size:
        raise ConfigError(
            f"{len(seeds)} seeds do not split evenly over {mesh.size} devices; use a multiple "
            f"of {mesh.size} seeds"
        )
    with runtime(experiment.dtype, experiment.device, mesh) as device:
        dtype = jnp.dtype(experiment.dtype)
        if trainer.init is None:
            _template(trainer, dtype)  # raises the clear error
        keys = prng_keys(seeds)  # one host-side step: linear in K, no K-operand concatenate
        params = _vmapped_init(trainer, dtype)(keys)
        idx = mask = None
        if experiment.plan is not None:
            idx = np.stack([r.plan.idx for r in runs]).astype(np.int32)
            masks = np.stack([r.plan.mask for r in runs])
            mask = None if masks.all() else masks
        opt = _optimizer(experiment)
        opt_state = jax.vmap(opt.init)(params)
        data, eval_data = jax_arrays((experiment.train, experiment.eval))
        noise_key = None if trainer.noise is None else jax.random.key_data(keys)  # per seed
        first_step = None if trainer.noise is None else np.asarray(0, np.int32)
        host = (params, opt_state, data, eval_data, idx, mask, noise_key, first_step)
        if mesh is None:
            args = jax.device_put(host, device)
            out_shardings = None
        else:  # whole models per device: split the seed axis, replicate the shared data
            put = placer(mesh, device)
            axes = (0, 0, None, None, 0, 0, 0, None)
            args = tuple(put(a, axis) for a, axis in zip(host, axes, strict=True))
            out_shardings = NamedSharding(mesh, P())
        axes = (0, 0, None, None, None if idx is None else 0, None if mask is None else 0)
        axes = (*axes, None if noise_key is None else 0, None)
        program = jax.vmap(_program(trainer, opt, epochs, steps), in_axes=axes)
        exe, compile_s = compile_once(
            ("seeds", trainer, experiment.optimizer.structure_key(), epochs, steps),
            program,
            *args,
            out_shardings=out_shardings,
        )
        outputs, run_s = timed_call(exe, *args)
        outputs = to_numpy(outputs)
    label = device_label(device, mesh)
    return [
        _result(run, jax.tree.map(lambda x, i=i: x[i], outputs), run_s, compile_s, label)
        for i, run in enumerate(runs)
    ]


def evaluate_at(
    trainer: Trainer, config: Any, state_dict: Mapping[str, np.ndarray], batch: Any
) -> dict[str, Any]:
    """Forward output, loss and gradients at given parameters on one batch (parity tiers 1-2).

    Args:
      trainer: the JAX side.
      config: supplies ``dtype`` and ``device`` (a config or an experiment).
      state_dict: parameters in PyTorch names and layouts.
      batch: ``(x, y)`` NumPy arrays in the experiment's layout (labels in any integer dtype).

    Returns:
      ``{"output": array, "loss": float, "grads": state_dict-shaped gradients}`` as NumPy. The
      output is the evaluation-mode forward pass; the loss and gradients are the training step's
      (with the first step's noise, for a model with dropout).
    """
    with jax_runtime(config.dtype, config.device) as device:
        template = _template(trainer, jnp.dtype(config.dtype))
        chw = dict(trainer.flatten_chw)
        params = jax.device_put(from_state_dict(state_dict, template, flatten_chw=chw), device)
        x, y = batch
        if np.issubdtype(np.asarray(y).dtype, np.integer):
            y = np.asarray(y, np.int32)
        x, y = jax.device_put((x, y), device)
        output = jax.jit(trainer.forward)(params, x)
        batch = (x, y)
        if trainer.noise is not None:  # the first step's noise (dropout masks), as in training
            key = jax.random.fold_in(prng_key(config.seed), 0)
            batch = (x, y, trainer.noise(key, x.shape[0], x.dtype))
        loss, grads = jax.jit(jax.value_and_grad(trainer.loss))(params, batch, None)
        return {
            "output": np.asarray(output),
            "loss": float(loss),
            "grads": to_state_dict(to_numpy(grads), flatten_chw=chw),
        }
