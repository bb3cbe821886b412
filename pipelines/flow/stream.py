"""Landing: each batch, as it lands, is a part on disk, agent messages on the sink
and a progress line; the driver keeps counts, not rows (``pipelines.flow.feed``
is the loop that feeds the engines)."""

from __future__ import annotations

import logging
import sqlite3
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import RunStopped
from pipelines.config import EngineConfig, RunConfig, VLLMEngineConfig
from pipelines.executors import Executor, StageSpec
from pipelines.flow.parts import write_part
from pipelines.flow.phases import Phases
from pipelines.flow.stage import GenerateStage
from pipelines.runtime.stopping import uninterrupted
from pipelines.sinks import Sink
from pipelines.sinks.messages import agent_messages

log = logging.getLogger(__name__)

NOT_KEPT = ["system_prompt"]
"""Request columns a part leaves out (the role's prompt, the same on every row)."""


def placed_engine(engine: EngineConfig, process_alone: bool, gpus: float) -> EngineConfig:
    """``engine`` with ``inline_core`` decided where the config leaves it to the
    placement: inline on a CPU replica that is a process of its own. On a GPU,
    vLLM's engine core process overlaps scheduling with the device's work.
    Elsewhere it stays unset: the engine decides in the process it loads in
    (a daemonic Dask worker may not start the core's process)."""
    if not isinstance(engine, VLLMEngineConfig) or engine.inline_core is not None:
        return engine
    if not process_alone:
        return engine
    return replace(engine, inline_core=gpus == 0)


def generate_stage(cfg: RunConfig, executor: Executor) -> StageSpec:
    """The engine stage to map, with what each replica asks for on this cluster."""
    gpus = cfg.engine.replica_gpus(executor.gpus())
    return StageSpec(
        GenerateStage,
        {
            "engine": placed_engine(cfg.engine, executor.engine_process_alone, gpus),
            "model": cfg.model,
        },
        num_gpus=gpus,
        num_cpus=cfg.executor.num_cpus,
        concurrency=cfg.batches_in_flight(),
    )


@dataclass
class StreamStats:
    """What one session of generation did."""

    generated: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    engine_loads: int = 0
    """Engines loaded for this run (0: every engine was already up)."""
    engine_load_s: float = 0.0
    landing_s: list[float] = field(default_factory=list)
    """Per batch: engine finish → part on disk."""
    acked_s: list[float] = field(default_factory=list)
    """Per batch: engine finish → its agent messages confirmed by the sink."""
    done_before: int = 0
    """Requests answered before this session (earlier parts, the cache): for progress."""
    total: int = 0
    """Requests of the whole run: for progress."""
    first_call: float = float("inf")
    """Unix time the first engine call began (after the load)."""

    def figures(self) -> dict[str, Any]:
        def p50(xs: list[float]) -> float | None:
            return statistics.median(xs) if xs else None

        return {
            "rows_generated": self.generated,
            "generated_tokens": self.tokens,
            "generation_wall_s": self.wall_s,
            "engine_loads": self.engine_loads,
            "engine_load_s": self.engine_load_s,
            "landing_delay_p50_s": p50(self.landing_s),
            "landing_delay_max_s": max(self.landing_s, default=None),
            "ack_delay_p50_s": p50(self.acked_s),
        }


@dataclass
class Landing:
    """Where a landed batch goes: the run's parts, the sink, the cache."""

    cfg: RunConfig
    run_id: str
    run_dir: Path
    sink: Sink
    keywords: Mapping[tuple[str, str], list[str]]
    phases: Phases = field(default_factory=Phases)
    """The driver's time per batch in ``land`` (part) and ``publish`` (sink)."""
    embed_ahead: Callable[[list[str]], None] | None = None
    """Embeds a landed batch's proposals in the background (pipelines/flow/embed_ahead.py)."""

    def land(self, rows: pd.DataFrame, stats: StreamStats, *, cached: bool) -> float:
        """One batch: a part on disk, then its agent messages; returns when it finished."""
        rows = rows.drop(columns=NOT_KEPT, errors="ignore").assign(
            run_id=self.run_id, cached=cached
        )
        finished = float((rows["started_at"] + rows["batch_s"]).iloc[0])
        # Scaling: only the full council is a deliberation; smaller arms are not published.
        full = max(self.cfg.experiment.agents) if "council_size" in rows else None
        published = rows if full is None else rows[rows["council_size"] == full]
        messages = (
            agent_messages(
                published,
                self.cfg.served_model,
                self.keywords,
                self.cfg.agents,
                self.cfg.repeats,
                deliberation_plan(self.cfg),
            )
            if len(published)
            else []
        )
        batch = int(rows["batch_id"].iloc[0])
        # Never a part without its outbox entry: the messages are on disk before
        # the part is, and a SIGTERM waits for both (a kill -9 between the two
        # leaves kept messages without a part: a resume generates the batch again
        # and its newer messages win, pipelines/sinks/outbox.py).
        with uninterrupted():
            if messages:
                try:
                    self.sink.keep(messages)
                except OSError as e:
                    raise RunStopped(f"cannot keep batch {batch}'s messages: {e}") from e
            try:
                with self.phases.timed("land"):
                    write_part(self.run_dir, batch, rows, cached=cached)
            except OSError as e:
                raise RunStopped(f"cannot write batch {batch}'s part: {e}") from e
        stats.landing_s.append(time.time() - finished)
        if self.embed_ahead is not None:
            self.embed_ahead(proposal_texts(rows))
        if messages:
            with self.phases.timed("publish"):
                self.sink.publish(
                    messages,
                    on_acked=lambda f=finished: stats.acked_s.append(time.time() - f),
                    kept=True,
                )
        return finished


def proposal_texts(rows: pd.DataFrame) -> list[str]:
    """The proposals (not rankings, chair answers or scores) a batch holds, errors left out."""
    ok = rows[rows["error"].isna()] if "error" in rows else rows
    if "step" in ok:
        ok = ok[ok["step"].fillna("propose") == "propose"]
    return [p for p in ok["proposal"].tolist() if isinstance(p, str)]


def deliberation_plan(cfg: RunConfig) -> dict[str, Any] | None:
    """What a deliberation's messages tell the collector to wait for; None: one round."""
    if not cfg.deliberates:
        return None
    return asdict(cfg.protocol)


def land_generated(
    rows: pd.DataFrame,
    landing: Landing,
    stats: StreamStats,
    store: Callable[[pd.DataFrame], None] | None = None,
) -> None:
    """One batch the engine answered: counted, kept in the cache (``store``; None:
    nothing kept), landed, reported."""
    batch_id = int(rows["batch_id"].iloc[0])
    stats.first_call = min(stats.first_call, float(rows["started_at"].min()))
    load_s = float(rows["load_s"].max())
    stats.engine_loads += load_s > 0
    stats.engine_load_s += load_s
    if store is not None:
        try:
            store(rows)
        except (OSError, sqlite3.Error) as e:  # the cache only saves work
            log.warning("cache: batch %d not kept (%s); the run goes on", batch_id, e)
    landing.land(rows, stats, cached=False)
    stats.generated += len(rows)
    stats.tokens += int(rows["completion_tokens"].sum())
    _progress(batch_id, stats, time.time() - stats.first_call)


def answered_rows(answered: pd.DataFrame) -> pd.DataFrame:
    """Requests answered without the engine (cache hits), with the engine's timing
    columns: no engine time, landed now."""
    return answered.assign(batch_s=0.0, started_at=time.time(), load_s=0.0)


def _progress(batch_id: int, stats: StreamStats, elapsed: float) -> None:
    """One line per landed batch; rates over the time since the first engine call
    (the engine load is not generation)."""
    before, total = stats.done_before, stats.total
    done = before + stats.generated
    rate = stats.generated / elapsed if elapsed else 0.0
    eta = (total - done) / rate if rate else float("nan")
    log.info(
        "batch %d landed: %d/%d requests%s, %.1f tokens/s, ETA %.0f s",
        batch_id,
        done,
        total,
        f" ({before} from earlier parts)" if before else "",
        stats.tokens / elapsed if elapsed else 0.0,
        eta,
    )
