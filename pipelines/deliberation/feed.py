"""Streaming a deliberation: requests enter the engine as the plan makes them ready.

The round-1 batches go first, as :func:`pipelines.flow.council.expand` cut them.
Each batch that lands (a part, its messages, the cache) is handed to the
:class:`~pipelines.deliberation.plan.Plan`; the requests it made ready (a task's next
round, its rankings, its chair, its judge scores) are cut into new batches and
queued behind those waiting. The executor holds as many batches at once as
its engines admit, so a task's round 2 is generated while other tasks' round 1
still is, all on the engines already loaded.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import ExitStack

import pandas as pd

from pipelines.config import ExecutorConfig, OpenAIJudgeConfig, RunConfig
from pipelines.deliberation.plan import JUDGE, Plan, check
from pipelines.executors import Executor, StageSpec, Submit
from pipelines.flow.cache import CacheGate, engine_identity
from pipelines.flow.council import batches
from pipelines.flow.stage import GenerateStage
from pipelines.flow.stream import (
    Landing,
    StreamStats,
    answered_rows,
    generate_stage,
    land_generated,
)

log = logging.getLogger(__name__)

COUNCIL, JUDGE_ROUTE = "council", "judge"
"""Where a batch goes: the council's engines, or a judge server of its own."""


def judge_stage(judge: OpenAIJudgeConfig) -> StageSpec:
    """The judge's engine, for ``judge=openai``: HTTP from this process."""
    return StageSpec(
        GenerateStage,
        {"engine": judge.engine, "model": judge.model_config()},
        concurrency=judge.engine.batches_in_flight,
    )


def judge_gate(cfg: RunConfig, council: CacheGate | None) -> CacheGate | None:
    """The cache in front of a judge server: keyed on the judge's identity."""
    if council is None or not isinstance(cfg.judge, OpenAIJudgeConfig):
        return council
    identity = engine_identity(cfg.judge.engine, cfg.judge.model_config())
    return CacheGate(council.store, identity, council.mode)


def stream_plan(
    cfg: RunConfig,
    executor: Callable[[], Executor],
    plan: Plan,
    held: pd.DataFrame,
    landing: Landing,
    gate: CacheGate | None,
) -> tuple[StreamStats, list[CacheGate]]:
    """Generate every request of ``plan`` that ``held`` (the rows earlier sessions
    landed) lacks, landing each batch as it comes back.

    ``executor`` gives the entered executor; it is asked for only when some
    request misses the cache, so a deliberation answered whole by the cache
    starts no engine. Returns the stats and the cache gates used.
    """
    stats = StreamStats(done_before=len(held), total=plan.total())
    first, ready = plan.start(held)
    gates = {COUNCIL: gate, JUDGE_ROUTE: judge_gate(cfg, gate)}
    queue: deque[tuple[str, pd.DataFrame]] = deque((COUNCIL, b) for b in batches(first))
    used = [*held.get("batch_id", pd.Series(dtype=int)).tolist(), *first["batch_id"].tolist()]
    next_id = max(used, default=-1) + 1

    def add(requests: pd.DataFrame) -> None:
        nonlocal next_id
        if requests.empty:
            return
        external = isinstance(cfg.judge, OpenAIJudgeConfig)
        judged = requests["step"].eq(JUDGE) & external
        routes = judged.map({True: JUDGE_ROUTE, False: COUNCIL})
        for route, part in requests.groupby(routes, sort=False):
            for start in range(0, len(part), cfg.batch_size):
                chunk = part.iloc[start : start + cfg.batch_size].assign(batch_id=next_id)
                queue.append((str(route), chunk.reset_index(drop=True)))
                next_id += 1

    add(ready)
    with ExitStack() as stack:
        submitters: dict[str, Submit] = {}
        depth = 1

        def submitter(route: str) -> Submit:
            nonlocal depth
            if route not in submitters:
                if route == COUNCIL:
                    entered = executor()
                    stage = generate_stage(cfg, entered)
                    depth = max(depth, stage.concurrency * entered.cfg.concurrency)
                else:
                    from pipelines.executors.local import LocalExecutor

                    local = stack.enter_context(LocalExecutor(ExecutorConfig(name="local")))
                    stage = judge_stage(cfg.judge)  # type: ignore[arg-type]
                    entered = local
                submitters[route] = entered.submitter(stage)
            return submitters[route]

        pending: dict[Future, str] = {}
        start = time.perf_counter()
        while queue or pending:
            while queue and len(pending) < depth:
                route, batch = queue.popleft()
                route_gate = gates[route]
                if route_gate is not None:
                    answered, batch = route_gate.split(batch)
                    if len(answered):
                        add(land_cached(answered, landing, plan))
                if len(batch):
                    pending[submitter(route)(batch)] = route
            if not pending:
                continue
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in [f for f in pending if f in done]:  # in submission order
                route = pending.pop(future)
                route_gate = gates[route]
                for _, rows in future.result().groupby("batch_id", sort=True):
                    rows = check(rows)
                    keep = route_gate.keep if route_gate is not None else None
                    land_generated(rows, landing, stats, store=keep)
                    add(plan.land(rows))
        stats.wall_s = time.perf_counter() - start
    return stats, [g for g in {id(g): g for g in gates.values() if g is not None}.values()]


def land_cached(answered: pd.DataFrame, landing: Landing, plan: Plan) -> pd.DataFrame:
    """Land rows the cache answered; return the requests they made ready."""
    rows = check(answered_rows(answered))
    landing.land(rows, StreamStats(), cached=True)
    return plan.land(rows)
