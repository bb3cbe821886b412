"""Run-level and per-agent figures from the results table.

Scoring lives in :mod:`evaluators` (pure functions); this module only applies
them to the table and aggregates.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from evaluators import keyword_relevance, unique_ratio


def score_rows(results: pd.DataFrame, keywords: dict[tuple[str, str], list[str]]) -> pd.DataFrame:
    """``results`` plus a per-proposal ``keyword_relevance`` column.

    Args:
        results: the results table.
        keywords: expected keywords by (role, task_id).
    """
    scored = results.copy()
    scored["keyword_relevance"] = [
        keyword_relevance(p, keywords[(r, t)]) if not e else 0.0
        for p, r, t, e in zip(
            scored["proposal"],
            scored["role"],
            scored["task_id"],
            scored["error"].notna(),
            strict=True,
        )
    ]
    return scored


def _figures(scored: pd.DataFrame, wall_s: float) -> dict[str, float]:
    ok = scored[scored["error"].isna()]
    per_task = ok.groupby(["role", "task_id"])["proposal"].agg(lambda s: s.tolist())
    tokens = int(scored["completion_tokens"].sum())
    # Engine time only (no load, no scheduling): each batch counted once.
    engine_s = float(scored.groupby("batch_id")["batch_s"].first().sum())
    return {
        "requests": len(scored),
        "errors": int(scored["error"].notna().sum()),
        "keyword_relevance": float(ok["keyword_relevance"].mean()) if len(ok) else 0.0,
        "unique_ratio": float(per_task.map(unique_ratio).mean()) if len(per_task) else 0.0,
        "completion_tokens": tokens,
        "tokens_per_s": tokens / wall_s if wall_s > 0 else 0.0,
        "generation_tokens_per_s": tokens / engine_s if engine_s > 0 else 0.0,
        "requests_per_s": len(scored) / wall_s if wall_s > 0 else 0.0,
        "latency_p50_s": float(scored["latency"].quantile(0.5)),
        "latency_p95_s": float(scored["latency"].quantile(0.95)),
    }


def run_metrics(scored: pd.DataFrame, wall_s: float) -> dict[str, Any]:
    """Overall figures, plus per role when the run holds several roles.

    ``tokens_per_s`` divides by ``wall_s``, the generation wall time with the
    engine load: what a user waits for. ``generation_tokens_per_s`` divides by
    the engines' busy time alone (summed over batches, so with several replicas
    it is the per-replica rate).
    """
    metrics: dict[str, Any] = {"overall": _figures(scored, wall_s)}
    roles = sorted(scored["role"].unique())
    if len(roles) > 1:
        # Per-role throughput would need per-role wall time: share it by rows.
        metrics["roles"] = {
            role: _figures(part, wall_s * len(part) / len(scored))
            for role, part in scored.groupby("role")
        }
    return metrics


def agent_table(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per agent: temperature, proposals, errors, relevance, tokens."""
    return (
        scored.groupby(["role", "agent_id"])
        .agg(
            temperature=("temperature", "first"),
            proposals=("proposal", "size"),
            errors=("error", lambda e: int(e.notna().sum())),
            keyword_relevance=("keyword_relevance", "mean"),
            mean_tokens=("completion_tokens", "mean"),
        )
        .reset_index()
    )
