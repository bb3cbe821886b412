"""The scaling experiment: the same tasks with councils of 1, 3, 5 … agents.

All arms go through one executor pass (one engine load); each arm has its own
batches, and each arm is timed on its own: its cost is the engine busy time of
its batches, so the timing of one arm is not diluted by another. Arms are
scored on keywords only (diversity is reported for the full council).
``scaling_factor`` = time per task with N agents ÷ time per task with the
smallest council (the seed system reported 1.13 for 5 agents over 1).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from pipelines.config import CouncilSpec
from pipelines.flow.council import expand
from pipelines.flow.tasks import Task
from pipelines.scoring.metrics import engine_busy_s


def expand_arms(
    tasks: list[Task],
    spec: CouncilSpec,
    system_prompts: dict[str, str],
    batch_size: int,
    sizes: list[int],
) -> pd.DataFrame:
    """Request table of every arm, tagged ``council_size``; batch ids never shared."""
    parts = []
    offset_row = offset_batch = 0
    for n in sorted(set(sizes)):
        arm = expand(tasks, replace(spec, agents=n), system_prompts, batch_size)
        arm["row"] += offset_row
        arm["batch_id"] += offset_batch
        arm["council_size"] = n
        offset_row += len(arm)
        offset_batch = int(arm["batch_id"].max()) + 1
        parts.append(arm)
    return pd.concat(parts, ignore_index=True)


def arm_window_s(results: pd.DataFrame) -> float:
    """Wall time of one arm: its first batch's start to its last batch's end."""
    per_batch = results.groupby("batch_id").agg(at=("started_at", "first"), s=("batch_s", "first"))
    return float((per_batch["at"] + per_batch["s"]).max() - per_batch["at"].min())


def scaling_table(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per council size: cost per task, throughput, latency, factor."""
    rows = []
    for n, arm in scored.groupby("council_size", sort=True):
        engine_s = engine_busy_s(arm)
        tasks = arm["task_id"].nunique()
        tokens = int(arm["completion_tokens"].sum())
        rows.append(
            {
                "agents": int(n),
                "tasks": tasks,
                "requests": len(arm),
                "time_per_task_s": engine_s / tasks,
                "tokens_per_s": tokens / engine_s if engine_s else 0.0,
                "requests_per_s": len(arm) / engine_s if engine_s else 0.0,
                "latency_p50_s": float(arm["latency"].quantile(0.5)),
                "latency_p95_s": float(arm["latency"].quantile(0.95)),
                "keyword_relevance": float(arm["keyword_relevance"].mean()),
            }
        )
    table = pd.DataFrame(rows)
    table["scaling_factor"] = table["time_per_task_s"] / table["time_per_task_s"].iloc[0]
    return table
