"""Log a finished run to MLflow later: ``python -m pipelines.track <run_dir>``.

For runs whose tracking failed (server down, bad URI). Idempotent: a run
already in the experiment (same ``council.run_id``) is not logged again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.tracking import TrackingConfig, track_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.track", description="Log a run folder to MLflow (once)."
    )
    parser.add_argument("run_dir", type=Path, nargs="+", help="run folder(s)")
    parser.add_argument("--uri", help="tracking URI (default: MLFLOW_TRACKING_URI, else SQLite)")
    parser.add_argument("--experiment", help="experiment (default: council-eval/<role>)")
    args = parser.parse_args(argv)
    cfg = TrackingConfig(name="mlflow", uri=args.uri, experiment=args.experiment)
    status = 0
    for run_dir in args.run_dir:
        if not (run_dir / "run.json").is_file():
            print(f"error: {run_dir} is not a run folder (no run.json)", file=sys.stderr)
            status = 2
            continue
        tracked = track_run(run_dir, cfg)
        what = "logged" if tracked.created else "already logged"
        print(f"{run_dir}: {what} as MLflow run {tracked.mlflow_run_id} in {tracked.experiment!r}")
    return status


if __name__ == "__main__":
    sys.exit(main())
