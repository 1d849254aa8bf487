"""``jaxtut compare pair.py``: reading a user's pair file into :func:`jaxtut.compare` arguments.

A pair file is a plain Python file that builds, at module level, what a torch script and its JAX
port build anyway. Required names:

* ``model``: the torch ``nn.Module`` (its current parameters are the shared start);
* ``port``: the JAX port, an ``nnx.Module`` or a function ``apply(params, x)``;
* ``data``: ``(x, y)`` NumPy arrays;
* ``loss``: the torch criterion;
* ``optimizer``: the torch optimizer on ``model``'s parameters.

Optional names are the other keyword arguments of :func:`jaxtut.compare` (``batch_size``,
``epochs``, ``scheduler``, ``jax_loss``, ``params``, ``convert``, ``init``, ``seed``, ``dtype``,
``shuffle``, ``seeds``, ``name``). Any other module-level name is the file's own business.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from jaxtut.errors import ConfigError

REQUIRED = {
    "model": "the torch nn.Module",
    "port": "the JAX port: an nnx.Module or apply(params, x)",
    "data": "(x, y) NumPy arrays",
    "loss": "the torch criterion, e.g. torch.nn.MSELoss()",
    "optimizer": "the torch optimizer on model.parameters()",
}
OPTIONAL = (
    "batch_size", "epochs", "scheduler", "jax_loss", "params", "convert", "init", "seed",
    "dtype", "shuffle", "seeds", "name",
)  # fmt: skip


def load_pair(path: str | Path) -> dict[str, Any]:
    """Runs the pair file and returns the keyword arguments of :func:`jaxtut.compare`.

    Raises:
      ConfigError: the file is missing or unreadable, raises while it runs (the message names
        the exception and the file's line), or lacks a required name.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such pair file")
    try:
        namespace = runpy.run_path(str(path), run_name="jaxtut_pair")
    except SystemExit as err:
        raise ConfigError(f"{path}: the file called exit({err.code}) while loading") from None
    except Exception as err:
        raise ConfigError(f"{path}: {_where(err, path)}{type(err).__name__}: {err}") from None
    missing = [name for name in REQUIRED if name not in namespace]
    if missing:
        what = "; ".join(f"{n} ({REQUIRED[n]})" for n in missing)
        raise ConfigError(f"{path} does not define {what}")
    kwargs = {name: namespace[name] for name in (*REQUIRED, *OPTIONAL) if name in namespace}
    kwargs.setdefault("name", path.stem)
    return kwargs


def _where(err: BaseException, path: Path) -> str:
    """``line N: `` of the innermost frame in the pair file, if there is one."""
    if isinstance(err, SyntaxError) and err.lineno is not None:
        return f"line {err.lineno}: "
    tb, line = err.__traceback__, None
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = tb.tb_lineno
        tb = tb.tb_next
    return "" if line is None else f"line {line}: "
