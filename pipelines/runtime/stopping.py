"""A clean stop on SIGTERM (pod eviction, a CronJob's or RayJob's deadline, ``ray job stop``).

Under :func:`stop_on_sigterm`, SIGTERM raises :class:`Terminated` in the main
thread: the run takes no further batch, the batches in flight are abandoned
(the executor's exit stops their engines), and every context on the way out
closes. What landed stays on disk: each landed batch is a whole part, and its
messages are in the outbox (those the server never acked are published by a
resume or ``pipelines.replay``). The entry points then exit
:data:`EXIT_TERMINATED` and name the resume command.

A batch being landed (its part, then its outbox entry) is never cut in two:
inside :func:`uninterrupted` the signal waits for the block to end.

``python -m pipelines.stopping [--timeout S]`` sends SIGTERM to every
council-eval driver of this user on this host and waits for them to exit: a
pod's ``preStop`` hook, so that an evicted Ray head stops its run cleanly before
its processes go. A driver is known by the marker it leaves while it runs (a
file named by its pid, holding its start time, in a folder of this user's own:
:func:`drivers_dir`), never by a command line: another program's
``-m pipelines.run``, or another user's driver, is left alone, and a pid the
system gave to another process since is not signalled.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

DRIVERS_ENV = "COUNCIL_DRIVERS_DIR"
"""Overrides :func:`drivers_dir` (tests; a pod whose temp folder is not shared)."""


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt: no ``except
    Exception`` on the way out takes it for an ordinary error."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class _State:
    depth = 0  # uninterrupted blocks open in the main thread
    pending: int | None = None  # a signal that arrived inside one
    raised = False  # Terminated is on its way out: a repeat must not cut the cleanup


def _on_signal(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _State.raised:
        log.warning("%s again: already stopping", name)
        return
    if _State.depth:
        _State.pending = signum
        return
    _State.raised = True
    log.warning("%s: stopping; the batches in flight are abandoned", name)
    raise Terminated(signum)


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs (main thread only),
    and mark this process as a driver for ``pipelines.stopping`` meanwhile."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        with registered_driver():
            yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _State.raised, _State.pending = False, None


@contextmanager
def deadline(seconds: float | None) -> Iterator[threading.Event]:
    """SIGTERM this process once ``seconds`` have passed in the block (None: never).

    Under :func:`stop_on_sigterm` that is the same clean stop as a pod's or
    ``ray job stop``'s SIGTERM: what landed stays, the entry point exits
    :data:`EXIT_TERMINATED` and a resume continues. The event is set once the
    deadline fired, so the entry point can say why it stopped.
    """
    fired = threading.Event()
    if seconds is None:
        yield fired
        return

    def fire() -> None:
        fired.set()
        log.warning("deadline of %g s reached: stopping as on SIGTERM", seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def drivers_dir() -> Path:
    """Where running drivers leave their markers: ``$COUNCIL_DRIVERS_DIR``, else
    ``<temp>/council-eval-<uid>/drivers``."""
    given = os.environ.get(DRIVERS_ENV)
    if given:
        return Path(given)
    return Path(tempfile.gettempdir()) / f"council-eval-{os.getuid()}" / "drivers"


def own_dir(path: Path) -> bool:
    """Create ``path`` (mode 0700) if missing; whether it is a real folder of this
    user's own, writable by nobody else (a shared temp folder could hold a trap)."""
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.mkdir(mode=0o700)
    for folder in (path.parent, path):
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
    return True


@contextmanager
def registered_driver() -> Iterator[None]:
    """Leave this process's marker in :func:`drivers_dir` while the block runs."""
    import psutil

    folder = drivers_dir()
    try:
        usable = own_dir(folder)
    except OSError as e:
        usable = False
        log.warning("stopping: no driver marker (%s): pipelines.stopping will not see this run", e)
    if not usable:
        log.warning("stopping: %s is not this user's own folder; no driver marker", folder)
        yield
        return
    me = psutil.Process()
    marker = folder / f"{me.pid}.json"
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": me.pid, "started": me.create_time(), "argv": sys.argv}))
    tmp.replace(marker)
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def marked_drivers() -> list:
    """The live processes that left a marker: same pid, same start time, this user.
    Stale markers (a driver killed with SIGKILL) are removed."""
    import psutil

    folder = drivers_dir()
    if not folder.is_dir() or not own_dir(folder):
        return []
    found = []
    for marker in folder.glob("*.json"):
        try:
            mark = json.loads(marker.read_text())
            p = psutil.Process(int(mark["pid"]))
            same = abs(p.create_time() - float(mark["started"])) < 0.01
            if same and p.uids().real == os.getuid() and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
                continue
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            pass
        marker.unlink(missing_ok=True)
    return found


@contextmanager
def keep_sigterm_handler() -> Iterator[None]:
    """Whatever the block does to SIGTERM, the handler from before is in force after.

    ``ray.init`` sets its own (``sys.exit``), and its core worker a C-level
    failure-signal handler that prints a stack and ends the process.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)  # at the C level too


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold SIGTERM back until the block ends, then raise it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
    if _State.depth == 0 and _State.pending is not None:
        signum, _State.pending = _State.pending, None
        _on_signal(signum, None)


def stop_drivers(timeout_s: float) -> tuple[list[int], list[int]]:
    """SIGTERM every marked council-eval driver of this user; wait up to ``timeout_s``.

    Returns the pids signalled and those still alive at the timeout.
    """
    import psutil

    drivers = marked_drivers()
    for p in drivers:
        try:
            p.terminate()
        except psutil.Error:
            continue
    deadline = time.monotonic() + timeout_s
    alive = drivers
    while alive and time.monotonic() < deadline:
        _, alive = psutil.wait_procs(alive, timeout=0.2)
        alive = [p for p in alive if not exited(p)]  # a zombie waits for its parent only
    return [p.pid for p in drivers], [p.pid for p in alive]


def exited(p: object) -> bool:
    import psutil

    try:
        return p.status() == psutil.STATUS_ZOMBIE  # type: ignore[attr-defined]
    except psutil.NoSuchProcess:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.stopping",
        description="SIGTERM every council-eval driver of this user on this host (a running "
        "pipelines.run, pipelines.resume or pipelines.nightly: each leaves a marker in "
        f"{drivers_dir()}) and wait for them to stop: a preStop hook.",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default: 60)")
    args = parser.parse_args(argv)
    stopped, alive = stop_drivers(args.timeout)
    print(f"stopping: sent SIGTERM to {len(stopped)} driver(s) {stopped}; still running: {alive}")
    return 1 if alive else 0
