"""torch criteria translated to JAX losses, for :func:`jaxtut.compare`.

:func:`from_criterion` reads a constructed torch loss module and returns a pure JAX function
``loss(output, target) -> scalar`` that computes what the module computes, or raises a
:class:`~jaxtut.errors.ConfigError` naming the criterion or the option it does not translate (the
user then passes their own JAX loss). Translated:

=============================  ===============================================================
torch                          JAX
=============================  ===============================================================
``MSELoss``                    ``(output - target) ** 2``, mean or sum
``L1Loss``                     ``|output - target|``, mean or sum
``BCELoss``                    torch's clamped log terms (each ``log`` at least -100), mean/sum
``BCEWithLogitsLoss``          ``max(z, 0) - z y + log1p(exp(-|z|))``, mean or sum
``CrossEntropyLoss``           :func:`jaxtut.layers.cross_entropy` (weight, ignore_index,
                               label_smoothing), class axis moved last
``NLLLoss``                    ``-log_probs[i, y_i]`` (weight, ignore_index), mean or sum
=============================  ===============================================================

This module imports neither torch nor JAX at import time; the criterion's class is read by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jaxtut.errors import ConfigError

# torch.nn.BCELoss clamps each log term from below at -100 (aten/src/ATen/native/Loss.cpp).
BCE_LOG_CLAMP = -100.0


def _reduce(values, reduction: str):
    import jax.numpy as jnp

    return jnp.mean(values) if reduction == "mean" else jnp.sum(values)


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in ("mean", "sum"):
        raise ConfigError(
            f"{name}(reduction={reduction!r}) gives no scalar to train on; use 'mean' or 'sum'"
        )


def _weight(criterion: Any):
    weight = getattr(criterion, "weight", None)
    return None if weight is None else np.asarray(weight.detach().cpu().numpy())


def _mse(reduction: str):
    def loss(output, target):
        return _reduce((output - target) ** 2, reduction)

    return loss


def _l1(reduction: str):
    import jax.numpy as jnp

    def loss(output, target):
        return _reduce(jnp.abs(output - target), reduction)

    return loss


def _bce(reduction: str):
    import jax.numpy as jnp

    if reduction == "mean":
        # The catalogue's BCELoss, whose backward is torch's own formula (custom VJP).
        from jaxtut.tutorials.logreg import bce_loss

        return lambda p, y: bce_loss(p, y, None)

    def loss(p, y):
        log_p = jnp.maximum(jnp.log(p), BCE_LOG_CLAMP)
        log_1mp = jnp.maximum(jnp.log1p(-p), BCE_LOG_CLAMP)
        return _reduce(-(y * log_p + (1 - y) * log_1mp), reduction)

    return loss


def _bce_logits(reduction: str):
    import jax.numpy as jnp

    def loss(z, y):
        # torch's stable form: (1 - y) z + log(1 + exp(-z)), written without overflow.
        return _reduce(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))), reduction)

    return loss


def _cross_entropy(criterion: Any, reduction: str):
    import jax.numpy as jnp

    from jaxtut.layers import cross_entropy

    weight = _weight(criterion)

    def loss(logits, labels):
        if logits.ndim > 2:  # torch's (N, C, d1, ...) -> channels last
            logits = jnp.moveaxis(logits, 1, -1)
        return cross_entropy(
            logits,
            labels,
            weight=weight,
            ignore_index=criterion.ignore_index,
            label_smoothing=criterion.label_smoothing,
            reduction=reduction,
        )

    return loss


def _nll(criterion: Any, reduction: str):
    import jax.numpy as jnp

    weight = _weight(criterion)
    ignore = criterion.ignore_index

    def loss(log_probs, labels):
        valid = labels != ignore
        safe = jnp.where(valid, labels, 0)
        picked = jnp.take_along_axis(log_probs, safe[:, None], axis=1)[:, 0]
        w = jnp.ones_like(picked) if weight is None else jnp.asarray(weight, picked.dtype)[safe]
        w = jnp.where(valid, w, 0)
        total = -jnp.sum(w * picked)
        return total / jnp.sum(w) if reduction == "mean" else total

    return loss


def from_criterion(criterion: Any) -> Callable[[Any, Any], Any]:
    """The JAX loss equal to a torch criterion: ``loss(output, target) -> scalar``.

    Args:
      criterion: a constructed ``torch.nn`` loss module (see the module docstring for the list).

    Raises:
      ConfigError: a criterion or an option this module does not translate; the message says to
        pass a JAX loss instead.
    """
    name = type(criterion).__name__
    reduction = getattr(criterion, "reduction", None)
    hint = "; pass your own JAX loss (jax_loss=...)"
    if type(criterion).__module__.split(".")[:2] != ["torch", "nn"] or reduction is None:
        raise ConfigError(f"criterion {name} is not a torch.nn loss jaxtut translates{hint}")
    _check_reduction(name, reduction)
    if name == "MSELoss":
        return _mse(reduction)
    if name == "L1Loss":
        return _l1(reduction)
    if name == "BCELoss":
        if _weight(criterion) is not None:
            raise ConfigError(f"BCELoss(weight=...) is not translated{hint}")
        return _bce(reduction)
    if name == "BCEWithLogitsLoss":
        if _weight(criterion) is not None or getattr(criterion, "pos_weight", None) is not None:
            raise ConfigError(f"BCEWithLogitsLoss(weight/pos_weight) is not translated{hint}")
        return _bce_logits(reduction)
    if name == "CrossEntropyLoss":
        return _cross_entropy(criterion, reduction)
    if name == "NLLLoss":
        return _nll(criterion, reduction)
    raise ConfigError(f"criterion {name} is not translated automatically{hint}")
