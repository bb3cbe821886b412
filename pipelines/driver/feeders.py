"""What a run feeds its engines: :func:`feeder_for` gives the run's :class:`Feed`.

Every run goes through one loop (``pipelines.flow.feed``) behind one cache gate:
a single-answer run is a one-round plan (``flow.feed.OneRound``), a
deliberation the plan of its rounds, rankings, chair and judge
(``pipelines.deliberation.plan``). The first wave goes through ``Executor.map``
(Ray Data ``map_batches`` on Ray); what the plan makes ready, through the
same engines' ``Executor.submitter``; a judge server of its own (judge=openai)
is a route of its own, from this process.
:func:`pipelines.driver.pipeline.run_pipeline` does not ask which plan it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import ExecutorConfig, OpenAIJudgeConfig, RunConfig
from pipelines.deliberation.plan import JUDGE, Plan
from pipelines.deliberation.rounds import write_tables
from pipelines.executors import Executor, StageSpec, Submit
from pipelines.flow.cache import CacheGate, ResponseCache, engine_identity
from pipelines.flow.feed import COUNCIL, Feeder, OneRound, Route
from pipelines.flow.feed import Plan as Steps
from pipelines.flow.parts import read_parts
from pipelines.flow.stage import GenerateStage
from pipelines.flow.stream import Landing, StreamStats
from pipelines.flow.tasks import Task

log = logging.getLogger(__name__)

JUDGE_ROUTE = "judge"
"""The route of a judge server of its own (judge=openai)."""


def feeder_for(
    cfg: RunConfig,
    tasks: list[Task],
    requests: pd.DataFrame,
    held: pd.Series,
    landing: Landing,
) -> Feed:
    """The run's feed; ``held`` marks the requests some part already holds.

    What the cache answers of the first wave lands here, before any executor starts.
    """
    if cfg.deliberates:
        rows = read_parts(landing.run_dir)
        plan: Steps = Plan(cfg, tasks, requests, rows)
        reused, ids = len(rows), rows["batch_id"].tolist() if len(rows) else []
    else:
        plan, reused, ids = OneRound(requests, held), int(held.sum()), []
    return Feed(cfg, plan, reused, landing, max([*ids, *requests["batch_id"]], default=-1) + 1)


class Feed:
    """A run's plan behind its cache gate (``flow.feed.Feeder``), and what feeding it did."""

    def __init__(
        self, cfg: RunConfig, plan: Steps, reused: int, landing: Landing, next_batch: int
    ) -> None:
        """``reused``: rows earlier sessions landed; ``next_batch``: the first free batch id."""
        self.cfg, self.reused = cfg, reused
        gate = cache_gate(cfg)
        self.store: ResponseCache | None = gate.store if gate else None
        """The response cache behind the feed (None: cache=false)."""
        routes, route_of = judge_route(cfg, gate)
        self.feeder = Feeder(
            plan,
            landing,
            gate,
            done_before=reused,
            next_batch=next_batch,
            routes=routes,
            route_of=route_of,
        )
        if gate is not None:
            log.info(
                "cache (%s, %s): %d hits, %d to generate in the first wave",
                cfg.cache,
                gate.store.path,
                gate.hits,
                len(self.feeder.wave),
            )

    def idle(self) -> bool:
        """Nothing is left to generate (the executor need not start)."""
        return self.feeder.idle()

    def feed(self, entered: Callable[[], Executor]) -> StreamStats:
        """Generate and land what is left; ``entered()`` starts the executor."""
        return self.feeder.run(entered)

    def cache_figures(self) -> dict[str, Any]:
        return cache_figures(*self.feeder.gates())

    def tables(self, steps: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, pd.DataFrame]:
        """A deliberation's ranking, chair and judge tables beside results.parquet."""
        if not self.cfg.deliberates:
            return {}
        return write_tables(steps, out_dir, self.cfg.deliberation.chair)


def judge_route(
    cfg: RunConfig, council: CacheGate | None
) -> tuple[dict[str, Route], Callable[[pd.DataFrame], pd.Series] | None]:
    """With judge=openai, the judge's requests go to its server (HTTP from this
    process) behind a cache gate keyed on the judge's identity; else none."""
    judge = cfg.judge
    if not isinstance(judge, OpenAIJudgeConfig):
        return {}, None

    def submitter(stack: ExitStack) -> Submit:
        from pipelines.executors.local import LocalExecutor

        local = stack.enter_context(LocalExecutor(ExecutorConfig(name="local")))
        stage = StageSpec(
            GenerateStage,
            {"engine": judge.engine, "model": judge.model_config()},
            concurrency=judge.engine.batches_in_flight,
        )
        return local.submitter(stage)

    gate = None
    if council is not None:
        identity = engine_identity(judge.engine, judge.model_config())
        gate = CacheGate(council.store, identity, council.mode)

    def route_of(requests: pd.DataFrame) -> pd.Series:
        return requests["step"].eq(JUDGE).map({True: JUDGE_ROUTE, False: COUNCIL})

    return {JUDGE_ROUTE: Route(submitter, gate)}, route_of


def cache_gate(cfg: RunConfig) -> CacheGate | None:
    """The run's cache in front of its engine; None with cache=false."""
    if cfg.cache == "false":
        return None
    store = ResponseCache(cfg.resolved_cache_dir())
    return CacheGate(store, engine_identity(cfg.engine, cfg.model), cfg.cache)


def cache_figures(*gates: CacheGate | None) -> dict[str, Any]:
    used = [g for g in gates if g is not None]
    if not used:
        return {}
    hits, misses = sum(g.hits for g in used), sum(g.misses for g in used)
    return {"cache": {"mode": used[0].mode, "hits": hits, "misses": misses}}
