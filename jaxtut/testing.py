"""A pytest helper: put a torch-vs-JAX comparison in your own test suite in a few lines.

Example::

    from jaxtut.testing import assert_trains_the_same

    def test_my_port():
        torch.manual_seed(0)
        model = MyTorchNet()
        assert_trains_the_same(
            model, MyJaxNet(rngs=nnx.Rngs(0)), (x, y),
            loss=torch.nn.CrossEntropyLoss(),
            optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
            batch_size=64,
        )

A failure fails the test with the report's one-line verdict (the first diverging tier, step and
leaf) and no traceback into jaxtut.
"""

from __future__ import annotations

from typing import Any


def assert_trains_the_same(model: Any, apply: Any, data: Any, **kwargs: Any):
    """Runs :func:`jaxtut.compare` and fails the calling test with its verdict if it fails.

    Args:
      model, apply, data, **kwargs: as for :func:`jaxtut.compare`; pass ``report="path"`` to also
        write the JSON / Markdown / PNG report.

    Returns:
      The :class:`~jaxtut.compare_report.CompareReport` (when it passed).
    """
    from jaxtut.harness import compare

    report_path = kwargs.pop("report", None)
    report = compare(model, apply, data, **kwargs)
    if report_path is not None:
        report.write(report_path)
    if not report.passed:
        import pytest

        pytest.fail(report.verdict, pytrace=False)
    return report
