"""Atomic file output: a reader never sees a half-written JSON, PNG or report.

Everything is written to a temporary file in the destination directory, flushed, and moved into
place with ``os.replace`` (atomic on POSIX). An interrupted write leaves the old file, or none,
and no temporary behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces ``path``, else it is removed.

    The destination directory is created if needed. The temporary keeps ``path``'s suffix so that
    writers that infer the format from it (matplotlib's ``savefig``) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:  # KeyboardInterrupt included: never leave the temporary behind.
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically writes ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically writes ``obj`` as indented JSON (strict: no NaN literals)."""
    return write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")
