"""In-process executor: no cluster, one stage, for debugging and tiny runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pandas as pd

from pipelines.config import ExecutorConfig
from pipelines.executors import StageSpec, Submit, host_gpus, keep_in_flight

log = logging.getLogger(__name__)


class LocalExecutor:
    """Runs the stage in this process, ``stage.concurrency`` batches submitted at once.

    While entered it keeps the stage it built (and so its engine) for later
    ``map`` calls with a spec of the same replica: one ``LocalExecutor`` held open across
    runs loads the engine once (multirun jobs, notebooks, test modules).
    ``__exit__`` releases it.
    """

    in_process = True
    """The engine loads in this process (so nothing else may import transformers meanwhile)."""
    engine_process_alone = False

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg
        self._stage: Any = None
        self._spec: StageSpec | None = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        if self._stage is not None:
            self._stage.close()
        self._stage = self._spec = None

    def gpus(self) -> float:
        return float(host_gpus())

    def submitter(self, stage: StageSpec) -> Submit:
        if self._stage is None or self._spec is None or self._spec.replica != stage.replica:
            self._release()
            self._stage = stage.build()
        self._stage.set_batches_in_flight(stage.concurrency)
        self._spec = stage
        return self._stage.submit

    def map(self, stage: StageSpec, batches: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        yield from keep_in_flight(self.submitter(stage), batches, stage.concurrency)
