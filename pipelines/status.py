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
import json
import os
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pipelines import runs_root
from pipelines.config import NatsSinkConfig
from pipelines.console import printable
from pipelines.procs import port_open
from pipelines.runinfo import RUN_INFO_FILE


def find_run_dir(run_id: str, root: Path | None = None) -> Path | None:
    """The run folder under ``root`` (default: runs_root()) holding ``run_id``."""
    root = root or runs_root()
    for info in [*root.glob(f"*/{RUN_INFO_FILE}"), *root.glob(f"*/*/{RUN_INFO_FILE}")]:
        try:
            if json.loads(info.read_text()).get("run_id") == run_id:
                return info.parent
        except (OSError, ValueError):
            continue
    return None


def embedded_url(run_dir: Path, stack: ExitStack) -> str | None:
    """The URL of the run's embedded server, running or started again on its store."""
    from pipelines.sinks.nats import URL_FILE
    from pipelines.sinks.nats_server import embedded_server

    store = run_dir / "nats"
    url_file = store / URL_FILE
    if url_file.is_file():
        url = url_file.read_text().strip()
        if port_open(int(url.rsplit(":", 1)[1])):
            return url
    if not store.is_dir():
        return None
    return stack.enter_context(embedded_server(store))


async def read_statuses(url: str, bucket: str, run_id: str) -> list[dict[str, Any]]:
    from nats.js.errors import BucketNotFoundError, NoKeysError

    from pipelines.sinks.publisher import connect

    nc = await connect(url)
    try:
        js = nc.jetstream()
        try:
            kv = await js.key_value(bucket)
            # nats-py 2.16 returned no key for a "<run>.>" filter on nats-server 2.15:
            # filter here.
            keys = [k for k in await kv.keys() if k.startswith(f"{run_id}.")]
        except (BucketNotFoundError, NoKeysError):
            return []
        return [json.loads((await kv.get(k)).value) for k in keys]
    finally:
        await nc.close()


def format_line(s: dict[str, Any]) -> str:
    answered, missing = s.get("answered", []), s.get("missing", [])
    line = f"{s['task_id']:<18} {s['role']:<10} {s['status']:<11} answered {len(answered)}"
    if missing:
        line += f"  missing {', '.join(missing)}"
    return printable(line + f"  ({s['updated_at']})")


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
        from pipelines.runinfo import read_run_config

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
            return 2
        statuses = asyncio.run(read_statuses(url, bucket, args.run_id))
    if args.task_id:
        statuses = [s for s in statuses if s["task_id"] == args.task_id]
    if not statuses:
        print(f"no deliberations of run {args.run_id} in bucket {bucket}", file=sys.stderr)
        return 1
    for s in sorted(statuses, key=lambda s: (s["role"], s["task_id"])):
        print(format_line(s))
    counts = Counter(s["status"] for s in statuses)
    print(
        f"{len(statuses)} deliberations: "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
