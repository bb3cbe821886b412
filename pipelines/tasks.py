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


def load_tasks(path: str | Path, roles: Iterable[str] | None = None) -> list[Task]:
    """Read and validate a JSONL task file.

    Args:
        path: the JSONL file.
        roles: the roles a task may have; ``None`` accepts any.

    Raises:
        TaskFileError: missing or empty file, malformed JSON, a bad or unknown
            field, an unexpected role, or a duplicate ``task_id`` within a role;
            the message names file, line and field.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(f"{path}: dataset file not found")
    allowed = set(roles) if roles is not None else None
    tasks: list[Task] = []
    first_line: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise TaskFileError(
                    f"{where}: malformed JSON: {e.msg} (column {e.colno})"
                ) from None
            if not isinstance(record, dict):
                raise TaskFileError(f"{where}: expected a JSON object, got {type(record).__name__}")
            try:
                task = Task.model_validate(record)
            except ValidationError as e:
                raise TaskFileError(f"{where}: {_describe(e)}") from None
            if allowed is not None and task.role not in allowed:
                raise TaskFileError(
                    f"{where}: field 'role': {task.role!r} is not one of {sorted(allowed)}"
                )
            key = (task.role, task.task_id)
            if key in first_line:
                raise TaskFileError(
                    f"{where}: field 'task_id': duplicate {task.task_id!r} "
                    f"(first on line {first_line[key]})"
                )
            first_line[key] = lineno
            tasks.append(task)
    if not tasks:
        raise TaskFileError(f"{path}: dataset is empty")
    return tasks


def tasks_frame(tasks: list[Task]) -> pd.DataFrame:
    """The tasks as a table, one row per task, in file order."""
    return pd.DataFrame([t.model_dump() for t in tasks], columns=TASK_COLUMNS)
