"""Continue a killed run: ``python -m pipelines.resume RUN_DIR``.

Rebuilds the run's config and run_id from its ``run.json``, stops what the
killed session left running (``procs.json``), generates only the requests no
part in ``RUN_DIR/results/`` holds, publishes what the outbox holds and the
server never acked, then scores, settles the deliberations and tracks the run
as usual. ``metrics.json`` says how many rows were reused and how many
generated. The run folder is data, not code: endpoints and key variables
come from today's config and environment (``NATS_URL``, ``VLLM_URL``,
``MLFLOW_TRACKING_URI``; a run made against another NATS needs ``NATS_URL``
set to it), and so do the model's path and the engine's settings, a run.json
recording other ones being refused unless ``--trust-run-folder``. A live run's
folder is refused (``<run>/.lock``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.driver.resume import resume_run
from pipelines.executors import HeldExecutors


def main(argv: list[str] | None = None) -> int:
    from pipelines.driver.summary import summary
    from pipelines.driver.verdict import ENDINGS, ended, problems, verdict
    from pipelines.runtime.stopping import stop_on_sigterm

    parser = argparse.ArgumentParser(
        prog="python -m pipelines.resume",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="the run folder (holds run.json)")
    parser.add_argument(
        "--trust-run-folder",
        action="store_true",
        help="use the endpoints and engine settings run.json records where they differ "
        "from today's (only for a run folder nobody else can write)",
    )
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    try:
        with stop_on_sigterm(), HeldExecutors() as held:
            cfg, outcome = resume_run(run_dir, held, args.trust_run_folder)
    except ENDINGS as e:
        return ended(e, run_dir)
    print(summary(outcome), flush=True)
    return verdict(problems(outcome.metrics, cfg.fail_on), run_dir)


if __name__ == "__main__":
    sys.exit(main())
