"""Sinks publish each run's messages; ``none`` publishes nothing."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from pipelines import UserError

SINKS = ("none", "nats")


@dataclass(frozen=True)
class SinkConfig:
    """Typed sink settings (see ``conf/sink/``)."""

    name: str = "none"
    url: str | None = None
    stream: str = "COUNCIL"
    max_in_flight: int = 1024
    ack_timeout_s: float = 30.0
    duplicate_window_s: float = 86400.0
    deliberation_timeout_s: float = 300.0
    atomic_batches: bool = True

    def __post_init__(self) -> None:
        if self.name not in SINKS:
            raise UserError(f"unknown sink {self.name!r}; known: {list(SINKS)}")
        if self.max_in_flight < 1:
            raise UserError(f"sink.max_in_flight must be >= 1, got {self.max_in_flight}")

    def server(self, run_dir: Path) -> AbstractContextManager[str]:
        """The NATS URL to use: ``sink.url``, else ``NATS_URL``, else an embedded
        server whose JetStream store lives in ``<run_dir>/nats``."""
        url = self.url or os.environ.get("NATS_URL")
        if url:
            return nullcontext(url)
        from pipelines.nats_server import embedded_server

        return embedded_server(run_dir / "nats")
