"""JetStream publishing with bounded in-flight acks, deduplicated by message id."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipelines.config import NatsSinkConfig
from pipelines.runtime.redact import redact_exc, redact_text
from pipelines.sinks.messages import STREAM_SUBJECTS, Message

log = logging.getLogger(__name__)

BATCH_SIZE = 256
"""Messages per atomic batch (the server takes at most 1000)."""
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
"""Compact JSON; one encoder for all messages (json.dumps with options builds one per call)."""
HEADER_BYTES = 192
"""Room for a message's headers besides its id (``NATS/1.0``, an atomic batch's
id, sequence and commit: 130 bytes at most): the server's ``max_payload``
counts headers and data together, and closes the connection of a client that
sends more."""

Encoded = tuple[Message, bytes]


@dataclass
class PublishReport:
    """Outcome of a publish: counts, and the ids the server confirmed."""

    acked: int = 0
    duplicate: int = 0
    failed: int = 0
    acked_ids: list[str] = field(default_factory=list)
    dead_ids: list[str] = field(default_factory=list)
    """Over the server's ``max_payload``: not sent, and no retry can send them."""
    error: str | None = None

    @property
    def unpublished(self) -> int:
        return self.failed


def connect_options() -> dict:
    """Credentials from the environment: NATS_CREDS (file), NATS_TOKEN, NATS_USER/PASSWORD."""
    opts: dict = {}
    if os.environ.get("NATS_CREDS"):
        opts["user_credentials"] = os.environ["NATS_CREDS"]
    if os.environ.get("NATS_TOKEN"):
        opts["token"] = os.environ["NATS_TOKEN"]
    if os.environ.get("NATS_USER"):
        opts["user"] = os.environ["NATS_USER"]
        opts["password"] = os.environ.get("NATS_PASSWORD", "")
    return opts


async def connect(url: str) -> Any:
    """A NATS connection that gives up within seconds on a down server.

    A refused connection says why (e.g. ``Authorization Violation``: no or a
    wrong ``NATS_TOKEN``), not only that no server was available.
    """
    import nats
    from nats.errors import NoServersError

    seen: list[Exception] = []

    async def on_error(e: Exception) -> None:
        seen.append(e)
        log.warning("nats: %s: %s", url, e)

    try:
        return await nats.connect(
            url,
            connect_timeout=2,
            max_reconnect_attempts=3,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            error_cb=on_error,
            **connect_options(),
        )
    except NoServersError:
        if seen:  # every distinct reason: the server's refusal, then a reset, say
            reasons = "; ".join(dict.fromkeys(str(e) for e in seen))
            raise ConnectionError(redact_text(f"{url}: {reasons}")) from None
        raise


async def ensure_stream(js: Any, cfg: NatsSinkConfig) -> bool:
    """Create the sink's stream if missing, else merge what the sink needs into it.

    The sink needs its subjects, its duplicate window and atomic batches; an
    existing stream keeps everything else (its retention, replicas, other
    subjects, and its limits: a 0 or -1 there is an explicit "unlimited", which
    NATS cannot tell from unset, so the sink's limits go only on a stream it
    creates). Returns whether the stream takes atomic batches (nats-server >= 2.12).
    """
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    try:
        info = await js.stream_info(cfg.stream)
    except NotFoundError:
        info = await js.add_stream(
            StreamConfig(
                name=cfg.stream,
                subjects=STREAM_SUBJECTS,
                duplicate_window=cfg.duplicate_window_s,
                allow_atomic=True,
                max_age=cfg.stream_max_age_s,
                max_bytes=cfg.stream_max_bytes,
            )
        )
        return bool(info.config.allow_atomic)
    have = info.config
    window = cfg.duplicate_window_s
    if have.max_age and have.max_age > 0:
        window = min(window, have.max_age)  # the server refuses a window past it
    if window < cfg.duplicate_window_s:
        log.warning(
            "nats: stream %s keeps messages %.0f s: replays are deduplicated over that, "
            "not sink.duplicate_window_s (%.0f s)",
            cfg.stream,
            have.max_age,
            cfg.duplicate_window_s,
        )
    merged = dataclasses.replace(
        have,
        subjects=(have.subjects or [])
        + [s for s in STREAM_SUBJECTS if s not in (have.subjects or [])],
        duplicate_window=window,
        allow_atomic=True,
    )
    if merged != have:
        log.info("nats: stream %s: adding what the sink needs to its config", cfg.stream)
        info = await js.update_stream(merged)
    return bool(info.config.allow_atomic)


async def _publish_atomic(
    nc,
    report: PublishReport,
    messages: list[Encoded],
    max_in_flight: int,
    ack_timeout_s: float,
    on_ack: Callable[[int], None] | None,
) -> list[Encoded]:
    """Publish ``messages`` in atomic batches, one ack per batch.

    Each message keeps its ``Nats-Msg-Id``; the server stores a batch whole or
    not at all, and rejects one that holds an id it has already stored (a
    replay). Returns the messages of the batches not stored, for the one-ack-
    per-message path, which also counts duplicates.
    """
    size = min(BATCH_SIZE, max_in_flight)
    slots = asyncio.Semaphore(max(1, max_in_flight // size))
    inbox = nc.new_inbox()
    waiting: dict[str, asyncio.Future] = {}

    async def on_reply(msg) -> None:
        fut = waiting.pop(msg.subject.rsplit(".", 1)[-1], None)
        if fut is not None and not fut.done():
            fut.set_result(msg.data)

    sub = await nc.subscribe(f"{inbox}.*", cb=on_reply)
    batch_prefix = uuid.uuid4().hex
    sent: list[tuple[list[Encoded], asyncio.Future]] = []

    def acked(chunk: list[Encoded], fut: asyncio.Future) -> None:
        slots.release()
        if fut.cancelled():
            return
        try:
            ack = json.loads(fut.result())
        except ValueError:
            return
        if "error" not in ack and ack.get("count") == len(chunk):
            report.acked += len(chunk)
            report.acked_ids.extend(m.msg_id for m, _ in chunk)
            if on_ack is not None:
                on_ack(report.acked)

    try:
        for start in range(0, len(messages), size):
            try:
                await asyncio.wait_for(slots.acquire(), timeout=ack_timeout_s)
            except TimeoutError:
                report.error = f"no batch ack for {ack_timeout_s:g} s"
                break
            chunk = messages[start : start + size]
            token = str(start)
            fut = asyncio.get_running_loop().create_future()
            waiting[token] = fut
            fut.add_done_callback(lambda f, c=chunk: acked(c, f))
            batch_id = f"{batch_prefix}-{token}"
            for seq, (m, data) in enumerate(chunk, 1):
                headers = {
                    "Nats-Msg-Id": m.msg_id,
                    "Nats-Batch-Id": batch_id,
                    "Nats-Batch-Sequence": str(seq),
                }
                last = seq == len(chunk)
                if last:
                    headers["Nats-Batch-Commit"] = "1"
                await nc.publish(
                    m.subject, data, reply=f"{inbox}.{token}" if last else "", headers=headers
                )
            sent.append((chunk, fut))
        if sent:
            await asyncio.wait([f for _, f in sent], timeout=ack_timeout_s)
    finally:
        for _, fut in sent:
            if not fut.done():
                fut.cancel()
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    stored = set(report.acked_ids)
    return [(m, data) for m, data in messages if m.msg_id not in stored]


async def _publish_each(
    js,
    report: PublishReport,
    messages: list[Encoded],
    max_in_flight: int,
    ack_timeout_s: float,
    on_ack: Callable[[int], None] | None,
) -> None:
    """Publish ``messages`` one by one, one ack each (``duplicate`` flags counted)."""
    futures = []
    acks = report.acked
    in_flight = 0
    room = asyncio.Event()

    def count(fut: asyncio.Future) -> None:
        nonlocal acks, in_flight
        in_flight -= 1
        if in_flight <= max_in_flight // 2:
            room.set()
        if not fut.cancelled() and fut.exception() is None:
            acks += 1
            if on_ack is not None:
                on_ack(acks)

    try:
        for m, data in messages:
            if in_flight >= max_in_flight:
                # Wait here, for many acks at once: nats-py's own stall wait
                # (wait_stall) costs a task per message, a third of the rate.
                room.clear()
                try:
                    await asyncio.wait_for(room.wait(), timeout=ack_timeout_s)
                except TimeoutError:
                    report.error = f"no ack for {ack_timeout_s:g} s, {in_flight} in flight"
                    break
            fut = await js.publish_async(m.subject, data, headers={"Nats-Msg-Id": m.msg_id})
            in_flight += 1
            fut.add_done_callback(count)
            futures.append(fut)
    except Exception as e:  # noqa: BLE001 - count what was sent, report the rest
        report.error = redact_exc(e)
    # publish_async futures carry no timeout of their own.
    done: set = set()
    if futures:
        done, _ = await asyncio.wait(futures, timeout=ack_timeout_s)
    for (m, _), fut in zip(messages, futures, strict=False):
        if fut in done and fut.exception() is None:
            ack = fut.result()
            report.acked += 1
            report.duplicate += bool(ack.duplicate)
            report.acked_ids.append(m.msg_id)
        elif not fut.done():
            fut.cancel()


def fitting(report: PublishReport, messages: list[Encoded], max_payload: int) -> list[Encoded]:
    """The messages the server can take; the others' ids go to ``report.dead_ids``."""
    fit = []
    for m, data in messages:
        size = len(data) + len(m.msg_id) + HEADER_BYTES
        if size > max_payload:
            log.warning(
                "nats: message %s is %d bytes with its headers, over the server's max_payload "
                "(%d): not sent",
                m.msg_id,
                size,
                max_payload,
            )
            report.dead_ids.append(m.msg_id)
        else:
            fit.append((m, data))
    return fit


async def publish_on(
    nc: Any,
    cfg: NatsSinkConfig,
    messages: list[Message],
    on_ack: Callable[[int], None] | None = None,
) -> PublishReport:
    """Publish ``messages`` on an open connection (see :func:`publish`); never raises."""
    report = PublishReport()
    if not messages:
        return report
    try:
        js = nc.jetstream(publish_async_max_pending=cfg.max_in_flight)
        rest = fitting(report, [(m, _ENCODE(m.payload).encode()) for m in messages], nc.max_payload)
        window, ack_s = cfg.max_in_flight, cfg.ack_timeout_s
        if await ensure_stream(js, cfg) and cfg.atomic_batches:
            rest = await _publish_atomic(nc, report, rest, window, ack_s, on_ack)
        if rest and report.error is None:
            await _publish_each(js, report, rest, window, ack_s, on_ack)
    except Exception as e:  # noqa: BLE001 - reported, the run goes on
        report.error = redact_exc(e)
    report.failed = len(messages) - report.acked - len(report.dead_ids)
    if report.error:
        log.warning("nats: publishing: %s", report.error)
    return report


async def _publish(
    url: str,
    cfg: NatsSinkConfig,
    messages: list[Message],
    on_ack: Callable[[int], None] | None,
) -> PublishReport:
    nc = await connect(url)
    try:
        return await publish_on(nc, cfg, messages, on_ack)
    finally:
        # A broken connection must not hide the report.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), timeout=5)


def publish(
    url: str,
    cfg: NatsSinkConfig,
    messages: list[Message],
    on_ack: Callable[[int], None] | None = None,
) -> PublishReport:
    """Publish ``messages`` to ``cfg.stream`` asynchronously and confirm every ack.

    With ``cfg.atomic_batches`` (and a server that allows it on the stream,
    nats-server >= 2.12), messages go in atomic batches confirmed by one ack
    each, several times the rate of one ack per message; batches the server
    refuses (they hold ids it already stored: a replay) go one by one, which
    counts the duplicates. ``cfg.max_in_flight`` bounds the unconfirmed
    messages either way.

    Never raises for an unreachable server or lost acks: the report says how
    many were not confirmed (``failed``), and why (``error``).
    """
    if not messages:
        return PublishReport()
    try:
        return asyncio.run(_publish(url, cfg, messages, on_ack))
    except Exception as e:  # noqa: BLE001 - reported, the run goes on
        log.warning("nats: publishing to %s: %s", url, e)
        return PublishReport(failed=len(messages), error=redact_exc(e))
