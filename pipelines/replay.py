"""Publish a run's unpublished messages: ``python -m pipelines.replay <run_dir>``.

Reads ``<run_dir>/outbox.jsonl`` and publishes the messages the server has not
acked (``acked.txt``), to ``--url`` / ``NATS_URL`` or, for a run made with the
embedded server, to a server started again on ``<run_dir>/nats``. Every
message keeps its ``Nats-Msg-Id``, so the server drops any it already holds:
replaying a published run publishes nothing new.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipelines.sinks import SinkConfig
from pipelines.sinks.nats import publish_pending
from pipelines.sinks.outbox import OUTBOX_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.replay",
        description="Publish the messages of a run that NATS has not acknowledged.",
    )
    parser.add_argument("run_dir", type=Path, help="the run folder (holds outbox.jsonl)")
    parser.add_argument("--url", help="NATS URL (default: NATS_URL, else embedded server)")
    parser.add_argument("--stream", default="COUNCIL", help="JetStream stream (default COUNCIL)")
    parser.add_argument("--all", action="store_true", help="resend acked messages too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if not (args.run_dir / OUTBOX_FILE).is_file():
        print(f"error: {args.run_dir / OUTBOX_FILE} not found", file=sys.stderr)
        return 2
    if args.all:
        (args.run_dir / "acked.txt").unlink(missing_ok=True)
    report = publish_pending(
        SinkConfig(name="nats", url=args.url, stream=args.stream), args.run_dir
    )
    print(
        f"replay: acked {report.acked} (duplicate {report.duplicate}, "
        f"new {report.acked - report.duplicate}), unpublished {report.unpublished}"
    )
    return 0 if report.unpublished == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
