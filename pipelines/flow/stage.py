"""GenerateStage: the batch UDF every executor maps over the request table."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, fields

import pandas as pd

from pipelines.config import EngineConfig, ModelConfig
from pipelines.engines import Completion, Engine, build_engine

log = logging.getLogger(__name__)

INPUT_COLUMNS = {
    "batch_id": "the pipeline's batch number (int); one engine submission per batch",
    "system_prompt": "the role's system prompt (str)",
    "prompt": "the user turn (str)",
    "temperature": "sampling temperature (float)",
    "seed": "per-request sampling seed (int)",
    "max_tokens": "generation cap (int)",
}
OUTPUT_COLUMNS = [*(f.name for f in fields(Completion)), "batch_s", "started_at", "load_s"]
"""``started_at``: Unix time the engine took the batch in; ``batch_s``: from then
to the batch's last completion; ``load_s``: the engine load, on the first batch
back. With several batches in flight their windows overlap: the engine's busy
time is their union."""


class GenerateStage:
    """Callable class owning one engine, built once per worker and reused.

    Reads the columns in :data:`INPUT_COLUMNS`, adds those in
    :data:`OUTPUT_COLUMNS`; one output row per input row. It does not know
    which executor runs it. ``submit`` queues a batch and returns at once
    (thread-safe): an executor keeps ``batches_in_flight`` batches submitted
    so that the engine never waits for the next one. ``stage(batch)`` waits.
    """

    def __init__(self, engine: EngineConfig, model: ModelConfig) -> None:
        start = time.perf_counter()
        self.engine: Engine = build_engine(engine, model)
        self._load_s = time.perf_counter() - start  # reported once, on the first batch
        self._lock = threading.Lock()

    def set_batches_in_flight(self, n: int) -> None:
        """How many submitted batches the engine holds at once (1: one at a time)."""
        self.engine.batches_in_flight = n

    def submit(self, batch: pd.DataFrame) -> Future[pd.DataFrame]:
        """Queue ``batch``; the future gives its output table."""
        missing = sorted(set(INPUT_COLUMNS) - set(batch.columns))
        if missing:
            raise ValueError(
                f"GenerateStage: input batch lacks columns {missing}; expected {INPUT_COLUMNS}"
            )
        # An executor may hand over several pipeline batches at once; the engine
        # still gets them as separate batches, each landing on its own.
        parts = [part for _, part in batch.groupby("batch_id", sort=True)]
        result: Future[pd.DataFrame] = Future()
        tables: dict[int, pd.DataFrame] = {}

        def one_done(i: int, part: pd.DataFrame, started: list[float], f: Future) -> None:
            # Runs on the engine's thread the moment the batch finishes.
            try:
                out = pd.DataFrame([asdict(c) for c in f.result()], index=part.index)
                out["batch_s"] = time.perf_counter() - started[1]
                out["started_at"] = started[0]
                with self._lock:
                    out["load_s"], self._load_s = self._load_s, 0.0
                    tables[i] = pd.concat([part, out], axis=1)
                    complete = len(tables) == len(parts)
                if complete:
                    merged = pd.concat([tables[k] for k in sorted(tables)])
                    result.set_result(merged.reset_index(drop=True))
            except BaseException as e:  # noqa: BLE001 - the caller's future carries it
                if not result.done():
                    result.set_exception(e)

        for i, part in enumerate(parts):
            # (Unix time, perf counter) when the engine takes the batch in.
            started = [time.time(), time.perf_counter()]

            def on_start(started: list[float] = started) -> None:
                started[:] = [time.time(), time.perf_counter()]

            future = self.engine.submit(part, on_start)
            future.add_done_callback(lambda f, i=i, p=part, s=started: one_done(i, p, s, f))
        return result

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return self.submit(batch).result()

    async def run(self, batch: pd.DataFrame) -> pd.DataFrame:
        """``submit`` for an event loop (Ray's async actors)."""
        return await asyncio.wrap_future(self.submit(batch))

    def close(self) -> None:
        self.engine.close()
