"""The pipeline: tasks → council requests → executor(GenerateStage) → results."""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.council import batches, expand
from pipelines.embeddings import load_embedder
from pipelines.executors import Executor, build_executor
from pipelines.metrics import (
    QUALITY_METRICS,
    Embed,
    agent_table,
    run_metrics,
    score_rows,
    task_diversity,
    task_metrics,
)
from pipelines.report import REPORT_FILE, write_report
from pipelines.runinfo import write_run_info
from pipelines.scaling import SCALING_FILE, expand_arms, scaling_table
from pipelines.settings import RunSettings
from pipelines.tasks import Task, load_tasks

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "run_id",
    "task_id",
    "role",
    "agent_id",
    "agent_index",
    "temperature",
    "seed",
    "prompt",
    "proposal",
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "latency",
    "error",
]
RESULTS_FILE = "results.parquet"
METRICS_FILE = "metrics.json"
TASK_METRICS_FILE = "task_metrics.parquet"


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run produced."""

    run_id: str
    out_dir: Path
    results: pd.DataFrame
    metrics: dict[str, Any]
    agents: pd.DataFrame


def new_run_id(role: str) -> str:
    """A globally unique, sortable run id (also the NATS dedupe prefix)."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{role}-{uuid.uuid4().hex[:6]}"


def load_run_tasks(settings: RunSettings) -> list[Task]:
    """The run's tasks from its dataset file(s), ``limit`` applied per role."""
    tasks = [t for path in settings.datasets for t in load_tasks(path, roles=settings.roles)]
    if settings.limit is None:
        return tasks
    kept: list[Task] = []
    seen: dict[str, int] = {}
    for t in tasks:
        seen[t.role] = seen.get(t.role, 0) + 1
        if seen[t.role] <= settings.limit:
            kept.append(t)
    return kept


def generate(
    executor: Executor, settings: RunSettings, requests: pd.DataFrame
) -> tuple[pd.DataFrame, float]:
    """Run every request batch through the executor; return results and wall time."""
    todo = batches(requests)
    done: list[pd.DataFrame] = []
    start = time.perf_counter()
    rows = tokens = 0
    for part in executor.map(settings.engine, todo):
        part["done_s"] = time.perf_counter() - start  # when this batch came back
        done.append(part)
        rows += len(part)
        tokens += int(part["completion_tokens"].sum())
        elapsed = time.perf_counter() - start
        log.info(
            "progress: %d/%d requests, %.0f s, %.1f tokens/s",
            rows,
            len(requests),
            elapsed,
            tokens / elapsed,
        )
    wall = time.perf_counter() - start
    results = pd.concat(done).sort_values("row").reset_index(drop=True)
    if len(results) != len(requests):
        raise RuntimeError(f"executor returned {len(results)} rows for {len(requests)} requests")
    return results, wall


def evaluate(
    results: pd.DataFrame, tasks: list[Task], wall_s: float, embed: Embed | None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Score a results table: per row, per task, and run-level metrics."""
    scored = score_rows(results, {(t.role, t.task_id): t.keywords for t in tasks})
    diversity = task_diversity(scored, embed)
    return scored, diversity, run_metrics(scored, diversity, wall_s)


def run_pipeline(
    settings: RunSettings, out_dir: Path, executor: Executor | None = None
) -> RunOutcome:
    """Evaluate the council described by ``settings``; write files to ``out_dir``.

    Args:
        settings: typed run settings.
        out_dir: the run folder (Hydra's output dir); created if missing.
        executor: an entered executor to reuse (its engine stays loaded);
            ``None`` builds the configured one for this run.
    """
    run_id = new_run_id(settings.role)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = load_run_tasks(settings)
    write_run_info(out_dir, run_id, settings)
    scaling = settings.experiment == "scaling"
    if scaling:
        requests = expand_arms(
            tasks,
            settings.council,
            settings.system_prompts,
            settings.executor.batch_size,
            list(settings.scaling_sizes),
        )
    else:
        requests = expand(
            tasks, settings.council, settings.system_prompts, settings.executor.batch_size
        )
    log.info(
        "run %s: %d tasks, %d requests (%s, %s engine, %s executor)",
        run_id,
        len(tasks),
        len(requests),
        settings.engine.served_model_name,
        settings.engine.name,
        settings.executor.name,
    )
    # The embedding model loads in the background while a Ray or Dask council
    # generates (the driver mostly waits then), keeping it out of the scoring
    # time. Not beside an in-process engine: concurrent transformers imports
    # in two threads of one process can fail.
    in_process = executor is not None or settings.executor.name == "local"
    with ThreadPoolExecutor(max_workers=1) as pool:
        embedder = pool.submit(load_embedder) if settings.embeddings and not in_process else None
        if executor is None:
            with build_executor(settings.executor) as own:
                results, wall = generate(own, settings, requests)
        else:
            results, wall = generate(executor, settings, requests)
        embed = embedder.result() if embedder is not None else None
    if settings.embeddings and in_process:
        embed = load_embedder()
    results["run_id"] = run_id
    columns = [*RESULT_COLUMNS, "council_size"] if scaling else RESULT_COLUMNS
    # The outbox: results reach disk before anything is scored or published.
    results[columns].to_parquet(out_dir / RESULTS_FILE, index=False)

    start = time.perf_counter()
    if scaling:
        # Quality figures describe the full council (the largest arm).
        full = results[results["council_size"] == max(settings.scaling_sizes)]
        scored, diversity, metrics = evaluate(full, tasks, wall, embed)
        arms, _, _ = evaluate(results, tasks, wall, None)
        table = scaling_table(arms)
        table.to_parquet(out_dir / SCALING_FILE, index=False)
        metrics["scaling"] = table.to_dict(orient="records")
    else:
        scored, diversity, metrics = evaluate(results, tasks, wall, embed)
    metrics = {"run_id": run_id, "wall_s": wall, "scoring_s": 0.0, **metrics}
    per_task = task_metrics(scored, diversity)
    per_task.to_parquet(out_dir / TASK_METRICS_FILE, index=False)
    metrics["scoring_s"] = time.perf_counter() - start
    if settings.sink.name == "nats":
        metrics["nats"] = publish_results(settings, out_dir, scored, diversity)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    write_report(out_dir)
    if settings.tracking.name == "mlflow":
        metrics["tracking"] = track(settings, out_dir, wall)
    return RunOutcome(run_id, out_dir, results[columns], metrics, agent_table(scored))


def task_scores(scored: pd.DataFrame, diversity: pd.DataFrame) -> pd.DataFrame:
    """Per task: keyword figures over its agents, and its diversity."""
    keywords = (
        scored.groupby(["role", "task_id"], sort=False)
        .agg(
            keyword_relevance=("keyword_relevance", "mean"),
            keyword_full_coverage=("keyword_full", "mean"),
        )
        .reset_index()
    )
    return keywords.merge(diversity, on=["role", "task_id"], how="left")


def publish_results(
    settings: RunSettings, out_dir: Path, scored: pd.DataFrame, diversity: pd.DataFrame
) -> dict[str, Any]:
    """Publish every agent's result and every deliberation; never raises."""
    from pipelines.sinks.messages import agent_messages, deliberation_messages, now_iso
    from pipelines.sinks.nats import publish_run

    created = now_iso()
    model = settings.engine.served_model_name
    messages = agent_messages(scored, model, created) + deliberation_messages(
        scored,
        task_scores(scored, diversity),
        model,
        settings.sink.deliberation_timeout_s,
        created,
    )
    start = time.perf_counter()
    report = publish_run(settings.sink, out_dir, messages)
    return {
        "messages": len(messages),
        "acked": report.acked,
        "duplicate": report.duplicate,
        "unpublished": report.unpublished,
        "error": report.error,
        "publish_s": time.perf_counter() - start,
    }


def track(settings: RunSettings, out_dir: Path, wall_s: float) -> dict[str, Any]:
    """Log the run to MLflow; a tracking failure is reported, never raised."""
    from pipelines.tracking import track_run

    try:
        tracked = track_run(out_dir, settings.tracking)
    except Exception as e:  # noqa: BLE001 - the run's files are safe on disk
        log.error("tracking failed: %s: %s", type(e).__name__, e)
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {
        "ok": True,
        "uri": settings.tracking.resolved_uri(),
        "experiment": tracked.experiment,
        "mlflow_run_id": tracked.mlflow_run_id,
        "seconds": tracked.seconds,
        "share_of_run": tracked.seconds / wall_s if wall_s else 0.0,
    }


def summary(outcome: RunOutcome) -> str:
    """Console summary: per-agent table, run figures, where the files are."""
    m = outcome.metrics
    o = m["overall"]
    quality = "  ".join(f"{k} {o[k]:.3f}" for k in QUALITY_METRICS if k in o)
    lines = [
        f"run {outcome.run_id}",
        outcome.agents.to_string(index=False, float_format=lambda x: f"{x:.3f}"),
        "",
        quality,
        f"requests {o['requests']} (errors {o['errors']})  "
        f"tokens/s {o['tokens_per_s']:.1f} (engine busy: {o['generation_tokens_per_s']:.1f})  "
        f"latency p50 {o['latency_p50_s']:.2f} s p95 {o['latency_p95_s']:.2f} s  "
        f"wall {m['wall_s']:.1f} s  scoring {m['scoring_s']:.2f} s",
    ]
    missed = sorted(o["keyword_hit_rates"].items(), key=lambda kv: kv[1])[:5]
    lines.append("least-hit keywords: " + ", ".join(f"{k} {v:.2f}" for k, v in missed))
    for role, r in m.get("roles", {}).items():
        lines.append(
            f"  {role:<10} keyword_relevance {r['keyword_relevance']:.3f}  "
            f"unique_ratio {r['unique_ratio']:.3f}  requests {r['requests']}"
        )
    if "scaling" in m:
        table = pd.DataFrame(m["scaling"])
        lines += ["", "scaling:", table.to_string(index=False, float_format=lambda x: f"{x:.3f}")]
    for name in (RESULTS_FILE, TASK_METRICS_FILE, METRICS_FILE, REPORT_FILE):
        lines.append(f"{name}: {outcome.out_dir / name}")
    if "scaling" in m:
        lines.append(f"{SCALING_FILE}: {outcome.out_dir / SCALING_FILE}")
    if "tracking" in m:
        t = m["tracking"]
        if t["ok"]:
            lines.append(
                f"mlflow: run {t['mlflow_run_id']} in {t['experiment']!r} at {t['uri']} "
                f"({t['seconds']:.2f} s, {100 * t['share_of_run']:.1f}% of the run)"
            )
        else:
            lines.append(
                f"mlflow: TRACKING FAILED ({t['error']}); the run's files are on disk: "
                f"python -m pipelines.track {outcome.out_dir}"
            )
    if "nats" in m:
        n = m["nats"]
        lines.append(
            f"nats: {n['messages']} messages, acked {n['acked']} "
            f"(duplicate {n['duplicate']}), unpublished {n['unpublished']}"
        )
        if n["unpublished"]:
            lines.append(
                f"  NOT PUBLISHED: {n['unpublished']} messages ({n['error']}); they are in "
                f"{outcome.out_dir / 'outbox.jsonl'}: "
                f"python -m pipelines.replay {outcome.out_dir}"
            )
    return "\n".join(lines)
