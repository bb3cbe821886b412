"""Where each deliberation of a run stands, from the NATS status bucket (the library of
``python -m pipelines.status``).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pipelines import runs_root
from pipelines.runtime.console import printable
from pipelines.runtime.procs import port_open
from pipelines.spec.run_folder import RUN_INFO_FILE


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
    from pipelines.sinks.nats_server import embedded_server
    from pipelines.spec.run_folder import NATS_DIR, URL_FILE

    store = run_dir / NATS_DIR
    url_file = store / URL_FILE
    if url_file.is_file():
        url = url_file.read_text().strip()
        if port_open(int(url.rsplit(":", 1)[1])):
            return url
    if not store.is_dir():
        return None
    return stack.enter_context(embedded_server(store))


KEYS_ATTEMPTS = 3
"""Reads of the bucket's keys before an empty answer is believed."""


async def read_statuses(url: str, bucket: str, run_id: str) -> list[dict[str, Any]]:
    from nats.js.errors import BucketNotFoundError, NoKeysError

    from pipelines.sinks.publisher import connect

    nc = await connect(url)
    try:
        js = nc.jetstream()
        try:
            kv = await js.key_value(bucket)
        except BucketNotFoundError:
            return []
        keys: list[str] = []
        for attempt in range(KEYS_ATTEMPTS):
            try:
                # nats-py 2.16 returned no key for a "<run>.>" filter on nats-server 2.15:
                # filter here.
                keys = [k for k in await kv.keys() if k.startswith(f"{run_id}.")]
                break
            except NoKeysError:
                # keys() can signal "no more" before the first key is counted as
                # delivered (a race in its watcher, seen on a loaded host): ask again.
                if attempt + 1 < KEYS_ATTEMPTS:
                    await asyncio.sleep(0.5)
        return [json.loads((await kv.get(k)).value) for k in keys]
    finally:
        await nc.close()


def format_line(s: dict[str, Any]) -> str:
    answered, missing = s.get("answered", []), s.get("missing", [])
    line = f"{s['task_id']:<18} {s['role']:<10} {s['status']:<11} answered {len(answered)}"
    if missing:
        line += f"  missing {', '.join(missing)}"
    return printable(line + f"  ({s['updated_at']})")
