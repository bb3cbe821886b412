"""``sink`` group: where agent results are published (nats, none)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from pipelines import UserError
from pipelines.runtime.ids import dotted


@dataclass
class SinkConfig:
    """What every sink option has; ``sink=none`` is this alone."""

    name: str = MISSING


@dataclass
class NatsSinkConfig(SinkConfig):
    """NATS JetStream: agent.response.completed|failed, deliberation.completed|failed."""

    name: str = "nats"
    # Server URL; null: an embedded nats-server, its store in <run dir>/nats.
    url: Optional[str] = None  # noqa: UP045
    # Created if missing, over agent.response.> and deliberation.>.
    stream: str = "COUNCIL"
    # Unacked publishes at once.
    max_in_flight: int = 1024
    # Wait for all acks at most this long.
    ack_timeout_s: float = 30.0
    # Server-side dedupe window for replays (Nats-Msg-Id).
    duplicate_window_s: float = 86400.0
    # Atomic batches, one ack each (nats-server >= 2.12); else one ack per message.
    atomic_batches: bool = True
    # Run a deliberation collector inside the run (else: python -m pipelines.collect).
    collector: bool = True
    # JetStream key-value bucket of deliberation statuses, keyed <run_id>.<role>.<task_id>.
    status_bucket: str = "council_status"
    # Retention of a stream / bucket this sink creates, or one that has no limit
    # (an operator's own limits are kept): oldest messages go first.
    stream_max_age_s: float = 30 * 86400.0
    stream_max_bytes: int = 4 << 30
    status_max_age_s: float = 30 * 86400.0
    status_max_bytes: int = 256 << 20

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise UserError(f"sink.max_in_flight must be >= 1, got {self.max_in_flight}")
        for key in ("stream", "status_bucket"):
            try:  # they reach subjects: $JS.API.STREAM.INFO.<stream>, $KV.<bucket>.<key>
                dotted(getattr(self, key))
            except ValueError as e:
                raise UserError(f"sink.{key}: {e}") from None
        if self.duplicate_window_s > self.stream_max_age_s > 0:
            raise UserError(
                f"sink.duplicate_window_s ({self.duplicate_window_s}) exceeds "
                f"sink.stream_max_age_s ({self.stream_max_age_s})"
            )

    def resolved_url(self) -> str | None:
        """``url``, else ``NATS_URL``; None: start an embedded server."""
        return self.url or os.environ.get("NATS_URL") or None
