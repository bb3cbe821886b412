"""The deliberation collector: a JetStream consumer of ``agent.response.>``.

It feeds each agent message (with the time the stream stored it) to
:class:`~pipelines.sinks.deliberation.Deliberations`, times deliberations out
by the clock, publishes each ``deliberation.completed|failed`` (``Nats-Msg-Id``
``<run_id>.<role>.<task_id>``, so a second collector or a replay never duplicates
one) and keeps every deliberation's status in a JetStream key-value bucket
under ``<run_id>.<role>.<task_id>``: PENDING → IN_PROGRESS → COMPLETED | FAILED |
TIMEOUT. It runs inside a run (``sink=nats``) and on its own as ``python -m
pipelines.collect``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pipelines.config import NatsSinkConfig
from pipelines.sinks.deliberation import PENDING, Deliberations, Outcome, status_key, status_record
from pipelines.sinks.messages import Message
from pipelines.sinks.payloads import agent_payload
from pipelines.sinks.publisher import connect, ensure_stream

log = logging.getLogger(__name__)

AGENT_SUBJECTS = "agent.response.>"
TICK_S = 0.25
"""How often the clock is checked for timed-out deliberations."""


PENDING_AT_ONCE = 256
"""PENDING records written concurrently when a run starts."""


async def status_bucket(js: Any, cfg: NatsSinkConfig) -> Any:
    """The status bucket, created if missing (one value per key, within the
    sink's retention limits)."""
    from nats.js.api import KeyValueConfig
    from nats.js.errors import BucketNotFoundError

    try:
        return await js.key_value(cfg.status_bucket)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=cfg.status_bucket,
                history=1,
                ttl=cfg.status_max_age_s,
                max_bytes=cfg.status_max_bytes,
            )
        )


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


class Collector:
    """Consumes agent messages, ends deliberations, publishes them, keeps their status.

    Args:
        url: the NATS server.
        cfg: stream and bucket names.
        timeout_s: DELIBERATION_TIMEOUT.
        run_id: only this run's messages (None: every run's).
        since: replay the stream from this Unix time (None: from its start).
        keep: called with each deliberation message before it is published
            (the run's outbox).
        on_end: called with each outcome and the server's ack (None: not acked).
    """

    def __init__(
        self,
        url: str,
        cfg: NatsSinkConfig,
        timeout_s: float,
        run_id: str | None = None,
        since: float | None = None,
        keep: Callable[[list[Message]], None] | None = None,
        on_end: Callable[[Outcome, Any], None] | None = None,
    ) -> None:
        self.url = url
        self.cfg = cfg
        self.run_id = run_id
        self.since = since
        self.keep = keep
        self.on_end = on_end
        self.state = Deliberations(timeout_s)

    async def run(
        self,
        stop: asyncio.Event,
        pending: Iterable[tuple[str, str]] = (),
        ready: Callable[[], None] | None = None,
    ) -> None:
        """Collect until ``stop`` is set.

        ``pending``: (role, task_id) of this run's deliberations, recorded as
        PENDING unless the bucket already has them (a resumed run).
        """
        from nats.js.api import ConsumerConfig, DeliverPolicy
        from nats.js.errors import KeyWrongLastSequenceError

        nc = await connect(self.url)
        try:
            js = nc.jetstream()
            await ensure_stream(js, self.cfg)
            kv = await status_bucket(js, self.cfg)

            async def create(role: str, task_id: str) -> None:
                record = status_record(self.run_id or "", task_id, role, PENDING)
                # Already there: a resumed run keeps what it knew.
                with contextlib.suppress(KeyWrongLastSequenceError):
                    await kv.create(status_key(self.run_id or "", role, task_id), _encode(record))

            # In flight together, PENDING_AT_ONCE at a time: one at a time, each
            # waiting for its ack, 5,000 tasks took 40 s before the first batch.
            todo = list(pending)
            for i in range(0, len(todo), PENDING_AT_ONCE):
                await asyncio.gather(*(create(*t) for t in todo[i : i + PENDING_AT_ONCE]))
            queue: asyncio.Queue = asyncio.Queue()
            if self.since is None:
                consumer = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
            else:
                start = datetime.fromtimestamp(self.since, UTC).isoformat()
                consumer = ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start
                )
            sub = await js.subscribe(
                AGENT_SUBJECTS,
                stream=self.cfg.stream,
                cb=queue.put,
                ordered_consumer=True,
                config=consumer,
            )
            if ready is not None:
                ready()
            caught_up = False
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(queue.get(), timeout=TICK_S)
                except TimeoutError:
                    caught_up = True
                else:
                    caught_up = msg.metadata.num_pending == 0
                    await self._take(js, kv, msg)
                    if not queue.empty():
                        continue
                # Time out only once the backlog is read: a replayed deliberation
                # must first meet all of its stored answers.
                if caught_up:
                    for outcome in self.state.expire(time.time()):
                        await self._end(js, kv, outcome)
            await sub.unsubscribe()
        finally:
            await nc.close()

    async def _take(self, js: Any, kv: Any, msg: Any) -> None:
        payload = agent_payload(msg.data)
        if isinstance(payload, str):  # logged and skipped: a replay meets it again
            older = payload.startswith("no council_size")
            log.log(
                logging.DEBUG if older else logging.WARNING,
                "collector: skipped a message on %s (stream seq %s): %s",
                msg.subject,
                msg.metadata.sequence.stream,
                payload,
            )
            return
        if self.run_id is not None and payload["run_id"] != self.run_id:
            return
        try:
            started, outcome = self.state.add(payload, msg.metadata.timestamp.timestamp())
        except Exception:  # one message must not stop the collector, nor every replay
            log.exception(
                "collector: skipped a message on %s (stream seq %s) it could not take",
                msg.subject,
                msg.metadata.sequence.stream,
            )
            return
        if started is not None:
            key = status_key(started["run_id"], started["role"], started["task_id"])
            await kv.put(key, _encode(started))
        if outcome is not None:
            await self._end(js, kv, outcome)

    async def _end(self, js: Any, kv: Any, outcome: Outcome) -> None:
        m = outcome.message
        if self.keep is not None:
            self.keep([m])
        ack = None
        try:
            data = json.dumps(m.payload, separators=(",", ":")).encode()
            ack = await js.publish(m.subject, data, headers={"Nats-Msg-Id": m.msg_id})
        except Exception as e:  # noqa: BLE001 - kept in the outbox for a replay
            log.warning("collector: %s not published: %s", m.msg_id, e)
        await kv.put(outcome.key, _encode(outcome.record))
        # One a task: the console's line is the batch's (pipelines.flow.stream), this is run.log's.
        status = outcome.record["status"]
        log.log(
            logging.DEBUG if status == "COMPLETED" else logging.INFO,
            "deliberation %s: %s",
            m.msg_id,
            status,
        )
        if self.on_end is not None:
            self.on_end(outcome, ack)
