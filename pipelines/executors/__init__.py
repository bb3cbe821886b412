"""Executors map a stage over the pipeline's request batches.

An executor is a context manager (it owns its cluster connection) that maps
the :class:`StageSpec` it is given over exactly the given batches, one stage
instance per replica, and yields result tables as they complete. It knows no
engine: what a replica is built from and asks for comes with the spec.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from pipelines import UserError
from pipelines.config import ExecutorConfig

EXECUTORS = {
    "ray": "pipelines.executors.ray:RayExecutor",
    "local": "pipelines.executors.local:LocalExecutor",
    "dask": "pipelines.executors.dask:DaskExecutor",
}
"""Executor name (``conf/executor/<name>.yaml``) → ``module:class``."""


@dataclass(frozen=True)
class StageSpec:
    """A stage to map: a callable class, built once per replica, and its needs.

    Attributes:
        cls: the stage class; ``cls(**kwargs)(batch) -> table``, and ``close()``.
        kwargs: its constructor arguments (picklable: they travel to workers).
        num_gpus: GPUs each replica asks for.
        num_cpus: CPUs each replica asks for.
    """

    cls: type
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    num_gpus: float = 0.0
    num_cpus: float = 1.0

    def build(self) -> Any:
        return self.cls(**self.kwargs)


class Executor(Protocol):
    """What the pipeline needs from an executor."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None:
        """Release what the executor holds: stages, engines, the cluster it started."""
        ...

    def gpus(self) -> float:
        """GPUs in the cluster this executor runs on (after ``__enter__``)."""
        ...

    def map(self, stage: StageSpec, batches: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Run ``stage`` over ``batches``; yield result tables as they complete."""
        ...


def host_gpus() -> int:
    """NVIDIA GPUs on this host (``nvidia-smi -L``), 0 without a driver."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def build_executor(cfg: ExecutorConfig) -> Executor:
    """Instantiate the executor named by ``cfg.name`` (not yet entered)."""
    if cfg.name not in EXECUTORS:
        raise UserError(f"unknown executor {cfg.name!r}; known: {sorted(EXECUTORS)}")
    module, cls = EXECUTORS[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg)
