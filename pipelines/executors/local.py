"""In-process executor: no cluster, one engine, for debugging and tiny runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pandas as pd

from pipelines.engines import EngineConfig
from pipelines.executors import ExecutorConfig
from pipelines.stage import GenerateStage

log = logging.getLogger(__name__)


class LocalExecutor:
    """Runs the stage in this process; keeps the engine for later ``map`` calls.

    Reusing one ``LocalExecutor`` across runs with the same engine settings
    loads the engine once (handy in notebooks and test sessions).
    """

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg
        self._stage: GenerateStage | None = None
        self._engine: EngineConfig | None = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        """Keeps the engine: call :meth:`close` to release it."""

    def close(self) -> None:
        if self._stage is not None:
            self._stage.close()
        self._stage = self._engine = None

    def map(self, engine: EngineConfig, batches: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        if self._stage is None or self._engine != engine:
            self.close()
            self._stage, self._engine = GenerateStage(engine), engine
        for batch in batches:
            yield self._stage(batch)
