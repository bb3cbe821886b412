"""Continue a killed run: ``python -m pipelines.resume RUN_DIR``.

Rebuilds the run's config and run_id from its ``run.json``, stops what the
killed session left running (``procs.json``), generates only the requests no
part in ``RUN_DIR/results/`` holds, publishes what the outbox holds and the
server never acked, then scores, settles the deliberations and tracks the run
as usual. ``metrics.json`` says how many rows were reused and how many
generated. The server is ``NATS_URL`` when set, else the one the run used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines import EXIT_STOPPED, RunStopped, UserError
from pipelines.config import NatsSinkConfig, RunConfig
from pipelines.executors import HeldExecutors
from pipelines.pipeline import RunOutcome
from pipelines.runinfo import MASK, RUN_INFO_FILE, read_run_config


def resumed_config(run_dir: Path) -> RunConfig:
    """The run's config, with the sink's server from this environment where set."""
    cfg = read_run_config(run_dir)
    if isinstance(cfg.sink, NatsSinkConfig):
        url = os.environ.get("NATS_URL") or cfg.sink.url
        if url and MASK in url:
            raise UserError("the run's NATS URL has a masked password: set NATS_URL")
        cfg = dataclasses.replace(cfg, sink=dataclasses.replace(cfg.sink, url=url))
    return cfg


@contextmanager
def log_to(run_dir: Path) -> Iterator[None]:
    """Log to the console and, while entered, to ``run_dir/run.log`` (appended)."""
    fmt = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter(fmt))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def resume_run(run_dir: Path, held: HeldExecutors) -> tuple[RunConfig, RunOutcome]:
    """Continue the run in ``run_dir`` on an executor from ``held``."""
    from pipelines.engines import preflight_run
    from pipelines.pipeline import run_pipeline
    from pipelines.reaper import reap_recorded, reaper

    cfg = resumed_config(run_dir)
    run_id = json.loads((run_dir / RUN_INFO_FILE).read_text())["run_id"]
    preflight_run(cfg)
    with log_to(run_dir):
        logging.getLogger("pipelines.resume").info("resuming run %s in %s", run_id, run_dir)
        reap_recorded(run_dir)
        with reaper(run_dir):
            outcome = run_pipeline(cfg, run_dir, executor=held, run_id=run_id)
    return cfg, outcome


def main(argv: list[str] | None = None) -> int:
    from pipelines.run import stopped_note
    from pipelines.stopping import EXIT_TERMINATED, Terminated, stop_on_sigterm
    from pipelines.summary import summary
    from pipelines.verdict import EXIT_RUN_FAILED, problems, report

    parser = argparse.ArgumentParser(
        prog="python -m pipelines.resume",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="the run folder (holds run.json)")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    try:
        with stop_on_sigterm(), HeldExecutors() as held:
            cfg, outcome = resume_run(run_dir, held)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Terminated as e:
        print(f"{e}: {stopped_note(run_dir)}", file=sys.stderr, flush=True)
        return EXIT_TERMINATED
    except RunStopped as e:
        print(f"error: {e}\n{stopped_note(run_dir)}", file=sys.stderr, flush=True)
        return EXIT_STOPPED
    print(summary(outcome), flush=True)
    found = problems(outcome.metrics, cfg.fail_on)
    if found:
        print(report(found, str(run_dir)), file=sys.stderr, flush=True)
        return EXIT_RUN_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
