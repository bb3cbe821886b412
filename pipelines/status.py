"""Where each deliberation of a run stands: ``python -m pipelines.status RUN_ID [TASK_ID]``.

Reads the status bucket (``sink.status_bucket``, keys ``<run_id>.<role>.<task_id>``)
and prints one line per task: PENDING, IN_PROGRESS, COMPLETED, FAILED or
TIMEOUT, who answered and who is missing. Works during a run and after it.
The server is ``--url``, else ``NATS_URL``, else the run's embedded server:
the one running now, or one started again on the run's store for the query
(the run folder is found under ``runs/``, or given with ``--run-dir``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from pipelines.config import NatsSinkConfig
from pipelines.driver.status import embedded_url, find_run_dir, format_line, read_statuses
from pipelines.spec.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.status",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_id")
    parser.add_argument("task_id", nargs="?", help="only this task")
    parser.add_argument("--url", help="NATS URL (default: NATS_URL, else the run's server)")
    parser.add_argument("--run-dir", type=Path, help="the run folder (default: found under runs/)")
    parser.add_argument("--bucket", help="status bucket (default: the run's, else council_status)")
    args = parser.parse_args(argv)

    run_dir = args.run_dir or find_run_dir(args.run_id)
    bucket = args.bucket or NatsSinkConfig().status_bucket
    if run_dir is not None and args.bucket is None:
        from pipelines.driver.runinfo import read_run_config

        sink = read_run_config(run_dir).sink
        if isinstance(sink, NatsSinkConfig):
            bucket = sink.status_bucket
    with ExitStack() as stack:
        url = args.url or os.environ.get("NATS_URL")
        if url is None and run_dir is not None:
            url = embedded_url(run_dir, stack)
        if url is None:
            print(
                f"error: no NATS server for run {args.run_id}: pass --url or set NATS_URL "
                "(or --run-dir for a run with an embedded server)",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        statuses = asyncio.run(read_statuses(url, bucket, args.run_id))
    if args.task_id:
        statuses = [s for s in statuses if s["task_id"] == args.task_id]
    if not statuses:
        print(f"no deliberations of run {args.run_id} in bucket {bucket}", file=sys.stderr)
        return EXIT_FAILED
    for s in sorted(statuses, key=lambda s: (s["role"], s["task_id"])):
        print(format_line(s))
    counts = Counter(s["status"] for s in statuses)
    print(
        f"{len(statuses)} deliberations: "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
