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
council-eval driver on this host and waits for them to exit: a pod's
``preStop`` hook, so that an evicted Ray head stops its run cleanly before its
processes go.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from types import FrameType

log = logging.getLogger(__name__)

EXIT_TERMINATED = 128 + signal.SIGTERM
"""143, what a shell reports for a process SIGTERM ended."""
DRIVERS = ("pipelines.run", "pipelines.resume", "pipelines.nightly")
"""The entry points that stop cleanly on SIGTERM."""


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
    """Turn SIGTERM into :class:`Terminated` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _State.raised, _State.pending = False, None


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
    """SIGTERM every council-eval driver on this host; wait up to ``timeout_s``.

    Returns the pids signalled and those still alive at the timeout.
    """
    import psutil

    drivers = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if any(a == "-m" and b in DRIVERS for a, b in pairwise(cmd)):
            drivers.append(p)
    for p in drivers:
        try:
            p.terminate()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(drivers, timeout=timeout_s)
    return [p.pid for p in drivers], [p.pid for p in alive]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.stopping",
        description="SIGTERM every council-eval driver on this host (pipelines.run, "
        "pipelines.resume, pipelines.nightly) and wait for them to stop: a preStop hook.",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default: 60)")
    args = parser.parse_args(argv)
    stopped, alive = stop_drivers(args.timeout)
    print(f"stopping: sent SIGTERM to {len(stopped)} driver(s) {stopped}; still running: {alive}")
    return 1 if alive else 0


if __name__ == "__main__":
    sys.exit(main())
