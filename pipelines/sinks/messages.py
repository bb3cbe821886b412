"""NATS message payloads: an interface for downstream services, versioned.

Subjects: ``agent.response.completed|failed`` (one per task x agent) and
``deliberation.completed|failed`` (one per task). Every payload carries
``schema_version``; ``Nats-Msg-Id`` is ``<run_id>.<task_id>.<agent_id>`` for
agent messages and ``<run_id>.<task_id>`` for deliberations, so the server
drops a replayed duplicate. A field is never renamed or removed within a
schema version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from pipelines.metrics import QUALITY_METRICS

SCHEMA_VERSION = 1
AGENT_COMPLETED = "agent.response.completed"
AGENT_FAILED = "agent.response.failed"
DELIBERATION_COMPLETED = "deliberation.completed"
DELIBERATION_FAILED = "deliberation.failed"
STREAM_SUBJECTS = ["agent.response.>", "deliberation.>"]
TASK_SCORES = QUALITY_METRICS


@dataclass(frozen=True)
class Message:
    """One message of the outbox."""

    subject: str
    msg_id: str
    payload: dict[str, Any]


def _clean(value: Any) -> Any:
    """JSON-safe scalar: numpy types to Python, NaN/NA to None."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def agent_messages(results: pd.DataFrame, model: str, created_at: str) -> list[Message]:
    """One message per (task, agent) row of the results table."""
    out = []
    for r in results.itertuples(index=False):
        error = _clean(r.error)
        payload = {
            "schema_version": SCHEMA_VERSION,
            "run_id": r.run_id,
            "task_id": r.task_id,
            "role": r.role,
            "agent_id": r.agent_id,
            "agent_index": _clean(r.agent_index),
            "status": "FAILED" if error else "COMPLETED",
            "model": model,
            "temperature": _clean(r.temperature),
            "seed": _clean(r.seed),
            "proposal": r.proposal,
            "prompt_tokens": _clean(r.prompt_tokens),
            "completion_tokens": _clean(r.completion_tokens),
            "finish_reason": r.finish_reason,
            "latency_s": _clean(r.latency),
            "error": error,
            "created_at": created_at,
        }
        subject = AGENT_FAILED if error else AGENT_COMPLETED
        out.append(Message(subject, f"{r.run_id}.{r.task_id}.{r.agent_id}", payload))
    return out


def deliberation_messages(
    results: pd.DataFrame,
    task_scores: pd.DataFrame,
    model: str,
    timeout_s: float,
    created_at: str,
) -> list[Message]:
    """One message per task: its status, who answered, and its scores.

    ``COMPLETED`` when every agent answered; ``FAILED`` when one failed;
    ``TIMEOUT`` when the answers were spread over more than ``timeout_s``
    (between the first and the last agent's result reaching the pipeline,
    ``done_s``), as a collector waiting ``timeout_s`` would have given up.
    """
    scores = task_scores.set_index(["role", "task_id"])
    out = []
    for (role, task_id), part in results.groupby(["role", "task_id"], sort=False):
        run_id = part["run_id"].iloc[0]
        failed = part["error"].notna()
        answered = part.loc[~failed, "agent_id"].tolist()
        missing = part.loc[failed, "agent_id"].tolist()
        elapsed = float(part["done_s"].max() - part["done_s"].min())
        status = "FAILED" if missing else "TIMEOUT" if elapsed > timeout_s else "COMPLETED"
        row = scores.loc[(role, task_id)] if (role, task_id) in scores.index else None
        payload = {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "task_id": task_id,
            "role": role,
            "status": status,
            "model": model,
            "agents": part["agent_id"].tolist(),
            "answered": answered,
            "missing": missing,
            "elapsed_s": elapsed,
            "timeout_s": timeout_s,
            "scores": {
                k: _clean(row[k]) if row is not None and k in row else None for k in TASK_SCORES
            },
            "created_at": created_at,
        }
        subject = DELIBERATION_COMPLETED if status == "COMPLETED" else DELIBERATION_FAILED
        out.append(Message(subject, f"{run_id}.{task_id}", payload))
    return out


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
