"""A real ``mlflow server`` on loopback for tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.runtime.procs import child_server, free_port, http_ok

ADMIN_PASSWORD = "admin-pw-of-the-test"


@contextmanager
def mlflow_server(root: Path, auth_config: Path | None = None) -> Iterator[str]:
    """``mlflow server`` with a SQLite store and served artifacts under ``root``;
    with ``auth_config``, its basic-auth app (user ``admin``, :data:`ADMIN_PASSWORD`)."""
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
    # Seven job-runner processes (250 MB each) the pipeline never uses: off, as deployed.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    if auth_config is not None:
        cmd += ["--app-name", "basic-auth"]
        env |= {
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key",
        }
    url = f"http://127.0.0.1:{port}"
    with child_server(
        "mlflow server",
        cmd,
        lambda: http_ok(f"{url}/health"),
        log_file=root / "server.log",
        env=env,
        timeout_s=90,
        stop_timeout_s=15,
    ):
        yield url
