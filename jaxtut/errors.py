"""Exceptions that the CLI turns into one clear line and a non-zero exit.

Everything a user can get wrong (an unknown tutorial, a bad option, missing or corrupt data, a
missing optional dependency, an absent device) raises a subclass of :class:`JaxtutError` whose
message is a single sentence naming the problem and the fix. Programming errors stay ordinary
exceptions so that they keep their tracebacks.
"""

from __future__ import annotations


class JaxtutError(Exception):
    """Base class for user-facing errors: the message is shown as is, without a traceback."""


class ConfigError(JaxtutError, ValueError):
    """An option has a value the tutorial cannot run with."""


class DataError(JaxtutError):
    """A data set is missing, truncated, altered or unreadable."""


class MissingDependencyError(JaxtutError, ImportError):
    """An optional dependency (PyTorch, TFDS) is not installed."""


class DeviceError(JaxtutError):
    """The requested device (e.g. ``gpu``) is not available."""


class OutputError(JaxtutError):
    """An output path cannot be written, is not a regular file, or is named twice."""


class BudgetError(ConfigError):
    """The requested work or memory exceeds a stated limit (checked before any work starts)."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM.

    A subclass of :class:`KeyboardInterrupt` so that every cleanup written for Ctrl-C (temporary
    files removed, no partial output) runs for SIGTERM too; the CLI exits 143 instead of 130.
    """


class UnknownTutorialError(JaxtutError, KeyError):
    """No tutorial is registered under the given id."""

    def __str__(self) -> str:  # KeyError would quote the message.
        return str(self.args[0]) if self.args else ""
