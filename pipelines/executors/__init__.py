"""Executors map the GenerateStage over the pipeline's request batches.

An executor is a context manager (it owns its cluster connection) with one
method, ``map``, that runs the stage over exactly the given batches, one engine
per worker, and yields result tables as they complete.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from pipelines import UserError
from pipelines.engines import EngineConfig

EXECUTORS = {
    "ray": "pipelines.executors.ray:RayExecutor",
    "local": "pipelines.executors.local:LocalExecutor",
    "dask": "pipelines.executors.dask:DaskExecutor",
}
"""Executor name (``conf/executor/<name>.yaml``) → ``module:class``."""


@dataclass(frozen=True)
class ExecutorConfig:
    """Typed executor settings."""

    name: str
    concurrency: int = 1
    batch_size: int = 32
    address: str | None = None
    num_cpus: float | None = None


class Executor(Protocol):
    """What the pipeline needs from an executor."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def map(self, engine: EngineConfig, batches: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Run GenerateStage(engine) over ``batches``; yield result tables."""
        ...


def build_executor(cfg: ExecutorConfig) -> Executor:
    """Instantiate the executor named by ``cfg.name`` (not yet entered)."""
    if cfg.name not in EXECUTORS:
        raise UserError(f"unknown executor {cfg.name!r}; known: {sorted(EXECUTORS)}")
    if cfg.concurrency < 1:
        raise UserError(f"executor.concurrency must be >= 1, got {cfg.concurrency}")
    module, cls = EXECUTORS[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg)
