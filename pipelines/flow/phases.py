"""Where a run's time and driver memory went, phase by phase: ``phases.json``.

Each phase is timed in the driver and closed with the driver's resident memory
then, so a figure that grows with the run's size shows which phase it grew in.
Phases that overlap generation (landing, publishing: the driver does them
while the engines work) are summed per batch and kept apart from the phases
that follow the last batch (``after_last_batch_s``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from pipelines.runtime.durable import write_json
from pipelines.spec.run_folder import PHASES_FILE

log = logging.getLogger(__name__)

AFTER_LAST_BATCH = ("stop", "results", "score", "settle", "report", "track")
"""The phases after the last batch landed, in the order they run."""


@dataclass
class Phases:
    """Seconds and driver memory per phase of one run."""

    started: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    """The driver's CPU seconds so far, at the end of each phase."""

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        me = psutil.Process()
        with me.oneshot():  # landing adds twice a batch: one read of /proc each time
            self.rss_mb[name] = me.memory_info().rss / 2**20
            times = me.cpu_times()
        self.cpu_s[name] = times.user + times.system

    def elapsed(self) -> float:
        """Seconds since the run began."""
        return time.perf_counter() - self.started

    def figures(self) -> dict[str, Any]:
        total = self.elapsed()
        memory = psutil.Process().memory_full_info()
        after = sum(self.seconds.get(p, 0.0) for p in AFTER_LAST_BATCH)
        return {
            "total_s": total,
            "seconds": self.seconds,
            "share": {k: v / total for k, v in self.seconds.items()} if total else {},
            "after_last_batch_s": after,
            "after_last_batch_share": after / total if total else 0.0,
            "rss_mb": self.rss_mb,
            "cpu_s": self.cpu_s,
            # Now: resident, and unique to the driver (shared pages, e.g. Ray's
            # object store mapped in, left out).
            "end_rss_mb": memory.rss / 2**20,
            "end_uss_mb": memory.uss / 2**20,
        }

    def write(self, run_dir: Path) -> dict[str, Any]:
        """``phases.json`` in ``run_dir``, and one log line."""
        figures = self.figures()
        write_json(run_dir / PHASES_FILE, figures)
        log.info(
            "phases: %s; after the last batch %.1f s (%.1f %%)",
            ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()),
            figures["after_last_batch_s"],
            100 * figures["after_last_batch_share"],
        )
        return figures
