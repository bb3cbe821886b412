"""Load and validate task datasets (``datasets/<role>.jsonl``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipelines import UserError

TASK_COLUMNS = ["task_id", "role", "prompt", "keywords", "context", "tags", "max_tokens"]


class Task(BaseModel):
    """One task record; unknown fields are rejected so typos cannot pass."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    task_id: str = Field(min_length=1)
    role: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    keywords: list[str] = Field(min_length=1)
    context: str | None = None
    tags: list[str] = Field(default_factory=list)
    max_tokens: int | None = Field(default=None, ge=1)

    @field_validator("keywords")
    @classmethod
    def _keywords_not_blank(cls, keywords: list[str]) -> list[str]:
        if any(not k.strip() for k in keywords):
            raise ValueError("keywords must not be blank")
        return keywords


class TaskFileError(UserError):
    """A dataset file that cannot be used, with file and line in the message."""


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(x) for x in e["loc"]) or "<record>"
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"field '{field}': {msg}")
    return "; ".join(parts)


MAX_PROBLEMS = 20
"""Problems of one file listed in one error (the count of the rest follows)."""


def load_tasks(path: str | Path, roles: Iterable[str] | None = None) -> list[Task]:
    """Read and validate a JSONL task file, every line of it.

    Args:
        path: the JSONL file (UTF-8; a leading byte-order mark is allowed).
        roles: the roles a task may have; ``None`` accepts any.

    Raises:
        TaskFileError: a missing, unreadable or empty file, or lines with
            problems (not UTF-8, malformed JSON, not an object, a bad or
            unknown field, an unexpected role, a duplicate ``task_id`` within
            a role). Every problem is listed, up to :data:`MAX_PROBLEMS`, each
            as ``file:line: ...``.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(f"{path}: dataset file not found")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TaskFileError(f"{path}: cannot read the dataset: {e.strerror or e}") from None
    allowed = set(roles) if roles is not None else None
    tasks: list[Task] = []
    problems: list[str] = []
    first_line: dict[tuple[str, str], int] = {}
    for lineno, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1):
        if not raw.strip():
            continue
        task_or_problem = _parse_line(raw, allowed)
        if isinstance(task_or_problem, str):
            problems.append(f"{path}:{lineno}: {task_or_problem}")
            continue
        task = task_or_problem
        key = (task.role, task.task_id)
        if key in first_line:
            problems.append(
                f"{path}:{lineno}: field 'task_id': duplicate {task.task_id!r} "
                f"(first on line {first_line[key]})"
            )
            continue
        first_line[key] = lineno
        tasks.append(task)
    if len(problems) == 1:
        raise TaskFileError(problems[0])
    if problems:
        more = len(problems) - MAX_PROBLEMS
        listed = "\n".join(problems[:MAX_PROBLEMS]) + (f"\n... and {more} more" if more > 0 else "")
        raise TaskFileError(f"{path}: {len(problems)} problems:\n{listed}")
    if not tasks:
        raise TaskFileError(f"{path}: dataset is empty")
    return tasks


def _parse_line(raw: bytes, allowed: set[str] | None) -> Task | str:
    """One line's task, or what is wrong with it (without the ``file:line``)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        return f"malformed JSON: {e.msg} (column {e.colno})"
    except (ValueError, RecursionError) as e:  # an over-long number, nesting too deep
        return f"malformed JSON: {type(e).__name__}: {e}"
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    try:
        task = Task.model_validate(record)
    except ValidationError as e:
        return _describe(e)
    if allowed is not None and task.role not in allowed:
        return f"field 'role': {task.role!r} is not one of {sorted(allowed)}"
    return task


def tasks_frame(tasks: list[Task]) -> pd.DataFrame:
    """The tasks as a table, one row per task, in file order."""
    return pd.DataFrame([t.model_dump() for t in tasks], columns=TASK_COLUMNS)
