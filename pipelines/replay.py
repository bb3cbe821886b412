"""Publish a run's unpublished messages: ``python -m pipelines.replay <run_dir>``.

Rebuilds the run's sink from its ``run.json`` (stream, duplicate window,
batching) and publishes the outbox messages the server has not acked
(``acked.txt``), to ``--url`` / ``NATS_URL``, else a server started again on
the run's own store (``<run_dir>/nats``); never to the URL run.json records
(a run folder is data: whoever wrote it would get today's ``NATS_TOKEN``). Every
message keeps its ``Nats-Msg-Id``, so the server drops any it already holds:
replaying a published run publishes nothing new.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from pipelines import UserError
from pipelines.config import NatsSinkConfig
from pipelines.driver.runinfo import read_run_config
from pipelines.sinks import republish
from pipelines.spec.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from pipelines.spec.run_folder import ACKED_FILE, OUTBOX_FILE, RUN_INFO_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.replay",
        description="Publish the messages of a run that NATS has not acknowledged.",
    )
    parser.add_argument("run_dir", type=Path, help="the run folder (holds outbox.jsonl)")
    parser.add_argument("--url", help="NATS URL (default: NATS_URL, else the run's embedded store)")
    parser.add_argument("--all", action="store_true", help="resend acked messages too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if not (args.run_dir / OUTBOX_FILE).is_file():
        print(f"error: {args.run_dir / OUTBOX_FILE} not found", file=sys.stderr)
        return EXIT_BAD_INPUT
    sink: object = NatsSinkConfig()  # an outbox without a run record: the defaults
    if (args.run_dir / RUN_INFO_FILE).is_file():
        try:
            sink = read_run_config(args.run_dir).sink
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if not isinstance(sink, NatsSinkConfig):
        sink = NatsSinkConfig()
    url = args.url or os.environ.get("NATS_URL") or None
    if sink.url and sink.url != url:
        print(f"replay: not to the run's recorded NATS URL; to {url or 'its embedded store'}")
    if args.all:
        (args.run_dir / ACKED_FILE).unlink(missing_ok=True)
    report = republish(dataclasses.replace(sink, url=url), args.run_dir)
    print(
        f"replay: acked {report.acked} (duplicate {report.duplicate}, "
        f"new {report.acked - report.duplicate}), unpublished {report.pending}"
        + (f", dead-lettered {report.dead} (over max_payload)" if report.dead else "")
    )
    return EXIT_OK if report.pending == 0 else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
