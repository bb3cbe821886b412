"""Files a kill cannot tear, and one live session per run folder.

:func:`write_atomic` writes to a temporary name, fsyncs and renames, so a file
is there whole (old or new) or not at all: run.json, metrics.json and
phases.json are read on every retry of a night, and a torn one would fail each.
:func:`hold_run_folder` takes ``<run>/.lock`` (``flock``) for the session that
works in a run folder; a resume of a run that is still live is refused
instead of reaping the live run's engines.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipelines import UserError
from pipelines.spec.run_folder import LOCK_FILE

_held: dict[Path, int] = {}
"""Run folders this process holds, with how many blocks hold each."""


def fsync_dir(path: Path) -> None:
    """Make a file created or renamed in ``path`` survive a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a temporary name beside ``path``, fsync, rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
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
    text = json.dumps(record, indent=2, default=str) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text))


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
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
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
