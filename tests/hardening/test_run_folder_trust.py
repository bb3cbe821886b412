"""A run folder is data: resume, replay and track reach no endpoint its run.json names.

Stand-ins for the hostile servers are plain TCP listeners on loopback that count
who connects (a NATS server, an MLflow server, a Dask scheduler would each get
today's credentials, or hand the driver a pickle, once connected).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
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


def sleeper(**env: str) -> subprocess.Popen:
    return subprocess.Popen(["sleep", "120"], env=os.environ | env)


def test_a_planted_procs_json_stops_only_this_users_processes_carrying_the_runs_marker(
    tmp_path: Path,
) -> None:
    """procs.json is data: naming a process (pid and start time, both public) used to
    get it SIGKILLed by the next resume, whoever's it was."""
    import psutil

    from pipelines.runtime.reaper import MARKER_ENV, reap_recorded

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    victim = sleeper()  # the user's own shell, editor, another service
    other_run = sleeper(**{MARKER_ENV: str(tmp_path / "another-run")})
    ours = sleeper(**{MARKER_ENV: str(run_dir.resolve())})
    try:
        procs = {str(p.pid): psutil.Process(p.pid).create_time() for p in (victim, other_run, ours)}
        (run_dir / "procs.json").write_text(json.dumps(procs))
        stopped = reap_recorded(run_dir)
        ours.wait(timeout=10)  # stopped: it would sleep for two minutes
        assert stopped == [f"{ours.pid} sleep"]
        assert (victim.poll(), other_run.poll()) == (None, None)
    finally:
        for p in (victim, other_run, ours):
            p.kill()
            p.wait()


def test_what_a_run_started_is_reaped_by_the_resume_when_driver_and_sidecar_died(
    tmp_path: Path,
) -> None:
    """The marker is inherited: a real driver under :func:`reaper` starts a child,
    then the sidecar and the driver are SIGKILLed; the resume's reap stops the child."""
    import psutil

    from pipelines.runtime.reaper import reap_recorded

    run_dir = tmp_path / "run"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\nfrom pathlib import Path\n"
            "from pipelines.runtime.reaper import reaper\n"
            f"with reaper(Path({str(run_dir)!r})):\n"
            "    child = subprocess.Popen(['sleep', '120'])\n"
            "    print(child.pid, flush=True)\n"
            "    time.sleep(120)\n",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None
    child = psutil.Process(int(driver.stdout.readline()))
    try:
        deadline = time.monotonic() + 20
        while str(child.pid) not in _read(run_dir / "procs.json"):
            assert time.monotonic() < deadline, "the sidecar never recorded the child"
            time.sleep(0.1)
        (sidecar,) = [p for p in psutil.Process(driver.pid).children() if p.pid != child.pid]
        sidecar.kill()  # a zombie of the driver's until the driver dies too
        driver.kill()
        driver.wait(10)
        assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
        assert reap_recorded(run_dir) == [f"{child.pid} sleep"]
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


PLANTED = (
    "results.parquet",
    "task_metrics.parquet",
    "metrics.json",
    ".metrics.json.tmp",  # the temporary name writes used to take
    "phases.json",
    "report.html",
    ".report.html.tmp",
)


def test_no_write_in_a_run_folder_follows_a_link_planted_there(tmp_path: Path) -> None:
    """Links to a stand-in ``~/.bashrc`` under every name a report or a resume writes:
    ``pipelines.report <dir>`` alone used to overwrite it."""
    from pipelines.driver.pipeline import run_pipeline
    from tests.engine_helpers import stand_in_engine

    home = tmp_path / "home"
    home.mkdir()
    run_dir = tmp_path / "run"
    with stand_in_engine() as server:
        overrides = ["engine=openai", f"engine.url={server}", "executor=local", "sink=none"]
        cfg = compose_config(
            ["role=devops", "limit=1", "agents=2", "max_tokens=8", "tracking=none", *overrides]
        )
        run_pipeline(cfg, run_dir, executor=None)

        def plant(name: str) -> Path:
            victim = home / f"bashrc-{name}"
            victim.write_text("precious\n")
            (run_dir / name).unlink(missing_ok=True)
            (run_dir / name).symlink_to(victim)
            return victim

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            env = os.environ | {"VLLM_URL": server}
            return subprocess.run(
                [sys.executable, "-m", *args, str(run_dir)],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=PROJECT_ROOT,
                env=env,
            )

        victims = [plant("report.html"), plant(".report.html.tmp")]
        reported = cli("pipelines.report")  # it reads the run's tables, writes its page
        assert reported.returncode == 0, reported.stderr[-3000:]
        assert not (run_dir / "report.html").is_symlink()
        victims += [plant(name) for name in PLANTED]
        resumed = cli("pipelines.resume")  # it writes them all again
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        for name in ("run.log", ".lock"):  # appended to, or locked and written
            victims.append(plant(name))
            refused = cli("pipelines.resume")
            assert refused.returncode == 2, refused.stderr[-3000:]
            assert f"{run_dir / name} is a symbolic link" in refused.stderr
            (run_dir / name).unlink()
    assert [v.read_text() for v in victims] == ["precious\n"] * len(victims)
    for name in PLANTED:
        assert name.endswith(".tmp") or not (run_dir / name).is_symlink(), name
