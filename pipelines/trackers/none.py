"""``tracking=none``: the run folder is the only record."""

from __future__ import annotations

from pathlib import Path

from pipelines.config import TrackingConfig
from pipelines.trackers import Tracked


class NoTracker:
    def __init__(self, cfg: TrackingConfig) -> None:
        self.name = cfg.name

    def track(self, run_dir: Path) -> Tracked | None:
        return None
