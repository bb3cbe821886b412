"""Print council messages as they arrive: ``python -m pipelines.listen [subject]``.

One line a message: subject, task, agent (or deliberation status), and the
start of the proposal. Subscribes with core NATS (no consumer is created), to
``NATS_URL`` or ``--url``; the default subject is ``>`` under both prefixes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from pipelines.runtime.console import printable
from pipelines.sinks.publisher import connect_options
from pipelines.spec.exits import EXIT_BAD_INPUT, EXIT_OK

DEFAULT_SUBJECTS = ["agent.response.>", "deliberation.>"]


def format_line(subject: str, data: bytes, width: int = 60) -> str:
    """One readable line for a message."""
    try:
        p = json.loads(data)
    except ValueError:
        return printable(f"{subject}  <{len(data)} bytes, not JSON>")
    if not isinstance(p, dict):
        return printable(f"{subject}  <JSON {type(p).__name__}, not an object>")
    if subject.startswith("deliberation."):
        who = f"{p.get('status')} {len(p.get('answered', []))}/{len(p.get('agents', []))}"
        text = json.dumps(p.get("scores", {}))
    else:
        who = p.get("agent_id", "?")
        text = p.get("error") or p.get("proposal") or ""
    text = " ".join(str(text).split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    return printable(f"{subject:<26} {p.get('task_id', '?'):<14} {who:<20} {text}")


async def listen(url: str, subjects: list[str], count: int | None) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=-1, **connect_options())
    seen = 0
    done = asyncio.Event()

    async def handler(msg) -> None:
        nonlocal seen
        print(format_line(msg.subject, msg.data), flush=True)
        seen += 1
        if count is not None and seen >= count:
            done.set()

    for subject in subjects:
        await nc.subscribe(subject, cb=handler)
    try:
        await done.wait()
    finally:
        await nc.drain()


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(
        prog="python -m pipelines.listen",
        description="Print agent.response.* and deliberation.* messages as they arrive.",
    )
    parser.add_argument("subject", nargs="*", help=f"subjects (default: {DEFAULT_SUBJECTS})")
    parser.add_argument("--url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--count", type=int, help="stop after this many messages")
    args = parser.parse_args(argv)
    try:
        asyncio.run(listen(args.url, args.subject or DEFAULT_SUBJECTS, args.count))
    except KeyboardInterrupt:
        pass
    except OSError as e:
        print(f"error: cannot reach NATS at {args.url}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
