"""Faults real components produce on demand: a NATS server that refuses the
run's credentials, and secrets that must never leave the environment (a full
disk and a dead engine: tests/integration/test_resume.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from pipelines import PROJECT_ROOT
from pipelines.replay import main as replay_main
from pipelines.runtime.procs import child_server, free_port, port_open
from pipelines.sinks.nats_server import server_binary
from pipelines.sinks.outbox import pending, read_outbox
from tests.mlflow_helpers import mlflow_server
from tests.nats_helpers import stream_contents

RIGHT_PASSWORD = "sentinel-nats-password-right-6c0f"
SECRETS = {
    "NATS_TOKEN": "sentinel-nats-token-5b1c",
    "NATS_PASSWORD": "sentinel-nats-password-wrong-9e7d",
    "VLLM_API_KEY": "sentinel-vllm-key-2a44",
    "HF_TOKEN": "sentinel-hf-token-77f0",
    "MLFLOW_TRACKING_TOKEN": "sentinel-mlflow-token-c3d1",
    "MLFLOW_TRACKING_PASSWORD": "sentinel-mlflow-password-0b8e",
}
COUNCIL = ["role=devops", "embeddings=false", "executor=local"]
ONE = ["limit=1", "max_tokens=8"]
"""One task, three agents."""


@contextmanager
def nats_with_password(store: Path) -> Iterator[str]:
    """A real nats-server (JetStream) that admits user ``council`` with RIGHT_PASSWORD."""
    port = free_port()
    cmd = [server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    cmd += ["--user", "council", "--pass", RIGHT_PASSWORD]
    with child_server("nats-server", cmd, lambda: port_open(port), timeout_s=10):
        yield f"nats://127.0.0.1:{port}"


def files_holding(root: Path, secrets: list[str]) -> list[str]:
    """Every file under ``root`` whose bytes hold one of ``secrets``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return found


def test_wrong_nats_credentials_keep_the_run_in_its_outbox_and_no_secret_is_written(
    tmp_path: Path, model_dir: Path
) -> None:
    out = tmp_path / "run"
    with nats_with_password(tmp_path / "nats") as url, mlflow_server(tmp_path / "mlflow") as ml:
        env = {**os.environ, **SECRETS, "NATS_URL": url, "NATS_USER": "council"}
        env["MLFLOW_TRACKING_URI"] = ml
        run = subprocess.run(
            [sys.executable, "-m", "pipelines.run", f"hydra.run.dir={out}", *COUNCIL, *ONE],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        # The run completes to its outbox, is tracked, and says what failed and why.
        said = run.stdout + run.stderr
        assert run.returncode == 3, said[-4000:]
        assert "Authorization Violation" in said
        assert "pipelines.replay" in run.stderr
        assert len(pending(out)) == 3 and len(read_outbox(out)) == 3
        assert pd.read_parquet(out / "results.parquet")["error"].isna().all()

        # The right password publishes what the outbox kept, each message once.
        os.environ.update(NATS_USER="council", NATS_PASSWORD=RIGHT_PASSWORD)
        try:
            assert replay_main([str(out), "--url", url]) == 0
            assert replay_main([str(out), "--url", url]) == 0  # nothing new the second time
            got = stream_contents(url)
        finally:
            os.environ.pop("NATS_USER")
            os.environ.pop("NATS_PASSWORD")
    assert sorted(p["agent_id"] for _, p in got) == [f"agent-devops-00{i}" for i in (1, 2, 3)]

    # No secret in the run folder, the MLflow store and artifacts, the NATS
    # store, the console, or the messages.
    secrets = [*SECRETS.values(), RIGHT_PASSWORD]
    assert files_holding(tmp_path, secrets) == []
    assert [s for s in secrets if s in said] == []
    payloads = json.dumps([p for _, p in got])
    assert [s for s in secrets if s in payloads] == []
