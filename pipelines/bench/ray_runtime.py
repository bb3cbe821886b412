"""The bench's ``ray-runtime`` peer: what Ray's own runtime costs an engine that
shares its cores.

An engine host on a CPU node shares the cores with the rest of a Ray
pipeline: the driver's Ray Data scheduling loop, the raylet, the GCS, the log
monitor and Ray Data's own actors. This peer measures that share alone. A
driver process of its own starts a local Ray and maps the bench's batches over
:class:`RestingStage`, a stage that holds its batches until it is closed, so
every Ray process is up and polling as in a real run, but none of them
generates. Beside it, in the bench's process, ``raw-inline`` generates the
bench's requests. Against ``raw-inline`` alone it gives the engine's loss to
Ray's runtime; against ``ray`` it shows what is left to the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.synchronize import Event
from typing import Any

import pandas as pd

from pipelines.config import RunConfig
from pipelines.executors import StageSpec, build_executor
from pipelines.flow.council import batches

log = logging.getLogger("pipelines.bench")

SETTLE_S = 15.0
"""Seconds from the map's start to the pipeline at rest: Ray Data's actors
started and every batch in the resting stage."""


class RestingStage:
    """A stage that holds its batches until it is closed, then hands them back."""

    def __init__(self) -> None:
        self._closed: asyncio.Event | None = None

    def set_batches_in_flight(self, n: int) -> None:
        pass

    async def run(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self._closed is None:
            self._closed = asyncio.Event()  # on the engine host's event loop
        await self._closed.wait()
        return batch

    def close(self) -> None:
        if self._closed is not None:
            self._closed.set()


def resting_ray(settings: RunConfig, table: pd.DataFrame, ready: Event, stop: Event) -> None:
    """A Ray driver (run in a process of its own): ``table``'s batches mapped over
    :class:`RestingStage` on a local Ray until ``stop``."""
    import ray

    logging.basicConfig(level=logging.WARNING)
    spec = StageSpec(
        RestingStage,
        num_cpus=settings.executor.num_cpus,
        concurrency=settings.batches_in_flight(),
    )
    with build_executor(replace(settings.executor, name="ray", address="local")) as executor:
        rows = executor.map(spec, batches(table))
        drain = threading.Thread(target=lambda: deque(rows, maxlen=0), daemon=True)
        drain.start()
        time.sleep(SETTLE_S)
        ready.set()
        stop.wait()
        # The batches come back and the dataset ends before Ray stops.
        ray.get([host.close.remote() for host in executor.engine_hosts(spec)])
        drain.join(timeout=60)


def beside_resting_ray(
    run: Callable[[], dict[str, Any]], settings: RunConfig, table: pd.DataFrame
) -> dict[str, Any]:
    """``run()``'s figures, measured while a resting Ray pipeline runs beside it."""
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Event(), spawn.Event()
    driver = spawn.Process(
        target=resting_ray, args=(settings, table, ready, stop), name="resting-ray", daemon=True
    )
    driver.start()
    try:
        deadline = time.monotonic() + 300
        while not ready.wait(timeout=1.0):
            if not driver.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the resting Ray pipeline did not start (exit code {driver.exitcode})"
                )
        log.info("bench: a resting Ray pipeline runs beside the engine")
        return run()
    finally:
        stop.set()
        driver.join(timeout=60)
        if driver.is_alive():
            driver.terminate()
            driver.join()
