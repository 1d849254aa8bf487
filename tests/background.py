"""Long subprocess runs that start as soon as collection ends, at idle priority, and finish last.

The example scripts and the ``--quick`` benchmark run are subprocesses that spend most of their
time compiling and in single-threaded Python. Run inline they took 201 s of pytest's 813 on the
2-core CPU, while the rest of the suite left a third of the two cores idle (user + sys 19.4
core-minutes in 13.5 minutes; measured 2026-12-02). So a test that needs such a run is marked
``@pytest.mark.background(job, ...)``: tests/conftest.py starts the jobs that the selected tests
need when collection ends and moves those tests to the end of the session, where ``result(job)``
collects each job's output.

Jobs run two at a time, at the OS's idle priority (``SCHED_IDLE``, else ``nice 19``): the
foreground tests keep their cores and the jobs take what is left. Measured on the 2-core CPU: with
the fifteen jobs in the background pytest took 618 s instead of 813, and no test waited more
than 8 s for its job. No test may assert a job's time: its only limit is a
hang guard, counted from the moment a test asks for the result.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_RUNNING = 2  # the jobs share what the foreground leaves of two cores

# Runs the job's command at idle priority: the trampoline lowers its own priority, then execs the
# command, which keeps it (safer than a preexec_fn, since jobs start from worker threads).
_AT_IDLE_PRIORITY = """\
import os, sys
try:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
except (AttributeError, OSError):
    os.nice(19)
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


@dataclasses.dataclass(frozen=True)
class Job:
    """``python *args``, run in an empty folder of its own.

    Attributes:
        name: a unique label: the folder's name and the one used in messages.
        args: the arguments after the interpreter.
        env: variables set on top of the suite's environment; ``PYTHONPATH`` always starts with
            the project root.
        timeout_s: the hang guard, counted from the moment a test asks for the result.
    """

    name: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 600.0


@dataclasses.dataclass(frozen=True)
class Finished:
    """What a job left: its exit status, its output, and its folder (the ``cwd`` it ran in)."""

    returncode: int
    stdout: str
    stderr: str
    cwd: Path


def example(name: str, *, tag: str = "", timeout_s: float = 180.0, **env: str) -> Job:
    """``examples/<name>.py`` as a job, plotting to files (``MPLBACKEND=Agg``), with ``env`` set.

    ``tag`` tells apart two jobs of one script (its name is ``example-<name>[-<tag>]``).
    """
    variables = tuple(sorted({"MPLBACKEND": "Agg", **env}.items()))
    label = f"example-{name}" + (f"-{tag}" if tag else "")
    return Job(label, (str(ROOT / "examples" / f"{name}.py"),), variables, timeout_s)


def param(value, job: Job):
    """``pytest.param(value)`` marked as needing ``job``, for parametrized tests."""
    return pytest.param(value, marks=pytest.mark.background(job))


class _Runner:
    """Starts jobs (idempotently), at most ``MAX_RUNNING`` at once, and hands out their results."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._root: Path | None = None
        self._futures: dict[Job, concurrent.futures.Future[Finished]] = {}
        self._procs: dict[Job, subprocess.Popen] = {}
        self._closing = False

    def start(self, jobs) -> None:
        for job in jobs:
            self._submit(job)

    def _submit(self, job: Job) -> concurrent.futures.Future[Finished]:
        with self._lock:
            if job not in self._futures:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(MAX_RUNNING)
                    self._root = Path(tempfile.mkdtemp(prefix="jaxtut-background-"))
                if any(other.name == job.name for other in self._futures):
                    raise ValueError(f"two background jobs are named {job.name!r}")
                self._futures[job] = self._pool.submit(self._run, job, self._root)
            return self._futures[job]

    def _run(self, job: Job, root: Path) -> Finished:
        cwd = root / job.name
        cwd.mkdir()
        env = dict(os.environ, **dict(job.env))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        out, err = root / f"{job.name}.stdout", root / f"{job.name}.stderr"
        # Files, not pipes: nobody reads a job's output until a test asks, and a full pipe would
        # stall it.
        with out.open("w") as stdout, err.open("w") as stderr:
            with self._lock:  # so that close() either sees the process or stops it starting
                if self._closing:
                    raise RuntimeError(f"{job.name}: the session is closing")
                proc = self._procs[job] = subprocess.Popen(
                    [sys.executable, "-c", _AT_IDLE_PRIORITY, *job.args],
                    cwd=cwd,
                    env=env,
                    stdout=stdout,
                    stderr=stderr,
                    stdin=subprocess.DEVNULL,
                )
            returncode = proc.wait()
        return Finished(returncode, out.read_text(), err.read_text(), cwd)

    def result(self, job: Job) -> Finished:
        future = self._submit(job)
        try:
            return future.result(timeout=job.timeout_s)
        except concurrent.futures.TimeoutError:
            with self._lock:
                proc = self._procs.get(job)
            if proc is not None:
                proc.kill()
            pytest.fail(f"{job.name}: no result {job.timeout_s:.0f} s after a test asked for it")

    def succeeded(self, job: Job) -> Finished:
        run = self.result(job)
        assert run.returncode == 0, f"{job.name} exited {run.returncode}:\n" + (
            run.stdout[-3000:] + run.stderr[-3000:]
        )
        return run

    def close(self) -> None:
        """Kills what still runs (an interrupted or ``-x`` session) and removes the folders."""
        with self._lock:
            self._closing = True
            for proc in self._procs.values():
                if proc.poll() is None:
                    proc.kill()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        with self._lock:
            self._pool, self._root, self._closing = None, None, False
            self._futures.clear()
            self._procs.clear()


_RUNNER = _Runner()
start = _RUNNER.start
result = _RUNNER.result
succeeded = _RUNNER.succeeded  # result(job), failing the test unless the job exited 0
close = _RUNNER.close


def jobs_of(items) -> list[Job]:
    """The jobs that ``items``' ``background`` marks name, once each, in the items' order."""
    jobs = {}
    for item in items:
        for mark in item.iter_markers("background"):
            jobs.update(dict.fromkeys(mark.args))
    return list(jobs)
