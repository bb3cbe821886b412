"""The run folder's outbox: every message to publish, and which were acked.

``outbox.jsonl`` (written before any publish) holds one message a line;
``acked.txt`` grows with the ids the server confirmed, ``dead.txt`` with those
it can never take (over its ``max_payload``). ``pipelines.replay`` publishes
what is in the first and in neither of the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

from pipelines.runtime.console import printable
from pipelines.runtime.durable import fsync_dir, open_append
from pipelines.runtime.ids import dotted
from pipelines.sinks.messages import (
    AGENT_COMPLETED,
    AGENT_FAILED,
    DELIBERATION_COMPLETED,
    DELIBERATION_FAILED,
    Message,
)
from pipelines.spec.run_folder import ACKED_FILE, DEAD_FILE, OUTBOX_FILE, RUN_INFO_FILE

log = logging.getLogger(__name__)


def append_outbox(run_dir: Path, messages: list[Message]) -> Path:
    """Add ``messages`` to the outbox, on disk before returning.

    All or nothing: a last line torn by an earlier kill is cut off first (else
    the new lines would follow it and the next read would fail on the joined
    line), and a failed write (a full disk) cuts the file back to where it was.
    """
    lines = "".join(json.dumps(asdict(m), separators=(",", ":")) + "\n" for m in messages)
    return _append_lines(run_dir / OUTBOX_FILE, lines.encode())


def _append_lines(path: Path, data: bytes) -> Path:
    """Append whole lines to ``path`` durably (file and, when new, its folder)."""
    new = not path.exists()
    with open_append(path, "a+b") as f:
        size = _cut_torn_tail(f)
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                f.truncate(size)
            raise
    if new:
        fsync_dir(path.parent)
    return path


def _cut_torn_tail(f: BinaryIO) -> int:
    """Cut an unfinished last line off ``f`` (opened ``a+b``); return the size left."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return 0
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return size
    start = max(0, size - (1 << 20))
    while True:  # back to the last newline, a megabyte at a time
        f.seek(start)
        chunk = f.read(size - start)
        nl = chunk.rfind(b"\n")
        if nl >= 0 or start == 0:
            keep = start + nl + 1 if nl >= 0 else 0
            break
        start = max(0, start - (1 << 20))
    f.truncate(keep)
    f.seek(keep)
    log.warning("%s: cut a torn last line (%d bytes) left by a killed run", f.name, size - keep)
    return keep


SUBJECTS = frozenset({AGENT_COMPLETED, AGENT_FAILED, DELIBERATION_COMPLETED, DELIBERATION_FAILED})
"""The only subjects an outbox line may name: the file is data, and a line naming
``$JS.API.STREAM.DELETE.<stream>`` would otherwise be sent as it stands."""


def read_outbox(run_dir: Path) -> list[Message]:
    """Every message of the outbox; a last line torn by a kill is left out, and a
    line that is not one of this run's messages (:func:`refused`) is logged and
    skipped."""
    path = run_dir / OUTBOX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no outbox (was the run made with sink=nats?)")
    run_id = _run_id(run_dir)
    messages = []
    for number, line in enumerate(_whole_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            m = Message(**record) if isinstance(record, dict) else None
        except (ValueError, TypeError):
            m = None
        why = refused(m, run_id) if m is not None else "not a message record"
        if why:
            log.warning("%s:%d: not published: %s", path, number, why)
            continue
        messages.append(m)
    return messages


def refused(m: Message, run_id: str | None) -> str | None:
    """Why ``m`` is not a message this run could have kept; None when it is."""
    if m.subject not in SUBJECTS:
        return f"subject {printable(m.subject)[:80]!r} is none of {sorted(SUBJECTS)}"
    if not isinstance(m.payload, dict) or not isinstance(m.msg_id, str):
        return "no payload object or id"
    try:
        dotted(*m.msg_id.split("."))
    except ValueError as e:
        return f"Nats-Msg-Id: {printable(e)[:120]}"
    owner = m.payload.get("run_id")
    if m.msg_id.split(".")[0] != owner or (run_id is not None and owner != run_id):
        return f"run {printable(owner)[:40]!r}, not this run's ({run_id})"
    return None


def _run_id(run_dir: Path) -> str | None:
    """The run's id from its run.json, if it has one that reads."""
    try:
        found = json.loads((run_dir / RUN_INFO_FILE).read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _whole_lines(path: Path) -> list[str]:
    lines = path.read_text().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    return lines


def _ids(path: Path) -> set[str]:
    return {line.strip() for line in _whole_lines(path)} - {""} if path.is_file() else set()


def acked_ids(run_dir: Path) -> set[str]:
    return _ids(run_dir / ACKED_FILE)


def dead_ids(run_dir: Path) -> set[str]:
    return _ids(run_dir / DEAD_FILE)


def record_acked(run_dir: Path, ids: list[str], file: str = ACKED_FILE) -> None:
    """Add ``ids`` to ``acked.txt`` (or ``file``), one a line, on disk before returning."""
    if ids:
        _append_lines(run_dir / file, ("\n".join(ids) + "\n").encode())


def record_dead(run_dir: Path, ids: list[str]) -> None:
    """Add ``ids`` to ``dead.txt``: the server cannot take them, nothing retries them."""
    record_acked(run_dir, ids, DEAD_FILE)


def pending(run_dir: Path) -> list[Message]:
    """Messages of the outbox the server has not confirmed yet, each id once.

    The latest entry of an id wins: a batch kept and then killed before its
    part landed is generated again by the resume, and that part is the one
    the run keeps.
    """
    if not (run_dir / OUTBOX_FILE).is_file():
        return []
    done = acked_ids(run_dir) | dead_ids(run_dir)
    todo: dict[str, Message] = {}
    for m in read_outbox(run_dir):
        if m.msg_id not in done:
            todo.pop(m.msg_id, None)
            todo[m.msg_id] = m
    return list(todo.values())
