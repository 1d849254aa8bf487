"""SIGTERM handled like Ctrl-C while a command runs: the same cleanup, its own exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from jaxtut.errors import Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt).

    So SIGTERM gets Ctrl-C's cleanup: temporaries removed, no partial output. Python prints and
    drops an exception raised while a gc callback or ``__del__`` runs (JAX registers a gc
    callback), which swallowed Ctrl-C and SIGTERM mid-run (the run went on); such a dropped
    interrupt is re-delivered at once, so it lands in the command itself. Only the main thread
    can install handlers (``main`` may be called from a test's worker thread); everything is
    restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    lock = threading.Lock()
    done = False

    def terminate(signum, frame):
        if not done:
            raise Terminated

    def resend(sig: int) -> None:
        with lock:
            if not done:
                os.kill(os.getpid(), sig)

    def unraisable(info) -> None:
        if not isinstance(info.exc_value, KeyboardInterrupt):
            previous_hook(info)
        elif not done:  # dropped: send it again, from a thread (a signal sent to oneself is
            # handled at once, inside this hook, and dropped again); it lands in the command
            sig = signal.SIGTERM if isinstance(info.exc_value, Terminated) else signal.SIGINT
            timer = threading.Timer(0.01, resend, (sig,))
            timer.daemon = True
            timer.start()

    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        with lock:
            done = True
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook
