"""Files a kill cannot tear, that no planted link redirects, and one live
session per run folder.

:func:`write_atomic` writes to a fresh temporary name, fsyncs and renames, so a
file is there whole (old or new) or not at all: run.json, metrics.json and
phases.json are read on every retry of a night, and a torn one would fail each.
A run folder is data someone else may have written: no write in it follows a
symbolic link. The temporary name is random and created exclusively, the
rename replaces a link rather than its target, :func:`open_append` and
:class:`RunLogHandler` open with ``O_NOFOLLOW``, and :func:`own_dir` refuses a
linked sub-folder. :func:`hold_run_folder` takes ``<run>/.lock`` (``flock``)
for the session that works in a run folder; a resume of a run that is still
live is refused instead of reaping the live run's engines.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pipelines import UserError
from pipelines.spec.run_folder import LOCK_FILE

if TYPE_CHECKING:
    import pandas as pd

_held: dict[Path, int] = {}
"""Run folders this process holds, with how many blocks hold each."""


def fsync_dir(path: Path) -> None:
    """Make a file created or renamed in ``path`` survive a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    return 0o022


NO_LINK = os.O_NOFOLLOW | os.O_CLOEXEC


def _linked(path: Path) -> UserError:
    return UserError(
        f"{path} is a symbolic link: a run folder's files are written in it, "
        "never through a link out of it"
    )


def _no_link(path: Path, flags: int) -> int:
    """``os.open(path, flags)`` that refuses a symbolic link at ``path``."""
    try:
        return os.open(path, flags | NO_LINK, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _linked(path) from None
        raise


def own_dir(path: Path) -> Path:
    """``path`` as a folder of its own (made if missing), never a link elsewhere."""
    path.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        raise _linked(path)
    return path


def open_append(path: Path, mode: str = "ab") -> IO[Any]:
    """``path`` opened to append (``a+b``: to read too), not through a link."""
    flags = os.O_CREAT | os.O_APPEND | (os.O_RDWR if "+" in mode else os.O_WRONLY)
    return os.fdopen(_no_link(path, flags), mode)


class RunLogHandler(logging.FileHandler):
    """A :class:`logging.FileHandler` that appends to its file, never through a link."""

    def _open(self) -> IO[str]:
        fd = _no_link(Path(self.baseFilename), os.O_CREAT | os.O_APPEND | os.O_WRONLY)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a fresh, random temporary name beside ``path``, fsync,
    rename over ``path`` (a link there is replaced, not followed)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        write(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no partial file behind
        raise
    fsync_dir(path.parent)
    return path


def write_json(path: Path, record: Any) -> Path:
    """``record`` as indented JSON, atomically."""
    return write_text(path, json.dumps(record, indent=2, default=str) + "\n")


def write_parquet(path: Path, table: pd.DataFrame) -> Path:
    """``table`` (without its index) in ``path``, atomically."""
    return write_atomic(path, lambda tmp: table.to_parquet(tmp, index=False))


def write_text(path: Path, text: str) -> Path:
    """``text`` (UTF-8) in ``path``, atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@contextlib.contextmanager
def hold_run_folder(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for this process while the block runs (re-entrant).

    Raises:
        UserError: another live process holds it (a run or a resume of it).
    """
    key = run_dir.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = _no_link(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise UserError(
                f"{run_dir} is in use by a live run (pid {holder}); wait for it to end, "
                "or stop it first (python -m pipelines.stopping)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # releases the lock
