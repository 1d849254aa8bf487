"""The JAX side of a ``jaxtut.compare`` pair: how torch's state maps onto the port.

:func:`resolve_port` turns what the researcher gave (an ``nnx.Module``, or a pure
``apply(params, x)`` with a params template or a ``convert`` hook) into a :class:`Port`: one pure
``apply(params, batch_stats, masks, x, *, train)`` plus the converters from a torch
``state_dict`` to the port's parameters and BatchNorm statistics. Dropout layers present in both
frameworks are matched by module path (:class:`DropoutSite`); the port's are wrapped in
:class:`MaskedDropout`, whose mask is an explicit input of the jitted step, and the torch copies
get :class:`~jaxtut.torch_ref.layers.SharedDropout` (:func:`shared_dropout_copy`). How the masks
are drawn and fed is :mod:`jaxtut.harness`'s business.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxtut import layers
from jaxtut.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DropoutSite:
    """One dropout layer present in both frameworks, matched by module path.

    Attributes:
      path: the torch module path (``dropout1``, ``features.3``); the nnx attribute path of the
        port's layer, joined by dots, is the same.
      p: torch's drop probability; masks are drawn with it (the port's own ``p`` scales them).
      jax_path: the port layer's path in the nnx graph (its keys, as ``nnx.iter_graph`` gives).
    """

    path: str
    p: float
    jax_path: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Port:
    """The JAX side of a pair, resolved: how to run it and how torch's state maps onto it.

    Attributes:
      apply: ``(params, batch_stats, masks, x, *, train) -> (output, batch_stats)``: training
        mode uses batch statistics and returns the updated running ones; ``masks`` is the tree of
        the dropout layers' keep-masks (``None``: none, for evaluation mode). A plain
        ``apply(params, x)`` ignores both and returns the statistics it was given.
      to_jax: torch ``state_dict`` (NumPy) -> JAX params tree (used for the start and for every
        torch snapshot compared).
      names: flattened JAX path -> the name shown in verdicts (the torch key when the mapping is
        automatic), for parameters and running statistics.
      init: optional ``key -> params``, the port's own initialisation (tier 4).
      stats_to_jax: torch ``state_dict`` -> the port's running statistics (``{}`` without any).
      dropouts: the dropout layers whose masks are shared, in torch's module order.
      trace_dropouts: ``(params, batch_stats, x) -> {path: [input shape of each call]}``, one
        abstract training-mode pass (``None`` without dropout layers).
    """

    apply: Callable[..., tuple[Any, Any]]
    to_jax: Callable[[Mapping[str, np.ndarray]], Any]
    names: Mapping[str, str]
    init: Callable[[Any], Any] | None = None
    stats_to_jax: Callable[[Mapping[str, np.ndarray]], Any] = lambda state_dict: {}
    dropouts: tuple[DropoutSite, ...] = ()
    trace_dropouts: Callable[[Any, Any, Any], dict[str, list[tuple[int, ...]]]] | None = None


def _key(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def leaves(tree: Any) -> dict[str, np.ndarray]:
    """A pytree's leaves as NumPy arrays keyed by their ``/``-joined paths (``fc1/kernel``)."""
    return {
        "/".join(_key(k) for k in path): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


# --- Stateful layers: BatchNorm statistics and shared dropout masks ---------------------------


class SharedMask(nnx.Variable):
    """A dropout keep-mask the harness hands to the jitted step: an input, never trained."""


class MaskedDropout(nnx.Module):
    """Stands in for a port's dropout layer inside :func:`compare`: applies the shared mask.

    The port's own layer (``inner``) decides everything but the mask: its mode (NNX's
    ``train()``/``eval()``, a ``deterministic=`` argument), its ``p`` and its arithmetic
    (:class:`jaxtut.layers.Dropout`: torch's ``x * (mask / (1 - p))``, bit for bit;
    ``flax.nnx.Dropout``: its own ``x / (1 - rate)`` where kept). A key, ``rngs`` or mask that
    the port passes is replaced by the shared mask.

    ``mask`` holds every call's keep-mask of one forward pass, flattened and concatenated in call
    order (a layer may be called more than once per pass, on different shapes). An empty mask
    marks the tracing pass that finds those shapes: the layer is then the identity and records
    the shape of each call in ``seen``.
    """

    def __init__(self, inner: layers.Dropout | nnx.Dropout):
        self.inner = inner
        self.mask = SharedMask(jnp.zeros((0,), bool))
        self.used = 0  # elements of ``mask`` consumed so far; fresh in each nnx.merge
        self.seen: tuple[tuple[int, ...], ...] = ()

    def __call__(self, x: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
        self.seen = (*self.seen, tuple(x.shape))
        deterministic = kwargs.get("deterministic")
        if deterministic is None:
            deterministic = self.inner.deterministic
        flat = self.mask[...]
        if deterministic or flat.shape == (0,):
            return x
        size = math.prod(x.shape)
        if self.used + size > flat.shape[0]:
            raise ConfigError("a dropout layer ran more often than when its calls were traced")
        mask = flat[self.used : self.used + size].reshape(x.shape)  # the JAX input's layout
        self.used += size
        if isinstance(self.inner, layers.Dropout):
            return self.inner(x, mask)
        return _nnx_dropout(x, mask, self.inner.rate)


def _nnx_dropout(x: jax.Array, mask: jax.Array, rate: float) -> jax.Array:
    """``flax.nnx.Dropout``'s arithmetic (flax 0.12) with a given keep-mask."""
    if rate == 0.0:
        return x
    if rate == 1.0:
        return jnp.zeros_like(x)
    keep_prob = 1.0 - rate
    return jax.lax.select(mask, x / keep_prob, jnp.zeros_like(x))


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(k) for k in path)


def _swap_dropouts(module: nnx.Module) -> dict[str, tuple[tuple[Any, ...], float]]:
    """Wraps each dropout layer of ``module`` (in place) in :class:`MaskedDropout`.

    Returns:
      dotted path -> (graph path, the layer's p).

    Raises:
      ConfigError: a layer compare cannot map: ``flax.nnx.BatchNorm`` (Flax's running-average
        convention, not torch's) or a ``flax.nnx.Dropout`` with ``broadcast_dims``.
    """
    found = {}
    for path, node in list(nnx.iter_graph(module)):
        if isinstance(node, nnx.BatchNorm):
            raise ConfigError(
                f"layer {_dotted(path)} is flax.nnx.BatchNorm, whose running statistics follow "
                "Flax's conventions (momentum weighs the old value, biased variance, no "
                "num_batches_tracked), not torch's: use jaxtut.layers.BatchNorm1d/BatchNorm2d"
            )
        if not isinstance(node, layers.Dropout | nnx.Dropout) or not path:
            continue
        if isinstance(node, nnx.Dropout) and tuple(node.broadcast_dims):
            raise ConfigError(
                f"layer {_dotted(path)} (flax.nnx.Dropout) has broadcast_dims="
                f"{tuple(node.broadcast_dims)}: torch's nn.Dropout drops units independently"
            )
        parent = module
        for key in path[:-1]:
            parent = parent[key] if isinstance(key, int) else getattr(parent, key)
        if isinstance(path[-1], int):
            parent[path[-1]] = MaskedDropout(node)
        else:
            setattr(parent, path[-1], MaskedDropout(node))
        found[_dotted(path)] = (path, node.p if isinstance(node, layers.Dropout) else node.rate)
    return found


def _check_rest(rest: Any) -> None:
    """Only RNG streams may remain besides parameters, statistics and masks (all explicit)."""
    for path, variable in nnx.to_flat_state(rest):
        if not isinstance(variable, nnx.RngState):
            raise ConfigError(
                f"the nnx module holds {type(variable).__name__} state at {_dotted(path)}; compare "
                "maps parameters (nnx.Param), BatchNorm statistics (nnx.BatchStat) and RNG "
                "streams: pass a pure apply(params, x) and a convert hook for anything else"
            )


def _nnx_functions(module: nnx.Module):
    """``(apply, trace_dropouts, params, batch_stats)`` of a port whose dropouts are wrapped."""
    graphdef, params, stats, masks, rest = nnx.split(
        module, nnx.Param, nnx.BatchStat, SharedMask, ...
    )
    _check_rest(rest)
    no_masks = nnx.to_pure_dict(masks)
    # RNG streams (the port may draw its own dropout keys; the shared masks replace them) are
    # plain arrays merged into fresh variables in each trace, never mutated across traces.
    rest = nnx.to_pure_dict(rest)

    def merged(params, stats, masks, train):
        params, stats = jax.tree.map(jnp.asarray, (params, stats))
        model = nnx.merge(graphdef, params, stats, no_masks if masks is None else masks, rest)
        if train:
            model.train()
        else:
            model.eval()
        return model

    def apply(params, stats, masks, x, *, train):
        model = merged(params, stats, masks, train)
        out = model(x)
        return out, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))

    def trace_dropouts(params, stats, x):
        seen: dict[str, list[tuple[int, ...]]] = {}

        def run(params, stats, x):
            model = merged(params, stats, None, True)
            out = model(x)
            # A trace-time record of static shapes: eval_shape runs this once, computes nothing.
            for path, node in nnx.iter_graph(model):
                if isinstance(node, MaskedDropout):
                    seen[_dotted(path)] = list(node.seen)
            return out

        jax.eval_shape(run, params, stats, x)
        return seen

    return apply, trace_dropouts, nnx.to_pure_dict(params), nnx.to_pure_dict(stats)


def _torch_dropouts(model: Any) -> dict[str, float]:
    """torch module path -> p of every ``nn.Dropout`` (or ``SharedDropout``), in module order."""
    import torch

    from jaxtut.torch_ref.layers import SharedDropout

    found = {}
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout | SharedDropout):
            found[path] = float(module.p)
        elif isinstance(module, torch.nn.modules.dropout._DropoutNd):
            raise ConfigError(
                f"layer {path} ({type(module).__name__}) cannot share its masks with the JAX "
                "side: only nn.Dropout is mapped"
            )
    return found


def _match_dropouts(
    torch_sites: Mapping[str, float],
    jax_sites: Mapping[str, tuple[tuple[Any, ...], float]],
    nnx_port: bool,
) -> tuple[DropoutSite, ...]:
    """Pairs the two sides' dropout layers by module path; one left over is a ConfigError."""
    if torch_sites and not nnx_port:
        raise ConfigError(
            f"the torch model has dropout layers ({', '.join(torch_sites)}) whose masks compare "
            "shares with the port's; a plain apply(params, x) cannot receive them: pass the port "
            "as an nnx.Module with jaxtut.layers.Dropout or flax.nnx.Dropout layers"
        )
    for path, p in torch_sites.items():
        if path not in jax_sites:
            raise ConfigError(
                f"torch layer {path} (Dropout, p={p}) has no JAX counterpart: the port has no "
                f"jaxtut.layers.Dropout or flax.nnx.Dropout at {path} (dropout layers are "
                "matched by module path: docs/compare.md)"
            )
    for path in jax_sites:
        if path not in torch_sites:
            raise ConfigError(
                f"the port's dropout layer {path} has no torch counterpart (no nn.Dropout at "
                f"{path}; dropout layers are matched by module path: docs/compare.md)"
            )
    return tuple(DropoutSite(path, p, jax_sites[path][0]) for path, p in torch_sites.items())


def shared_dropout_copy(model: Any, paths: Sequence[str]) -> Any:
    """A deep copy of ``model`` whose dropout layers at ``paths`` are ``SharedDropout`` (same p).

    The user's model is never modified: torch's own masks cannot be reproduced in JAX, so the
    copies that compare trains take theirs from outside.
    """
    from jaxtut.torch_ref.layers import SharedDropout

    out = copy.deepcopy(model)
    for path in paths:
        parent_path, _, name = path.rpartition(".")
        parent = out.get_submodule(parent_path)
        setattr(parent, name, SharedDropout(parent.get_submodule(name).p))
    return out


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
      model: the torch model (to check its layers can be mapped when ``convert`` is not given,
        and to find its dropout layers).
      apply: an ``nnx.Module`` (its parameters give the structure; its BatchNorm statistics and
        dropout layers are mapped too) or ``apply(params, x)``.
      params: for a plain ``apply``: a params tree (arrays or ``jax.ShapeDtypeStruct``) whose
        paths mirror the torch names (``{"fc1": {"kernel", "bias"}}`` for ``fc1.weight``).
      convert: ``state_dict -> params``, for anything the automatic mapping does not cover
        (running statistics are still mapped by name).
      init: optional ``key -> params`` (tier 4).
      example_input: one input batch, used to find Linears fed by a flattened feature map.
      dtype: the run's dtype: the automatic mapping converts floating parameters to it.

    Raises:
      ConfigError: no way to build the params, a layer jaxtut cannot map without ``convert``, or
        a dropout layer on one side only (named).
    """
    from jaxtut.convert import from_state_dict, torch_key

    torch_sites = _torch_dropouts(model)
    trace = None
    stats_template: Any = {}
    if isinstance(apply, nnx.Module):
        module = nnx.clone(apply)  # wrapping the dropout layers must not touch the user's port
        jax_sites = _swap_dropouts(module)
        fn, trace, template, stats_template = _nnx_functions(module)
    elif callable(apply):
        jax_sites = {}

        def fn(p, stats, masks, x, *, train):
            return apply(p, x), stats

        template = params
    else:
        raise ConfigError(
            f"the JAX side must be an nnx.Module or a function apply(params, x), got "
            f"{type(apply).__name__}"
        )
    sites = _match_dropouts(torch_sites, jax_sites, isinstance(apply, nnx.Module))

    def abstract(tree):
        return jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(
                np.shape(a), dtype if jnp.issubdtype(a.dtype, jnp.floating) else a.dtype
            ),
            tree,
        )

    stats_template = abstract(stats_template)
    stat_names = {"/".join(path): torch_key(path) for path in _tuple_paths(stats_template)}

    def stats_to_jax(state_dict):
        missing = sorted(set(stat_names.values()) - set(state_dict))
        if missing:
            raise ConfigError(
                f"the JAX running statistics {', '.join(missing)} have no torch buffer of that "
                "name (names must mirror each other: docs/compare.md)"
            )
        picked = {k: state_dict[k] for k in stat_names.values()}
        return from_state_dict(picked, stats_template)

    if convert is not None:
        to_jax = convert
        names = dict(stat_names)
    else:
        if template is None:
            raise ConfigError(
                "with a plain apply(params, x), pass params= (a params tree whose names mirror the "
                "torch module's) or convert= (a state_dict -> params function)"
            )
        from jaxtut.torch_ref.layers import describe

        mapping = describe(model, example_input)  # names the first layer it cannot map
        flatten_chw = dict(mapping.flatten_chw)
        template = abstract(template)
        param_names = {"/".join(path): torch_key(path) for path in _tuple_paths(template)}
        names = param_names | stat_names

        def to_jax(state_dict, template=template, flatten_chw=flatten_chw):
            _check_names(state_dict, set(names.values()))
            picked = {k: state_dict[k] for k in param_names.values()}
            return from_state_dict(picked, template, flatten_chw=flatten_chw)

    return Port(
        apply=fn, to_jax=to_jax, names=names, init=init, stats_to_jax=stats_to_jax,
        dropouts=sites, trace_dropouts=trace if sites else None,
    )  # fmt: skip


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
