"""The background jobs' runner (tests/background.py): output, exit status, hang guard, clean-up."""

from __future__ import annotations

import time

import pytest

import background


@pytest.fixture
def runner():
    # A runner of its own: the session's is busy with the suite's jobs.
    runner = background._Runner()
    yield runner
    runner.close()


def test_a_job_runs_in_an_empty_folder_of_its_own_and_reports_its_exit(runner):
    code = "import os, sys; print(os.listdir('.'), os.environ['JAXTUT_X']); sys.exit('E')"
    job = background.Job("exit-1", ("-c", code), env=(("JAXTUT_X", "x"),))
    run = runner.result(job)
    assert (run.returncode, run.stdout, run.stderr) == (1, "[] x\n", "E\n")
    assert run.cwd.name == "exit-1" and run.cwd.is_dir()
    assert runner.result(job) is run  # started once, whoever asks
    with pytest.raises(AssertionError, match="exit-1 exited 1:\n\\[\\] x\nE"):
        runner.succeeded(job)  # with the tails of its output


def test_a_job_past_its_hang_guard_fails_the_test_and_is_killed(runner):
    job = background.Job("sleeper", ("-c", "import time; time.sleep(60)"), timeout_s=1.0)
    start = time.perf_counter()
    with pytest.raises(pytest.fail.Exception, match="sleeper: no result 1 s after"):
        runner.result(job)
    runner.close()  # returns at once: the process was killed
    assert time.perf_counter() - start < 30


def test_close_kills_running_jobs_and_removes_their_folders(runner):
    job = background.Job("long", ("-c", "import time; time.sleep(60)"))
    runner.start([job])
    deadline = time.monotonic() + 30
    while job not in runner._procs and time.monotonic() < deadline:
        time.sleep(0.05)
    root = runner._root
    runner.close()
    assert runner._procs == {} and not root.exists()


def test_jobs_run_at_a_lower_priority_than_the_suite(runner):
    code = (
        "import os; policy = getattr(os, 'sched_getscheduler', lambda pid: None)(0); "
        "print(policy == getattr(os, 'SCHED_IDLE', -1) or os.nice(0) > 0)"
    )
    assert runner.result(background.Job("priority", ("-c", code))).stdout == "True\n"
