"""Log a finished run to MLflow later: ``python -m pipelines.track <run_dir>``.

For runs whose tracking failed (server down, bad URI) or that ran with
``tracking=none``. The experiment comes from the run's ``run.json``
(``--experiment`` overrides it); the server from ``--uri``, else
``MLFLOW_TRACKING_URI``, else MLflow's default, never from run.json (a run
folder is data: whoever wrote it would get today's MLflow credentials).
Idempotent: a run already in the experiment (same ``council.run_id``) is not
logged again.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from pipelines import UserError
from pipelines.config import MlflowTrackingConfig
from pipelines.driver.runinfo import read_run_config
from pipelines.trackers.mlflow import track_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.track", description="Log a run folder to MLflow (once)."
    )
    parser.add_argument("run_dir", type=Path, nargs="+", help="run folder(s)")
    parser.add_argument("--uri", help="tracking URI (default: MLFLOW_TRACKING_URI)")
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
        cfg = dataclasses.replace(cfg, uri=args.uri, experiment=args.experiment or cfg.experiment)
        tracked = track_run(run_dir, cfg)
        print(tracked.line(run_dir))
    return status


if __name__ == "__main__":
    sys.exit(main())
