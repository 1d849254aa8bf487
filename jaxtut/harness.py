"""``jaxtut.compare``: prove that a PyTorch model and its JAX port train the same.

A researcher hands over what their torch script builds (the model, its current parameters being
the shared start; a criterion; an optimizer, optionally with a scheduler) and the JAX port (an
``nnx.Module`` or a pure ``apply(params, x)``), plus the data as NumPy arrays. :func:`compare`
turns them into one :class:`~jaxtut.experiment.Experiment`, the contract every catalogue tutorial
is built on, and runs the parity method on it:

* **tier 0, structure**: every ``state_dict`` entry maps onto a JAX parameter of the same shape
  (automatically for the layers :mod:`jaxtut.convert` knows, or through the user's ``convert``
  hook), nothing is left over, and the outputs have the same shape;
* **tier 1, forward** and **tier 2, gradients**: at the shared start, on the first batch;
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

The result is a :class:`~jaxtut.compare_report.CompareReport` whose verdict names the first
diverging tier, step and leaf.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxtut.compare_report import Check, CompareReport, StepSeries
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


@dataclasses.dataclass(frozen=True)
class Port:
    """The JAX side of a pair, resolved: how to run it and how torch's parameters map onto it.

    Attributes:
      forward: ``(params, x) -> output``.
      to_jax: torch ``state_dict`` (NumPy) -> JAX params tree (used for the start and for every
        torch snapshot compared).
      names: flattened JAX path -> the name shown in verdicts (the torch key when the mapping is
        automatic).
      init: optional ``key -> params``, the port's own initialisation (tier 4).
    """

    forward: Callable[[Any, Any], Any]
    to_jax: Callable[[Mapping[str, np.ndarray]], Any]
    names: Mapping[str, str]
    init: Callable[[Any], Any] | None = None


def _key(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _leaves(tree: Any) -> dict[str, np.ndarray]:
    import jax

    return {
        "/".join(_key(k) for k in path): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def resolve_port(
    model: Any,
    apply: Any,
    *,
    params: Any = None,
    convert: Callable[[Mapping[str, np.ndarray]], Any] | None = None,
    init: Callable[[Any], Any] | None = None,
    example_input: Any = None,
    dtype: str = "float64",
) -> Port:
    """The JAX side of a pair from what the user gave.

    Args:
      model: the torch model (to check its layers can be mapped when ``convert`` is not given).
      apply: an ``nnx.Module`` (its parameters give the structure) or ``apply(params, x)``.
      params: for a plain ``apply``: a params tree (arrays or ``jax.ShapeDtypeStruct``) whose
        paths mirror the torch names (``{"fc1": {"kernel", "bias"}}`` for ``fc1.weight``).
      convert: ``state_dict -> params``, for anything the automatic mapping does not cover.
      init: optional ``key -> params`` (tier 4).
      example_input: one input batch, used to find Linears fed by a flattened feature map.
      dtype: the run's dtype: the automatic mapping converts floating parameters to it.

    Raises:
      ConfigError: no way to build the params, or a layer jaxtut cannot map without ``convert``.
    """
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from jaxtut.convert import from_state_dict, torch_key

    if isinstance(apply, nnx.Module):
        graphdef, state = nnx.split(apply, nnx.Param)
        rest = nnx.state(apply, nnx.Not(nnx.Param))
        if jax.tree.leaves(rest):
            raise ConfigError(
                "the nnx module holds state besides parameters (BatchNorm statistics, RNG "
                "streams); pass a pure apply(params, x) and a convert hook instead"
            )
        template = nnx.to_pure_dict(state)

        def forward(p, x):
            return nnx.merge(graphdef, p)(x)

    elif callable(apply):
        forward = apply
        template = params
    else:
        raise ConfigError(
            f"the JAX side must be an nnx.Module or a function apply(params, x), got "
            f"{type(apply).__name__}"
        )
    if convert is not None:
        to_jax = convert
        names = {}
    else:
        if template is None:
            raise ConfigError(
                "with a plain apply(params, x), pass params= (a params tree whose names mirror the "
                "torch module's) or convert= (a state_dict -> params function)"
            )
        from jaxtut.torch_ref.layers import describe

        mapping = describe(model, example_input)  # names the first layer it cannot map
        flatten_chw = dict(mapping.flatten_chw)
        template = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(
                np.shape(a), dtype if jnp.issubdtype(a.dtype, jnp.floating) else a.dtype
            ),
            template,
        )

        names = {"/".join(path): torch_key(path) for path in _tuple_paths(template)}

        def to_jax(state_dict, template=template, flatten_chw=flatten_chw):
            _check_names(state_dict, set(names.values()))
            return from_state_dict(state_dict, template, flatten_chw=flatten_chw)

    return Port(forward=forward, to_jax=to_jax, names=names, init=init)


def _check_names(state_dict: Mapping[str, Any], jax_names: set[str]) -> None:
    """Names on one side only, said from the porter's side (which framework lacks what)."""
    only_jax = sorted(jax_names - set(state_dict))
    only_torch = sorted(set(state_dict) - jax_names)
    problems = []
    if only_torch:
        problems.append(
            f"the torch state_dict has {', '.join(only_torch)}, which the JAX params lack"
        )
    if only_jax:
        problems.append(f"the JAX params have {', '.join(only_jax)}, which the torch model lacks")
    if problems:
        raise ConfigError("; ".join(problems) + " (names must mirror each other: docs/compare.md)")


def _tuple_paths(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in tree.items():
        path = (*prefix, str(key))
        out.extend(_tuple_paths(value, path) if isinstance(value, Mapping) else [path])
    return out


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
    forward = port.forward

    def loss_fn(params, batch, mask=None):
        if mask is not None:
            raise ConfigError("compare runs its batches unpadded; a mask is never passed")
        bx, by = batch
        return jloss(forward(params, bx), by)

    trainer = Trainer(tutorial=name, init=None, loss=loss_fn, forward=forward)
    side = TorchSide(model=lambda: copy.deepcopy(model), criterion=lambda: criterion)
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
    """One torch trajectory: a copy of the model from given parameters, stepped on demand."""

    def __init__(self, experiment: Experiment, state_dict: Mapping[str, np.ndarray], device):
        from jaxtut.torch_ref.train import build

        self.model = build(experiment, state_dict, device)  # the dtype, then these parameters
        self.model.train()
        self.criterion = experiment.torch.criterion()
        self.optimizer = experiment.optimizer.to_torch(self.model)

    def step(self, x, y) -> float:
        self.optimizer.zero_grad()
        loss = self.criterion(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def state_dict(self) -> dict[str, np.ndarray]:
        from jaxtut.torch_ref._common import state_dict_numpy

        return state_dict_numpy(self.model)


class _JaxRun:
    """One JAX trajectory: params and optimizer state on the device, one jitted step."""

    def __init__(self, experiment: Experiment, params: Any, opt: Any, step: Callable):
        self.params = params
        self.opt_state = opt.init(params)
        self._step = step

    def step(self, x, y) -> float:
        self.params, self.opt_state, loss = self._step(self.params, self.opt_state, x, y)
        return float(loss)


def _jax_step(loss_fn: Callable, opt: Any) -> Callable:
    import jax
    import optax

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, (x, y))
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _max_rel(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> tuple[float, str]:
    """The worst leaf of two same-structured flat trees: ``(max relative difference, leaf)``."""
    from jaxtut.parity import compare_arrays

    worst, where = 0.0, ""
    for k in a:
        c = compare_arrays(k, a[k], b[k], 1.0)
        if not c.max_rel <= worst:  # NaN counts as worst
            worst, where = c.max_rel, f"{k} {c.where}"
    return worst, where


def _loss_rel(a: float, b: float) -> float:
    if not (np.isfinite(a) and np.isfinite(b)):
        return np.inf
    return abs(a - b) / max(abs(a), abs(b), np.finfo(np.float64).tiny)


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
      experiment: the pair as an experiment (both sides set).
      port: the resolved JAX side (its mapping converts ``init`` and every torch snapshot).
      init: the shared start, a NumPy ``state_dict``.
      sensitivity: also run the JAX side with its updates scaled by 1.01 (its learning rate off
        by 1%), which must fail.
      jax_optimizer: the JAX side's own optimizer (an ``optax.GradientTransformation``) instead
        of the translation of the experiment's.
      progress: optional ``(step, steps)`` callback, every 10% of the run.
    """
    import jax
    import jax.numpy as jnp
    import optax
    import torch

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
    with jax_runtime(dtype, experiment.device) as jdev, torch_runtime(experiment) as tdev:
        # --- tier 0: structure --------------------------------------------------------------
        try:
            params0 = port.to_jax(init)
        except ConfigError as err:
            checks.append(Check(0, "structure", False, where=str(err)))
            return report.finish(time.perf_counter() - start)
        params0 = jax.tree.map(lambda a: jnp.asarray(a, dtype=_param_dtype(a, dtype)), params0)
        params0 = jax.device_put(params0, jdev)
        n_torch = sum(
            int(np.size(v)) for k, v in init.items() if np.issubdtype(v.dtype, np.floating)
        )
        n_jax = sum(int(np.size(v)) for v in jax.tree.leaves(params0))
        x_all, y_all = experiment.train
        xt_all, yt_all = tensors((x_all, y_all), dtype, tdev)
        y_jax_all = jax_arrays(y_all)
        first = next(_batches(experiment))
        bx, by = _take(x_all, y_jax_all, first)
        tx, ty = _take(xt_all, yt_all, first, torch)
        t0 = _TorchRun(experiment, init, tdev)
        out_t = t0.model(tx)
        try:
            out_j = np.asarray(jax.jit(port.forward)(params0, bx))
        except Exception as err:  # a shape error inside the user's apply, reported as tier 0
            checks.append(Check(0, "structure", False, where=f"JAX forward failed: {err}"))
            return report.finish(time.perf_counter() - start)
        shape_ok = tuple(out_j.shape) == tuple(out_t.shape) and n_torch == n_jax
        checks.append(
            Check(
                0, "structure", shape_ok,
                where=f"{n_jax} parameters in {len(jax.tree.leaves(params0))} arrays; output "
                f"{tuple(out_j.shape)} (torch {tuple(out_t.shape)}, {n_torch} parameters)",
            )
        )  # fmt: skip
        if not shape_ok:
            return report.finish(time.perf_counter() - start)
        # --- tiers 1 and 2 at the shared start, first batch ----------------------------------
        from jaxtut.parity import compare_arrays, compare_trees

        fwd = compare_arrays(
            "output", out_j, out_t.detach().cpu().numpy(), tol["forward"], scaled=True
        )
        checks.append(
            Check(
                1, "forward output", fwd.passed, fwd.max_rel, fwd.tolerance, f"output {fwd.where}"
            )
        )
        loss_t = t0.criterion(out_t, ty)
        loss_t.backward()
        grads_t = port.to_jax(
            {k: p.grad.detach().cpu().numpy() for k, p in t0.model.named_parameters()}
            | _buffers(t0.model)
        )
        loss_j, grads_j = jax.jit(jax.value_and_grad(experiment.jax.loss))(params0, (bx, by))
        rel = _loss_rel(float(loss_j), float(loss_t.item()))
        checks.append(Check(1, "loss", rel <= tol["forward"], rel, tol["forward"], "first batch"))
        # grads_t/grads_j: every parameter's gradient on the first batch, in the JAX layout.
        g = compare_trees(
            "grads",
            _named(_leaves(grads_j), port),
            _named(_leaves(grads_t), port),
            tol["grads"],
            scaled=True,
        )
        checks.append(Check(2, "gradients", g.passed, g.max_rel, g.tolerance, g.where))
        # --- tier 3: lock step -------------------------------------------------------------
        opt = jax_optimizer if jax_optimizer is not None else experiment.optimizer.to_optax()
        step = _jax_step(experiment.jax.loss, opt)
        runs = {"jax": _JaxRun(experiment, params0, opt, step)}
        if sensitivity:
            # Every update times 1.01: for each optimizer here, the learning rate off by 1%.
            twin = optax.chain(opt, optax.scale(SENSITIVITY_LR_FACTOR))
            runs["twin"] = _JaxRun(experiment, params0, twin, _jax_step(experiment.jax.loss, twin))
        torch_run = _TorchRun(experiment, init, tdev)
        nudged_init = {k: _nudge(v) for k, v in init.items()}
        nudged = _TorchRun(experiment, nudged_init, tdev)
        series = StepSeries.empty(experiment.num_steps, sensitivity)
        judged = (
            experiment.num_steps
            if dtype == "float64"
            else min(FLOAT32_JUDGED_STEPS, experiment.num_steps)
        )
        every = max(1, experiment.num_steps // 10)
        for i, idx in enumerate(_batches(experiment)):
            jx, jy = _take(x_all, y_jax_all, idx)
            tx, ty = _take(xt_all, yt_all, idx, torch)
            series.loss_torch[i] = torch_run.step(tx, ty)
            nudged_loss = nudged.step(tx, ty)
            series.loss_jax[i] = runs["jax"].step(jx, jy)
            snap = _named(_leaves(port.to_jax(torch_run.state_dict())), port)
            snap_nudged = _named(_leaves(port.to_jax(nudged.state_dict())), port)
            mine = _named(_leaves(runs["jax"].params), port)
            series.spread_loss[i] = _loss_rel(series.loss_torch[i], nudged_loss)
            series.spread_params[i], _ = _max_rel(snap, snap_nudged)
            series.rel_loss[i] = _loss_rel(series.loss_jax[i], series.loss_torch[i])
            series.rel_params[i], series.where_params[i] = _max_rel(mine, snap)
            if sensitivity:
                series.loss_twin[i] = runs["twin"].step(jx, jy)
                series.rel_twin[i] = max(
                    _loss_rel(series.loss_twin[i], series.loss_torch[i]),
                    _max_rel(_named(_leaves(runs["twin"].params), port), snap)[0],
                )
            if progress is not None and (i + 1) % every == 0:
                progress(i + 1, experiment.num_steps)
        series.finish_envelope(tol["trajectory"], ULP_FACTOR)
        checks.extend(series.checks(judged))
    return report.finish(time.perf_counter() - start, series=series)


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
    """K independent initialisations per framework; Welch's t-test on the final losses."""
    import scipy.stats
    import torch

    from jaxtut.runtime import jax_runtime, prng_key
    from jaxtut.torch_ref._common import state_dict_numpy, torch_runtime
    from jaxtut.torch_ref.train import tensors
    from jaxtut.train import jax_arrays

    if port.init is None:
        raise ConfigError("tier 4 (seeds=K) needs the JAX port's own init=key -> params")
    jax_final, torch_final = [], []
    with jax_runtime(experiment.dtype, experiment.device), torch_runtime(experiment) as tdev:
        x_all, y_all = experiment.train
        y_jax = jax_arrays(y_all)
        xt, yt = tensors((x_all, y_all), experiment.dtype, tdev)
        opt = experiment.optimizer.to_optax()
        step = _jax_step(experiment.jax.loss, opt)
        for s in range(seeds):
            params = port.init(prng_key(s))
            run = _JaxRun(experiment, params, opt, step)
            jax_final.append(
                _final_loss(
                    [run.step(*_take(x_all, y_jax, i)) for i in _batches(experiment)],
                    experiment.steps_per_epoch,
                )
            )
            torch.manual_seed(s)
            fresh = copy.deepcopy(model)
            for m in fresh.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            trun = _TorchRun(experiment, state_dict_numpy(fresh), tdev)
            torch_final.append(
                _final_loss(
                    [trun.step(*_take(xt, yt, i, torch)) for i in _batches(experiment)],
                    experiment.steps_per_epoch,
                )
            )
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
        ``module.apply``).
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
      ConfigError: input jaxtut cannot use (a layer it cannot map without ``convert``, a
        criterion or optimizer option it does not translate, NaN in the data, ...).
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
