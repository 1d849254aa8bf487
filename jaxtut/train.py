"""The shared functional training core: one compiled program per run.

A tutorial supplies a pure ``loss_fn(params, batch, mask) -> scalar`` and its data; :func:`fit`
turns them into a whole training run, epochs and steps as nested ``lax.scan``s, so that the run is
traced and compiled once and executes without returning to Python. Batches are gathered on the
device from index arrays (:class:`jaxtut.data.BatchPlan`) that the PyTorch reference consumes too,
which is what makes the two frameworks see the same samples in the same order.

A short last batch is padded to the full batch size with a mask, so every step has one static
shape; the loss divides by the number of real samples and matches PyTorch's mean over the short
batch.

Scaling out uses JAX's own machinery only. :func:`run_training_seeds` ``vmap``s the single-seed
program over seeds. Given a 1-D :class:`~jax.sharding.Mesh` with axis ``"data"`` (the ``mesh``
argument, or :func:`data_parallel` around a tutorial's run function), the same program is compiled
for ``NamedSharding``-placed inputs: parameters and optimizer state replicated, every batch split
over the devices (each device gathers its slice of the global batch), so the loss, a sum over the
global batch divided by the global count, and its gradient are those of the single-device run. The
mesh may span several processes (:mod:`jaxtut.distributed`); each then feeds only its slice of
every batch. See ``docs/scaling.md``.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import functools
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxtut.configs import TrainConfig
from jaxtut.convert import from_state_dict, to_state_dict
from jaxtut.data.batching import BatchPlan
from jaxtut.errors import ConfigError, DeviceError
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


# --- Data parallelism over a mesh of devices ------------------------------------------------

DATA_AXIS = "data"
_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar("jaxtut_mesh", default=None)


@contextlib.contextmanager
def data_parallel(mesh: Mesh | None) -> Iterator[Mesh | None]:
    """Trains every :func:`run_training` / :func:`run_training_seeds` call in the block on ``mesh``.

    This is how a tutorial's own run function, which knows nothing of meshes, runs data-parallel:
    ``with data_parallel(mesh): tutorial.run("jax", config)``. ``None`` changes nothing.

    Args:
      mesh: a 1-D :class:`~jax.sharding.Mesh` whose axis is named ``"data"`` (see
        :func:`jaxtut.scaling.device_mesh`), or ``None``.
    """
    token = _MESH.set(mesh)
    try:
        yield mesh
    finally:
        _MESH.reset(token)


@contextlib.contextmanager
def _runtime(config: TrainConfig, mesh: Mesh | None) -> Iterator[jax.Device]:
    """:func:`jax_runtime` for one device; for a mesh, the same scopes on a device of this process.

    Under a mesh that spans processes, ``jax.devices()[0]`` may belong to another process, so the
    default device (where initial parameters are drawn before being replicated) is this process's
    first device of the mesh.
    """
    if mesh is None:
        with jax_runtime(config.dtype, config.device) as device:
            yield device
        return
    if mesh.axis_names != (DATA_AXIS,):
        raise ConfigError(
            f"a data-parallel mesh must be 1-D with the axis {DATA_AXIS!r}, got {mesh.axis_names}"
        )
    devices = list(mesh.devices.flat)
    platforms = sorted({d.platform for d in devices})
    if platforms != [config.device]:
        raise DeviceError(
            f"the mesh holds {', '.join(platforms)} devices but the run asks for {config.device}"
        )
    local = [d for d in devices if d.process_index == jax.process_index()]
    with (
        jax.enable_x64(config.dtype == "float64"),
        jax.default_device(local[0]),
        jax.default_matmul_precision("highest"),
    ):
        yield local[0]


def _device_label(device: jax.Device, mesh: Mesh | None) -> str:
    """``cpu:0`` for one device; ``cpu x8 (mesh 'data')`` (and the process count) for a mesh."""
    if mesh is None:
        return f"{device.platform}:{device.id}"
    processes = len({d.process_index for d in mesh.devices.flat})
    where = f", {processes} processes" if processes > 1 else ""
    return f"{device.platform} x{mesh.size} (mesh {DATA_AXIS!r}{where})"


def _check_split(mesh: Mesh, trainer: Trainer, train_data: Any, idx, data_axis) -> None:
    """Fails with a clear message when the batches (or samples) do not split evenly over ``mesh``.

    Splitting unevenly would need padding that changes nothing of the loss but costs a masked
    slot per device; a clear error is simpler to reason about, and every default batch size
    (64, 100) splits over 1, 2 and 4 devices, 64 over 8 too.
    """
    n = mesh.size
    if idx is not None and idx.shape[-1] % n:
        size = idx.shape[-1]
        raise ConfigError(
            f"a batch of {size} samples does not split evenly over {n} devices; use a batch size "
            f"that is a multiple of {n} (e.g. --batch-size {-(-size // n) * n}) or "
            f"--devices dividing {size}"
        )
    if data_axis is not None:
        samples = len(jax.tree.leaves(train_data)[0])
        if samples % n:
            raise ConfigError(
                f"{trainer.tutorial} trains on all {samples} samples in every step, which do not "
                f"split evenly over {n} devices; use --devices dividing {samples}"
            )


def _placer(mesh: Mesh | None, device: jax.Device) -> Callable[..., Any]:
    """``put(tree, axis=None)``: places a pytree of host arrays for the run.

    Without a mesh, everything goes to ``device``. With one, ``axis=None`` replicates each leaf
    and an integer splits that axis over the mesh's ``"data"`` axis.
    """
    if mesh is None:
        return lambda tree, axis=None: jax.device_put(tree, device)

    def put(tree, axis=None):
        spec = P() if axis is None else P(*(None,) * axis, DATA_AXIS)
        sharding = NamedSharding(mesh, spec)
        return jax.tree.map(lambda x: _put(np.asarray(x), sharding), tree)

    return put


def _put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """``x`` (the same host array in every process) placed with ``sharding``.

    In one process this is ``jax.device_put``. Across processes, each process feeds only its own
    block (``jax.make_array_from_process_local_data``): its slice of every global batch, or the
    whole array when it is replicated.
    """
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    return jax.make_array_from_process_local_data(sharding, _process_block(x, sharding), x.shape)


def _process_block(x: np.ndarray, sharding: NamedSharding) -> np.ndarray:
    """The block of ``x`` that this process's devices hold (contiguous on a 1-D mesh)."""
    blocks = list(sharding.addressable_devices_indices_map(x.shape).values())
    index = []
    for axis, size in enumerate(x.shape):
        ranges = sorted({b[axis].indices(size)[:2] for b in blocks})
        lo, hi = ranges[0][0], ranges[-1][1]
        if sum(stop - start for start, stop in ranges) != hi - lo:
            raise ValueError(f"this process's devices hold a non-contiguous block of axis {axis}")
        index.append(slice(lo, hi))
    return x[tuple(index)]


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


@dataclasses.dataclass(frozen=True)
class TrainingCall:
    """The arguments of one :func:`run_training` call, as :func:`intercept_runs` hands them on."""

    trainer: Trainer
    config: TrainConfig
    train_data: Any
    eval_data: Any
    plan: BatchPlan | None
    init_params: Mapping[str, np.ndarray] | None
    extras: Callable[[Any], dict[str, Any]] | None
    mesh: Mesh | None


_INTERCEPT: contextvars.ContextVar[Callable[[TrainingCall], RunResult] | None] = (
    contextvars.ContextVar("jaxtut_intercept", default=None)
)


@contextlib.contextmanager
def intercept_runs(handler: Callable[[TrainingCall], RunResult]) -> Iterator[None]:
    """Hands every :func:`run_training` call made in the block to ``handler`` instead.

    A tutorial's run function prepares its data, plan and extras, calls :func:`run_training` and
    post-processes the result. :mod:`jaxtut.scaling` trains many seeds of any tutorial in one
    program by intercepting those calls: first to collect what each seed would train, then to hand
    each seed's result back to the tutorial's post-processing. While ``handler`` runs, calls are
    not intercepted.
    """
    token = _INTERCEPT.set(handler)
    try:
        yield
    finally:
        _INTERCEPT.reset(token)


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
    mesh: Mesh | None = None,
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
      mesh: a 1-D mesh with axis ``"data"`` to train data-parallel on (default: the mesh of an
        enclosing :func:`data_parallel` block, else one device). Every batch is split evenly over
        the mesh's devices (a batch size that is not a multiple of the device count is a
        :class:`~jaxtut.errors.ConfigError`); a full-batch run (``plan=None``) splits the samples
        of ``train_data`` instead. Parameters, optimizer state and ``eval_data`` are replicated.
    """
    mesh = _MESH.get() if mesh is None else mesh
    handler = _INTERCEPT.get()
    if handler is not None:
        call = TrainingCall(trainer, config, train_data, eval_data, plan, init_params, extras, mesh)
        token = _INTERCEPT.set(None)
        try:
            return handler(call)
        finally:
            _INTERCEPT.reset(token)
    epochs = plan.epochs if plan is not None else config.epochs
    steps = plan.steps_per_epoch if plan is not None else 1
    with _runtime(config, mesh) as device:
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
        # Where each argument lives under a mesh: the axis split over the devices, or None for
        # replicated. Batches are split (each device gathers its slice of every global batch from
        # the replicated data); a full-batch run has no batches, so its samples are split.
        data_axis = 0 if plan is None else None
        axes = (None, None, None, data_axis, None, 2, 2)
        if mesh is not None:
            _check_split(mesh, trainer, train_data, idx, data_axis)
        put = _placer(mesh, device)
        host = (params, opt_state, hparams, train_data, eval_data, idx, mask)
        out_shardings = None if mesh is None else NamedSharding(mesh, P())
        chunk = epochs if progress is None else _chunk_epochs(epochs)
        program = _program(trainer, chunk, steps)
        if chunk == epochs:
            args = tuple(put(a, axis) for a, axis in zip(host, axes, strict=True))
            exe, compile_s = compile_once(
                (trainer, epochs, steps), program, *args, out_shardings=out_shardings
            )
            outputs, run_s = timed_call(exe, *args)
            if progress is not None:
                progress(epochs, epochs, float(np.mean(np.asarray(outputs[2]))))
        else:
            outputs, run_s, compile_s = _run_chunked(
                trainer, program, host, put, epochs, chunk, progress, out_shardings
            )
        outputs = to_numpy(outputs)
    label = _device_label(device, mesh)
    return _result(trainer, config, outputs, epochs, steps, run_s, compile_s, label, extras)


# A run with a progress callback is cut into at most this many calls of one compiled program.
PROGRESS_CHUNKS = 20


def _chunk_epochs(epochs: int) -> int:
    """The fewest epochs per call that divide ``epochs`` into at most PROGRESS_CHUNKS calls.

    Equal chunks keep a single compiled shape; one epoch per call when there are few epochs.
    """
    return min(
        d for d in range(1, epochs + 1) if epochs % d == 0 and epochs // d <= PROGRESS_CHUNKS
    )


def _run_chunked(trainer, program, host, put, epochs, chunk, progress, out_shardings=None):
    """Runs ``program`` (compiled for ``chunk`` epochs) ``epochs // chunk`` times.

    ``host`` holds the run's arguments on the host; the constant ones are placed once, the plan's
    slice for each call as it comes (split over the mesh like the whole plan would be).
    """
    params, opt_state, hparams, data, eval_data, idx, mask = host
    params, opt_state, hparams, eval_data = map(put, (params, opt_state, hparams, eval_data))
    data = put(data, 0 if idx is None else None)

    def piece(a, i):
        return None if a is None else put(a[i * chunk : (i + 1) * chunk], 2)

    first = (params, opt_state, hparams, data, eval_data, piece(idx, 0), piece(mask, 0))
    exe, compile_s = compile_once(
        (trainer, chunk, "chunk"), program, *first, out_shardings=out_shardings
    )
    losses, per_epoch, run_s = [], [], 0.0
    metrics = {}
    for i in range(epochs // chunk):
        call = (params, opt_state, hparams, data, eval_data, piece(idx, i), piece(mask, i))
        (params, opt_state, chunk_losses, chunk_epochs, metrics), seconds = timed_call(exe, *call)
        run_s += seconds
        losses.append(to_numpy(chunk_losses))
        per_epoch.append(to_numpy(chunk_epochs))
        progress((i + 1) * chunk, epochs, float(np.mean(losses[-1])))
    losses = np.concatenate(losses)
    per_epoch = jax.tree.map(lambda *xs: np.concatenate(xs), *per_epoch)
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


def _result(trainer, config, outputs, epochs, steps, run_s, compile_s, device_label, extras):
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
        device=device_label,
        extras={} if extras is None else extras(final),
    )


@functools.cache
def _vmapped_init(trainer: Trainer, dtype) -> Callable:
    """The jitted, vmapped initialiser of a trainer: built once, so it compiles once per shape."""
    return jax.jit(jax.vmap(lambda key: trainer.init(key, dtype)))


def run_training_seeds(
    trainer: Trainer,
    config: TrainConfig,
    train_data: Any,
    *,
    seeds: list[int],
    plans: list[BatchPlan] | None = None,
    eval_data: Any = None,
    extras: Callable[[Any], dict[str, Any]] | list[Callable | None] | None = None,
    mesh: Mesh | None = None,
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
      extras: as for :func:`run_training`, one for all seeds or one per seed.
      mesh: a 1-D ``"data"`` mesh (default: that of an enclosing :func:`data_parallel` block)
        over which the SEED axis is split: each device trains ``len(seeds) / devices`` whole
        models, which must be a whole number.

    Returns:
      One :class:`RunResult` per seed, in order; ``wall_time_s`` and ``compile_time_s`` are the
      totals of the whole vmapped program.
    """
    mesh = _MESH.get() if mesh is None else mesh
    epochs = plans[0].epochs if plans else config.epochs
    steps = plans[0].steps_per_epoch if plans else 1
    if mesh is not None and len(seeds) % mesh.size:
        raise ConfigError(
            f"{len(seeds)} seeds do not split evenly over {mesh.size} devices; use a multiple "
            f"of {mesh.size} seeds"
        )
    with _runtime(config, mesh) as device:
        dtype = jnp.dtype(config.dtype)
        keys = jnp.stack([jax.random.key(s) for s in seeds])
        params = _vmapped_init(trainer, dtype)(keys)
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
        host = (params, opt_state, hparams, train_data, eval_data, idx, mask)
        if mesh is None:
            args = jax.device_put(host, device)
            out_shardings = None
        else:  # whole models per device: split the seed axis, replicate the shared data
            put = _placer(mesh, device)
            axes = (0, 0, None, None, None, 0, 0)
            args = tuple(put(a, axis) for a, axis in zip(host, axes, strict=True))
            out_shardings = NamedSharding(mesh, P())
        axes = (0, 0, None, None, None, None if idx is None else 0, None if mask is None else 0)
        program = jax.vmap(_program(trainer, epochs, steps), in_axes=axes)
        exe, compile_s = compile_once(
            ("seeds", trainer, epochs, steps), program, *args, out_shardings=out_shardings
        )
        outputs, run_s = timed_call(exe, *args)
        outputs = to_numpy(outputs)
    label = _device_label(device, mesh)
    per_seed_extras = extras if isinstance(extras, list) else [extras] * len(seeds)
    results = []
    for i, seed in enumerate(seeds):
        one = jax.tree.map(lambda x, i=i: x[i], outputs)
        one_config = config.replace(seed=seed)
        results.append(
            _result(
                trainer, one_config, one, epochs, steps, run_s, compile_s, label, per_seed_extras[i]
            )
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
