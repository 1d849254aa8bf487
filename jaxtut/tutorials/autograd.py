"""Autograd in JAX: two exact gradients, then SGD on an absolute difference.

Three small demonstrations from seeds 003 and 004:

1. ``x = ones(2, 2)``, ``y = x + 2``, ``z = 3 y^2``, ``out = mean(z)``: every entry of ``d out/dx``
   is ``6 y / 4 = 4.5``, exactly (all intermediate values are small binary fractions).
2. ``x = [1, 2, 3, 4]``, ``w = randn(1)``, ``y = sum(x * w)``: ``dy/dw = sum(x) = 10``, exactly,
   whatever ``w`` is.
3. A parameter ``y = 3`` trained by ``SGD(lr=0.1)`` to minimise ``|5 - y|`` for 100 steps.

Where PyTorch fills ``.grad`` by ``backward()``, JAX returns gradients from ``jax.grad`` of a
pure function; the optimisation is one ``lax.scan`` with Optax's SGD, compiled once.

What step 3 really does (the source claims both numbers end at 3.0, which is wrong): the gradient
of ``|5 - y|`` with respect to ``y`` is ``-1`` while ``y < 5``, so ``y`` climbs by ``lr`` per step.
In float32 ``3 + 20 * 0.1`` accumulates to ``4.999998`` (``5 - 2**-19``), not 5; the next step
overshoots to ``5.099998``, where the gradient is ``+1``, and from step 21 on ``y`` alternates
between the two for good. After 100 steps ``y = 4.999998``; it never equals 5.0 exactly (float64
likewise: ``4.999999999999997`` and ``5.099999999999997``).

The subgradient at zero. If ``y`` did land exactly on the target, the frameworks would part ways:
PyTorch's ``abs`` backward is ``sign(x)``, which is 0 at 0, so ``y`` would stay put; JAX's
``jax.grad(jnp.abs)(0.0)`` is 1.0, which would push ``y`` on. This module uses :func:`torch_abs`,
``abs`` with PyTorch's derivative, so the JAX run matches the PyTorch one in that case too
(e.g. ``y_start=4.0, lr=0.5`` lands on 5.0 in two steps and stops there in both).

Example:
  >>> from jaxtut.tutorials import autograd
  >>> result = autograd.run()
  >>> result.metrics["grad_x"], result.metrics["grad_w"]
  (4.5, 10.0)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxtut.compiled import compile_once, count_trace, timed_call, to_numpy
from jaxtut.configs import AutogradConfig
from jaxtut.result import RunResult
from jaxtut.runtime import jax_runtime, versions


@jax.custom_jvp
def torch_abs(x: jax.Array) -> jax.Array:
    """``|x|`` whose derivative is ``sign(x)`` (0 at 0), as in PyTorch's ``abs`` backward."""
    return jnp.abs(x)


@torch_abs.defjvp
def _torch_abs_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    # jnp.abs's own rule gives slope 1 at x == 0; PyTorch's backward multiplies by sign(x).
    return jnp.abs(x), jnp.sign(x) * t


def mean_of_squares(x: jax.Array) -> jax.Array:
    """``out = mean(3 (x + 2)^2)``, written as the source does: ``y = x + 2; z = y * y * 3``."""
    y = x + 2
    z = y * y * 3
    return z.mean()


def weighted_sum(w: jax.Array, x: jax.Array) -> jax.Array:
    """``y = sum(x * w)`` for a one-element ``w``: ``dy/dw = sum(x)``."""
    return (x * w).sum()


def abs_loss(y: jax.Array, target: jax.Array, abs_fn=torch_abs) -> jax.Array:
    """``|target - y|`` as a scalar (``jax.grad`` needs one; ``y`` has shape ``(1,)``)."""
    return abs_fn(target - y).sum()


def sgd_on_abs(
    y0: jax.Array, target: jax.Array, lr: jax.Array, steps: int, abs_fn=torch_abs
) -> dict[str, jax.Array]:
    """Minimises ``|target - y|`` over ``y`` with ``optax.sgd(lr)`` for ``steps`` steps.

    Pure; call it under ``jit``. ``optax.sgd`` updates ``y <- y + (-lr) * g``, the very rounding
    of ``torch.optim.SGD``'s ``y.add_(g, alpha=-lr)``.

    Args:
      y0: the starting parameter, shape ``(1,)``.
      target: the value to reach, shape ``(1,)``.
      lr: learning rate, a scalar in ``y0``'s dtype.
      steps: number of updates (static).
      abs_fn: the absolute value to differentiate: :func:`torch_abs` (PyTorch's subgradient) or
        ``jnp.abs`` (JAX's, slope 1 at 0).

    Returns:
      A dict: ``y`` of shape ``(steps + 1, 1)``, the parameter before every step and after the
      last; ``loss`` of shape ``(steps,)``, the loss before every update; ``grad`` of shape
      ``(steps, 1)``, the gradient of each loss.
    """
    opt = optax.sgd(learning_rate=lr)

    def step(carry, _):
        y, state = carry
        loss, grad = jax.value_and_grad(abs_loss)(y, target, abs_fn)
        updates, state = opt.update(grad, state, y)
        return (optax.apply_updates(y, updates), state), (y, loss, grad)

    (y_final, _), (ys, losses, grads) = jax.lax.scan(step, (y0, opt.init(y0)), length=steps)
    return {"y": jnp.concatenate([ys, y_final[None]]), "loss": losses, "grad": grads}


def _program(x, xs, w, y0, target, lr, *, steps: int):
    count_trace("autograd")
    return {
        "grad_x": jax.grad(mean_of_squares)(x),
        "grad_w": jax.grad(weighted_sum)(w, xs),
        **sgd_on_abs(y0, target, lr, steps),
    }


def trajectory_facts(y: np.ndarray, target: float) -> dict[str, float]:
    """Where the SGD-on-abs trajectory ends and how it gets there (framework-neutral).

    Args:
      y: the parameter before every step and after the last, shape ``(steps + 1,)`` or
        ``(steps + 1, 1)``.
      target: the value the loss pulls ``y`` towards.

    Returns:
      ``y_final``; ``hits_target`` (1.0 if ``y`` ever equals ``target`` exactly);
      ``first_overshoot_step`` (the first step that starts with ``y`` beyond the target, or -1);
      ``oscillation_low`` / ``oscillation_high`` (the two values ``y`` alternates between from
      then on, NaN if it never overshoots).
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    start = y[0]
    beyond = np.flatnonzero((y - target) * np.sign(target - start) > 0)
    first = int(beyond[0]) if beyond.size else -1
    tail = y[first - 1 :] if first > 0 else np.array([np.nan])
    return {
        "y_final": float(y[-1]),
        "hits_target": float(np.any(y == target)),
        "first_overshoot_step": float(first),
        "oscillation_low": float(np.min(tail)),
        "oscillation_high": float(np.max(tail)),
    }


def run(config: AutogradConfig | None = None) -> RunResult:
    """Computes the two gradients and runs SGD on ``|target - y|``, in one compiled program.

    Args:
      config: ``seed`` (draws ``w``), ``dtype``, ``device``, and the optimisation's ``lr``,
        ``steps``, ``y_start`` and ``target``.

    Returns:
      A :class:`RunResult`: ``losses`` the ``steps`` losses ``|target - y|`` before each update;
      ``params = {"y": (1,)}`` the final parameter; ``metrics`` ``grad_x`` (4.5), ``grad_w``
      (10.0) and the :func:`trajectory_facts`; ``extras`` the full gradients, ``w``, and the
      trajectories ``y`` (``steps + 1`` values) and ``grad_y``.
    """
    config = config or AutogradConfig()
    with jax_runtime(config.dtype, config.device) as device:
        dtype = jnp.dtype(config.dtype)
        args = (
            jnp.ones((2, 2), dtype),
            # Integers, as torch.tensor([1, 2, 3, 4]) is (int64 there; int32 here unless x64).
            jnp.array([1, 2, 3, 4]),
            jax.random.normal(jax.random.key(config.seed), (1,), dtype),
            jnp.array([config.y_start], dtype),
            # The target is data, not a parameter: nothing differentiates with respect to it.
            jnp.array([config.target], dtype),
            jnp.asarray(config.lr, dtype),
        )
        args = jax.device_put(args, device)

        def program(*a):
            return _program(*a, steps=config.steps)

        exe, compile_s = compile_once(("autograd", config.steps), program, *args)
        out, run_s = timed_call(exe, *args)
        out = to_numpy(out)
        w = np.asarray(args[2])
    grad_x, grad_w = out["grad_x"], out["grad_w"]
    # Exactness is the point: report the common value only if every entry is exactly it.
    metrics = {
        "grad_x": float(grad_x.flat[0]) if np.all(grad_x == grad_x.flat[0]) else float("nan"),
        "grad_w": float(grad_w[0]),
        **trajectory_facts(out["y"], config.target),
    }
    return RunResult(
        tutorial="autograd",
        framework="jax",
        config=config.to_dict(),
        losses=np.asarray(out["loss"], np.float64),
        epoch_metrics={},
        metrics=metrics,
        params={"y": out["y"][-1]},
        wall_time_s=run_s,
        compile_time_s=compile_s,
        versions=versions(),
        device=f"{device.platform}:{device.id}",
        extras={
            "grad_x": grad_x.tolist(),
            "grad_w": grad_w.tolist(),
            "w": w.tolist(),
            "y": out["y"].reshape(-1).tolist(),
            "grad_y": out["grad"].reshape(-1).tolist(),
        },
    )
