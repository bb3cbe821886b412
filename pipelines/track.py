"""Log a finished run to MLflow later: ``python -m pipelines.track <run_dir>``.

For runs whose tracking failed (server down, bad URI) or that ran with
``tracking=none``. The tracking settings come from the run's ``run.json``
(``--uri`` / ``--experiment`` override them; ``MLFLOW_TRACKING_URI`` applies
when neither names a URI). Idempotent: a run already in the experiment (same
``council.run_id``) is not logged again.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from pipelines import UserError
from pipelines.config import MlflowTrackingConfig
from pipelines.driver.runinfo import read_run_config
from pipelines.runtime.redact import MASK
from pipelines.trackers.mlflow import track_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.track", description="Log a run folder to MLflow (once)."
    )
    parser.add_argument("run_dir", type=Path, nargs="+", help="run folder(s)")
    parser.add_argument("--uri", help="tracking URI (default: the run's, MLFLOW_TRACKING_URI)")
    parser.add_argument("--experiment", help="experiment (default: the run's)")
    args = parser.parse_args(argv)
    status = 0
    for run_dir in args.run_dir:
        try:
            recorded = read_run_config(run_dir).tracking
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 2
            continue
        cfg = recorded if isinstance(recorded, MlflowTrackingConfig) else MlflowTrackingConfig()
        recorded_uri = cfg.uri if cfg.uri and MASK not in cfg.uri else None
        cfg = dataclasses.replace(
            cfg, uri=args.uri or recorded_uri, experiment=args.experiment or cfg.experiment
        )
        tracked = track_run(run_dir, cfg)
        print(tracked.line(run_dir))
    return status


if __name__ == "__main__":
    sys.exit(main())
