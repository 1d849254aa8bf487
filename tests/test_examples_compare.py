"""examples/compare_custom_model.py runs end to end and its pair passes in both dtypes.

The script is a researcher's first contact with ``jaxtut.compare``: a model outside the catalogue
(a 30-64-32-1 tanh network on the breast-cancer table), its NNX port, and the comparison. It exits
0 only if both the float64 and the float32 comparison pass.
"""

from __future__ import annotations

import pytest

import background

pytest.importorskip("torch")


# One torch thread as well: torch's one-ulp spread differs with its thread count, and with one
# thread the float32 pair once failed on a near-zero batch loss (docs/compare.md, "Losses near
# zero").
JOBS = {
    "default-threads": background.example("compare_custom_model", timeout_s=600),
    "one-thread": background.example(
        "compare_custom_model", tag="one-thread", timeout_s=600, OMP_NUM_THREADS="1"
    ),
}


@pytest.mark.parametrize("threads", [background.param(t, job) for t, job in JOBS.items()])
def test_compare_custom_model_passes_in_float64_and_float32(threads):
    proc = background.succeeded(JOBS[threads])
    verdicts = [line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 2 and all(v.startswith("PASS") for v in verdicts), verdicts
    assert "(float64, 45 steps)" in verdicts[0] and "(float32, 45 steps)" in verdicts[1]
    assert "lr x 1.01 rejected" in proc.stdout  # the twin proves the comparison can fail
    assert not list(proc.cwd.iterdir())  # the example writes nothing
