"""A run folder is data: resume, replay and track reach no endpoint its run.json names.

Stand-ins for the hostile servers are plain TCP listeners on loopback that count
who connects (a NATS server, an MLflow server, a Dask scheduler would each get
today's credentials, or hand the driver a pickle, once connected).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import PROJECT_ROOT, UserError
from pipelines.config import compose_config
from pipelines.driver.resume import resumed_config
from pipelines.driver.runinfo import write_run_info
from pipelines.spec.run_folder import RUN_INFO_FILE


class Listener:
    """A TCP port on loopback that accepts and counts connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture
def hostile() -> Iterator[dict[str, Listener]]:
    listeners = {name: Listener() for name in ("nats", "mlflow", "dask")}
    yield listeners
    for listener in listeners.values():
        listener.sock.close()


def hostile_folder(tmp_path: Path, hostile: dict[str, Listener], *overrides: str) -> Path:
    """A run folder whose run.json sends its sink, tracking and executor elsewhere."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = compose_config(["role=devops", *overrides])
    write_run_info(run_dir, "20261207-000000-devops-abc123", cfg)
    info = json.loads((run_dir / RUN_INFO_FILE).read_text())
    info["config"]["sink"]["url"] = f"nats://127.0.0.1:{hostile['nats'].port}"
    info["config"]["tracking"]["uri"] = f"http://127.0.0.1:{hostile['mlflow'].port}"
    info["config"]["executor"]["address"] = f"tcp://127.0.0.1:{hostile['dask'].port}"
    info["config"]["cache_dir"] = str(tmp_path / "their-cache")
    (run_dir / RUN_INFO_FILE).write_text(json.dumps(info))
    return run_dir


def test_a_resume_takes_the_executor_address_and_cache_from_today(
    tmp_path: Path, hostile: dict[str, Listener], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = hostile_folder(tmp_path, hostile, "executor=dask")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    cfg = resumed_config(run_dir)
    assert (cfg.executor.name, cfg.executor.address) == ("dask", None)
    assert cfg.cache_dir is None
    assert cfg.tracking.uri == os.environ["MLFLOW_TRACKING_URI"]  # today's (a test store)
    assert str(hostile["nats"].port) not in str(cfg.sink.url)


def test_a_resume_refuses_a_dataset_outside_datasets_unless_trusted(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    theirs = tmp_path / "their-tasks.jsonl"
    cfg = compose_config(["role=devops", f"dataset={theirs}"])
    write_run_info(run_dir, "20261207-000000-devops-abc123", cfg)
    with pytest.raises(UserError, match=r"dataset: '.*their-tasks\.jsonl'"):
        resumed_config(run_dir)
    assert resumed_config(run_dir, trust_run_folder=True).dataset == str(theirs)
    shipped = PROJECT_ROOT / "datasets" / "truth" / "data.jsonl"
    write_run_info(run_dir, "20261207-000000-devops-abc123", compose_config([f"dataset={shipped}"]))
    assert resumed_config(run_dir).dataset == str(shipped)


def test_resume_replay_and_track_touch_none_of_the_endpoints_a_run_folder_names(
    tmp_path: Path, hostile: dict[str, Listener]
) -> None:
    """The must-show: a real resume (Dask, vLLM, NATS, MLflow), then replay and track."""
    run_dir = hostile_folder(
        tmp_path,
        hostile,
        "executor=dask",
        "limit=1",
        "agents=1",
        "max_tokens=4",
        "embeddings=false",
        "tracking.experiment=council-tests/trust",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "DASK_"))}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *args],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=PROJECT_ROOT,
            env=env,
        )

    resumed = run("pipelines.resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / "results.parquet").is_file()
    replayed = run("pipelines.replay", str(run_dir), "--all")
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    assert "not to the run's recorded NATS URL; to its embedded store" in replayed.stdout
    tracked = run("pipelines.track", str(run_dir))
    assert tracked.returncode == 0, tracked.stderr[-3000:]
    assert os.environ["MLFLOW_TRACKING_URI"].split("///")[-1] in tracked.stdout
    assert {name: h.connections for name, h in hostile.items()} == {
        "nats": 0,
        "mlflow": 0,
        "dask": 0,
    }
    assert not (tmp_path / "their-cache").exists()


def test_replay_publishes_only_this_runs_messages_from_an_outbox(tmp_path: Path) -> None:
    """An outbox line is data: a JetStream API subject, a foreign run's message or a
    broken id is logged and left out; the stream survives the replay."""
    import asyncio

    from pipelines.config import NatsSinkConfig
    from pipelines.replay import main as replay_main
    from pipelines.sinks.nats_server import embedded_server
    from pipelines.sinks.publisher import connect, ensure_stream
    from tests.nats_helpers import stream_contents

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_id = "20261207-000000-devops-abc123"
    cfg = compose_config(["role=devops", "sink=nats", "tracking=none"])
    write_run_info(run_dir, run_id, cfg)
    good = {"run_id": run_id, "task_id": "t-1", "status": "COMPLETED"}
    lines = [
        {
            "subject": "agent.response.completed",
            "msg_id": f"{run_id}.devops.t-1.a1",
            "payload": good,
        },
        {"subject": "$JS.API.STREAM.DELETE.COUNCIL", "msg_id": f"{run_id}.x", "payload": good},
        {
            "subject": "agent.response.completed",
            "msg_id": "other-run.devops.t-1.a1",
            "payload": {**good, "run_id": "other-run"},
        },
        {"subject": "agent.response.completed", "msg_id": f"{run_id}.de vops..a1", "payload": good},
        ["not", "a", "record"],
    ]
    (run_dir / "outbox.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    async def stream_seq(url: str, create: bool = False) -> int:
        """The stream's first sequence (a deleted and re-created stream starts again)."""
        nc = await connect(url)
        js = nc.jetstream()
        if create:
            await ensure_stream(js, NatsSinkConfig(url=url))
            await js.publish("deliberation.completed", b"{}", headers={"Nats-Msg-Id": "first"})
        info = await js.stream_info("COUNCIL")
        await nc.close()
        return info.state.first_seq

    with embedded_server(tmp_path / "nats") as url:
        assert asyncio.run(stream_seq(url, create=True)) == 1
        assert replay_main([str(run_dir), "--url", url]) == 0
        got = stream_contents(url, "COUNCIL")[1:]
        assert asyncio.run(stream_seq(url)) == 1  # the same stream: never deleted
    assert [(s, p["run_id"]) for s, p in got] == [("agent.response.completed", run_id)]
