"""The run folder's outbox: every message to publish, and which were acked.

``outbox.jsonl`` (written before any publish) holds one message a line;
``acked.txt`` grows with the ids the server confirmed. ``pipelines.replay``
publishes what is in the first and not in the second.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from pipelines.sinks.messages import Message

OUTBOX_FILE = "outbox.jsonl"
ACKED_FILE = "acked.txt"


def append_outbox(run_dir: Path, messages: list[Message]) -> Path:
    """Add ``messages`` to the outbox, flushed to disk before returning.

    All or nothing: a failed write (a full disk) cuts the file back to where it
    was, so that no torn line sits before the lines a resume appends.
    """
    path = run_dir / OUTBOX_FILE
    lines = "".join(json.dumps(asdict(m), separators=(",", ":")) + "\n" for m in messages)
    with path.open("ab") as f:
        size = f.tell()
        try:
            f.write(lines.encode())
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                f.truncate(size)
            raise
    return path


def read_outbox(run_dir: Path) -> list[Message]:
    """Every message of the outbox; a last line torn by a kill is left out."""
    path = run_dir / OUTBOX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no outbox (was the run made with sink=nats?)")
    lines = path.read_text().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    return [Message(**json.loads(line)) for line in lines if line.strip()]


def acked_ids(run_dir: Path) -> set[str]:
    path = run_dir / ACKED_FILE
    return set(path.read_text().split()) if path.is_file() else set()


def record_acked(run_dir: Path, ids: list[str]) -> None:
    if ids:
        with (run_dir / ACKED_FILE).open("a") as f:
            f.write("\n".join(ids) + "\n")


def pending(run_dir: Path) -> list[Message]:
    """Messages of the outbox the server has not confirmed yet, each id once."""
    if not (run_dir / OUTBOX_FILE).is_file():
        return []
    done = acked_ids(run_dir)
    todo: dict[str, Message] = {}
    for m in read_outbox(run_dir):
        if m.msg_id not in done:
            todo.setdefault(m.msg_id, m)
    return list(todo.values())
