"""The pipeline: tasks → council requests → executor(GenerateStage) → results."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.council import batches, expand
from pipelines.executors import Executor, build_executor
from pipelines.metrics import agent_table, run_metrics, score_rows
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
    requests = expand(
        tasks, settings.council, settings.system_prompts, settings.executor.batch_size
    )
    log.info(
        "run %s: %d tasks x %d agents = %d requests (%s, %s engine, %s executor)",
        run_id,
        len(tasks),
        settings.council.agents,
        len(requests),
        settings.engine.served_model_name,
        settings.engine.name,
        settings.executor.name,
    )
    if executor is None:
        with build_executor(settings.executor) as own:
            results, wall = generate(own, settings, requests)
    else:
        results, wall = generate(executor, settings, requests)
    results["run_id"] = run_id
    # The outbox: results reach disk before anything is scored or published.
    results[RESULT_COLUMNS].to_parquet(out_dir / RESULTS_FILE, index=False)

    scored = score_rows(results, {(t.role, t.task_id): t.keywords for t in tasks})
    metrics = {"run_id": run_id, "wall_s": wall, **run_metrics(scored, wall)}
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return RunOutcome(run_id, out_dir, results[RESULT_COLUMNS], metrics, agent_table(scored))


def summary(outcome: RunOutcome) -> str:
    """Console summary: per-agent table, overall figures, where the files are."""
    o = outcome.metrics["overall"]
    lines = [
        f"run {outcome.run_id}",
        outcome.agents.to_string(index=False, float_format=lambda x: f"{x:.3f}"),
        "",
        f"requests {o['requests']} (errors {o['errors']})  "
        f"keyword_relevance {o['keyword_relevance']:.3f}  unique_ratio {o['unique_ratio']:.3f}  "
        f"tokens/s {o['tokens_per_s']:.1f} (engine busy: {o['generation_tokens_per_s']:.1f})  "
        f"wall {outcome.metrics['wall_s']:.1f} s",
    ]
    for role, r in outcome.metrics.get("roles", {}).items():
        lines.append(
            f"  {role:<10} keyword_relevance {r['keyword_relevance']:.3f}  "
            f"unique_ratio {r['unique_ratio']:.3f}  requests {r['requests']}"
        )
    lines.append(f"results: {outcome.out_dir / RESULTS_FILE}")
    lines.append(f"metrics: {outcome.out_dir / METRICS_FILE}")
    return "\n".join(lines)
