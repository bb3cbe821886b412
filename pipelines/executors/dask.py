"""Dask executor: one stage per Dask worker, batches as futures.

With no address (``executor.address`` or ``DASK_SCHEDULER_ADDRESS``) it starts
a ``LocalCluster`` of ``concurrency`` single-threaded worker processes and
closes it at the end; otherwise it connects to that scheduler and leaves it up.
Workers started by ``dask worker`` (a nanny and a daemonic worker process) run
their engine's core inline (``pipelines/engines/vllm.py``): a daemonic process
may not start vLLM's engine core process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pandas as pd

from pipelines import UserError
from pipelines.config import ExecutorConfig
from pipelines.executors import StageSpec, Submit, host_gpus
from pipelines.runtime.procs import connect_error

log = logging.getLogger(__name__)

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
_STAGE_ATTR = "_council_eval_stages"

# Worker diagnostics that sample every 10-20 ms (stack profiler, event-loop
# tick, system monitor) are of no use for minute-long engine calls, and on a
# small host they take CPU from the engine's OpenMP threads (measured with a
# sleeping task: LocalCluster background CPU 2.4 % -> 0.7 % of 2 cores).
QUIET_WORKERS = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}


def preflight(cfg: ExecutorConfig) -> None:
    """A scheduler address that does not answer is an error in seconds, not after
    ``Client``'s 30 s of retries."""
    address = cfg.address or os.environ.get(SCHEDULER_ENV)
    if not address:
        return
    scheme, _, rest = address.rpartition("://")
    host, _, port = rest.rpartition(":")
    if scheme not in ("", "tcp", "tls") or not host or not port.isdigit():
        raise UserError(f"dask scheduler address {address!r}: expected tcp://host:port")
    if e := connect_error(host, int(port)):
        raise UserError(f"dask: no scheduler answers at {address}: {e}")


def close_stages(dask_worker: Any) -> int:
    """Worker-side, via ``Client.run``: close this worker's stages (their engine
    processes would otherwise outlive the worker)."""
    stages = dask_worker.__dict__.pop(_STAGE_ATTR, {})
    for stage in stages.values():
        stage.close()
    return len(stages)


_BUILD_LOCK = threading.Lock()


def run_batch(stage: StageSpec, batch: pd.DataFrame) -> pd.DataFrame:
    """Task body: run ``batch`` through this worker's stage, built on first use.

    The task submits its batch, then secedes from the worker's thread pool
    while the engine works (``distributed.secede``): the worker starts the
    next task, so one single-threaded worker keeps several batches in its
    engine. The engine admits ``stage.concurrency`` of them at a time.
    """
    from distributed import get_worker, rejoin, secede

    worker = get_worker()
    with _BUILD_LOCK:
        stages: dict[str, Any] = worker.__dict__.setdefault(_STAGE_ATTR, {})
        key = stage.replica
        if key not in stages:
            for old in stages.values():  # one stage (one engine) per worker: free the previous
                old.close()
            stages.clear()
            stages[key] = stage.build()
        stages[key].set_batches_in_flight(stage.concurrency)
        future = stages[key].submit(batch)
    secede()
    try:
        return future.result()
    finally:
        rejoin()


class DaskExecutor:
    """Maps the stage over the batches with ``Client.submit``, in batch order.

    The stage built on a worker stays there while the cluster lives: runs that
    share one entered executor (a multirun) load each worker's engine once.
    """

    engine_process_alone = False
    """A worker's process also runs its event loop, and its nanny holds it to a
    memory limit: the engine keeps processes of its own."""

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg
        self._cluster: Any = None
        self._client: Any = None

    def __enter__(self) -> DaskExecutor:
        import dask
        from distributed import Client, LocalCluster

        address = self.cfg.address or os.environ.get(SCHEDULER_ENV)
        if address:
            self._client = Client(address)
            return self
        # vLLM's engine starts a child process: a daemonic worker may not.
        # Dask also caps OMP/MKL threads at 1 in workers; the engine binds its
        # own threads, as it does under Ray and in-process.
        with dask.config.set(
            {
                "distributed.worker.daemon": False,
                "distributed.nanny.pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": 65536},
                **QUIET_WORKERS,
            }
        ):
            self._cluster = LocalCluster(
                n_workers=self.cfg.concurrency,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                resources={"GPU": 1} if host_gpus() else None,
            )
        self._client = Client(self._cluster)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            # Engines run child processes that would outlive a killed worker.
            try:
                self._client.run(close_stages)
            except Exception as e:  # noqa: BLE001 - closing must go on
                log.warning("dask: closing engines on workers failed: %s", e)
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def gpus(self) -> float:
        workers = self._client.scheduler_info()["workers"].values()
        return float(sum(w.get("resources", {}).get("GPU", 0) for w in workers))

    def submitter(self, stage: StageSpec) -> Submit:
        resources = {"GPU": stage.num_gpus} if stage.num_gpus else None

        def submit(batch: pd.DataFrame) -> Future:
            task = self._client.submit(run_batch, stage, batch, resources=resources, pure=False)
            out: Future = Future()

            def done(f: Any) -> None:
                try:
                    out.set_result(f.result())
                except BaseException as e:  # noqa: BLE001 - the caller's future carries it
                    out.set_exception(e)

            task.add_done_callback(done)
            return out

        return submit

    def map(self, stage: StageSpec, batches: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from distributed import as_completed

        resources = {"GPU": stage.num_gpus} if stage.num_gpus else None
        log.info(
            "dask: %d batches on %s, %g GPU per stage", len(batches), self._client, stage.num_gpus
        )
        futures = [
            self._client.submit(run_batch, stage, b, resources=resources, pure=False)
            for b in batches
        ]
        for future in as_completed(futures):
            result = future.result()
            # Let the scheduler forget it: a worker that dies later holds no
            # result of ours that it would compute again.
            future.release()
            yield result
