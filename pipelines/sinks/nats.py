"""``sink=nats``: every message into the run's outbox, then to NATS JetStream.

The server is ``sink.url``, else ``NATS_URL``, else an embedded ``nats-server``
whose store lives in ``<run dir>/nats`` (started when the sink opens, stopped
when it closes; ``<run dir>/nats/url`` says where while it runs).
``acked.txt`` records what the server confirmed, so :meth:`NatsSink.publish_pending`
(``pipelines.replay``, a resume) sends only the rest. With ``sink.collector``
a deliberation collector runs in a thread of the run from :meth:`NatsSink.follow`
until the sink closes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.config import NatsSinkConfig
from pipelines.sinks import SinkReport
from pipelines.sinks.collector import Collector
from pipelines.sinks.deliberation import Outcome
from pipelines.sinks.messages import Message
from pipelines.sinks.outbox import append_outbox, pending, record_acked
from pipelines.sinks.publisher import publish

if TYPE_CHECKING:
    from nats.js.api import PubAck

log = logging.getLogger(__name__)

URL_FILE = "url"
"""In ``<run dir>/nats/``: the embedded server's URL while it runs."""


class NatsSink:
    def __init__(self, cfg: NatsSinkConfig, run_dir: Path) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.run_dir = run_dir
        self.url: str | None = None
        self._stack = ExitStack()
        self._report = SinkReport()
        self._lock = threading.Lock()  # the outbox and the report: main and collector threads
        self._collector: _CollectorThread | None = None

    def __enter__(self) -> NatsSink:
        from pipelines.sinks.nats_server import embedded_server

        self.url = self.cfg.resolved_url()
        if self.url is None:
            store = self.run_dir / "nats"
            self.url = self._stack.enter_context(embedded_server(store))
            (store / URL_FILE).write_text(self.url + "\n")
            self._stack.callback((store / URL_FILE).unlink, missing_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._collector is not None:
            self._collector.stop()
            self._collector = None
        self._stack.close()
        self.url = None

    def follow(
        self, run_id: str, tasks: list[tuple[str, str]], since_ms: int, timeout_s: float
    ) -> None:
        if not self.cfg.collector:
            return
        collector = Collector(
            self._open_url(),
            self.cfg,
            timeout_s,
            run_id=run_id,
            since=since_ms / 1000,
            keep=self._keep,
            on_end=self._ended,
        )
        self._collector = _CollectorThread(collector, tasks)

    def settle(self, timeout_s: float) -> int:
        if self._collector is None:
            return 0
        return self._collector.settle(timeout_s)

    def publish(self, messages: list[Message]) -> None:
        self._keep(messages)  # on disk before any publish
        self._send(messages)

    def publish_pending(self) -> None:
        with self._lock:
            todo = pending(self.run_dir)
        if todo:
            self._send(todo)

    def report(self) -> SinkReport:
        with self._lock:
            self._report.pending = len(pending(self.run_dir))
            return self._report

    def _open_url(self) -> str:
        if self.url is None:
            raise RuntimeError("NatsSink used outside its `with` block")
        return self.url

    def _keep(self, messages: list[Message]) -> None:
        with self._lock:
            append_outbox(self.run_dir, messages)

    def _ended(self, outcome: Outcome, ack: PubAck | None) -> None:
        with self._lock:
            self._report.messages += 1
            if ack is not None:
                self._report.acked += 1
                self._report.duplicate += bool(ack.duplicate)
                record_acked(self.run_dir, [outcome.message.msg_id])

    def _send(self, messages: list[Message]) -> None:
        start = time.perf_counter()
        sent = publish(self._open_url(), self.cfg, messages)
        elapsed = time.perf_counter() - start
        with self._lock:
            record_acked(self.run_dir, sent.acked_ids)
            r = self._report
            r.messages += len(messages)
            r.acked += sent.acked
            r.duplicate += sent.duplicate
            r.publish_s += elapsed
            r.error = sent.error or r.error
        log.debug(
            "nats: %d to publish on stream %s: acked %d (duplicate %d), unpublished %d in %.2f s",
            len(messages),
            self.cfg.stream,
            sent.acked,
            sent.duplicate,
            sent.unpublished,
            elapsed,
        )


class _CollectorThread:
    """A collector on its own event loop in a daemon thread of the run."""

    START_S = 15.0

    def __init__(self, collector: Collector, tasks: list[tuple[str, str]]) -> None:
        self.collector = collector
        self.expected = {(collector.run_id, task_id) for _, task_id in tasks}
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(
            target=self._main, args=(tasks,), name="council-collector", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self.START_S) and self.error is None:
            log.warning("collector: not consuming after %.0f s", self.START_S)
        if self.error is not None:
            log.error("collector: did not start: %s", self.error)

    def _main(self, tasks: list[tuple[str, str]]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(
                self.collector.run(self._stop, pending=tasks, ready=self._ready.set)
            )
        except Exception as e:  # noqa: BLE001 - reported by settle and the run's report
            self.error = e
            log.error("collector: stopped: %s: %s", type(e).__name__, e)
        finally:
            self._ready.set()
            self._loop.close()

    def settle(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            left = len(self.expected - set(self.collector.state.ended))
            if not left or self.error is not None or time.monotonic() > deadline:
                if left:
                    log.warning("collector: %d deliberation(s) still open", left)
                return left
            time.sleep(0.1)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)
