"""The pipeline: tasks → council requests → executor(GenerateStage) → results →
scores → sink → tracker. It names no plug-in: each comes from its registry."""

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

from pipelines.config import RunConfig
from pipelines.council import AGENT_COLUMNS, batches, expand
from pipelines.embeddings import load_embedder
from pipelines.executors import Executor, StageSpec, build_executor
from pipelines.metrics import (
    Embed,
    agent_table,
    run_metrics,
    score_rows,
    task_diversity,
    task_metrics,
)
from pipelines.report import write_report
from pipelines.runinfo import write_run_info
from pipelines.scaling import SCALING_FILE, arm_window_s, expand_arms, scaling_table
from pipelines.sinks import SinkReport, build_sink
from pipelines.sinks.messages import Message, agent_messages, deliberation_messages, now_iso
from pipelines.stage import GenerateStage
from pipelines.tasks import Task, load_tasks
from pipelines.trackers import build_tracker

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "run_id",
    *AGENT_COLUMNS,
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


def load_run_tasks(cfg: RunConfig) -> list[Task]:
    """The run's tasks from its dataset file(s), ``limit`` applied per role."""
    tasks = [t for path in cfg.datasets for t in load_tasks(path, roles=cfg.roles)]
    if cfg.limit is None:
        return tasks
    kept: list[Task] = []
    seen: dict[str, int] = {}
    for t in tasks:
        seen[t.role] = seen.get(t.role, 0) + 1
        if seen[t.role] <= cfg.limit:
            kept.append(t)
    return kept


def generate_stage(cfg: RunConfig, executor: Executor) -> StageSpec:
    """The engine stage to map, with what each replica asks for on this cluster."""
    return StageSpec(
        GenerateStage,
        {"engine": cfg.engine, "model": cfg.model},
        num_gpus=cfg.engine.replica_gpus(executor.gpus()),
        num_cpus=cfg.executor.num_cpus,
    )


def generate(
    executor: Executor, cfg: RunConfig, requests: pd.DataFrame
) -> tuple[pd.DataFrame, float]:
    """Run every request batch through the executor; return results and wall time."""
    todo = batches(requests)
    stage = generate_stage(cfg, executor)
    done: list[pd.DataFrame] = []
    start = time.perf_counter()
    rows = tokens = 0
    for part in executor.map(stage, todo):
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
    scored = score_rows(results, task_keywords(tasks))
    diversity = task_diversity(scored, embed)
    return scored, diversity, run_metrics(scored, diversity, wall_s)


def task_keywords(tasks: list[Task]) -> dict[tuple[str, str], list[str]]:
    return {(t.role, t.task_id): t.keywords for t in tasks}


def council_requests(cfg: RunConfig, tasks: list[Task]) -> pd.DataFrame:
    """The request table: one council, or every arm of the scaling experiment."""
    if cfg.experiment.name == "scaling":
        return expand_arms(
            tasks, cfg, cfg.system_prompts, cfg.batch_size, list(cfg.experiment.agents)
        )
    return expand(tasks, cfg, cfg.system_prompts, cfg.batch_size)


def run_pipeline(cfg: RunConfig, out_dir: Path, executor: Executor | None = None) -> RunOutcome:
    """Evaluate the council described by ``cfg``; write files to ``out_dir``.

    Args:
        cfg: the typed run config.
        out_dir: the run folder (Hydra's output dir); created if missing.
        executor: an entered executor to reuse (its engine stays loaded);
            ``None`` builds the configured one for this run.
    """
    run_id = new_run_id(cfg.role.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = load_run_tasks(cfg)
    write_run_info(out_dir, run_id, cfg)
    scaling = cfg.experiment.name == "scaling"
    requests = council_requests(cfg, tasks)
    log.info(
        "run %s: %d tasks, %d requests (%s, %s engine, %s executor)",
        run_id,
        len(tasks),
        len(requests),
        cfg.served_model,
        cfg.engine.name,
        cfg.executor.name,
    )
    # The embedding model loads in the background while a Ray or Dask council
    # generates (the driver mostly waits then), keeping it out of the scoring
    # time. Not beside an in-process engine: concurrent transformers imports
    # in two threads of one process can fail.
    in_process = executor is not None or cfg.executor.name == "local"
    with ThreadPoolExecutor(max_workers=1) as pool:
        embedder = pool.submit(load_embedder) if cfg.embeddings and not in_process else None
        if executor is None:
            with build_executor(cfg.executor) as own:
                results, wall = generate(own, cfg, requests)
        else:
            results, wall = generate(executor, cfg, requests)
        embed = embedder.result() if embedder is not None else None
    if cfg.embeddings and in_process:
        embed = load_embedder()
    results["run_id"] = run_id
    columns = [*RESULT_COLUMNS, "council_size"] if scaling else RESULT_COLUMNS
    # Results reach disk before anything is scored or published.
    results[columns].to_parquet(out_dir / RESULTS_FILE, index=False)

    start = time.perf_counter()
    if scaling:
        # Quality figures describe the full council (the largest arm), over its own time.
        full = results[results["council_size"] == max(cfg.experiment.agents)]
        scored, diversity, metrics = evaluate(full, tasks, arm_window_s(full), embed)
        # The other arms are only compared on cost and keywords.
        table = scaling_table(score_rows(results, task_keywords(tasks)))
        table.to_parquet(out_dir / SCALING_FILE, index=False)
        metrics["scaling"] = table.to_dict(orient="records")
    else:
        scored, diversity, metrics = evaluate(results, tasks, wall, embed)
    metrics = {"run_id": run_id, "wall_s": wall, "scoring_s": 0.0, **metrics}
    per_task = task_metrics(scored, diversity)
    per_task.to_parquet(out_dir / TASK_METRICS_FILE, index=False)
    metrics["scoring_s"] = time.perf_counter() - start
    with build_sink(cfg.sink, out_dir) as sink:
        sink.publish(run_messages(cfg, scored, diversity))
        sent = sink.report()
    if sent.messages:
        metrics["sink"] = {"name": cfg.sink.name, **sink_figures(sent)}
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    write_report(out_dir)
    tracked = track(cfg, out_dir, wall)
    if tracked is not None:
        metrics["tracking"] = tracked
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


def run_messages(cfg: RunConfig, scored: pd.DataFrame, diversity: pd.DataFrame) -> list[Message]:
    """Every agent's result and every deliberation, as sink messages."""
    created = now_iso()
    return agent_messages(scored, cfg.served_model, created) + deliberation_messages(
        scored,
        task_scores(scored, diversity),
        cfg.served_model,
        cfg.deliberation_timeout_s,
        created,
    )


def sink_figures(report: SinkReport) -> dict[str, Any]:
    return {
        "messages": report.messages,
        "acked": report.acked,
        "duplicate": report.duplicate,
        "unpublished": report.pending,
        "error": report.error,
        "publish_s": report.publish_s,
    }


def track(cfg: RunConfig, out_dir: Path, wall_s: float) -> dict[str, Any] | None:
    """Record the run with the configured tracker; a failure is reported, never raised."""
    tracker = build_tracker(cfg.tracking)
    try:
        tracked = tracker.track(out_dir)
    except Exception as e:  # noqa: BLE001 - the run's files are safe on disk
        log.error("tracking (%s) failed: %s: %s", tracker.name, type(e).__name__, e)
        return {"name": tracker.name, "ok": False, "error": f"{type(e).__name__}: {e}"}
    if tracked is None:
        return None
    return {
        "name": tracker.name,
        "ok": True,
        "run": tracked.run_ref,
        "where": tracked.where,
        "seconds": tracked.seconds,
        "share_of_run": tracked.seconds / wall_s if wall_s else 0.0,
    }
