"""``sink=none``: publishes nothing, keeps nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipelines.config import SinkConfig
from pipelines.sinks import SinkReport
from pipelines.sinks.messages import Message


class NoSink:
    def __init__(self, cfg: SinkConfig, run_dir: Path) -> None:
        self.name = cfg.name

    def __enter__(self) -> NoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def follow(
        self, run_id: str, tasks: list[tuple[str, str]], since_ms: int, timeout_s: float
    ) -> None:
        pass

    def settle(self, timeout_s: float) -> int:
        return 0

    def keep(self, messages: list[Message]) -> None:
        pass

    def publish(
        self,
        messages: list[Message],
        on_acked: Callable[[], None] | None = None,
        kept: bool = False,
    ) -> None:
        pass

    def publish_pending(self) -> None:
        pass

    def report(self) -> SinkReport:
        return SinkReport()
