"""``tracking`` group: where a finished run is recorded (mlflow, none)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from pipelines import PROJECT_ROOT


@dataclass
class TrackingConfig:
    """What every tracking option has; ``tracking=none`` is this alone."""

    name: str = MISSING


@dataclass
class MlflowTrackingConfig(TrackingConfig):
    """MLflow: one MLflow run per pipeline run."""

    name: str = "mlflow"
    # Tracking URI; null: MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db.
    uri: Optional[str] = None  # noqa: UP045
    # Experiment; null: council-eval/<role>.
    experiment: Optional[str] = None  # noqa: UP045
    # Log every proposal, with its keyword scores, as a row of one table per run
    # (proposals.json: one write whatever the run's size); false logs only the
    # run's figures, tables and files.
    rows: bool = True
    # Also log each proposal as an evaluation row (a trace with its scores) in
    # MLflow's Traces / Evaluation tab: ~63 ms a proposal on SQLite, for small runs.
    traces: bool = False

    def resolved_uri(self) -> str:
        return (
            self.uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
        )
