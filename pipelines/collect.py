"""The deliberation collector on its own: ``python -m pipelines.collect [--url U]``.

Consumes ``agent.response.>`` from the stream, publishes one
``deliberation.completed|failed`` per (run, task) and keeps each status in the
bucket, like the collector inside a run (``sink.collector``); runs until
Ctrl-C. Deliberation messages carry ``Nats-Msg-Id`` ``<run_id>.<role>.<task_id>``,
so running it beside a run's own collector publishes nothing twice.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

from pipelines.config import NatsSinkConfig
from pipelines.sinks.collector import Collector
from pipelines.spec.exits import EXIT_BAD_INPUT, EXIT_OK


def main(argv: list[str] | None = None) -> int:
    defaults = NatsSinkConfig()
    parser = argparse.ArgumentParser(prog="python -m pipelines.collect", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("NATS_URL"), help="default: NATS_URL")
    parser.add_argument("--stream", default=defaults.stream)
    parser.add_argument("--bucket", default=defaults.status_bucket, help="status bucket")
    parser.add_argument("--run", help="only this run_id")
    parser.add_argument(
        "--since-minutes",
        type=float,
        default=60.0,
        help="replay agent messages stored this recently (default 60; 0: the whole stream)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("DELIBERATION_TIMEOUT", 300)),
        help="DELIBERATION_TIMEOUT in seconds (default: that variable, else 300)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.url:
        print("error: no NATS server: pass --url or set NATS_URL", file=sys.stderr)
        return EXIT_BAD_INPUT
    cfg = NatsSinkConfig(url=args.url, stream=args.stream, status_bucket=args.bucket)
    since = time.time() - 60 * args.since_minutes if args.since_minutes else None
    collector = Collector(args.url, cfg, args.timeout, run_id=args.run, since=since)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await collector.run(stop, ready=lambda: print("collecting; Ctrl-C to stop", flush=True))

    asyncio.run(run())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
