"""The pipeline: tasks → council requests → executor(GenerateStage) → results →
scores → sink → tracker. It names no plug-in: each comes from its registry."""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import RunConfig
from pipelines.deliberation.plan import split_steps
from pipelines.deliberation.rounds import deliberation_figures
from pipelines.driver.feeders import Feed, feeder_for
from pipelines.driver.runinfo import write_run_info
from pipelines.executors import Executor, HeldExecutors, build_executor
from pipelines.flow.cache import (
    cached_embed,
)
from pipelines.flow.council import AGENT_COLUMNS, expand
from pipelines.flow.embed_ahead import EmbedAhead, background_thread
from pipelines.flow.parts import held_keys, read_parts
from pipelines.flow.phases import Phases
from pipelines.flow.scaling import arm_window_s, expand_arms, scaling_table
from pipelines.flow.stream import Landing, StreamStats
from pipelines.flow.tasks import Task, TaskFileError, load_tasks, references
from pipelines.report import write_report
from pipelines.runtime.durable import hold_run_folder, write_json, write_parquet
from pipelines.runtime.redact import redact_exc
from pipelines.scoring.embeddings import load_embedder
from pipelines.scoring.metrics import (
    Embed,
    agent_table,
    engine_busy_s,
    run_metrics,
    score_rows,
    task_figures,
    task_metrics,
)
from pipelines.scoring.truth import References
from pipelines.sinks import SinkReport, build_sink
from pipelines.spec.protocol import PROPOSE
from pipelines.spec.run_folder import (
    METRICS_FILE,
    RESULTS_FILE,
    RUN_INFO_FILE,
    SCALING_FILE,
    TASK_METRICS_FILE,
    final,
)
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
    "cached",
]
SETTLE_S = 30.0
"""How long the end of a run waits for the collector to end every deliberation."""


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
    """The run's tasks from its dataset file(s), ``limit`` applied per role.

    Raises:
        TaskFileError: a file's problems, or one (role, task_id) in two files.
    """
    tasks: list[Task] = []
    where: dict[tuple[str, str], Path] = {}
    per_role: dict[str, int] = {}
    for path in cfg.datasets:
        for t in load_tasks(path, roles=cfg.roles, caps=cfg.dataset_caps, limit=cfg.limit):
            key = (t.role, t.task_id)
            if key in where:
                raise TaskFileError(
                    f"{path}: field 'task_id': {t.task_id!r} of role {t.role!r} is also in "
                    f"{where[key]}"
                )
            where[key] = path
            per_role[t.role] = per_role.get(t.role, 0) + 1
            if cfg.limit is None or per_role[t.role] <= cfg.limit:
                tasks.append(t)
    return tasks


def evaluate(
    results: pd.DataFrame,
    tasks: list[Task],
    wall_s: float,
    embed: Embed | None,
    chair: pd.DataFrame | None = None,
    code_budget_s: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Score a results table: per row, per task, and run-level metrics (``chair``: the
    council's final answers, when a chair wrote them)."""
    refs = references(tasks)
    scored = score_rows(results, task_keywords(tasks), refs, code_budget_s)
    return measure(scored, refs, wall_s, embed, chair)


def measure(
    scored: pd.DataFrame,
    refs: References,
    wall_s: float,
    embed: Embed | None,
    chair: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Per-task and run-level metrics of rows :func:`score_rows` scored."""
    diversity = task_figures(scored, embed, refs, chair)
    return scored, diversity, run_metrics(scored, diversity, wall_s)


def task_keywords(tasks: list[Task]) -> dict[tuple[str, str], list[str]]:
    return {(t.role, t.task_id): t.keywords for t in tasks}


def council_requests(cfg: RunConfig, tasks: list[Task]) -> pd.DataFrame:
    """The request table: one council, or every arm of the scaling experiment."""
    if cfg.experiment.name == "scaling":
        return expand_arms(
            tasks, cfg, cfg.system_prompts, cfg.batch_size, list(cfg.experiment.agents)
        )
    return expand(tasks, cfg, cfg.system_prompts, cfg.batch_size, cfg.role_personas)


def run_pipeline(
    cfg: RunConfig,
    out_dir: Path,
    executor: Executor | HeldExecutors | None = None,
    run_id: str | None = None,
) -> RunOutcome:
    """Evaluate the council described by ``cfg``; write files to ``out_dir``.

    Each batch lands as it comes back (a part on disk, its agent messages on the
    sink); the run is then scored, its deliberations settled, and tracked.

    Args:
        cfg: the typed run config.
        out_dir: the run folder (Hydra's output dir); created if missing.
        executor: an entered executor to reuse (its engine stays loaded), or
            held executors to take the configured one from (entered only if
            there is something to generate); ``None`` builds the configured
            one for this run.
        run_id: resume the run of that id in ``out_dir``: requests some part
            already holds are not generated again.
    """
    with hold_run_folder(out_dir):
        return _run_pipeline(cfg, out_dir, executor, run_id)


def _run_pipeline(
    cfg: RunConfig,
    out_dir: Path,
    executor: Executor | HeldExecutors | None,
    run_id: str | None,
) -> RunOutcome:
    phases = Phases()
    resuming = run_id is not None
    run_id = run_id or new_run_id(cfg.role.name)
    tasks = load_run_tasks(cfg)
    if resuming:  # the first session's start: the collector replays from there
        info = json.loads((out_dir / RUN_INFO_FILE).read_text())
    else:
        info = write_run_info(out_dir, run_id, cfg)
    started_ms = info["started_at_ms"]
    requests = council_requests(cfg, tasks)
    held = held_keys(out_dir, requests)
    todo = requests[~held]
    log.info(
        "run %s: %d tasks, %d requests, %d to generate (%s, %s engine, %s executor)",
        run_id,
        len(tasks),
        len(requests),
        len(todo),
        cfg.served_model,
        cfg.engine.name,
        cfg.executor.name,
    )
    keywords = task_keywords(tasks)
    phases.add("prepare", phases.elapsed())  # tasks, requests, parts held
    sink_start = time.perf_counter()
    with build_sink(cfg.sink, out_dir) as sink:
        sink.follow(
            run_id, [(t.role, t.task_id) for t in tasks], started_ms, cfg.deliberation_timeout_s
        )
        sink.publish_pending()  # what an earlier session kept and never saw acked
        phases.add("sink", time.perf_counter() - sink_start)  # its server, the collector
        landing = Landing(cfg, run_id, out_dir, sink, keywords, phases=phases)
        feeder = feeder_for(cfg, tasks, requests, held, landing)
        stats, embed = generate_all(cfg, executor, feeder, landing)
        phases.add("engine_load", stats.engine_load_s)
        phases.add("generate", max(stats.wall_s - stats.engine_load_s, 0.0))
        with phases.timed("results"):
            steps = split_steps(read_parts(out_dir))
            results = steps[PROPOSE].sort_values("row").reset_index(drop=True)
            results["cached"] = results["cached"].astype(bool)  # read_parts fills old parts
            expected = len(requests) * cfg.deliberation.rounds
            if len(results) != expected:
                raise RuntimeError(
                    f"the parts hold {len(results)} proposals for {expected} requests"
                )
            scaling = cfg.experiment.name == "scaling"
            columns = [*RESULT_COLUMNS, "council_size"] if scaling else RESULT_COLUMNS
            write_parquet(out_dir / RESULTS_FILE, results[columns])
            tables = feeder.tables(steps, out_dir)
        with phases.timed("score"):
            metrics, scored = score(cfg, results, tasks, stats, embed, out_dir, steps, tables)
        with phases.timed("settle"):
            open_left = sink.settle(SETTLE_S)
            sent = sink.report()
    metrics = {
        "run_id": run_id,
        **metrics,
        "rows_reused": feeder.reused,
        **stats.figures(),
        **feeder.cache_figures(),
        "driver_peak_rss_mb": peak_rss_mb(),
    }
    if sent.messages:
        metrics["sink"] = {
            "name": cfg.sink.name,
            **sink_figures(sent),
            "open_deliberations": open_left,
        }
    write_json(out_dir / METRICS_FILE, metrics)
    with phases.timed("report"):
        write_report(out_dir)
    with phases.timed("track"):
        tracked = track(cfg, out_dir, phases.elapsed())
    if tracked is not None:
        metrics["tracking"] = tracked
    metrics["phases"] = phases.write(out_dir)
    return RunOutcome(run_id, out_dir, results[columns], metrics, agent_table(scored))


def generate_all(
    cfg: RunConfig,
    executor: Executor | HeldExecutors | None,
    feeder: Feed,
    landing: Landing,
) -> tuple[StreamStats, Embed | None]:
    """Run ``feeder`` (given a function that enters the executor on first call);
    the embedding model loads meanwhile.

    The embedding model loads in the background while a Ray or Dask council
    generates (the driver mostly waits then), keeping it out of the scoring
    time. Not beside an in-process engine: concurrent transformers imports in
    two threads of one process can fail. With a cache (``store``) and nothing
    to generate, it loads only if scoring meets a text the cache lacks.
    """
    store, idle = feeder.store, feeder.idle()
    # An entered executor may differ from the config's (a test's, a notebook's).
    in_process = cfg.executor.name == "local" or getattr(executor, "in_process", False)
    eager = cfg.embeddings and not (store is not None and idle)
    loader = ThreadPoolExecutor(max_workers=1, initializer=background_thread)
    with loader as pool, ExitStack() as stack:
        embedder = pool.submit(load_embedder) if eager and not in_process else None
        # Each landed batch's proposals are embedded meanwhile (pipelines/flow/embed_ahead.py).
        ahead = EmbedAhead(embedder) if embedder is not None else None
        if ahead is not None:
            landing.embed_ahead = ahead.add

        @cache
        def entered() -> Executor:
            with landing.phases.timed("start"):
                if executor is None:
                    return stack.enter_context(build_executor(cfg.executor))
                if isinstance(executor, HeldExecutors):
                    return executor.get(cfg.executor)
                return executor

        stats = StreamStats() if idle else feeder.feed(entered)
        generated_at = time.perf_counter()
        if ahead is not None:
            embed = ahead.finish()
        else:
            embed = embedder.result() if embedder is not None else None
    # The executor's stop, and the last batches' embeddings.
    landing.phases.add("stop", time.perf_counter() - generated_at)
    if eager and in_process:
        embed = load_embedder()
    if cfg.embeddings and store is not None:
        embed = cached_embed(store, embed)
    return stats, embed


def score(
    cfg: RunConfig,
    results: pd.DataFrame,
    tasks: list[Task],
    stats: StreamStats,
    embed: Embed | None,
    out_dir: Path,
    steps: dict[str, pd.DataFrame] | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Run-level metrics (and the scaling table); writes task_metrics.parquet.

    A deliberating run's quality figures describe its last round (the council's
    answers); its throughput counts every request it generated, every step.
    """
    start = time.perf_counter()
    if cfg.experiment.name == "scaling":
        # Quality figures describe the full council (the largest arm), over its own time.
        full = results[results["council_size"] == max(cfg.experiment.agents)]
        scored, diversity, metrics = evaluate(
            full, tasks, arm_window_s(full), embed, code_budget_s=cfg.code_budget_s
        )
        # The other arms are only compared on cost and keywords.
        table = scaling_table(score_rows(results, task_keywords(tasks)))
        write_parquet(out_dir / SCALING_FILE, table)
        metrics["scaling"] = table.to_dict(orient="records")
    else:
        # Every round scored once: the last round's figures and the rounds' share it.
        keywords, refs = task_keywords(tasks), references(tasks)
        every_round = score_rows(results, keywords, refs, cfg.code_budget_s)
        last = final(every_round)
        chair = (tables or {}).get("chair")
        scored, diversity, metrics = measure(last, refs, stats.wall_s, embed, chair)
        if len(last) > stats.generated or cfg.deliberates:
            # Resumed or deliberating: throughput counts what this session generated.
            overall, wall = metrics["overall"], stats.wall_s
            overall["tokens_per_s"] = stats.tokens / wall if wall else 0.0
            overall["requests_per_s"] = stats.generated / wall if wall else 0.0
            if steps:
                every = pd.concat([s for s in steps.values() if len(s)])
                fresh = every[~every["cached"].astype(bool)]
                busy = engine_busy_s(fresh) if len(fresh) else 0.0
                generated = int(fresh["completion_tokens"].sum())
                overall["generation_tokens_per_s"] = generated / busy if busy else 0.0
        if cfg.deliberates and tables is not None:
            metrics |= deliberation_figures(
                every_round, diversity, tables, keywords, embed, cfg.judge.name
            )
    write_parquet(out_dir / TASK_METRICS_FILE, task_metrics(scored, diversity))
    metrics = {"wall_s": stats.wall_s, "scoring_s": time.perf_counter() - start, **metrics}
    return metrics, scored


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (an in-process engine included)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sink_figures(report: SinkReport) -> dict[str, Any]:
    return {
        "messages": report.messages,
        "acked": report.acked,
        "duplicate": report.duplicate,
        "unpublished": report.pending,
        "dead_lettered": report.dead,
        "error": report.error,
        "publish_s": report.publish_s,
    }


def track(cfg: RunConfig, out_dir: Path, before_s: float) -> dict[str, Any] | None:
    """Record the run with the configured tracker; a failure is reported, never raised.

    ``share_of_run`` divides the tracking time by the whole run's: ``before_s``
    (the run up to tracking) and the tracking itself."""
    tracker = build_tracker(cfg.tracking)
    try:
        tracked = tracker.track(out_dir)
    except Exception as e:  # noqa: BLE001 - the run's files are safe on disk
        log.error("tracking (%s) failed: %s: %s", tracker.name, type(e).__name__, e)
        return {"name": tracker.name, "ok": False, "error": redact_exc(e)}
    if tracked is None:
        return None
    return {
        "name": tracker.name,
        "ok": True,
        "run": tracked.run_ref,
        "where": tracked.where,
        "seconds": tracked.seconds,
        "share_of_run": tracked.seconds / (before_s + tracked.seconds),
    }
