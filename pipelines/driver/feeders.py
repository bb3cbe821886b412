"""What a run feeds its engines, behind one protocol: :func:`feeder_for`.

A single-answer run knows all its batches up front: :class:`Answers` feeds
them through ``Executor.map`` (Ray Data ``map_batches`` on Ray), after the
response cache answered what it could. A deliberation's requests become ready
as earlier answers land: :class:`Deliberating` feeds its plan's ready requests
to the engine hosts directly (``pipelines.deliberation.feed``), with the
cache gated per request. :func:`pipelines.driver.pipeline.run_pipeline` calls
either the same way and does not ask which it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from pipelines.config import RunConfig
from pipelines.deliberation.feed import stream_plan
from pipelines.deliberation.plan import Plan
from pipelines.deliberation.rounds import write_tables
from pipelines.executors import Executor
from pipelines.flow.cache import CacheGate, ResponseCache, engine_identity
from pipelines.flow.parts import read_parts
from pipelines.flow.stream import Landing, StreamStats, land_answered, stream
from pipelines.flow.tasks import Task

log = logging.getLogger(__name__)


class Feeder(Protocol):
    store: ResponseCache | None
    """The response cache behind the feed (None: cache=false)."""
    reused: int
    """Rows an earlier session of the run already landed."""

    def idle(self) -> bool:
        """Nothing is left to generate (the executor need not start)."""
        ...

    def feed(self, entered: Callable[[], Executor]) -> StreamStats:
        """Generate and land what is left; ``entered()`` starts the executor."""
        ...

    def cache_figures(self) -> dict[str, Any]: ...

    def tables(self, steps: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, pd.DataFrame]:
        """The step tables beside results.parquet (a deliberation's rounds, rankings…)."""
        ...


def feeder_for(
    cfg: RunConfig,
    tasks: list[Task],
    requests: pd.DataFrame,
    held: pd.Series,
    landing: Landing,
) -> Feeder:
    """The run's feeder; ``held`` marks the requests some part already holds."""
    if cfg.deliberates:
        return Deliberating(cfg, tasks, requests, landing)
    return Answers(cfg, requests, held, landing)


class Answers:
    """One answer per request: the batches are known up front."""

    def __init__(
        self, cfg: RunConfig, requests: pd.DataFrame, held: pd.Series, landing: Landing
    ) -> None:
        self.landing, self.total, self.reused = landing, len(requests), int(held.sum())
        gate = cache_gate(cfg)
        self.store = gate.store if gate else None
        self.todo = requests[~held]
        self._figures: dict[str, Any] = {}
        if gate is not None:
            landing.store = gate.keep  # what the engine answers is kept
            answered, self.todo = gate.split(self.todo)
            if len(answered):
                land_answered(answered, landing)
            log.info(
                "cache (%s, %s): %d hits, %d to generate", cfg.cache, gate.store.path, *gate.counts
            )
            self._figures = cache_figures(gate)

    def idle(self) -> bool:
        return self.todo.empty

    def feed(self, entered: Callable[[], Executor]) -> StreamStats:
        return stream(entered(), self.todo, self.landing, self.total)

    def cache_figures(self) -> dict[str, Any]:
        return self._figures

    def tables(self, steps: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, pd.DataFrame]:
        return {}


class Deliberating:
    """Rounds, rankings, a chair and a judge: requests become ready as answers land."""

    def __init__(
        self, cfg: RunConfig, tasks: list[Task], requests: pd.DataFrame, landing: Landing
    ) -> None:
        self.cfg, self.landing = cfg, landing
        self.plan = Plan(cfg, tasks, requests)
        self.held = read_parts(landing.run_dir)
        self.reused = len(self.held)
        self.gate = cache_gate(cfg)
        self.store = self.gate.store if self.gate else None
        self.gates: list[CacheGate] = []

    def idle(self) -> bool:
        return len(self.held) >= self.plan.total()

    def feed(self, entered: Callable[[], Executor]) -> StreamStats:
        stats, used = stream_plan(self.cfg, entered, self.plan, self.held, self.landing, self.gate)
        self.gates.extend(used)
        return stats

    def cache_figures(self) -> dict[str, Any]:
        return cache_figures(*self.gates)

    def tables(self, steps: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, pd.DataFrame]:
        return write_tables(steps, out_dir, self.cfg.deliberation.chair)


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
