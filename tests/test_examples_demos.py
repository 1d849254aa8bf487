"""The three demonstration examples run as scripts, exit 0 and print their key findings.

Each runs as a background job (tests/background.py).
"""

from __future__ import annotations

import pytest

import background

EXPECTED = {
    "tensors": [
        "jnp.array([1, 2, 3]): [1 2 3] int32",
        "jnp.empty((5, 2)): (5, 2) float32",
        "float64 NumPy -> JAX without x64: float32",
        "item assignment: TypeError (arrays are immutable)",
        "after g[0] = 1, the JAX array still reads: [0. 0. 0. 0. 0.]",
        "exact matches: 31/31; random ops consistent: 3/3",
    ],
    "autograd": [
        "y before step 20: 4.999998092651367",
        "y before step 21: 5.0999979972839355",
        "first step that starts beyond 5: 21",
        "ever exactly 5.0: False",
        "with torch_abs: y = [4.0, 4.5, 5.0, 5.0, 5.0, 5.0]",
        "with jnp.abs  : y = [4.0, 4.5, 5.0, 5.5, 5.0, 5.5]",
        "grad_x: jax 4.5  torch 4.5",
        "grad_w: jax 10.0  torch 10.0",
        "losses identical at every step: True",
        "final y: jax 4.999998092651367  torch 4.999998092651367",
    ],
    "normal_equation": [
        "condition number of X: 4.72",
        "-> within 1e-05",
        "-> within 1e-12",
    ],
}


JOBS = {name: background.example(name, timeout_s=120, JAX_PLATFORMS="cpu") for name in EXPECTED}


@pytest.mark.parametrize("name", [background.param(name, JOBS[name]) for name in sorted(EXPECTED)])
def test_example_runs(name):
    proc = background.succeeded(JOBS[name])
    for line in EXPECTED[name]:
        assert line in proc.stdout, f"missing {line!r} in:\n{proc.stdout}"
    assert "OUTSIDE" not in proc.stdout and "MISMATCH" not in proc.stdout
    if name == "normal_equation":
        assert proc.stdout.count("-> within") == 6  # 3 frameworks x 2 dtypes
