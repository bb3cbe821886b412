"""``sink=nats``: every message into the run's outbox, then to NATS JetStream.

The server is ``sink.url``, else ``NATS_URL``, else an embedded ``nats-server``
whose store lives in ``<run dir>/nats`` (started when the sink opens, stopped
when it closes; ``<run dir>/nats/url`` says where while it runs).
``acked.txt`` records what the server confirmed, so :meth:`NatsSink.publish_pending`
(``pipelines.replay``, a resume) sends only the rest. With ``sink.collector``
a deliberation collector runs in a thread of the run from :meth:`NatsSink.follow`
until the sink closes, on the sink's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.config import NatsSinkConfig
from pipelines.runtime.durable import write_text
from pipelines.runtime.redact import redact_exc
from pipelines.sinks import SinkReport
from pipelines.sinks.collector import Collector
from pipelines.sinks.deliberation import Outcome
from pipelines.sinks.messages import Message
from pipelines.sinks.outbox import append_outbox, pending, record_acked, record_dead
from pipelines.sinks.publisher import PublishReport, connect, publish_on
from pipelines.spec.run_folder import NATS_DIR, URL_FILE

if TYPE_CHECKING:
    from nats.js.api import PubAck

log = logging.getLogger(__name__)


class NatsSink:
    """Publishes from an event loop of its own (a daemon thread), on one connection.

    :meth:`publish` writes the outbox and hands the messages to that loop: the
    caller (the stream loop, an in-process engine) does not wait for NATS.
    :meth:`settle`, :meth:`report` and closing wait for what is in flight.
    """

    def __init__(self, cfg: NatsSinkConfig, run_dir: Path) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.run_dir = run_dir
        self.url: str | None = None
        self._stack = ExitStack()
        self._report = SinkReport()
        self._lock = threading.Lock()  # the outbox and the report: caller and loop threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: Any = None
        self._in_flight: list[Future] = []
        self._collector: Collector | None = None
        self._collecting: Future | None = None
        self._stop: asyncio.Event | None = None
        self._expected: set[tuple[str, str, str]] = set()
        # Deliberations whose message the collector has published (or failed to): a
        # deliberation is ended in its state before its publish is acked.
        self._settled: set[tuple[str, str, str]] = set()

    def __enter__(self) -> NatsSink:
        from pipelines.sinks.nats_server import embedded_server

        self.url = self.cfg.resolved_url()
        if self.url is None:
            store = self.run_dir / NATS_DIR
            self.url = self._stack.enter_context(embedded_server(store))
            write_text(store / URL_FILE, self.url + "\n")
            self._stack.callback((store / URL_FILE).unlink, missing_ok=True)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="council-nats", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._drain(self.cfg.ack_timeout_s)
        if self._collecting is not None and self._stop is not None:
            self._call(self._stop.set)
            with contextlib.suppress(Exception):
                self._collecting.result(timeout=10)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                self._run(self._nc.close(), timeout=5)
        if self._loop is not None:
            self._call(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._loop.close()
        self._loop = self._thread = self._nc = self._collecting = None
        self._stack.close()
        self.url = None

    def follow(
        self, run_id: str, tasks: list[tuple[str, str]], since_ms: int, timeout_s: float
    ) -> None:
        if not self.cfg.collector:
            return
        self._collector = Collector(
            self._open_url(),
            self.cfg,
            timeout_s,
            run_id=run_id,
            since=since_ms / 1000,
            keep=self.keep,
            on_end=self._ended,
        )
        self._expected = {(run_id, role, task_id) for role, task_id in tasks}
        ready = threading.Event()

        async def collect() -> None:
            self._stop = asyncio.Event()
            assert self._collector is not None
            await self._collector.run(self._stop, pending=tasks, ready=ready.set)

        self._collecting = asyncio.run_coroutine_threadsafe(collect(), self._live_loop())
        while not ready.wait(0.1):
            if self._collecting.done():
                error = self._collecting.exception()
                log.error("collector: did not start: %s: %s", type(error).__name__, error)
                return

    def settle(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        self._drain(timeout_s)
        if self._collector is None:
            return 0
        while True:
            with self._lock:
                left = len(self._expected - self._settled)
            stopped = self._collecting is None or self._collecting.done()
            if not left or stopped or time.monotonic() > deadline:
                if left:
                    log.warning("collector: %d deliberation(s) still open", left)
                return left
            time.sleep(0.1)

    def publish(
        self,
        messages: list[Message],
        on_acked: Callable[[], None] | None = None,
        kept: bool = False,
    ) -> None:
        if not kept:
            self.keep(messages)  # on disk before any publish
        fut = asyncio.run_coroutine_threadsafe(self._send(messages, on_acked), self._live_loop())
        self._in_flight.append(fut)

    def publish_pending(self) -> None:
        with self._lock:
            todo = pending(self.run_dir)
        if todo:
            self._run(self._send(todo, None), timeout=None)

    def report(self) -> SinkReport:
        self._drain(self.cfg.ack_timeout_s)
        with self._lock:
            self._report.pending = len(pending(self.run_dir))
            return self._report

    def _open_url(self) -> str:
        if self.url is None:
            raise RuntimeError("NatsSink used outside its `with` block")
        return self.url

    def _live_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("NatsSink used outside its `with` block")
        return self._loop

    def _call(self, fn: Callable[[], object]) -> None:
        self._live_loop().call_soon_threadsafe(fn)

    def _run(self, coro: Any, timeout: float | None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._live_loop()).result(timeout)

    def _drain(self, timeout_s: float) -> None:
        """Wait for the publishes in flight (each is bounded by the ack timeout)."""
        for fut in self._in_flight:
            with contextlib.suppress(Exception):
                fut.result(timeout=timeout_s + 10)
        self._in_flight = [f for f in self._in_flight if not f.done()]

    def keep(self, messages: list[Message]) -> None:
        with self._lock:
            append_outbox(self.run_dir, messages)

    def _ended(self, outcome: Outcome, ack: PubAck | None) -> None:
        with self._lock:
            payload = outcome.message.payload
            self._settled.add((payload["run_id"], payload["role"], payload["task_id"]))
            self._report.messages += 1
            if ack is not None:
                self._report.acked += 1
                self._report.duplicate += bool(ack.duplicate)
                record_acked(self.run_dir, [outcome.message.msg_id])

    async def _send(self, messages: list[Message], on_acked: Callable[[], None] | None) -> None:
        start = time.perf_counter()
        try:
            if self._nc is None or self._nc.is_closed:
                self._nc = await connect(self._open_url())
            sent = await publish_on(self._nc, self.cfg, messages)
        except Exception as e:  # noqa: BLE001 - kept in the outbox; the report says why
            sent = PublishReport(failed=len(messages), error=redact_exc(e))
            log.warning("nats: publishing to %s: %s", self.url, sent.error)
        elapsed = time.perf_counter() - start
        with self._lock:
            record_acked(self.run_dir, sent.acked_ids)
            record_dead(self.run_dir, sent.dead_ids)
            r = self._report
            r.dead += len(sent.dead_ids)
            r.messages += len(messages)
            r.acked += sent.acked
            r.duplicate += sent.duplicate
            r.publish_s += elapsed
            r.error = sent.error or r.error
        if on_acked is not None and sent.failed == 0:
            on_acked()
