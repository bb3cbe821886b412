"""The feed: one loop takes every run's requests to the engines and lands each batch.

A run is a *plan* (:class:`Plan`): its first wave of requests, known up front,
and the requests each landed batch makes ready. A single-answer run is a
one-round plan (:class:`OneRound`: nothing follows an answer); a deliberation's
plan (``pipelines.deliberation.plan``) makes a task's next round, rankings,
chair and judge scores ready as its answers land.

The loop keeps what each executor does best:

- the first wave goes through ``Executor.map`` (Ray Data ``map_batches`` on
  Ray), its batches as :func:`pipelines.flow.council.expand` cut them;
- what the plan makes ready goes through ``Executor.submitter`` (the same
  engine hosts, called directly: a Ray Data dataset is fixed when it starts),
  cut into batches of ``batch_size`` and queued in the order it became ready.

One cache gate answers what was asked before, for both: a route's requests go
through its :class:`~pipelines.flow.cache.CacheGate` before they reach an
engine, and what it answers lands at once, so a run answered whole by the
cache starts no engine. While the first wave streams, the ready batches' results
land as each first-wave batch does (at most one batch later than they finish);
once it ends, as each completes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from pipelines.executors import Executor, Submit
from pipelines.flow.cache import CacheGate
from pipelines.flow.council import REQUEST_COLUMNS, batches
from pipelines.flow.stream import (
    Landing,
    StreamStats,
    answered_rows,
    generate_stage,
    land_generated,
)

COUNCIL = "council"
"""The route to the council's engines (the executor's stage)."""


class Plan(Protocol):
    """A run's requests: a first wave, then what landed answers make ready."""

    def total(self) -> int:
        """Requests of the whole run when every answer succeeds (for progress)."""
        ...

    def start(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(first-wave requests still to answer, further requests that the rows
        earlier sessions landed make ready)."""
        ...

    def check(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Landed rows as they go on disk (a deliberation parses rankings, scores)."""
        ...

    def land(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Take landed (checked) rows; return the requests they made ready."""
        ...


class OneRound:
    """A single-answer run: every request is in the first wave; nothing follows."""

    def __init__(self, requests: pd.DataFrame, held: pd.Series) -> None:
        """``held``: per request, whether some part already holds its answer."""
        self.requests, self.held = requests, held

    def total(self) -> int:
        return len(self.requests)

    def start(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self.requests[~self.held], pd.DataFrame(columns=REQUEST_COLUMNS)

    def check(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows

    def land(self, rows: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(columns=REQUEST_COLUMNS)


@dataclass
class Route:
    """Where a request goes: an engine behind a cache gate. ``submitter(stack)``
    makes the engine's :data:`~pipelines.executors.Submit` on first use; what it
    enters, ``stack`` closes when the feed ends."""

    submitter: Callable[[ExitStack], Submit]
    gate: CacheGate | None


class Feeder:
    """Feeds a plan to the engines; made before the executor starts, so that what
    the cache answers has landed and :meth:`idle` says whether an engine is needed.

    Args:
        executor: gives the entered executor; asked for only when a request
            misses the cache.
        gate: the cache in front of the council's engines (None: cache=false).
        done_before: requests earlier sessions answered (for progress).
        next_batch: the first batch id no part holds (for the ready requests).
        routes: further routes than the council's (a judge server of its own).
        route_of: each ready request's route name (default: the council).
    """

    def __init__(
        self,
        plan: Plan,
        landing: Landing,
        gate: CacheGate | None,
        *,
        done_before: int = 0,
        next_batch: int = 0,
        routes: Mapping[str, Route] | None = None,
        route_of: Callable[[pd.DataFrame], pd.Series] | None = None,
    ) -> None:
        self.plan, self.landing, self.route_of = plan, landing, route_of
        self.routes = {COUNCIL: Route(self._council, gate), **(routes or {})}
        self.stats = StreamStats(done_before=done_before, total=plan.total())
        self.queue: deque[tuple[str, pd.DataFrame]] = deque()
        self.next_batch = next_batch
        self.depth = 1
        self._executor: Callable[[], Executor] | None = None
        first, ready = plan.start()
        self.add(ready)
        self.wave = self.cached(COUNCIL, first)
        """The first wave's requests the cache did not answer."""

    def idle(self) -> bool:
        """Nothing is left for an engine: the cache answered everything so far."""
        return self.wave.empty and not self.queue

    def gates(self) -> list[CacheGate]:
        used = {id(r.gate): r.gate for r in self.routes.values() if r.gate is not None}
        return list(used.values())

    def run(self, executor: Callable[[], Executor]) -> StreamStats:
        """Generate every request left, landing each batch as it comes back;
        ``executor()`` gives the entered executor."""
        self._executor = executor
        submitters: dict[str, Submit] = {}
        pending: dict[Future, str] = {}

        def pump(block: bool) -> None:
            """Submit queued batches up to ``depth``; land the ones that completed."""
            while self.queue and len(pending) < self.depth:
                name, batch = self.queue.popleft()
                batch = self.cached(name, batch)
                if len(batch):
                    if name not in submitters:
                        submitters[name] = self.routes[name].submitter(stack)
                    pending[submitters[name](batch)] = name
            if not pending:
                return
            done, _ = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in [f for f in pending if f in done]:  # in submission order
                self.generated(pending.pop(future), future.result())

        start = time.perf_counter()
        with ExitStack() as stack:
            if len(self.wave):
                entered = executor()
                stage = generate_stage(self.landing.cfg, entered)
                for out in entered.map(stage, batches(self.wave)):
                    self.generated(COUNCIL, out)
                    pump(block=False)
                self.wave = self.wave.iloc[:0]
            while self.queue or pending:
                pump(block=True)
        self.stats.wall_s = time.perf_counter() - start
        return self.stats

    def _council(self, stack: ExitStack) -> Submit:
        assert self._executor is not None
        entered = self._executor()
        stage = generate_stage(self.landing.cfg, entered)
        self.depth = max(self.depth, stage.concurrency * entered.cfg.concurrency)
        return entered.submitter(stage)

    def add(self, requests: pd.DataFrame) -> None:
        """Queue ready requests in batches of ``batch_size``, each on its route."""
        if requests.empty:
            return
        size = self.landing.cfg.batch_size
        names = self.route_of(requests) if self.route_of else None
        groups = requests.groupby(names, sort=False) if names is not None else [(COUNCIL, requests)]
        for name, part in groups:
            for start in range(0, len(part), size):
                chunk = part.iloc[start : start + size].assign(batch_id=self.next_batch)
                self.queue.append((str(name), chunk.reset_index(drop=True)))
                self.next_batch += 1

    def cached(self, name: str, requests: pd.DataFrame) -> pd.DataFrame:
        """Land what the route's cache answers (batch by batch); return the rest."""
        gate = self.routes[name].gate
        if gate is None or requests.empty:
            return requests
        answered, rest = gate.split(requests)
        for _, rows in answered_rows(answered).groupby("batch_id", sort=True):
            rows = self.plan.check(rows.reset_index(drop=True))
            self.landing.land(rows, StreamStats(), cached=True)
            self.add(self.plan.land(rows))
        return rest

    def generated(self, name: str, out: pd.DataFrame) -> None:
        """Land a result table the engine of route ``name`` gave, batch by batch."""
        gate = self.routes[name].gate
        for _, rows in out.groupby("batch_id", sort=True):
            rows = self.plan.check(rows.reset_index(drop=True))
            land_generated(rows, self.landing, self.stats, store=gate.keep if gate else None)
            self.add(self.plan.land(rows))
