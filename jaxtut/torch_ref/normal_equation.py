"""PyTorch reference for ``normal_equation``: ``beta = (X^T X)^-1 X^T y``, then solve and lstsq.

The ``inverse`` fit is the source's: ``torch.inverse(torch.matmul(torch.t(X), X))`` times
``torch.matmul(torch.t(X), y)``. What differs from the source, and why:

* The data come from :func:`jaxtut.tutorials.normal_equation.normal_equation_data` (NumPy's
  ``default_rng(config.seed)``), shared with the JAX and NumPy versions, instead of
  ``torch.randn`` converted to NumPy afterwards. The source's conversion (``torch_X.numpy()``)
  also shares memory with the tensor: any later in-place change to one would change the other.
* Beside the formula, ``torch.linalg.solve(X^T X, X^T y)`` and ``torch.linalg.lstsq(X, y)``,
  the numerically sound ways (see the JAX module).
* Timing wraps the three fits with :class:`~jaxtut.torch_ref._common.Stopwatch`; the source's
  single ``time.time()`` pair timed one fit of a 10x5 problem, which measures call overhead.

Bugs in the source, fixed here: ``import Torch`` (the module is ``torch``), and ``time`` and
``numpy`` used without being imported.
"""

from __future__ import annotations

import torch

from jaxtut.configs import NormalEquationConfig
from jaxtut.result import RunResult
from jaxtut.runtime import versions
from jaxtut.torch_ref._common import Stopwatch, tensor, torch_runtime
from jaxtut.tutorials.normal_equation import fit_result, normal_equation_data


def fit(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """``beta`` by the inverse formula, by ``solve`` and by ``lstsq``."""
    beta_1 = torch.inverse(torch.matmul(torch.t(x), x))
    beta_2 = torch.matmul(torch.t(x), y)
    return {
        "inverse": torch.matmul(beta_1, beta_2),
        "solve": torch.linalg.solve(torch.matmul(torch.t(x), x), beta_2),
        # lstsq wants a matrix right-hand side: (n,) -> (n, 1) and back.
        "lstsq": torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1),
    }


def run(config: NormalEquationConfig | None = None) -> RunResult:
    """Fits ``beta`` three ways in PyTorch; the result has the shape of the JAX ``run``'s."""
    config = config or NormalEquationConfig()
    x_np, y_np = normal_equation_data(config)
    with torch_runtime(config) as device:
        x, y = tensor(x_np, config, device=device), tensor(y_np, config, device=device)
        clock = Stopwatch(device)
        betas = fit(x, y)
        seconds = clock.stop()
        betas = {m: b.detach().cpu().numpy().copy() for m, b in betas.items()}
    return fit_result(
        config,
        "torch",
        betas,
        x_np,
        y_np,
        seconds=seconds,
        compile_s=None,
        device=f"{device.type}:{device.index or 0}",
        versions=versions(torch=True),
    )
