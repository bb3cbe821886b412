"""GenerateStage: the batch UDF every executor maps over the request table."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, fields

import pandas as pd

from pipelines.config import EngineConfig, ModelConfig
from pipelines.engines import Completion, Engine, build_engine

log = logging.getLogger(__name__)

INPUT_COLUMNS = {
    "batch_id": "the pipeline's batch number (int); one engine call per batch",
    "system_prompt": "the role's system prompt (str)",
    "prompt": "the user turn (str)",
    "temperature": "sampling temperature (float)",
    "seed": "per-request sampling seed (int)",
    "max_tokens": "generation cap (int)",
}
OUTPUT_COLUMNS = [*(f.name for f in fields(Completion)), "batch_s", "started_at", "load_s"]


class GenerateStage:
    """Callable class owning one engine, built once per worker and reused.

    Reads the columns in :data:`INPUT_COLUMNS`, adds those in
    :data:`OUTPUT_COLUMNS`; one output row per input row. It does not know
    which executor runs it.
    """

    def __init__(self, engine: EngineConfig, model: ModelConfig) -> None:
        start = time.perf_counter()
        self.engine: Engine = build_engine(engine, model)
        self._load_s = time.perf_counter() - start  # reported once, on the first batch
        self._checked = False

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if not self._checked:
            missing = sorted(set(INPUT_COLUMNS) - set(batch.columns))
            if missing:
                raise ValueError(
                    f"GenerateStage: input batch lacks columns {missing}; expected {INPUT_COLUMNS}"
                )
            self._checked = True
        # An executor may hand over several pipeline batches at once; the engine
        # still sees exactly one pipeline batch per call (determinism).
        parts = []
        for _, part in batch.groupby("batch_id", sort=True):
            started_at, start = time.time(), time.perf_counter()
            completions = self.engine.generate(part)
            out = pd.DataFrame([asdict(c) for c in completions], index=part.index)
            out["batch_s"] = time.perf_counter() - start  # engine time of this batch
            out["started_at"] = started_at  # Unix time the engine call began (timelines)
            out["load_s"], self._load_s = self._load_s, 0.0
            parts.append(pd.concat([part, out], axis=1))
        return pd.concat(parts).reset_index(drop=True)

    def close(self) -> None:
        self.engine.close()
