"""Load and validate task datasets (``datasets/<role>.jsonl``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipelines import UserError
from pipelines.config.roles import DatasetCaps
from pipelines.runtime.ids import Id
from pipelines.spec import verifiers

TASK_COLUMNS = ["task_id", "role", "prompt", "keywords", "context", "tags", "max_tokens"]


class Task(BaseModel):
    """One task record; unknown fields are rejected so typos cannot pass."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    task_id: Id
    role: Id
    prompt: str = Field(min_length=1)
    keywords: list[str] = Field(min_length=1)
    context: str | None = None
    tags: list[str] = Field(default_factory=list)
    max_tokens: int | None = Field(default=None, ge=1)
    answer: str | None = Field(default=None, min_length=1)
    """The reference answer of a verifiable task (see :attr:`verified_by`)."""
    verifier: str | None = None
    """How a proposal's final answer is checked against :attr:`answer`: ``exact``
    (the default), ``numeric``, ``choice`` (needs :attr:`choices`) or
    ``reasoning_gym:<dataset>`` (that generator's own ``score_answer``, needs
    :attr:`metadata`)."""
    choices: list[str] | None = None
    metadata: dict[str, Any] | None = None
    """The generator's record of a ``reasoning_gym`` task, which its scorer reads; for
    ``python_tests``, ``preamble``: code run before the proposal's (imports, signature)."""
    tests: str | None = None
    """``python_tests``: code defining ``check(candidate)``, which raises on a wrong one."""
    entry_point: str | None = None
    """``python_tests``: the function the proposal defines, passed to ``check``."""

    @property
    def verified_by(self) -> str | None:
        """The verifier of a task with a reference answer, else None."""
        if self.answer is None:
            return None
        return self.verifier or verifiers.EXACT

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("prompt must not be blank")
        return prompt

    @field_validator("keywords")
    @classmethod
    def _keywords_not_blank(cls, keywords: list[str]) -> list[str]:
        if any(not k.strip() for k in keywords):
            raise ValueError("keywords must not be blank")
        return keywords

    @model_validator(mode="after")
    def _verifiable(self) -> Task:
        problem = verifiers.problem(
            self.verifier,
            self.answer,
            self.choices,
            self.metadata is not None,
            self.tests,
            self.entry_point,
        )
        if problem:
            raise ValueError(problem)
        return self


class TaskFileError(UserError):
    """A dataset file that cannot be used, with file and line in the message."""


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(x) for x in e["loc"]) or "<record>"
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
        msg = msg.removeprefix("Value error, ")
        # A check over several fields names its own field.
        parts.append(
            msg if not e["loc"] and msg.startswith("field '") else f"field '{field}': {msg}"
        )
    return "; ".join(parts)


MAX_PROBLEMS = 20
"""Problems of one file listed in one error (the count of the rest follows)."""


def load_tasks(
    path: str | Path,
    roles: Iterable[str] | None = None,
    caps: DatasetCaps | None = None,
    limit: int | None = None,
) -> list[Task]:
    """Read and validate a JSONL task file, line by line (never whole in memory).

    Args:
        path: the JSONL file (UTF-8; a leading byte-order mark is allowed).
        roles: the roles a task may have; ``None`` accepts any.
        caps: what a line, a prompt, the keywords and the file may hold.
        limit: keep at most this many tasks per role, and stop reading once
            every role of ``roles`` has them (the rest is neither read nor checked).

    Raises:
        TaskFileError: a missing, unreadable or empty file, or lines with
            problems (not UTF-8, malformed JSON, a key given twice, not an
            object, a bad or unknown field, an id outside
            :data:`pipelines.runtime.ids.ID_PATTERN`, a blank prompt, past a cap, an
            unexpected role, a duplicate ``task_id`` within a role). Every
            problem is listed, up to :data:`MAX_PROBLEMS`, each as ``file:line: ...``.
    """
    path = Path(path)
    caps = caps or DatasetCaps()
    if not path.is_file():
        raise TaskFileError(f"{path}: dataset file not found")
    if (size := path.stat().st_size) > caps.max_total_bytes:
        raise TaskFileError(
            f"{path}: {size:,} bytes, more than dataset_caps.max_total_bytes "
            f"({caps.max_total_bytes:,}); raise it to load this file"
        )
    total = 0
    allowed = set(roles) if roles is not None else None
    tasks: list[Task] = []
    problems: list[str] = []
    first_line: dict[tuple[str, str], int] = {}
    per_role: dict[str, int] = {}
    try:
        with path.open("rb") as f:
            for lineno, raw in enumerate(_lines(f, caps.max_line_bytes), 1):
                total += len(raw) if raw is not TOO_LONG else caps.max_line_bytes
                if total > caps.max_total_bytes:  # it grew while read (a pipe, a log)
                    problems.append(
                        f"{path}:{lineno}: past {caps.max_total_bytes:,} bytes "
                        "(dataset_caps.max_total_bytes)"
                    )
                    break
                if lineno == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                if not raw.strip():
                    continue
                task_or_problem = _parse_line(raw, allowed, caps)
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
                if len(tasks) == caps.max_tasks:
                    problems.append(
                        f"{path}:{lineno}: more than {caps.max_tasks} tasks "
                        "(dataset_caps.max_tasks)"
                    )
                    break
                first_line[key] = lineno
                if limit is not None and per_role.get(task.role, 0) >= limit:
                    continue
                tasks.append(task)
                per_role[task.role] = per_role.get(task.role, 0) + 1
                if _limit_reached(per_role, allowed, limit):
                    break
    except OSError as e:
        raise TaskFileError(f"{path}: cannot read the dataset: {e.strerror or e}") from None
    if len(problems) == 1:
        raise TaskFileError(problems[0])
    if problems:
        more = len(problems) - MAX_PROBLEMS
        listed = "\n".join(problems[:MAX_PROBLEMS]) + (f"\n... and {more} more" if more > 0 else "")
        raise TaskFileError(f"{path}: {len(problems)} problems:\n{listed}")
    if not tasks:
        raise TaskFileError(f"{path}: dataset is empty")
    return tasks


def _limit_reached(per_role: dict[str, int], allowed: set[str] | None, limit: int | None) -> bool:
    if limit is None or allowed is None:
        return False
    return all(per_role.get(r, 0) >= limit for r in allowed)


TOO_LONG = b"\0too long"
"""Stands for a line past ``max_line_bytes`` (its bytes are skipped, not kept)."""


def _lines(f, max_bytes: int) -> Iterable[bytes]:
    """The file's lines without their ``\\n``; a line past ``max_bytes`` comes
    as :data:`TOO_LONG` after the rest of it is skipped unread into memory."""
    while True:
        raw = f.readline(max_bytes + 1)
        if not raw:
            return
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            while (rest := f.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass
            yield TOO_LONG
            continue
        yield raw.removesuffix(b"\n")


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object whose keys are each given once (``json`` keeps the last)."""
    record: dict[str, object] = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKey(f"key {key!r} given twice")
        record[key] = value
    return record


def _parse_line(raw: bytes, allowed: set[str] | None, caps: DatasetCaps) -> Task | str:
    """One line's task, or what is wrong with it (without the ``file:line``)."""
    if raw is TOO_LONG or len(raw) > caps.max_line_bytes:
        return f"line longer than {caps.max_line_bytes} bytes (dataset_caps.max_line_bytes)"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
    try:
        record = json.loads(line, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        return f"malformed JSON: {e.msg} (column {e.colno})"
    except _DuplicateKey as e:
        return f"malformed JSON: {e}"
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
    return _past_a_cap(task, caps) or task


def _past_a_cap(task: Task, caps: DatasetCaps) -> str | None:
    size = len(task.prompt) + len(task.context or "")
    if size > caps.max_prompt_chars:
        return (
            f"field 'prompt': {size} characters with the context, more than "
            f"{caps.max_prompt_chars} (dataset_caps.max_prompt_chars)"
        )
    if len(task.keywords) > caps.max_keywords:
        return (
            f"field 'keywords': {len(task.keywords)} keywords, more than "
            f"{caps.max_keywords} (dataset_caps.max_keywords)"
        )
    long = [k for k in task.keywords if len(k) > caps.max_keyword_chars]
    if long:
        return (
            f"field 'keywords': {long[0][:40]!r}... is longer than "
            f"{caps.max_keyword_chars} characters (dataset_caps.max_keyword_chars)"
        )
    return None


def tasks_frame(tasks: list[Task]) -> pd.DataFrame:
    """The tasks as a table, one row per task, in file order."""
    return pd.DataFrame([t.model_dump() for t in tasks], columns=TASK_COLUMNS)


def reference(task: Task) -> verifiers.Reference | None:
    """The task's reference answer and how to check an answer against it (None
    for a task without one)."""
    if task.answer is None or task.verified_by is None:
        return None
    return verifiers.Reference(
        task.answer,
        task.verified_by,
        tuple(task.choices or ()),
        task.metadata,
        task.prompt,
        task.tests or "",
        task.entry_point or "",
    )


def references(tasks: list[Task]) -> dict[tuple[str, str], verifiers.Reference]:
    """The reference answers of the tasks that have one, by (role, task_id)."""
    return {(t.role, t.task_id): ref for t in tasks if (ref := reference(t)) is not None}
