"""A real ``mlflow server`` on loopback for tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.runtime.procs import child_server, free_port, http_ok


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """``mlflow server`` with a SQLite store and served artifacts under ``root``."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    url = f"http://127.0.0.1:{port}"
    with child_server(
        "mlflow server",
        cmd,
        lambda: http_ok(f"{url}/health"),
        log_file=root / "server.log",
        timeout_s=90,
        stop_timeout_s=15,
    ):
        yield url
