"""Per-proposal, per-task and run-level figures from the results table.

Scoring lives in :mod:`evaluators` (pure functions); this module applies them
to tables and aggregates. Metric names are part of the interface (metrics.json,
console, trackers): keep them stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from evaluators import (
    coverage,
    full_coverage,
    keyword_hit_rates,
    keyword_hits,
    lexical_diversity,
    mean_pairwise_cosine_distance,
    self_bleu,
)
from pipelines.scoring.stats import bootstrap_ci
from pipelines.scoring.truth import (
    TRUTH_COLUMNS,
    References,
    chair_verdicts,
    score_truth,
    task_truth,
    truth_section,
)
from pipelines.spec.metrics import (
    BY_NAME,
    DIVERSITY_METRICS,
    QUALITY_METRICS,
    TASK,
    TRUTH_METRICS,
)
from pipelines.spec.run_folder import upgrade

Embed = Callable[[Sequence[str]], np.ndarray]


def score_rows(
    results: pd.DataFrame,
    keywords: dict[tuple[str, str], list[str]],
    refs: References | None = None,
    code_budget_s: float | None = None,
) -> pd.DataFrame:
    """``results`` plus per-proposal keyword columns, and the truth columns when
    some task has a reference answer (code checks within ``code_budget_s``).

    Adds ``keywords`` (expected), ``keyword_hits`` (bool per keyword),
    ``keyword_relevance`` and ``keyword_full`` (every keyword hit). A failed
    request scores no hit. With ``refs``: :data:`pipelines.scoring.truth.TRUTH_COLUMNS`.

    Args:
        results: the results table.
        keywords: expected keywords by (role, task_id).
        refs: reference answers by (role, task_id), of the tasks that have one.
    """
    scored = upgrade(results, ["repeat"]).copy()  # before repeats: one sample each
    # Lists, not Series iteration: several times faster on Arrow-backed strings.
    expected = [
        keywords[key]
        for key in zip(scored["role"].tolist(), scored["task_id"].tolist(), strict=True)
    ]
    failed = scored["error"].notna().tolist()
    hits = [
        [False] * len(k) if f else keyword_hits(p, k)
        for p, k, f in zip(scored["proposal"].tolist(), expected, failed, strict=True)
    ]
    scored["keywords"] = expected
    scored["keyword_hits"] = hits
    scored["keyword_relevance"] = [coverage(h) for h in hits]
    scored["keyword_full"] = [bool(h) and all(h) for h in hits]
    return score_truth(scored, refs, code_budget_s) if refs else scored


def task_figures(
    scored: pd.DataFrame,
    embed: Embed | None = None,
    refs: References | None = None,
    chair: pd.DataFrame | None = None,
    *,
    bleu: bool = True,
) -> pd.DataFrame:
    """Per (role, task_id, repeat): :func:`task_diversity`, and for rows scored against
    reference answers the council's majority vote, pass@N and its answer's accuracy
    (the chair's where ``chair`` holds one, checked with ``refs``:
    :func:`pipelines.scoring.truth.task_truth`)."""
    diversity = task_diversity(scored, embed, bleu=bleu)
    if "verdict" not in scored:
        return diversity
    chaired = chair_verdicts(chair, refs) if chair is not None and refs else None
    truth = task_truth(scored, chaired)
    return diversity.merge(truth, on=["role", "task_id", "repeat"], how="outer")


def task_diversity(
    scored: pd.DataFrame, embed: Embed | None = None, *, bleu: bool = True
) -> pd.DataFrame:
    """One row per (role, task_id, repeat): diversity of that sample's successful
    proposals (the council's answers to the task, each repeat on its own).

    ``bleu=False`` leaves out ``self_bleu`` (by far the costliest figure) and
    ``embed=None`` leaves out ``embedding_diversity``.
    """
    ok = scored[scored["error"].isna()]
    tasks: dict[tuple[str, str, int], list[str]] = {}
    keys = zip(ok["role"].tolist(), ok["task_id"].tolist(), ok["repeat"].tolist(), strict=True)
    for key, proposal in zip(keys, ok["proposal"].tolist(), strict=True):
        tasks.setdefault(key, []).append(proposal)
    # Every proposal in one embedding call (batched by the embedder), not one call a task.
    flat = [p for proposals in tasks.values() for p in proposals]
    vectors = embed(flat) if embed is not None and flat else None
    rows, start = [], 0
    for (role, task_id, repeat), proposals in tasks.items():
        row = {"role": role, "task_id": task_id, "repeat": repeat, "proposals": len(proposals)}
        row.update(lexical_diversity(proposals))
        if bleu:
            row["self_bleu"] = self_bleu(proposals)
        if vectors is not None:
            mine = vectors[start : start + len(proposals)]
            row["embedding_diversity"] = mean_pairwise_cosine_distance(mine)
        start += len(proposals)
        rows.append(row)
    return pd.DataFrame(
        rows, columns=["role", "task_id", "repeat", "proposals"] if not rows else None
    )


def truth_means(scored: pd.DataFrame, per_task: pd.DataFrame) -> dict[str, float]:
    """The truth metrics, over the tasks with a reference answer (none without one)."""
    out = {}
    for name in TRUTH_METRICS:
        metric = BY_NAME[name]
        table = per_task if metric.over == TASK else scored
        if metric.source in table and table[metric.source].notna().any():
            out[name] = float(table[metric.source].mean())
    return out


def task_metrics(scored: pd.DataFrame, diversity: pd.DataFrame) -> pd.DataFrame:
    """Per (task, agent): keyword scores, with the task's diversity alongside."""
    cols = [
        "run_id",
        "role",
        "task_id",
        "agent_id",
        "agent_index",
        "repeat",
        "temperature",
        "keywords",
        "keyword_hits",
        "keyword_relevance",
        "keyword_full",
        *TRUTH_COLUMNS,
        "completion_tokens",
        "error",
    ]
    per_agent = scored[[c for c in cols if c in scored.columns]]
    return per_agent.merge(
        diversity.drop(columns="proposals"), on=["role", "task_id", "repeat"], how="left"
    )


def task_scores(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (role, task_id): the task's quality metrics.

    ``table`` is per (task, agent), like ``task_metrics.parquet``: keyword
    figures are averaged over the task's proposals, diversity figures (one per
    task already) over its repeats. The run-level figure of each metric is the
    mean of this column, which is what the confidence intervals resample.
    """
    agg = {m: (BY_NAME[m].source, "mean") for m in QUALITY_METRICS if BY_NAME[m].source in table}
    return table.groupby(["role", "task_id"], sort=False).agg(**agg)


def repeat_spread(table: pd.DataFrame) -> dict[str, float]:
    """With several repeats: ``repeats`` and, per quality metric, the standard
    deviation of its run-level figure across repeats (``<metric>_repeat_sd``).

    ``table`` is per (task, agent), like ``task_metrics.parquet``.
    """
    repeats = sorted(table["repeat"].unique()) if "repeat" in table else [0]
    if len(repeats) < 2:
        return {}
    per_repeat = pd.DataFrame(
        [task_scores(part).mean() for _, part in table.groupby("repeat", sort=True)]
    )
    out: dict[str, float] = {"repeats": len(repeats)}
    for name in QUALITY_METRICS:
        if name in per_repeat:
            out[f"{name}_repeat_sd"] = float(per_repeat[name].std(ddof=1))
    return out


def interval_figures(per_task: pd.DataFrame) -> dict[str, float]:
    """``<metric>_ci_low`` and ``<metric>_ci_high`` for each quality metric: a 95 %
    bootstrap interval clustered by task (see :mod:`pipelines.scoring.stats`)."""
    out: dict[str, float] = {}
    for name in QUALITY_METRICS:
        if name in per_task and (ci := bootstrap_ci(per_task[name].to_numpy())) is not None:
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = ci
    return out


def union_s(started_at: Iterable[float], seconds: Iterable[float]) -> float:
    """Length of the union of the windows ``[started_at, started_at + seconds]``."""
    total, end = 0.0, float("-inf")
    for start, length in sorted(zip(started_at, seconds, strict=True)):
        stop = start + length
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def engine_busy_s(rows: pd.DataFrame) -> float:
    """Time any engine was busy with these rows' batches: the union of the batches'
    windows (several batches are in an engine at once)."""
    per_batch = rows.groupby("batch_id").agg(at=("started_at", "first"), s=("batch_s", "first"))
    return union_s(per_batch["at"], per_batch["s"])


def _figures(scored: pd.DataFrame, diversity: pd.DataFrame, wall_s: float) -> dict[str, Any]:
    ok = scored[scored["error"].isna()]
    tokens = int(scored["completion_tokens"].sum())
    # Throughput counts what an engine generated: cache hits took no engine time.
    fresh = scored[~scored["cached"].astype(bool)] if "cached" in scored else scored
    generated = int(fresh["completion_tokens"].sum())
    # Engine time only (no load, no scheduling).
    engine_s = engine_busy_s(fresh) if len(fresh) else 0.0
    figures: dict[str, Any] = {
        "requests": len(scored),
        "errors": len(scored) - len(ok),
        "keyword_relevance": float(scored["keyword_relevance"].mean()),
        "keyword_full_coverage": full_coverage(scored["keyword_hits"].tolist()),
    }
    for name in DIVERSITY_METRICS:
        if name in diversity:
            figures[name] = float(diversity[name].mean()) if len(diversity) else 0.0
    figures.update(truth_means(scored, diversity))
    if figures.get("accuracy") is not None:
        figures["truth"] = truth_section(scored, diversity)
    per_agent = task_metrics(scored, diversity)
    figures.update(interval_figures(task_scores(per_agent)))
    figures.update(repeat_spread(per_agent))
    figures.update(
        {
            "completion_tokens": tokens,
            "tokens_per_s": generated / wall_s if wall_s > 0 else 0.0,
            "generation_tokens_per_s": generated / engine_s if engine_s > 0 else 0.0,
            "requests_per_s": len(fresh) / wall_s if wall_s > 0 else 0.0,
            "latency_p50_s": float(scored["latency"].quantile(0.5)),
            "latency_p95_s": float(scored["latency"].quantile(0.95)),
            "keyword_hit_rates": keyword_hit_rates(
                scored["keywords"].tolist(), scored["keyword_hits"].tolist()
            ),
        }
    )
    return figures


def run_metrics(scored: pd.DataFrame, diversity: pd.DataFrame, wall_s: float) -> dict[str, Any]:
    """Overall figures, plus per role when the run holds several roles.

    ``tokens_per_s`` divides by ``wall_s``, the generation wall time with the
    engine load: what a user waits for. ``generation_tokens_per_s`` divides by
    the time any engine was busy (:func:`engine_busy_s`).
    """
    metrics: dict[str, Any] = {"overall": _figures(scored, diversity, wall_s)}
    roles = sorted(scored["role"].unique())
    if len(roles) > 1:
        # Per-role throughput would need per-role wall time: share it by rows.
        metrics["roles"] = {
            role: _figures(
                part,
                diversity[diversity["role"] == role],
                wall_s * len(part) / len(scored),
            )
            for role, part in scored.groupby("role")
        }
    return metrics


def agent_table(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per agent: temperature, proposals, errors, keyword scores, tokens.

    Works on the scored results and on ``task_metrics.parquet`` alike.
    """
    columns = {
        "temperature": ("temperature", "first"),
        "proposals": ("task_id", "size"),
        "errors": ("error", lambda e: int(e.notna().sum())),
        "keyword_relevance": ("keyword_relevance", "mean"),
        "keyword_full_coverage": ("keyword_full", "mean"),
        "mean_tokens": ("completion_tokens", "mean"),
    }
    if "correct" in scored and scored["correct"].notna().any():
        columns["accuracy"] = ("correct", "mean")
    return scored.groupby(["role", "agent_id"]).agg(**columns).reset_index()
