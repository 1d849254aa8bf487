"""Session hooks of the unit tests: the background jobs (tests/background.py)."""

from __future__ import annotations

import pytest

import background


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(items):
    # Tests that wait on a background job run last, so that their jobs have the session to finish.
    waiting = [item for item in items if item.get_closest_marker("background")]
    items[:] = [item for item in items if not item.get_closest_marker("background")] + waiting


def pytest_collection_finish(session):
    if not session.config.option.collectonly:
        background.start(background.jobs_of(session.items))


def pytest_sessionfinish(session):
    background.close()
