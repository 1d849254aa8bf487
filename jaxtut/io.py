"""Output files: checked before any work, written atomically, never replacing what is not a file.

Every file jaxtut writes (``--json``, ``--plot``, ``--save``, reports) goes through this module:

* **Checked up front.** :func:`check_outputs` resolves every output path of a command before it
  trains anything: an empty path, a folder, a device, a parent that is a file, a folder that
  cannot be written, or two outputs on one path is an :class:`~jaxtut.errors.OutputError` (one
  line, exit 2 at the CLI) in milliseconds instead of an error after an hour of training.
* **Atomic.** :func:`atomic_path` writes a temporary file in the destination's folder, flushes it
  and moves it into place with ``os.replace`` (atomic on POSIX). An interrupted write (Ctrl-C,
  SIGTERM, a full disk) leaves the old file, or none, and no temporary behind.
* **Only regular files are replaced.** Renaming over a device node, a FIFO or a socket would
  destroy it (as root, ``--json /dev/null`` used to leave a regular file where the device was),
  so anything but a regular file at the destination is refused.
* **Symlinks are written through.** A link such as ``latest.json -> runs/7.json`` is how users
  redirect output; replacing the link by a file would silently break that redirection, and
  ``open(path, "w")`` follows links too. So the final target is resolved (every link followed),
  must itself be a regular file or not exist, and is replaced atomically while the link stays.
* **Permissions as ``open()`` gives them.** ``mkstemp`` creates files readable by their owner
  only; a new output instead gets ``0o666 & ~umask`` like any file a program creates, and a
  replaced file keeps its mode, so a JSON, a PNG and a safetensors file never differ.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jaxtut.errors import OutputError

PathLike = str | os.PathLike


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it and put it back
    os.umask(mask)
    return mask


def resolve_output(path: PathLike) -> Path:
    """The file an output path will write: every symlink followed, refused unless writable-as-file.

    Args:
      path: the path a user gave.

    Returns:
      The absolute target path (a regular file or nothing yet).

    Raises:
      OutputError: the path is empty, or names a folder, a device, a FIFO, a socket or a symlink
        loop.
    """
    if path is None or not isinstance(path, str | os.PathLike):
        raise OutputError(f"an output path must be a file path, got {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise OutputError(f"an output path must be a file path, got {text!r}")
    if text.endswith(os.sep):
        raise OutputError(f"output {text} ends with {os.sep!r}: give a file name, not a folder")
    target = Path(os.path.realpath(Path(text).expanduser()))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except NotADirectoryError:
        return target  # a parent is a file: reported with the folder checks
    except OSError as err:
        raise OutputError(f"cannot use output {text}: {_reason(err)}") from None
    if stat.S_ISDIR(mode):
        raise OutputError(f"output {text} is a folder; give a file path inside it")
    if not stat.S_ISREG(mode):
        raise OutputError(
            f"output {text} is not a regular file (a device, FIFO or socket); jaxtut replaces "
            "only regular files, so choose another path"
        )
    return target


def check_output(path: PathLike) -> Path:
    """Checks, without writing anything, that ``path`` can be written; returns its target.

    The nearest existing folder above the target must be a folder in which a file can be
    created: this is tested by creating and removing a temporary file there, which catches
    permissions, read-only file systems and ACLs alike (``os.access`` misses the latter two for
    some file systems). Missing folders below it are created only when the output is written.

    Raises:
      OutputError: see :func:`resolve_output`; or the folder cannot be created or written.
    """
    target = resolve_output(path)
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {os.fspath(path)}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".jaxtut-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(
            f"cannot write {os.fspath(path)}: folder {folder} is not writable ({_reason(err)})"
        ) from None
    return target


def check_outputs(paths: Mapping[str, PathLike | None]) -> dict[str, Path]:
    """Checks every named output (``{"--json": path, ...}``; ``None`` skipped) before work starts.

    Returns:
      ``{name: target}`` for the outputs given.

    Raises:
      OutputError: an output cannot be written (:func:`check_output`), or two outputs resolve to
        the same file (one would silently overwrite the other).
    """
    targets: dict[str, Path] = {}
    for name, path in paths.items():
        if path is None:
            continue
        target = check_output(path)
        for other, seen in targets.items():
            if seen == target:
                raise OutputError(
                    f"{other} and {name} both write {os.fspath(path)}; give each its own path"
                )
        targets[name] = target
    return targets


def check_report_dir(path: PathLike, suffixes: tuple[str, ...] = (".md", ".json", ".png")) -> Path:
    """Checks a report folder that a command will REPLACE as a whole (``jaxtut tour --out``).

    Replacing a folder deletes what is in it, so an existing folder is accepted only if it holds
    nothing but regular files with a report's ``suffixes`` (a previous report); anything else is
    refused rather than deleted.

    Raises:
      OutputError: the path is empty or a file, holds other things, or cannot be written.
    """
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else None
    if not text or not text.strip():
        raise OutputError(f"a report folder must be a path, got {path!r}")
    folder = Path(text).expanduser()
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OutputError(f"report folder {text} exists and is not a folder; choose another path")
    if folder.is_dir():
        foreign = [
            p.name
            for p in folder.iterdir()
            if p.is_symlink() or not p.is_file() or p.suffix not in suffixes
        ]
        if foreign:
            raise OutputError(
                f"report folder {text} holds {foreign[0]!r}, which is not part of a report; "
                "jaxtut replaces the whole folder, so choose an empty or new one"
            )
    check_output(folder / "index.md")
    return folder


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces ``path``'s target, else it goes.

    Missing folders are created. The temporary keeps the suffix so that writers that infer the
    format from it (matplotlib's ``savefig``) still do. See the module docstring for symlinks,
    non-regular files and permissions.

    Raises:
      OutputError: the destination is not a regular file, or writing fails (a full disk, a
        read-only folder); the temporary is removed first.
    """
    target = resolve_output(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent
        )
        os.close(fd)
    except OSError as err:
        raise OutputError(f"cannot write {os.fspath(path)}: {_reason(err)}") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            existing = os.stat(target).st_mode
        except FileNotFoundError:
            existing = None
        if existing is not None and not stat.S_ISREG(existing):
            # Created while the output was being written; still never replace it.
            raise OutputError(f"output {os.fspath(path)} is no longer a regular file; not replaced")
        mode = stat.S_IMODE(existing) if existing is not None else 0o666 & ~_umask()
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, target)
    except OSError as err:
        tmp_path.unlink(missing_ok=True)
        raise OutputError(f"cannot write {os.fspath(path)}: {_reason(err)}") from None
    except BaseException:  # Ctrl-C and SIGTERM included: never leave the temporary behind.
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: PathLike, text: str) -> Path:
    """Atomically writes ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: PathLike, obj: Any) -> Path:
    """Atomically writes ``obj`` as indented JSON (strict: no NaN literals)."""
    return write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


class Outputs:
    """The output files of one command: checked before work, then written and recorded.

    The record is what lets an interrupted command say truthfully which outputs exist.

    Example:
      >>> outputs = Outputs({"--json": "r.json", "--plot": None})  # doctest: +SKIP
      >>> with outputs.writing("--json") as path:  # doctest: +SKIP
      ...     write_json(path, {...})
    """

    def __init__(self, paths: Mapping[str, PathLike | None]):
        """Checks every given path (see :func:`check_outputs`); ``None`` entries are absent."""
        check_outputs(paths)
        self.paths: dict[str, Path] = {k: Path(v) for k, v in paths.items() if v is not None}
        self.written: list[Path] = []

    def __contains__(self, name: str) -> bool:
        return name in self.paths

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """Yields the path of output ``name`` to write (atomically); records it on success."""
        path = self.paths[name]
        yield path
        self.written.append(path)

    def interrupted_note(self) -> str:
        """What an interrupted command left: which outputs were written, which were not."""
        if not self.written:
            return "no output files were written"
        missing = [str(p) for p in self.paths.values() if p not in self.written]
        note = f"wrote {', '.join(map(str, self.written))}"
        return note + (f"; not written: {', '.join(missing)}" if missing else "")
