"""``jaxtut.compare``: prove that a PyTorch model and its JAX port train the same.

A researcher hands over what their torch script builds (the model, its current parameters being
the shared start; a criterion; an optimizer, optionally with a scheduler) and the JAX port (an
``nnx.Module`` or a pure ``apply(params, x)``), plus the data as NumPy arrays. :func:`compare`
turns them into one :class:`~jaxtut.experiment.Experiment`, the contract every catalogue tutorial
is built on, and runs the parity method on it:

* **tier 0, structure**: every ``state_dict`` entry maps onto a JAX parameter of the same shape
  (automatically for the layers :mod:`jaxtut.convert` knows, or through the user's ``convert``
  hook), nothing is left over, and the outputs have the same shape;
* **tier 1, forward** and **tier 2, gradients**: at the shared start, on the first batch, read
  from the JAX run's own step 0 (one compiled program serves tiers 1-3). A gradient that vanishes
  on both sides (a bias right before a BatchNorm) is rounding noise and is measured against the
  model's largest gradient (``VANISHING_ULPS``);
* **tier 3, trajectory**: both frameworks train in lock step on the same batches (one
  :class:`~jaxtut.data.BatchPlan`), and every step's loss and every parameter after every step
  are compared. The tolerance is the suite's (float64: 1e-10 relative; float32: 1e-5, held over
  the first 100 steps as in the parity suite) raised, step by step, to ``ULP_FACTOR`` times the
  spread that torch itself shows when its start moves by one ulp: a chaotic trajectory is held to
  what the problem allows, and a bug at step 3 is still caught at step 3;
* **sensitivity**: the JAX side is run again with its learning rate off by 1%; the same comparison
  must reject it, which proves the check can fail on this very problem;
* **tier 4** (``seeds=K``): K independent initialisations per framework (JAX from its own
  ``init``, torch re-drawing with ``reset_parameters``) and Welch's t-test on the final losses.

Stateful layers are mapped automatically in an ``nnx.Module`` port:

* **BatchNorm** (:class:`jaxtut.layers.BatchNorm1d`/``2d``, ``nnx.BatchStat`` variables): the JAX
  step carries ``(params, batch_stats, opt_state)``; both sides train in training mode (batch
  statistics, running ones updated), and the running statistics and ``num_batches_tracked`` are
  compared with torch's buffers of the same name (``bn1.running_mean``) after every step, as their
  own tier-3 check. Tier 1 is the training-mode forward on the first batch with step 0's dropout
  masks (the very computation of step 0), plus an evaluation-mode forward at the shared start's
  running statistics; tier 3 ends with an evaluation-mode forward after training.
* **Dropout**: no seed makes the two generators agree, so the masks are shared. The torch copies
  get a :class:`~jaxtut.torch_ref.layers.SharedDropout` of the same ``p`` for every ``nn.Dropout``
  (the user's model is never touched); the port's ``jaxtut.layers.Dropout`` and
  ``flax.nnx.Dropout`` layers, matched by module path, are wrapped in :class:`MaskedDropout`, whose
  mask is an explicit input of the jitted step. Masks are drawn per step and layer with NumPy
  (``default_rng((seed, step, layer))``) in the JAX layout and moved channels-first for torch
  where the shapes the two sides see (torch hooks; a JAX tracing pass) say so; an ambiguous or
  mismatched layout is a tier-0 failure, never a guess. Every run of tiers 1-3 (torch, its
  one-ulp twin, JAX and the sensitivity twin) uses the same masks; tier 4 draws independent
  ones per framework. Randomness that compare cannot see (a functional ``F.dropout`` in a torch
  ``forward``) makes two torch passes with the same masks differ: a tier-0 failure.

The result is a :class:`~jaxtut.compare_report.CompareReport` whose verdict names the first
diverging tier, step and leaf.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxtut import layers
from jaxtut.compare_port import (
    DropoutSite,
    Port,
    leaves,
    resolve_port,
    shared_dropout_copy,
)
from jaxtut.compare_report import (
    Check,
    CompareReport,
    StepSeries,
    envelope,
    trajectory_check,
)
from jaxtut.errors import ConfigError
from jaxtut.experiment import Experiment, TorchSide, Trainer
from jaxtut.runtime import DTYPES, versions

# The parity suite's stated tolerances (jaxtut.parity.TOLERANCES) and its one-ulp rule.
TOLERANCES = {
    "float64": {"forward": 1e-12, "grads": 1e-12, "trajectory": 1e-10},
    "float32": {"forward": 1e-6, "grads": 1e-5, "trajectory": 1e-5},
}
ULP_FACTOR = 4.0
# float32 trajectories drift apart chaotically after a while; the suite holds their first 100
# steps to the stated tolerance (later steps are reported, not judged), and so does compare.
FLOAT32_JUDGED_STEPS = 100
# The sensitivity twin: the JAX side's learning rate times this must be rejected.
SENSITIVITY_LR_FACTOR = 1.01
# Tier 4: reject "same distribution of final losses" below this p-value.
TIER4_ALPHA = 0.01
# Two torch training-mode passes with the same masks differing by more than this (relative to
# the output's largest entry) have randomness compare cannot share: a dropped unit moves the
# output by O(1), nondeterministic GPU reductions by ~1e-7.
HIDDEN_RANDOMNESS = 1e-3
# Tier 2: a gradient leaf below this many ulp of the model's largest gradient, on both sides, is
# rounding noise (a bias right before a BatchNorm has a zero gradient in exact arithmetic; both
# frameworks give ~1e-16 of the largest in float64, ~1e-7 in float32).
VANISHING_ULPS = 100


def _arrays(data: Any, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` as NumPy: floats in the run's dtype, integer labels as int64; checked."""
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise ConfigError("data must be a pair (x, y) of arrays with one sample per row")
    x, y = (np.asarray(a) for a in data)
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(
            f"x and y must hold the same number (> 0) of samples, got {len(x)} and {len(y)}"
        )
    out = []
    for name, a in (("x", x), ("y", y)):
        if np.issubdtype(a.dtype, np.floating):
            if not np.all(np.isfinite(a)):
                bad = int(np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).any(axis=1))[0])
                raise ConfigError(f"data {name} holds NaN or inf (first at sample {bad})")
            out.append(a.astype(dtype))
        elif np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
            out.append(a.astype(np.int64))
        else:
            raise ConfigError(f"data {name} must be numeric, got dtype {a.dtype}")
    return out[0], out[1]


@dataclasses.dataclass(frozen=True)
class Objective:
    """The JAX training loss of a port, in the experiment contract's form and the harness's.

    Called as the contract's ``loss(params, batch, mask)`` it returns the training-mode loss;
    ``batch`` is ``(x, y)`` or ``(x, y, (batch_stats, masks))`` (the contract's slot for per-step
    inputs). :meth:`with_output` also returns the output and the updated running statistics,
    which the harness's step carries.

    Attributes:
      apply: the port's ``(params, batch_stats, masks, x, *, train) -> (output, batch_stats)``.
      loss: ``(output, target) -> scalar``, the criterion's translation (or ``jax_loss``).
    """

    apply: Callable[..., tuple[Any, Any]]
    loss: Callable[[Any, Any], Any]

    def with_output(self, params, stats, masks, x, y):
        """``(loss, (output, updated batch_stats))`` of one training-mode pass with ``masks``."""
        out, stats = self.apply(params, stats, masks, x, train=True)
        return self.loss(out, y), (out, stats)

    def __call__(self, params, batch, mask=None):
        if mask is not None:
            raise ConfigError("compare runs its batches unpadded; a mask is never passed")
        x, y, *state = batch
        stats, masks = state[0] if state else ({}, None)
        return self.with_output(params, stats, masks, x, y)[0]

    def forward(self, params, x):
        """The contract's ``forward``: evaluation mode, for a port without running statistics."""
        return self.apply(params, {}, None, x, train=False)[0]


def build_experiment(
    model: Any,
    port: Port,
    data: Any,
    *,
    loss: Any,
    optimizer: Any,
    scheduler: Any = None,
    jax_loss: Callable[[Any, Any], Any] | None = None,
    batch_size: int | None,
    epochs: int,
    seed: int,
    dtype: str,
    device: str,
    shuffle: bool,
    name: str,
) -> Experiment:
    """The :class:`~jaxtut.experiment.Experiment` of a user's pair (the catalogue's contract)."""
    from jaxtut import losses
    from jaxtut.data.batching import sequential_batches, shuffled_batches
    from jaxtut.optim import spec_from_torch

    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    x, y = _arrays(data, dtype)
    n = len(x)
    if batch_size is None:
        plan = None  # full batch: every step sees all samples
        steps_per_epoch = 1
    else:
        if shuffle:
            plan = shuffled_batches(n, batch_size, epochs, seed)
        else:
            plan = sequential_batches(n, batch_size, epochs)
        steps_per_epoch = plan.steps_per_epoch
    spec = spec_from_torch(
        optimizer, scheduler, steps_per_epoch=steps_per_epoch, named_parameters=model
    )
    criterion = loss
    jloss = jax_loss if jax_loss is not None else losses.from_criterion(criterion)
    objective = Objective(port.apply, jloss)
    trainer = Trainer(tutorial=name, init=None, loss=objective, forward=objective.forward)
    paths = tuple(site.path for site in port.dropouts)
    side = TorchSide(
        model=functools.partial(shared_dropout_copy, model, paths), criterion=lambda: criterion
    )
    return Experiment(
        name=name,
        jax=trainer,
        train=(x, y),
        plan=plan,
        optimizer=spec,
        epochs=epochs,
        dtype=dtype,
        device=device,
        seed=seed,
        torch=side,
    )


# --- Running the pair in lock step -------------------------------------------------------------


class _TorchRun:
    """One torch trajectory: a copy of the model from given parameters, stepped on demand.

    The copy's shared dropout layers (``sites``) take their masks from :meth:`forward`'s
    argument, through forward pre-hooks that hand each call its mask in call order.
    """

    def __init__(
        self,
        experiment: Experiment,
        state_dict: Mapping[str, np.ndarray],
        device,
        sites: Sequence[str] = (),
    ):
        from jaxtut.torch_ref.train import build

        self.model = build(experiment, state_dict, device)  # the dtype, then these parameters
        self.model.train()
        self.criterion = experiment.torch.criterion()
        self.optimizer = experiment.optimizer.to_torch(self.model)
        self._queues: dict[str, list[np.ndarray]] = {path: [] for path in sites}
        for path in sites:
            layer = self.model.get_submodule(path)
            layer.register_forward_pre_hook(functools.partial(self._feed, path))

    def _feed(self, path: str, layer: Any, args: Any) -> None:
        if not layer.training:
            return  # evaluation mode: the identity, no mask
        queue = self._queues[path]
        if not queue:
            raise ConfigError(f"torch ran dropout {path} more often than when it was traced")
        layer.set_mask(queue.pop(0))

    def forward(self, x, masks: Mapping[str, Sequence[np.ndarray]]):
        """The training-mode output, each shared dropout applying ``masks[path]`` in call order."""
        for path, queue in self._queues.items():
            queue[:] = list(masks.get(path, ()))
        out = self.model(x)
        left = [path for path, queue in self._queues.items() if queue]
        if left:
            raise ConfigError(f"torch ran dropout {left[0]} fewer times than when it was traced")
        return out

    def step(self, x, y, masks: Mapping[str, Sequence[np.ndarray]]) -> float:
        self.optimizer.zero_grad()
        loss = self.criterion(self.forward(x, masks), y)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def evaluate(self, x) -> np.ndarray:
        """The evaluation-mode output (running statistics, no dropout), nothing updated."""
        import torch

        self.model.eval()
        try:
            with torch.no_grad():
                return self.model(x).cpu().numpy()
        finally:
            self.model.train()

    def dropout_calls(self, x) -> dict[str, list[tuple[int, ...]]]:
        """The input shape of each call of each shared dropout layer in one forward pass."""
        seen: dict[str, list[tuple[int, ...]]] = {path: [] for path in self._queues}

        def record(path, layer, args):
            seen[path].append(tuple(args[0].shape))

        handles = [
            self.model.get_submodule(path).register_forward_pre_hook(
                functools.partial(record, path)
            )
            for path in seen
        ]
        try:
            self.evaluate(x)  # evaluation mode: the same shapes, no statistics updated
        finally:
            for handle in handles:
                handle.remove()
        return seen

    def state_dict(self) -> dict[str, np.ndarray]:
        from jaxtut.torch_ref._common import state_dict_numpy

        return state_dict_numpy(self.model)


class _JaxRun:
    """One JAX trajectory: params, running statistics and optimizer state, one jitted step.

    ``scale`` multiplies every update (1.0; the sensitivity twin's 1.01), an argument of the
    compiled step so that the run and its twin share one compilation. Everything is committed to
    ``device`` from the start, as the step's outputs are, so the step compiles once.
    """

    def __init__(
        self, params: Any, stats: Any, opt: Any, step: Callable, device: Any, scale: float = 1.0
    ):
        self.params, self.stats, self.opt_state = jax.device_put(
            (params, stats, opt.init(params)), device
        )
        self._step = step
        self._scale = scale

    def step(self, x, y, masks: Any) -> float:
        """One step; its output and gradients stay in ``output`` and ``grads`` (tiers 1-2)."""
        self.params, self.stats, self.opt_state, loss, self.output, self.grads = self._step(
            self.params, self.stats, self.opt_state, masks, x, y, self._scale
        )
        return float(loss)


def _jax_step(objective: Objective, opt: Any) -> Callable:
    """The jitted step: ``(params, stats, opt_state, masks, x, y, scale) -> (params, stats,
    opt_state, loss, output, grads)``.

    ``stats`` are the running statistics (``{}`` without BatchNorm); every update is multiplied
    by ``scale`` (``optax.scale`` after the optimizer; times 1.0 is exact). The output and the
    gradients come out too, so that tiers 1-2 read step 0 itself: one compiled program does
    tiers 1-3.
    """
    import optax

    @jax.jit
    def step(params, stats, opt_state, masks, x, y, scale):
        (loss, (out, stats)), grads = jax.value_and_grad(objective.with_output, has_aux=True)(
            params, stats, masks, x, y
        )
        updates, opt_state = opt.update(grads, opt_state, params)
        updates = jax.tree.map(lambda u: u * jnp.asarray(scale, u.dtype), updates)
        return optax.apply_updates(params, updates), stats, opt_state, loss, out, grads

    return step


# --- Shared dropout masks ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Call:
    """One call of a shared dropout layer: the JAX input's shape (masks are drawn in it) and
    whether torch sees it moved channels-first (``(N, *spatial, C)`` -> ``(N, C, *spatial)``)."""

    shape: tuple[int, ...]
    channels_first: bool


def _channels_first(path: str, ts: tuple[int, ...], js: tuple[int, ...]) -> bool:
    """Whether a mask drawn for the JAX input ``js`` reaches torch's ``ts`` moved channels-first.

    Decided from the shapes only; when they cannot tell (torch's shape is its own channels-last
    form, C equal to every spatial size) or fit neither layout, the pair is refused, not guessed.
    """
    moved = (js[0], js[-1], *js[1:-1]) if len(js) > 2 else js
    if js == ts and moved == js and len(js) > 2:
        raise ConfigError(
            f"dropout {path} sees {ts} in both frameworks, which is also its channels-last form: "
            "the shapes cannot tell whether the port is channels-last, so the masks' layout "
            "would be a guess; use data whose spatial size differs from the channel count"
        )
    if js == ts:
        return False
    if moved == ts:
        return True
    raise ConfigError(
        f"dropout {path}: the JAX port's input {js} is neither torch's {ts} nor its channels-last "
        f"form {(ts[0], *ts[2:], ts[1]) if len(ts) > 2 else ts}"
    )


def _times(k: int) -> str:
    return {0: "never", 1: "once"}.get(k, f"{k} times")


def _mask_plan(
    sites: Sequence[DropoutSite],
    torch_calls: Mapping[str, list[tuple[int, ...]]],
    jax_calls: Mapping[str, list[tuple[int, ...]]],
) -> dict[str, tuple[_Call, ...]]:
    """Each shared layer's calls of one batch size; a mismatch is a ConfigError naming it."""
    plan = {}
    for site in sites:
        ts, js = torch_calls.get(site.path, []), jax_calls.get(site.path, [])
        if len(ts) != len(js):
            raise ConfigError(
                f"dropout {site.path}: torch runs it {_times(len(ts))} per forward pass"
                f"{' on ' + str(ts[0]) if ts else ''}, the JAX port {_times(len(js))}"
            )
        plan[site.path] = tuple(
            _Call(j, _channels_first(site.path, t, j)) for t, j in zip(ts, js, strict=True)
        )
    return plan


def _mask_plans(
    experiment: Experiment, port: Port, trun: _TorchRun, params: Any, stats: Any
) -> dict[int, dict[str, tuple[_Call, ...]]]:
    """Batch size -> the plan of the masks of a step of that size (every size the run has)."""
    x_all = experiment.train[0]
    sizes = sorted({len(x_all) if idx is None else len(idx) for idx in _batches(experiment)})
    if not port.dropouts:
        return {n: {} for n in sizes}
    plans = {}
    for n in sizes:
        torch_calls = trun.dropout_calls(_torch_input(x_all[:n], experiment, trun))
        try:
            jax_calls = port.trace_dropouts(params, stats, x_all[:n])
        except Exception as err:  # a shape error inside the user's port
            raise ConfigError(f"JAX forward failed: {err}") from err
        plans[n] = _mask_plan(port.dropouts, torch_calls, jax_calls)
    return plans


def _torch_input(x: np.ndarray, experiment: Experiment, trun: _TorchRun):
    from jaxtut.torch_ref.train import tensors

    return tensors(x, experiment.dtype, next(trun.model.parameters()).device)


def _draw_masks(
    sites: Sequence[DropoutSite],
    plan: Mapping[str, tuple[_Call, ...]],
    seed: int,
    step: int,
    stream: tuple[int, ...] = (),
) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """One step's keep-masks: ``(JAX masks tree, torch path -> masks in call order)``.

    Layer ``i`` draws from ``default_rng((seed, step, i, *stream))`` in the JAX layout (torch's
    ``p``); torch gets the same arrays, moved channels-first where the plan says so. ``stream``
    separates independent draws (tier 4's two frameworks).
    """
    from jaxtut.convert import to_channels_first

    tree: dict[Any, Any] = {}
    torch_masks = {}
    for index, site in enumerate(sites):
        rng = np.random.default_rng((seed, step, index, *stream))
        drawn = [layers.dropout_mask(rng, call.shape, site.p) for call in plan[site.path]]
        torch_masks[site.path] = [
            to_channels_first(m) if call.channels_first else m
            for m, call in zip(drawn, plan[site.path], strict=True)
        ]
        node = tree
        for key in site.jax_path:
            node = node.setdefault(key, {})
        node["mask"] = np.concatenate([m.ravel() for m in drawn]) if drawn else np.zeros(0, bool)
    return tree, torch_masks


def _max_rel(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> tuple[float, str]:
    """The worst leaf of two same-structured flat trees: ``(max relative difference, leaf)``."""
    from jaxtut.parity import compare_arrays

    worst, where = 0.0, ""
    for k in a:
        c = compare_arrays(k, a[k], b[k], 1.0)
        if not c.max_rel <= worst:  # NaN counts as worst
            worst, where = c.max_rel, f"{k} {c.where}"
    return worst, where


def _loss_rel(a: float, b: float, scale: float = 0.0) -> float:
    """``|a - b|`` relative to the larger of ``|a|``, ``|b|`` and ``scale``.

    Tier 3 passes the run's largest loss so far as ``scale``. A loss near zero is ill-conditioned
    in float32: BCE's ``-log(p)`` of a confident ``p = 1 - 1e-3`` turns ``p``'s rounding (6e-8)
    into a relative error of 6e-5. Judged against its own size, such a batch failed an honest
    port (examples/compare_custom_model.py, step 44, loss 1.1e-3: 1.6e-5 > 1e-5 with one torch
    thread); against the run's loss scale it is 2.4e-8, as an output is judged against its
    largest entry.
    """
    if not (np.isfinite(a) and np.isfinite(b)):
        return np.inf
    return abs(a - b) / max(abs(a), abs(b), scale, np.finfo(np.float64).tiny)


def _batches(experiment: Experiment):
    """Every step's sample indices (``None``: all samples), in order."""
    plan = experiment.plan
    for epoch in range(experiment.epochs):
        if plan is None:
            yield None
        else:
            yield from plan.batches(epoch)


def compare_experiment(
    experiment: Experiment,
    port: Port,
    init: Mapping[str, np.ndarray],
    *,
    sensitivity: bool = True,
    jax_optimizer: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> CompareReport:
    """Runs tiers 0-3 and the sensitivity twin on an experiment, from the torch ``init``.

    Args:
      experiment: the pair as an experiment (both sides set; its loss an :class:`Objective`).
      port: the resolved JAX side (its mapping converts ``init`` and every torch snapshot).
      init: the shared start, a NumPy ``state_dict`` (parameters and buffers).
      sensitivity: also run the JAX side with its updates scaled by 1.01 (its learning rate off
        by 1%), which must fail.
      jax_optimizer: the JAX side's own optimizer (an ``optax.GradientTransformation``) instead
        of the translation of the experiment's.
      progress: optional ``(step, steps)`` callback, every 10% of the run.
    """
    import torch

    from jaxtut.parity import compare_arrays
    from jaxtut.runtime import jax_runtime
    from jaxtut.torch_ref._common import torch_runtime
    from jaxtut.torch_ref.train import tensors
    from jaxtut.train import jax_arrays

    dtype = experiment.dtype
    tol = TOLERANCES[dtype]
    checks: list[Check] = []
    report = CompareReport(
        name=experiment.name, dtype=dtype, steps=experiment.num_steps, checks=checks,
        versions=versions(torch=True), config=experiment.record(),
    )  # fmt: skip
    start = time.perf_counter()
    objective: Objective = experiment.jax.loss
    sites = port.dropouts
    paths = tuple(site.path for site in sites)

    def structure_failed(where: str) -> CompareReport:
        checks.append(Check(0, "structure", False, where=where))
        return report.finish(time.perf_counter() - start)

    with jax_runtime(dtype, experiment.device) as jdev, torch_runtime(experiment) as tdev:
        # --- tier 0: structure --------------------------------------------------------------
        try:
            params0 = _on_device(port.to_jax(init), dtype, jdev)
            stats0 = _on_device(port.stats_to_jax(init), dtype, jdev)
        except ConfigError as err:
            return structure_failed(str(err))
        x_all, y_all = experiment.train
        xt_all, yt_all = tensors((x_all, y_all), dtype, tdev)
        y_jax_all = jax_arrays(y_all)
        first = next(_batches(experiment))
        bx, by = _take(x_all, y_jax_all, first)
        tx, ty = _take(xt_all, yt_all, first, torch)
        t0 = _TorchRun(experiment, init, tdev, paths)
        n_torch = sum(int(p.numel()) for p in t0.model.parameters())
        n_jax = sum(int(np.size(v)) for v in jax.tree.leaves(params0))
        n_stats = sum(int(np.size(v)) for v in jax.tree.leaves(stats0))
        try:
            plans = _mask_plans(experiment, port, t0, params0, stats0)
        except ConfigError as err:
            return structure_failed(str(err))
        masks_j, masks_t = _draw_masks(sites, plans[len(bx)], experiment.seed, 0)
        stateful = bool(sites) or n_stats > 0
        # Evaluation mode first: the training-mode passes below update t0's running statistics.
        eval_t = t0.evaluate(tx) if stateful else None
        out_t = t0.forward(tx, masks_t)  # training mode, step 0's masks: step 0's computation
        with torch.no_grad():
            again = t0.forward(tx, masks_t).cpu().numpy()
        hidden = compare_arrays(
            "output", again, out_t.detach().cpu().numpy(), HIDDEN_RANDOMNESS, scaled=True
        )
        if not hidden.passed:
            return structure_failed(
                f"the torch forward pass is random beyond its nn.Dropout layers: two "
                f"training-mode passes with the same masks differ by {hidden.max_rel:.2e} "
                f"(output {hidden.where}); a functional F.dropout (or other sampling) in forward "
                "is invisible to compare, which can only share the masks of nn.Dropout modules"
            )
        try:  # traced only (nothing compiled yet): the output's shape, or the port's error
            out_j = jax.eval_shape(
                functools.partial(port.apply, train=True), params0, stats0, masks_j, bx
            )[0]
        except Exception as err:  # a shape error inside the user's apply, reported as tier 0
            return structure_failed(f"JAX forward failed: {err}")
        shape_ok = tuple(out_j.shape) == tuple(out_t.shape) and n_torch == n_jax
        stats_note = f", {n_stats} running statistics" if n_stats else ""
        checks.append(
            Check(
                0, "structure", shape_ok,
                where=f"{n_jax} parameters in {len(jax.tree.leaves(params0))} arrays"
                f"{stats_note}; output {tuple(out_j.shape)} (torch {tuple(out_t.shape)}, "
                f"{n_torch} parameters){_masks_note(plans[len(bx)])}",
            )
        )  # fmt: skip
        if not shape_ok:
            return report.finish(time.perf_counter() - start)
        # --- tiers 1 and 2 at the shared start, first batch ----------------------------------
        opt = jax_optimizer if jax_optimizer is not None else experiment.optimizer.to_optax()
        step = _jax_step(objective, opt)
        runs = {"jax": _JaxRun(params0, stats0, opt, step, jdev)}
        if sensitivity:
            # Every update times 1.01: for each optimizer here, the learning rate off by 1%.
            runs["twin"] = _JaxRun(params0, stats0, opt, step, jdev, SENSITIVITY_LR_FACTOR)
        try:  # step 0 of the JAX run: its loss, output and gradients are tiers 1 and 2
            loss_j0 = runs["jax"].step(bx, by, masks_j)
        except Exception as err:  # a shape error in the loss, say
            return structure_failed(f"JAX forward failed: {err}")
        out_j, grads_j = np.asarray(runs["jax"].output), runs["jax"].grads
        fwd = compare_arrays(
            "output", out_j, out_t.detach().cpu().numpy(), tol["forward"], scaled=True
        )
        fwd_eval = None
        if stateful:  # evaluated op by op: a one-off call, not worth a compilation
            out_j_eval = np.asarray(port.apply(params0, stats0, None, bx, train=False)[0])
            fwd_eval = compare_arrays("output", out_j_eval, eval_t, tol["forward"], scaled=True)
        hint = ""
        if not fwd.passed and fwd_eval is not None and fwd_eval.passed:
            hint = (
                " (evaluation mode agrees, so training mode differs: a dropout's p or mask "
                "layout, BatchNorm's batch statistics, or randomness compare cannot share)"
            )
        checks.append(
            Check(
                1, "forward output", fwd.passed, fwd.max_rel, fwd.tolerance,
                f"output {fwd.where}{hint}",
            )
        )  # fmt: skip
        if fwd_eval is not None:
            checks.append(
                Check(
                    1, "forward output, evaluation mode", fwd_eval.passed, fwd_eval.max_rel,
                    fwd_eval.tolerance, f"output {fwd_eval.where}, at the start's statistics",
                )
            )  # fmt: skip
        loss_t = t0.criterion(out_t, ty)
        loss_t.backward()
        grads_t = port.to_jax(
            {k: p.grad.detach().cpu().numpy() for k, p in t0.model.named_parameters()}
            | _buffers(t0.model)
        )
        rel = _loss_rel(loss_j0, float(loss_t.item()))
        checks.append(Check(1, "loss", rel <= tol["forward"], rel, tol["forward"], "first batch"))
        # grads_t/grads_j: every parameter's gradient on the first batch, in the JAX layout.
        g_rel, g_where = _compare_grads(
            _named(leaves(grads_j), port), _named(leaves(grads_t), port), dtype
        )
        checks.append(Check(2, "gradients", g_rel <= tol["grads"], g_rel, tol["grads"], g_where))
        # --- tier 3: lock step -------------------------------------------------------------
        torch_run = _TorchRun(experiment, init, tdev, paths)
        nudged = _TorchRun(experiment, {k: _nudge(v) for k, v in init.items()}, tdev, paths)
        steps = experiment.num_steps
        series = StepSeries.empty(steps, sensitivity)
        stats = _StatsSeries.empty(steps) if n_stats else None
        judged = steps if dtype == "float64" else min(FLOAT32_JUDGED_STEPS, steps)
        every = max(1, steps // 10)
        loss_scale = 0.0  # the largest torch loss so far: _loss_rel's denominator floor
        for i, idx in enumerate(_batches(experiment)):
            jx, jy = _take(x_all, y_jax_all, idx)
            tx, ty = _take(xt_all, yt_all, idx, torch)
            # One draw per step for all four runs: torch, its one-ulp twin, JAX and its twin.
            masks_j, masks_t = _draw_masks(sites, plans[len(jx)], experiment.seed, i)
            series.loss_torch[i] = torch_run.step(tx, ty, masks_t)
            nudged_loss = nudged.step(tx, ty, masks_t)
            # The JAX run's step 0 ran above (tiers 1 and 2 read it), on these very masks.
            series.loss_jax[i] = loss_j0 if i == 0 else runs["jax"].step(jx, jy, masks_j)
            sd, sd_nudged = torch_run.state_dict(), nudged.state_dict()
            snap = _named(leaves(port.to_jax(sd)), port)
            snap_nudged = _named(leaves(port.to_jax(sd_nudged)), port)
            mine = _named(leaves(runs["jax"].params), port)
            if np.isfinite(series.loss_torch[i]):
                loss_scale = max(loss_scale, abs(series.loss_torch[i]))
            series.spread_loss[i] = _loss_rel(series.loss_torch[i], nudged_loss, loss_scale)
            series.spread_params[i], _ = _max_rel(snap, snap_nudged)
            series.rel_loss[i] = _loss_rel(series.loss_jax[i], series.loss_torch[i], loss_scale)
            series.rel_params[i], series.where_params[i] = _max_rel(mine, snap)
            if stats is not None:
                theirs = _named(leaves(port.stats_to_jax(sd)), port)
                stats.spread[i], _ = _max_rel(
                    _named(leaves(port.stats_to_jax(sd_nudged)), port), theirs
                )
                stats.rel[i], stats.where[i] = _max_rel(
                    _named(leaves(runs["jax"].stats), port), theirs
                )
            if sensitivity:
                series.loss_twin[i] = runs["twin"].step(jx, jy, masks_j)
                series.rel_twin[i] = max(
                    _loss_rel(series.loss_twin[i], series.loss_torch[i], loss_scale),
                    _max_rel(_named(leaves(runs["twin"].params), port), snap)[0],
                )
            if progress is not None and (i + 1) % every == 0:
                progress(i + 1, steps)
        series.finish_envelope(tol["trajectory"], ULP_FACTOR)
        checks.extend(series.checks(judged))
        if stats is not None:
            checks.append(stats.check(tol["trajectory"], judged))
            report.extra["running_statistics"] = stats.to_json()
        if stateful:
            # The evaluation path after training: running statistics in use, dropout off. Held
            # to torch's own one-ulp spread on this very output, at least the trajectory's.
            tx_first = _take(xt_all, yt_all, first, torch)[0]
            out_t = torch_run.evaluate(tx_first)
            mine = port.apply(runs["jax"].params, runs["jax"].stats, None, bx, train=False)[0]
            c = compare_arrays("output", np.asarray(mine), out_t, 1.0, scaled=True)
            spread = compare_arrays("output", nudged.evaluate(tx_first), out_t, 1.0, scaled=True)
            bound = max(
                series.tol_params[judged - 1], ULP_FACTOR * spread.max_rel, tol["trajectory"]
            )
            if judged < steps:  # a float32 run past its judged steps: reported, not judged
                passed, note = True, f"; reported, not judged (after step {judged - 1})"
            else:
                passed, note = bool(c.max_rel <= bound), ""
            checks.append(
                Check(
                    3, "evaluation output after training", passed, c.max_rel, bound,
                    f"first batch, output {c.where}{note}", time=None if passed else 2 * steps,
                )
            )  # fmt: skip
    return report.finish(time.perf_counter() - start, series=series)


@dataclasses.dataclass
class _StatsSeries:
    """Per-step figures of the running statistics (JAX vs torch, and torch's one-ulp spread)."""

    rel: np.ndarray
    spread: np.ndarray
    where: list[str]

    @classmethod
    def empty(cls, steps: int) -> _StatsSeries:
        return cls(np.full(steps, np.nan), np.full(steps, np.nan), [""] * steps)

    def check(self, stated: float, judged: int) -> Check:
        """The tier-3 verdict, as the parameters': the first step outside the envelope."""
        tol = envelope(self.spread, stated, ULP_FACTOR)
        return trajectory_check(
            "running statistics after every step", self.rel, tol, judged, self.where, offset=1
        )

    def to_json(self) -> dict[str, Any]:
        return {"rel": self.rel.tolist(), "spread": self.spread.tolist(), "where": self.where}


def _compare_grads(
    mine: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray], dtype: str
) -> tuple[float, str]:
    """The worst gradient leaf: ``(max relative difference, where)``.

    Each leaf is measured relative to its largest entry (its small entries are sums of cancelling
    terms). A leaf whose gradient vanishes on both sides (below ``VANISHING_ULPS`` ulp of the
    model's largest gradient: a bias right before a BatchNorm, which the normalisation removes)
    is pure rounding noise of the other leaves' terms, so it is measured relative to the model's
    largest gradient instead.
    """
    from jaxtut.parity import compare_arrays

    if set(mine) != set(theirs):
        return np.inf, f"keys differ: {sorted(set(mine) ^ set(theirs))}"
    top = max(
        (float(np.max(np.abs(v), initial=0.0)) for v in (*mine.values(), *theirs.values())),
        default=0.0,
    )
    vanishing = VANISHING_ULPS * float(np.finfo(dtype).eps) * top
    worst, where = 0.0, ""
    for k in sorted(mine):
        a, b = np.asarray(mine[k], np.float64), np.asarray(theirs[k], np.float64)
        c = compare_arrays(k, a, b, 1.0, scaled=True)
        rel, at = c.max_rel, c.where
        largest = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
        if top > 0 and a.shape == b.shape and largest <= vanishing:
            # c.where is also the largest absolute difference: a leaf's scale is one number.
            rel, at = c.max_abs / top, f"{c.where} (vanishing: relative to the largest gradient)"
        if not rel <= worst:  # NaN counts as worst
            worst, where = rel, f"{k} {at}"
    return worst, where


def _on_device(tree: Any, dtype: str, device: Any) -> Any:
    tree = jax.tree.map(lambda a: jnp.asarray(a, dtype=_param_dtype(a, dtype)), tree)
    return jax.device_put(tree, device)


def _masks_note(plan: Mapping[str, tuple[_Call, ...]]) -> str:
    if not plan:
        return ""
    layouts = [
        path + (" (moved channels-first for torch)" if any(c.channels_first for c in calls) else "")
        for path, calls in plan.items()
    ]
    return "; dropout masks shared: " + ", ".join(layouts)


def _param_dtype(a: Any, dtype: str):
    return np.asarray(a).dtype if np.issubdtype(np.asarray(a).dtype, np.integer) else dtype


def _nudge(v: np.ndarray) -> np.ndarray:
    """One ulp up (floating arrays only): the start of torch's own spread."""
    if not np.issubdtype(v.dtype, np.floating):
        return v
    return np.nextafter(v, np.inf).astype(v.dtype)


def _buffers(model: Any) -> dict[str, np.ndarray]:
    """Buffers (BatchNorm statistics) as zeros: gradients have none, the mapping wants all keys."""
    return {k: np.zeros(tuple(b.shape), np.float64) for k, b in model.named_buffers()}


def _named(flat: Mapping[str, np.ndarray], port: Port) -> dict[str, np.ndarray]:
    return {port.names.get(k, k): v for k, v in flat.items()}


def _take(x, y, idx, torch=None):
    if idx is None:
        return x, y
    if torch is not None:
        i = torch.from_numpy(idx).to(x.device)
        return x[i], y[i]
    return x[idx], y[idx]


# --- Tier 4 -------------------------------------------------------------------------------------


def _final_loss(losses: Sequence[float], steps_per_epoch: int) -> float:
    return float(np.mean(losses[-steps_per_epoch:]))


def tier4(
    experiment: Experiment, model: Any, port: Port, seeds: int
) -> tuple[Check, dict[str, Any]]:
    """K independent initialisations per framework; Welch's t-test on the final losses.

    Dropout masks are independent too: seed ``k``'s JAX run draws from
    ``default_rng((k, step, layer, 1))``, its torch run from ``(k, step, layer, 2)``; the
    running statistics start where each framework's fresh layers start (torch's
    ``reset_parameters`` resets them; JAX takes those values).
    """
    import scipy.stats
    import torch

    from jaxtut.convert import cast_state_dict
    from jaxtut.runtime import jax_runtime, prng_key
    from jaxtut.torch_ref._common import state_dict_numpy, torch_runtime
    from jaxtut.torch_ref.train import tensors
    from jaxtut.train import jax_arrays

    if port.init is None:
        raise ConfigError("tier 4 (seeds=K) needs the JAX port's own init=key -> params")
    jax_final, torch_final = [], []
    dtype = experiment.dtype
    sites = port.dropouts
    paths = tuple(site.path for site in sites)
    with jax_runtime(dtype, experiment.device) as jdev, torch_runtime(experiment) as tdev:
        x_all, y_all = experiment.train
        y_jax = jax_arrays(y_all)
        xt, yt = tensors((x_all, y_all), dtype, tdev)
        opt = experiment.optimizer.to_optax()
        step = _jax_step(experiment.jax.loss, opt)
        start = cast_state_dict(state_dict_numpy(model), dtype)
        plans = _mask_plans(
            experiment, port, _TorchRun(experiment, start, tdev, paths),
            _on_device(port.to_jax(start), dtype, jdev),
            _on_device(port.stats_to_jax(start), dtype, jdev),
        )  # fmt: skip
        for s in range(seeds):
            torch.manual_seed(s)
            fresh = copy.deepcopy(model)
            for m in fresh.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            fresh_sd = cast_state_dict(state_dict_numpy(fresh), dtype)
            stats = _on_device(port.stats_to_jax(fresh_sd), dtype, jdev)
            params = _on_device(port.init(prng_key(s)), dtype, jdev)  # in the run's dtype
            run = _JaxRun(params, stats, opt, step, jdev)
            trun = _TorchRun(experiment, fresh_sd, tdev, paths)
            jax_losses, torch_losses = [], []
            for i, idx in enumerate(_batches(experiment)):
                jx, jy = _take(x_all, y_jax, idx)
                plan = plans[len(jx)]
                jax_losses.append(run.step(jx, jy, _draw_masks(sites, plan, s, i, (1,))[0]))
                tx, ty = _take(xt, yt, idx, torch)
                torch_losses.append(trun.step(tx, ty, _draw_masks(sites, plan, s, i, (2,))[1]))
            jax_final.append(_final_loss(jax_losses, experiment.steps_per_epoch))
            torch_final.append(_final_loss(torch_losses, experiment.steps_per_epoch))
    a, b = np.asarray(jax_final), np.asarray(torch_final)
    p = float(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue)
    note = (
        f"final loss over {seeds} seeds: jax {a.mean():.6g} ± {a.std(ddof=1):.2g}, "
        f"torch {b.mean():.6g} ± {b.std(ddof=1):.2g}; Welch p = {p:.3f} "
        f"(reject below {TIER4_ALPHA})"
    )
    check = Check(4, "final loss over seeds", p > TIER4_ALPHA, p, TIER4_ALPHA, note)
    return check, {"jax": a.tolist(), "torch": b.tolist(), "p_value": p}


# --- The public entry point ---------------------------------------------------------------------


def compare(
    model: Any,
    apply: Any,
    data: Any,
    *,
    loss: Any,
    optimizer: Any,
    batch_size: int | None = None,
    epochs: int = 1,
    scheduler: Any = None,
    jax_loss: Callable[[Any, Any], Any] | None = None,
    jax_optimizer: Any = None,
    params: Any = None,
    convert: Callable[[Mapping[str, np.ndarray]], Any] | None = None,
    init: Callable[[Any], Any] | None = None,
    seed: int = 0,
    dtype: str = "float64",
    device: str = "cpu",
    shuffle: bool = True,
    seeds: int = 0,
    sensitivity: bool = True,
    name: str = "pair",
    progress: Callable[[int, int], None] | None = None,
) -> CompareReport:
    """Proves that a torch model and its JAX port train the same, step by step.

    Args:
      model: the torch ``nn.Module``; its current parameters are the shared start (it is copied,
        never trained itself).
      apply: the JAX port: an ``nnx.Module`` (its parameters' names mirror the torch ones) or a
        pure ``apply(params, x)`` (plain ``jax.numpy``, NNX via ``nnx.merge``, Linen's
        ``module.apply``). An ``nnx.Module`` may hold :mod:`jaxtut.layers` BatchNorm statistics
        (compared with torch's buffers of the same names after every step) and
        ``jaxtut.layers.Dropout`` / ``flax.nnx.Dropout`` layers at the paths of torch's
        ``nn.Dropout`` layers (their masks are shared; see docs/compare.md). It is copied, never
        modified.
      data: ``(x, y)`` NumPy arrays, one sample per row (labels as integers).
      loss: the torch criterion (``nn.MSELoss()``, ``nn.BCELoss()``, ``nn.CrossEntropyLoss()``,
        ``nn.NLLLoss()``, ... translated to JAX automatically; see :mod:`jaxtut.losses`).
      optimizer: the torch optimizer built on ``model``'s parameters (SGD, Adam, AdamW, Adagrad,
        RMSprop, Adadelta; see :mod:`jaxtut.optim`).
      batch_size: samples per step (``None``: the whole data every step).
      epochs: passes over the data.
      scheduler: an optional ``torch.optim.lr_scheduler`` on ``optimizer``, stepped once per
        epoch (``OneCycleLR`` once per batch), as a torch script does.
      jax_loss: ``loss(output, target) -> scalar`` for the JAX side, instead of the translation.
      jax_optimizer: the port's own optimizer (an ``optax.GradientTransformation``, or a
        :mod:`jaxtut.optim` spec) instead of the translation of ``optimizer``.
      params: for a plain ``apply``: a params tree whose paths mirror the torch names, used as
        the template of the automatic mapping.
      convert: ``state_dict -> params`` (NumPy in, params tree out), for any layout the
        automatic mapping does not know.
      init: ``key -> params``, the port's own initialisation (needed for ``seeds``).
      seed: the batch order's seed.
      dtype: ``"float64"`` (the default: the two frameworks agree to ~1e-15 there) or
        ``"float32"``.
      device: ``"cpu"`` or ``"gpu"`` (both frameworks).
      shuffle: a fresh permutation each epoch (``DataLoader(shuffle=True)``); ``False`` keeps the
        stored order.
      seeds: tier 4: train this many independent initialisations per framework and compare the
        final losses with Welch's t-test (0: skip).
      sensitivity: run the built-in sensitivity twin (the JAX learning rate off by 1% must fail).
      name: a name for reports.
      progress: optional ``(step, steps)`` callback.

    Returns:
      A :class:`~jaxtut.compare_report.CompareReport`: ``report.passed``, ``report.verdict`` (one
      line naming the first diverging tier, step and leaf), ``report.write(path)``.

    Raises:
      ConfigError: input jaxtut cannot use (a layer it cannot map without ``convert``, a dropout
        layer on one side only, a criterion or optimizer option it does not translate, NaN in
        the data, ...).
    """
    from jaxtut.torch_ref._common import state_dict_numpy

    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if not isinstance(seeds, int) or seeds < 0 or seeds == 1:
        raise ConfigError(f"seeds must be 0 (skip tier 4) or at least 2, got {seeds!r}")
    import torch

    # One batch in the model's own dtype, for finding Linears fed by a flattened feature map.
    example = _arrays(data, dtype)[0][: batch_size or None]
    model_dtype = next((p.dtype for p in model.parameters()), torch.float32)
    example = torch.from_numpy(np.ascontiguousarray(example)).to(model_dtype)
    port = resolve_port(
        model, apply, params=params, convert=convert, init=init, dtype=dtype, example_input=example
    )
    experiment = build_experiment(
        model, port, data, loss=loss, optimizer=optimizer, scheduler=scheduler,
        jax_loss=jax_loss, batch_size=batch_size, epochs=epochs, seed=seed, dtype=dtype,
        device=device, shuffle=shuffle, name=name,
    )  # fmt: skip
    init_sd = {
        k: v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v
        for k, v in state_dict_numpy(model).items()
    }
    if jax_optimizer is not None and hasattr(jax_optimizer, "to_optax"):
        jax_optimizer = jax_optimizer.to_optax()
    report = compare_experiment(
        experiment,
        port,
        init_sd,
        sensitivity=sensitivity,
        jax_optimizer=jax_optimizer,
        progress=progress,
    )
    if seeds and report.passed:
        check, detail = tier4(experiment, model, port, seeds)
        report.add(check, tier4=detail)
    return report
