"""``sink=nats``: every message into the run's outbox, then to NATS JetStream.

The server is ``sink.url``, else ``NATS_URL``, else an embedded ``nats-server``
whose store lives in ``<run dir>/nats`` (started when the sink opens, stopped
when it closes). ``acked.txt`` records what the server confirmed, so
:meth:`NatsSink.publish_pending` (``pipelines.replay``) sends only the rest.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from pathlib import Path

from pipelines.config import NatsSinkConfig
from pipelines.sinks import SinkReport
from pipelines.sinks.messages import Message
from pipelines.sinks.outbox import append_outbox, pending, record_acked
from pipelines.sinks.publisher import publish

log = logging.getLogger(__name__)


class NatsSink:
    def __init__(self, cfg: NatsSinkConfig, run_dir: Path) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.run_dir = run_dir
        self.url: str | None = None
        self._stack = ExitStack()
        self._report = SinkReport()

    def __enter__(self) -> NatsSink:
        from pipelines.sinks.nats_server import embedded_server

        self.url = self.cfg.resolved_url() or self._stack.enter_context(
            embedded_server(self.run_dir / "nats")
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.url = None

    def publish(self, messages: list[Message]) -> None:
        append_outbox(self.run_dir, messages)  # on disk before any publish
        self._send(messages)

    def publish_pending(self) -> None:
        self._send(pending(self.run_dir))

    def _send(self, messages: list[Message]) -> None:
        if self.url is None:
            raise RuntimeError("NatsSink used outside its `with` block")
        start = time.perf_counter()
        sent = publish(self.url, self.cfg, messages)
        record_acked(self.run_dir, sent.acked_ids)
        elapsed = time.perf_counter() - start
        r = self._report
        r.messages += len(messages)
        r.acked += sent.acked
        r.duplicate += sent.duplicate
        r.publish_s += elapsed
        r.error = sent.error or r.error
        log.info(
            "nats: %d to publish on stream %s: acked %d (duplicate %d), unpublished %d in %.2f s",
            len(messages),
            self.cfg.stream,
            sent.acked,
            sent.duplicate,
            sent.unpublished,
            elapsed,
        )

    def report(self) -> SinkReport:
        self._report.pending = len(pending(self.run_dir))
        return self._report
