"""Acked JetStream publishes/s: the pipeline's publisher vs a synchronous loop."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from pipelines.config import NatsSinkConfig
from pipelines.sinks.messages import Message
from pipelines.sinks.nats_server import embedded_server
from pipelines.sinks.publisher import ensure_stream, publish


def messages(n: int, run: str) -> list[Message]:
    body = "x" * 1900  # ~2 KB JSON payloads
    return [
        Message(
            "agent.response.completed",
            f"{run}.t{i}.a",
            {"schema_version": 1, "run_id": run, "task_id": f"t{i}", "proposal": body},
        )
        for i in range(n)
    ]


def sync_loop(url: str, msgs: list[Message]) -> float:
    """Baseline: ``await js.publish`` one message at a time (each waits for its ack)."""

    async def run() -> float:
        import nats

        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_stream(js, NatsSinkConfig())
        start = time.perf_counter()
        for m in msgs:
            await js.publish(
                m.subject, json.dumps(m.payload).encode(), headers={"Nats-Msg-Id": m.msg_id}
            )
        elapsed = time.perf_counter() - start
        await nc.close()
        return elapsed

    return asyncio.run(run())


def test_async_publisher_throughput(tmp_path: Path) -> None:
    with embedded_server(tmp_path / "nats") as url:
        base_n = 2_000
        base_s = sync_loop(url, messages(base_n, "sync"))
        each_n = 10_000
        each = messages(each_n, "each")
        start = time.perf_counter()
        each_report = publish(url, NatsSinkConfig(atomic_batches=False), each)
        each_s = time.perf_counter() - start
        n = 40_000
        todo = messages(n, "async")
        start = time.perf_counter()
        report = publish(url, NatsSinkConfig(), todo)
        elapsed = time.perf_counter() - start
    assert report.acked == n and report.duplicate == 0
    assert each_report.acked == each_n
    rate, base, one_by_one = n / elapsed, base_n / base_s, each_n / each_s
    print(
        f"\nJetStream acked publishes, ~2 KB payloads, loopback: pipeline publisher "
        f"(atomic batches) {rate:,.0f} msgs/s ({n} in {elapsed:.2f} s, connect + stream "
        f"check included); one ack per message {one_by_one:,.0f} msgs/s; synchronous loop "
        f"{base:,.0f} msgs/s; ratio to the synchronous loop {rate / base:.1f}x"
    )
    assert rate >= 20_000
