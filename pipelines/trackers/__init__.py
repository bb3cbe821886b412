"""Trackers record a finished run (from its folder) where runs are compared.

``tracking=mlflow`` logs one MLflow run per pipeline run; ``tracking=none``
records nothing beyond the run folder. Everything a tracker logs comes from
the run's files, so ``python -m pipelines.track <run dir>`` can log a run
later exactly as the pipeline would have. Implementations are imported only
when chosen.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipelines import UserError
from pipelines.config import TrackingConfig

TRACKERS = {
    "none": "pipelines.trackers.none:NoTracker",
    "mlflow": "pipelines.trackers.mlflow:MlflowTracker",
}
"""Tracking name (``conf/tracking/<name>.yaml``) → ``module:class``."""


@dataclass(frozen=True)
class Tracked:
    """Where a tracker recorded a run."""

    run_ref: str
    """The tracker's id of the run."""
    where: str
    """Human-readable location (store and experiment)."""
    created: bool
    """False when the run was already recorded (tracking is idempotent)."""
    seconds: float

    def line(self, run_dir: Path) -> str:
        """The console line for ``run_dir`` tracked here."""
        what = "logged" if self.created else "already logged"
        return f"{run_dir}: {what} as MLflow run {self.run_ref} in {self.where}"


class Tracker(Protocol):
    name: str

    def track(self, run_dir: Path) -> Tracked | None:
        """Record the run in ``run_dir`` once; None when nothing is recorded.

        Raises whatever the backend raises: the caller decides what a failure
        means for the run.
        """
        ...


def build_tracker(cfg: TrackingConfig) -> Tracker:
    """The tracker named by ``cfg.name``."""
    if cfg.name not in TRACKERS:
        raise UserError(f"unknown tracking {cfg.name!r}; known: {sorted(TRACKERS)}")
    module, cls = TRACKERS[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg)
