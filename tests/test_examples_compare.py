"""examples/compare_custom_model.py runs end to end and its pair passes in both dtypes.

The script is a researcher's first contact with ``jaxtut.compare``: a model outside the catalogue
(a 30-64-32-1 tanh network on the breast-cancer table), its NNX port, and the comparison. It exits
0 only if both the float64 and the float32 comparison pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("torch")


# One torch thread as well: torch's one-ulp spread differs with its thread count, and with one
# thread the float32 pair once failed on a near-zero batch loss (docs/compare.md, "Losses near
# zero").
@pytest.mark.parametrize("threads", [None, "1"], ids=["default-threads", "one-thread"])
def test_compare_custom_model_passes_in_float64_and_float32(tmp_path, threads):
    env = dict(os.environ, MPLBACKEND="Agg")
    if threads:
        env["OMP_NUM_THREADS"] = threads
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "compare_custom_model.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    verdicts = [line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 2 and all(v.startswith("PASS") for v in verdicts), verdicts
    assert "(float64, 45 steps)" in verdicts[0] and "(float32, 45 steps)" in verdicts[1]
    assert "lr x 1.01 rejected" in proc.stdout  # the twin proves the comparison can fail
    assert not list(tmp_path.iterdir())  # the example writes nothing
