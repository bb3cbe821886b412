"""NATS message payloads: an interface for downstream services, versioned.

Subjects: ``agent.response.completed|failed`` (one per task x agent, published
as its batch lands) and ``deliberation.completed|failed`` (one per task, from
the collector, :mod:`pipelines.sinks.collector`). Every payload carries
``schema_version``; ``Nats-Msg-Id`` is ``<run_id>.<role>.<task_id>.<agent_id>``
for agent messages (``.r<k>`` added for repeat k > 0 of ``repeats=K``, and
``.<step><round>[.<target>]`` for a deliberation's later rounds, rankings, chair
and judge scores) and ``<run_id>.<role>.<task_id>`` for deliberations, so the
server drops a replayed duplicate. Every id is built by
:func:`pipelines.runtime.ids.dotted`, which refuses a token that could break the
protocol. A field is never renamed or removed within a schema version.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from pipelines.runtime.ids import dotted
from pipelines.spec.metrics import QUALITY_METRICS, TRUTH_METRICS

SCHEMA_VERSION = 1
AGENT_COMPLETED = "agent.response.completed"
AGENT_FAILED = "agent.response.failed"
DELIBERATION_COMPLETED = "deliberation.completed"
DELIBERATION_FAILED = "deliberation.failed"
STREAM_SUBJECTS = ["agent.response.>", "deliberation.>"]
TASK_SCORES = [m for m in QUALITY_METRICS if m not in TRUTH_METRICS]
"""Scores a deliberation message carries (the agents' messages hold no reference answer)."""


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


def agent_messages(
    results: pd.DataFrame,
    model: str,
    keywords: Mapping[tuple[str, str], list[str]],
    council_size: int,
    repeats: int = 1,
    plan: Mapping[str, Any] | None = None,
) -> list[Message]:
    """One message per (task, agent) row of a results table.

    Each carries what a collector needs to judge the deliberation on its own:
    the council's size, the task's keywords and, when the council deliberates,
    its ``plan`` (rounds, rank, chair, judge) and the row's ``step``, ``round``
    and ``target``, with a ranking's agents or a judge's score (``parsed``).
    """
    out = []
    created_at = now_iso()
    sizes = results["council_size"].tolist() if "council_size" in results else None
    for i, r in enumerate(results.itertuples(index=False)):
        error = _clean(r.error)
        repeat = int(getattr(r, "repeat", 0))
        payload = {
            "schema_version": SCHEMA_VERSION,
            "run_id": r.run_id,
            "task_id": r.task_id,
            "role": r.role,
            "agent_id": r.agent_id,
            "agent_index": _clean(r.agent_index),
            "repeat": repeat,
            "repeats": repeats,
            "council_size": int(sizes[i]) if sizes else council_size,
            "status": "FAILED" if error else "COMPLETED",
            "model": model,
            "temperature": _clean(r.temperature),
            "seed": _clean(r.seed),
            "proposal": r.proposal,
            "keywords": list(keywords[(r.role, r.task_id)]),
            "prompt_tokens": _clean(r.prompt_tokens),
            "completion_tokens": _clean(r.completion_tokens),
            "finish_reason": r.finish_reason,
            "latency_s": _clean(r.latency),
            "error": error,
            "created_at": created_at,
        }
        step, rnd = getattr(r, "step", "propose"), int(getattr(r, "round", 1))
        target = getattr(r, "target", "") or ""
        if plan is not None:
            parsed = getattr(r, "parsed", None)
            payload |= {
                "plan": dict(plan),
                "step": step,
                "round": rnd,
                "target": target,
                "parsed": json.loads(parsed) if isinstance(parsed, str) else None,
            }
        subject = AGENT_FAILED if error else AGENT_COMPLETED
        tokens = [r.run_id, r.role, r.task_id, r.agent_id] + ([f"r{repeat}"] if repeat else [])
        if step != "propose" or rnd > 1:
            tokens += [f"{step}{rnd}"] + ([target] if target else [])
        out.append(Message(subject, dotted(*tokens), payload))
    return out


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
