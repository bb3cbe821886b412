"""The outbox after a kill, the stream's config and the collector's input,
against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from pipelines.config import NatsSinkConfig, compose_config
from pipelines.flow.parts import part_files
from pipelines.flow.stream import Landing, StreamStats
from pipelines.sinks.collector import Collector
from pipelines.sinks.messages import agent_messages
from pipelines.sinks.nats import NatsSink
from pipelines.sinks.nats_server import embedded_server
from pipelines.sinks.outbox import acked_ids, append_outbox, pending, record_acked
from pipelines.sinks.publisher import connect, ensure_stream
from pipelines.spec.run_folder import OUTBOX_FILE
from tests.hardening.test_nats_names import answers
from tests.nats_helpers import stream_contents

RUN = "run-roles"


def test_a_torn_outbox_tail_is_cut_before_the_next_append_and_everything_publishes(
    tmp_path: Path,
) -> None:
    first = agent_messages(answers("dev", "t-001", 2), "m", {("dev", "t-001"): ["k"]}, 2)
    later = agent_messages(answers("dev", "t-002", 2), "m", {("dev", "t-002"): ["k"]}, 2)
    append_outbox(tmp_path, first)
    with (tmp_path / OUTBOX_FILE).open("ab") as f:  # a kill -9 in the middle of a write
        f.write(b'{"subject":"agent.response.completed","msg_id":"run-roles.de')
    append_outbox(tmp_path, later)  # the resumed run's next batch
    assert [m.msg_id for m in pending(tmp_path)] == [m.msg_id for m in first + later]
    with embedded_server(tmp_path / "nats") as url:
        with NatsSink(NatsSinkConfig(url=url, collector=False), tmp_path) as sink:
            sink.publish_pending()
            report = sink.report()
        assert (report.acked, report.pending) == (4, 0)
        assert len(stream_contents(url)) == 4


def test_a_torn_acked_tail_does_not_join_the_next_id(tmp_path: Path) -> None:
    record_acked(tmp_path, ["run.dev.t1.agent-dev-001"])
    with (tmp_path / "acked.txt").open("a") as f:
        f.write("run.dev.t1.agent-d")  # torn
    record_acked(tmp_path, ["run.dev.t2.agent-dev-001"])
    assert acked_ids(tmp_path) == {"run.dev.t1.agent-dev-001", "run.dev.t2.agent-dev-001"}


class PartWatchingSink(NatsSink):
    """A real NatsSink that notes, when it keeps a batch, whether the batch's part
    was already visible (a kill -9 at that moment would lose the messages)."""

    seen: list[int]

    def keep(self, messages):  # type: ignore[no-untyped-def]
        self.seen.append(len(part_files(self.run_dir)))
        super().keep(messages)

    def publish(self, messages, on_acked=None, kept=False):  # type: ignore[no-untyped-def]
        if not kept:
            self.seen.append(len(part_files(self.run_dir)))
        super().publish(messages, on_acked, kept)


def test_a_batch_is_kept_before_its_part_is_visible_seen_by_a_watching_sink(
    tmp_path: Path,
) -> None:
    cfg = compose_config(["role=dev", "agents=2"])
    rows = answers("dev", "t-001", 2).drop(columns="run_id")
    rows = rows.assign(batch_id=0, started_at=time.time(), batch_s=0.1, system_prompt="s")
    with embedded_server(tmp_path / "nats") as url:
        sink = PartWatchingSink(NatsSinkConfig(url=url, collector=False), tmp_path)
        sink.seen = []
        with sink:
            landing = Landing(cfg, RUN, tmp_path, sink, {("dev", "t-001"): ["k"]})
            landing.land(rows, StreamStats(), cached=False)
            assert sink.report().acked == 2
    assert sink.seen == [0]  # kept while no part was there
    assert len(part_files(tmp_path)) == 1


def test_the_stream_config_is_merged_not_replaced(tmp_path: Path) -> None:
    from nats.js.api import RetentionPolicy, StreamConfig

    async def scenario(url: str):  # type: ignore[no-untyped-def]
        nc = await connect(url)
        js = nc.jetstream()
        await js.add_stream(  # an operator's stream, with their own limits
            StreamConfig(
                name="COUNCIL",
                subjects=["ops.>"],
                max_age=3600.0,
                max_bytes=1 << 20,
                retention=RetentionPolicy.LIMITS,
                description="operator's",
                duplicate_window=60.0,
            )
        )
        cfg = NatsSinkConfig(url=url)
        atomic = await ensure_stream(js, cfg)
        merged = (await js.stream_info("COUNCIL")).config
        await js.delete_stream("COUNCIL")
        await ensure_stream(js, cfg)  # one the sink creates
        fresh = (await js.stream_info("COUNCIL")).config
        await js.delete_stream("COUNCIL")
        await js.add_stream(  # an operator's shared stream, unlimited on purpose
            StreamConfig(name="COUNCIL", subjects=["ops.>"], max_age=0, max_bytes=-1)
        )
        await ensure_stream(js, cfg)
        unlimited = (await js.stream_info("COUNCIL")).config
        await nc.close()
        return atomic, merged, fresh, unlimited

    with embedded_server(tmp_path / "nats") as url:
        atomic, merged, fresh, unlimited = asyncio.run(scenario(url))
    assert atomic and merged.allow_atomic
    assert set(merged.subjects) == {"ops.>", "agent.response.>", "deliberation.>"}
    assert (merged.max_age, merged.max_bytes, merged.description) == (3600.0, 1 << 20, "operator's")
    assert merged.duplicate_window == 3600.0  # the sink's day, cut to the stream's max age
    assert (fresh.max_age, fresh.max_bytes) == (30 * 86400.0, 4 << 30)
    # 0 and -1 are the operator's "unlimited": kept, or the server would drop their
    # messages older than 30 days (and past 4 GiB) at the sink's first run.
    assert (unlimited.max_age, unlimited.max_bytes) == (0.0, -1)
    assert unlimited.duplicate_window == 86400.0


def test_the_collector_skips_bad_messages_and_settles_the_good_one_on_every_replay(
    tmp_path: Path, caplog
) -> None:
    good = agent_messages(answers("dev", "t-001", 2), "m", {("dev", "t-001"): ["k"]}, 2)
    valid = good[0].payload
    bad = [
        b"[1, 2, 3]",
        b"not json",
        json.dumps({"council_size": 2}).encode(),  # the keys it reads, missing
        json.dumps({**valid, "task_id": "t-009", "council_size": 10**9}).encode(),
        json.dumps({**valid, "task_id": "t\x00\r\n>"}).encode(),
        json.dumps({**valid, "task_id": "t-010", "plan": {"rounds": "many"}}).encode(),
        # Accepted by the first check, and then crashed the collector or stalled it:
        json.dumps({**valid, "task_id": "t-011", "keywords": [""]}).encode(),
        json.dumps({**valid, "task_id": "t-012", "step": "rank", "parsed": 5}).encode(),
        json.dumps({**valid, "task_id": "t-013", "step": "rank", "parsed": [["a"]]}).encode(),
        json.dumps({**valid, "task_id": "t-014", "step": "judge", "parsed": [1]}).encode(),
        json.dumps(  # 23 s in add() for this one message
            {
                **valid,
                "task_id": "t-015",
                "council_size": 1024,
                "repeats": 64,
                "plan": {"rounds": 64},
            }
        ).encode(),
    ]

    async def publish_all(url: str) -> None:
        nc = await connect(url)
        js = nc.jetstream()
        await ensure_stream(js, NatsSinkConfig())
        for data in bad:
            await js.publish("agent.response.completed", data)
        for m in good:
            await js.publish(m.subject, json.dumps(m.payload).encode())
        await nc.close()

    async def collect(url: str) -> Collector:
        collector = Collector(url, NatsSinkConfig(url=url), 30.0)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        for _ in range(100):
            if collector.state.ended or task.done():
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task  # raises if the collector died
        return collector

    with embedded_server(tmp_path / "nats") as url:
        asyncio.run(publish_all(url))
        for _ in range(2):  # a restarted collector replays the same stream
            collector = asyncio.run(collect(url))
            assert collector.state.ended == {(RUN, "dev", "t-001"): "COMPLETED"}
            assert collector.state.open == {}
    skipped = [r.getMessage() for r in caplog.records if "skipped a message" in r.getMessage()]
    assert len(skipped) == 2 * len(bad)
    assert any("council_size" in s and "less than or equal to 1024" in s for s in skipped)
    assert any("over 4096 answers a deliberation" in s for s in skipped)
    assert any("a ranking is a list of agent ids" in s for s in skipped)


def test_a_completed_message_without_a_proposal_settles_and_ended_state_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pipelines.sinks.deliberation as deliberation
    from pipelines.sinks.deliberation import Deliberations
    from pipelines.sinks.payloads import agent_payload

    monkeypatch.setattr(deliberation, "ENDED_KEPT", 3)
    state = Deliberations(30.0)
    for i in range(5):
        record = {
            "run_id": RUN,
            "role": "dev",
            "task_id": f"t-{i}",
            "agent_id": "agent-dev-001",
            "status": "COMPLETED",
            "council_size": 1,
        }  # no proposal: it crashed the collector's summary
        payload = agent_payload(json.dumps(record).encode())
        assert isinstance(payload, dict)
        _, outcome = state.add(payload, 0.0)
        assert outcome is not None and outcome.record["status"] == "COMPLETED"
    assert list(state.ended) == [(RUN, "dev", f"t-{i}") for i in (2, 3, 4)]


def test_kept_messages_whose_part_never_landed_give_way_to_the_regenerated_ones(
    tmp_path: Path,
) -> None:
    """A kill after the outbox entry and before the part: the resume generates the
    batch again, and its newer messages (the part's text) are the ones published."""
    old = agent_messages(answers("dev", "t-001", 2), "m", {("dev", "t-001"): ["k"]}, 2)
    again = answers("dev", "t-001", 2).assign(proposal=["regenerated 1", "regenerated 2"])
    new = agent_messages(again, "m", {("dev", "t-001"): ["k"]}, 2)
    append_outbox(tmp_path, old)
    append_outbox(tmp_path, new)
    assert [m.payload["proposal"] for m in pending(tmp_path)] == ["regenerated 1", "regenerated 2"]


def test_a_message_over_the_servers_max_payload_is_dead_lettered_and_the_rest_publish(
    tmp_path: Path,
) -> None:
    """A real nats-server with ``max_payload: 4096``: one proposal of 8 KB used to
    stop every publish after it, on every replay (exit 3 for ever)."""
    from pipelines.runtime.procs import child_server, free_port, port_open
    from pipelines.sinks.nats_server import server_binary

    keywords = {("dev", "t-001"): ["k"], ("dev", "t-002"): ["k"]}
    small = agent_messages(answers("dev", "t-001", 2), "m", keywords, 2)
    huge = answers("dev", "t-002", 1).assign(proposal="x" * 8000)
    big = agent_messages(huge, "m", keywords, 1)
    append_outbox(tmp_path, small[:1] + big + small[1:])
    port = free_port()
    conf = tmp_path / "nats.conf"
    conf.write_text(
        f"listen: 127.0.0.1:{port}\nmax_payload: 4096\n"
        f"jetstream {{ store_dir: {json.dumps(str(tmp_path / 'store'))} }}\n"
    )
    with child_server(
        "nats-server", [server_binary(), "-c", str(conf)], lambda: port_open(port), timeout_s=10
    ):
        url = f"nats://127.0.0.1:{port}"
        with NatsSink(NatsSinkConfig(url=url, collector=False), tmp_path) as sink:
            sink.publish_pending()
            report = sink.report()
        stored = [payload["agent_id"] for _, payload in stream_contents(url)]
        assert stored == ["agent-dev-001", "agent-dev-002"]
        assert (report.acked, report.pending, report.dead) == (2, 0, 1)
        assert (tmp_path / "dead.txt").read_text() == f"{big[0].msg_id}\n"
        with NatsSink(NatsSinkConfig(url=url, collector=False), tmp_path) as sink:
            sink.publish_pending()  # a replay: nothing left, nothing retried
            again = sink.report()
        assert (again.messages, again.pending) == (0, 0)
