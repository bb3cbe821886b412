"""Publish a run's outbox to NATS JetStream, recording what the server acked."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipelines.sinks import SinkConfig
from pipelines.sinks.messages import Message
from pipelines.sinks.outbox import pending, record_acked, write_outbox
from pipelines.sinks.publisher import PublishReport, publish

log = logging.getLogger(__name__)


def publish_pending(cfg: SinkConfig, run_dir: Path) -> PublishReport:
    """Publish the outbox messages not yet acked (all of them, the first time)."""
    todo = pending(run_dir)
    start = time.perf_counter()
    with cfg.server(run_dir) as url:
        report = publish(
            url,
            cfg.stream,
            todo,
            max_in_flight=cfg.max_in_flight,
            ack_timeout_s=cfg.ack_timeout_s,
            duplicate_window_s=cfg.duplicate_window_s,
            atomic=cfg.atomic_batches,
        )
    record_acked(run_dir, report.acked_ids)
    elapsed = time.perf_counter() - start
    log.info(
        "nats: %d to publish on stream %s: acked %d (duplicate %d), unpublished %d in %.2f s",
        len(todo),
        cfg.stream,
        report.acked,
        report.duplicate,
        report.unpublished,
        elapsed,
    )
    return report


def publish_run(cfg: SinkConfig, run_dir: Path, messages: list[Message]) -> PublishReport:
    """Write the outbox (before any publish), then publish it."""
    write_outbox(run_dir, messages)
    return publish_pending(cfg, run_dir)
