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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

import pandas as pd

from pipelines import UserError
from pipelines.config import ExecutorConfig

Submit = Callable[[pd.DataFrame], Future]
"""Sends one batch to an engine; the future gives its result table."""

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
        concurrency: batches a replica holds at once; the stage's
            ``submit(batch) -> Future`` takes them without waiting. Not part of
            what a replica is built from: a built stage takes a new value
            (``set_batches_in_flight``) without reloading its engine.
    """

    cls: type
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    num_gpus: float = 0.0
    num_cpus: float = 1.0
    concurrency: int = 1

    def build(self) -> Any:
        stage = self.cls(**self.kwargs)
        stage.set_batches_in_flight(self.concurrency)
        return stage

    @property
    def replica(self) -> str:
        """What a replica is built from: specs with equal ``replica`` share one."""
        return repr((self.cls, dict(self.kwargs), self.num_gpus, self.num_cpus))


class Executor(Protocol):
    """What the pipeline needs from an executor."""

    cfg: ExecutorConfig
    engine_process_alone: bool
    """Whether each replica is a process that serves its engine and nothing else
    (a Ray engine host): there an engine's core can run inline
    (``engine.inline_core``)."""

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

    def submitter(self, stage: StageSpec) -> Submit:
        """A function that sends one batch to ``stage``'s replicas and returns its
        future at once: for requests that only exist once others are answered
        (deliberation rounds), fed as they become ready. Same replicas, and so the
        same engines, as ``map``."""
        ...


def keep_in_flight(
    submit: Callable[[pd.DataFrame], Future], batches: list[pd.DataFrame], depth: int
) -> Iterator[pd.DataFrame]:
    """Keep ``depth`` batches submitted; yield each result as it completes.

    A consumer that stops early leaves at most ``depth`` batches behind.
    """
    queued = iter(batches)
    pending = [submit(b) for b in islice(queued, depth)]
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in [f for f in pending if f in done]:  # in submission order
            pending.remove(future)
            yield future.result()
            pending += [submit(b) for b in islice(queued, 1)]


def host_gpus() -> int:
    """NVIDIA GPUs on this host (``nvidia-smi -L``), 0 without a driver."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


class HeldExecutors:
    """Executors entered on first use and held until exit, one per distinct config.

    The runs of one process (a multirun's jobs, a night's runs) share them,
    and with them their engines: executor=local keeps its stage, Ray its
    engine hosts, Dask its workers' stages. Nothing starts until a run has
    something to generate.
    """

    def __init__(self, *entered: Executor) -> None:
        """``entered``: executors the caller owns and keeps, to be used for their configs."""
        self._stack = ExitStack()
        self._held: dict[str, Executor] = {repr(e.cfg): e for e in entered}

    def __enter__(self) -> HeldExecutors:
        return self

    def __exit__(self, *exc: object) -> None:
        self._held.clear()
        self._stack.close()

    def get(self, cfg: ExecutorConfig) -> Executor:
        """The held executor for ``cfg``, entered now if none is."""
        key = repr(cfg)
        if key not in self._held:
            self._held[key] = self._stack.enter_context(build_executor(cfg))
        return self._held[key]


def preflight(cfg: ExecutorConfig) -> None:
    """Fail fast, before anything starts, on a cluster the run cannot join (the
    executor module's own ``preflight``, where it has one)."""
    if cfg.name not in EXECUTORS:
        raise UserError(f"unknown executor {cfg.name!r}; known: {sorted(EXECUTORS)}")
    check = getattr(importlib.import_module(EXECUTORS[cfg.name].split(":")[0]), "preflight", None)
    if check is not None:
        check(cfg)


def build_executor(cfg: ExecutorConfig) -> Executor:
    """Instantiate the executor named by ``cfg.name`` (not yet entered)."""
    if cfg.name not in EXECUTORS:
        raise UserError(f"unknown executor {cfg.name!r}; known: {sorted(EXECUTORS)}")
    module, cls = EXECUTORS[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg)
