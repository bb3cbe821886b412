"""Child servers: start one in its own process group, wait until it is ready, stop it.

One helper for every server council-eval runs beside itself: the embedded
``nats-server``, the vLLM OpenAI server (``serve_model``) and, in tests, an
``mlflow server``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import psutil

from pipelines.runtime.durable import open_append

log = logging.getLogger(__name__)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def connect_error(host: str, port: int, timeout: float = 5.0) -> OSError | None:
    """Why a TCP connection to ``host:port`` fails (None: it is accepted); ``host``
    may be a bracketed IPv6 address."""
    try:
        socket.create_connection((host.strip("[]"), port), timeout=timeout).close()
    except OSError as e:
        return e
    return None


def http_ok(url: str) -> bool:
    """Whether ``GET url`` answers 200 within 2 s."""
    import httpx

    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def renice(ident: int, by: int) -> None:
    """Raise the niceness of process (or, on Linux, thread) ``ident`` by ``by``;
    one that has exited already is left alone."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, ident, os.getpriority(os.PRIO_PROCESS, ident) + by)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads, then SIGKILL after ``timeout`` s."""
    if proc.poll() is not None:
        return

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()


def _tail(path: Path | None, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path and path.exists() else ""


@contextmanager
def child_server(
    name: str,
    cmd: Sequence[str],
    ready: Callable[[], bool],
    *,
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
    stop_timeout_s: float = 10.0,
    niceness: int = 0,
) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` in a new process group until the ``with`` block ends.

    Polls ``ready()`` until it returns true; raises :class:`RuntimeError` (with
    the tail of ``log_file``) when the process exits first or ``timeout_s``
    passes. On exit the whole group gets SIGTERM, then SIGKILL, so the
    server's own children (an engine core, gunicorn workers) stop with it.

    Args:
        name: what the server is, for messages.
        cmd: the command line.
        ready: probe called every 0.1-0.5 s until true.
        log_file: where the server's stdout and stderr go (appended); None:
            this terminal.
        env: the environment (default: this process's).
        timeout_s: how long to wait for ``ready``.
        stop_timeout_s: grace between SIGTERM and SIGKILL.
        niceness: added to the server's scheduling niceness (a server beside an
            engine on the same cores yields to it).
    """
    out = open_append(log_file) if log_file else None
    proc = subprocess.Popen(
        list(cmd),
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    if niceness:
        renice(proc.pid, niceness)
    try:
        start = time.monotonic()
        pause = 0.1
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode} before it was ready:\n{_tail(log_file)}"
                )
            if time.monotonic() - start > timeout_s:
                raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s:\n{_tail(log_file)}")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)
        log.debug("%s ready in %.1f s (pid %d)", name, time.monotonic() - start, proc.pid)
        yield proc
    finally:
        stop_process(proc, timeout=stop_timeout_s)
        if out is not None:
            out.close()


def live_descendants(name_prefix: str = "") -> list[psutil.Process]:
    """Live (not zombie) descendants of this process whose name starts with ``name_prefix``."""
    alive = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.name().startswith(name_prefix) and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)  # a zombie has exited and only waits to be reaped
        except psutil.NoSuchProcess:
            continue
    return alive


def reap(procs: Sequence[psutil.Process], timeout: float = 15.0) -> list[psutil.Process]:
    """Wait up to ``timeout`` s for ``procs`` to exit, SIGKILL the rest; returns those killed."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5.0)
    return alive
