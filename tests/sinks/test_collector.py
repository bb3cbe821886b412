"""The deliberation collector against a real nats-server: outcomes, TIMEOUT by
the clock, the status bucket, the status CLI, and a second collector."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import NatsSinkConfig
from pipelines.driver.status import read_statuses
from pipelines.sinks.collector import Collector
from pipelines.sinks.messages import agent_messages
from pipelines.sinks.nats import NatsSink
from pipelines.sinks.nats_server import embedded_server
from pipelines.status import main as status_main
from tests.nats_helpers import stream_contents

RUN = "run-collect"


def answers(task: str, agents: list[int], failed: int | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run_id": RUN,
                "task_id": task,
                "role": "dev",
                "agent_id": f"agent-dev-{a:03d}",
                "agent_index": a,
                "temperature": 0.7,
                "seed": a,
                "proposal": "" if a == failed else f"a cache and a queue, {a}",
                "prompt_tokens": 5,
                "completion_tokens": 0 if a == failed else 7,
                "finish_reason": "stop",
                "latency": 0.1,
                "error": "ValueError: too long" if a == failed else None,
            }
            for a in agents
        ]
    )


def publish(sink: NatsSink, rows: pd.DataFrame) -> None:
    keywords = {(r.role, r.task_id): ["cache", "queue"] for r in rows.itertuples()}
    sink.publish(agent_messages(rows, "m", keywords, council_size=3))


def test_outcomes_timeout_by_the_clock_and_status(tmp_path: Path, capsys) -> None:
    tasks = [("dev", "dev-ok"), ("dev", "dev-failed"), ("dev", "dev-late"), ("dev", "dev-idle")]
    with embedded_server(tmp_path / "nats") as url:
        cfg = NatsSinkConfig(url=url)
        with NatsSink(cfg, tmp_path) as sink:
            sink.follow(RUN, tasks, since_ms=int(time.time() * 1000), timeout_s=2.0)
            statuses = asyncio.run(read_statuses(url, cfg.status_bucket, RUN))
            assert Counter(s["status"] for s in statuses) == {"PENDING": 4}
            start = time.monotonic()
            publish(sink, answers("dev-ok", [1, 2, 3]))
            publish(sink, answers("dev-failed", [1, 2, 3], failed=2))
            publish(sink, answers("dev-late", [1, 3]))  # agent 2 withheld
            assert sink.settle(1.0) == 2  # dev-late open, dev-idle never started
            assert sink.settle(10.0) == 1  # dev-late timed out; dev-idle has no message
            timed_out_after = time.monotonic() - start
            report = sink.report()
        got = stream_contents(url)
        capsys.readouterr()
        assert status_main([RUN, "--url", url]) == 0
        printed = capsys.readouterr().out

    assert timed_out_after >= 2.0  # not before DELIBERATION_TIMEOUT, by the clock
    deliberations = {p["task_id"]: (s, p) for s, p in got if s.startswith("deliberation.")}
    assert set(deliberations) == {"dev-ok", "dev-failed", "dev-late"}
    assert deliberations["dev-ok"][0] == "deliberation.completed"
    subject, late = deliberations["dev-late"]
    assert (subject, late["status"], late["missing"]) == (
        "deliberation.failed",
        "TIMEOUT",
        ["agent-dev-002"],
    )
    assert late["elapsed_s"] >= 2.0
    assert deliberations["dev-failed"][1]["status"] == "FAILED"
    assert deliberations["dev-ok"][1]["scores"]["keyword_relevance"] == 1.0
    assert report.pending == 0 and report.acked == report.messages == 8 + 3
    lines = {line.split()[0]: line.split()[2] for line in printed.splitlines()[:-1]}
    assert lines == {
        "dev-ok": "COMPLETED",
        "dev-failed": "FAILED",
        "dev-late": "TIMEOUT",
        "dev-idle": "PENDING",
    }
    assert printed.splitlines()[-1].startswith("4 deliberations")


def test_a_second_collector_publishes_nothing_twice(tmp_path: Path) -> None:
    with embedded_server(tmp_path / "nats") as url:
        cfg = NatsSinkConfig(url=url)
        with NatsSink(cfg, tmp_path) as sink:
            sink.follow(RUN, [("dev", "t1")], since_ms=int(time.time() * 1000), timeout_s=30)
            publish(sink, answers("t1", [1, 2, 3]))
            assert sink.settle(10.0) == 0
        before = len(stream_contents(url))

        async def replay() -> Collector:
            collector = Collector(url, cfg, 30.0)  # every run, the whole stream
            stop = asyncio.Event()
            task = asyncio.create_task(collector.run(stop))
            for _ in range(100):
                if collector.state.ended:
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await task
            return collector

        again = asyncio.run(replay())
        assert again.state.ended == {(RUN, "dev", "t1"): "COMPLETED"}
        assert len(stream_contents(url)) == before == 3 + 1


@pytest.mark.parametrize("bucket", ["council_status"])
def test_status_of_an_unknown_run_says_so(tmp_path: Path, bucket: str, capsys) -> None:
    with embedded_server(tmp_path / "nats") as url:
        assert status_main(["no-such-run", "--url", url, "--bucket", bucket]) == 1
    assert "no deliberations of run no-such-run" in capsys.readouterr().err
