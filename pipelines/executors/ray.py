"""Ray Data executor: engines in long-lived Ray actors, batches through Ray Data.

Each engine replica is a Ray actor (:class:`EngineHost`) that asks for the
spec's GPUs (GPU pinning) and CPUs. The executor starts them on the first
``map`` and keeps them while it is entered, so runs that share one entered
executor (the jobs of a multirun) load each engine once.

Every ``map`` is one Ray Data dataset, one block per pipeline batch, mapped by
an async callable class (:class:`Forward`) over an actor pool of one actor
per engine. Ray Data runs an async ``__call__`` on the actor's event loop;
``ActorPoolStrategy(max_concurrent_calls_per_actor=n)`` becomes the actor's
Ray ``max_concurrency`` (n calls at once) and
``max_tasks_in_flight_per_actor=n`` sends it that many blocks
(``ray/data/_internal/planner/plan_udf_map_op.py``,
``actor_pool_map_operator.py``; ``ray.data.llm``'s vLLM stage does the same).
Each call awaits its engine host, so each engine holds ``spec.concurrency``
batches and its scheduler sees one queue.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pandas as pd

from pipelines.config import ExecutorConfig
from pipelines.engines import EngineFailed, engine_failure
from pipelines.executors import StageSpec, Submit
from pipelines.stopping import keep_sigterm_handler

log = logging.getLogger(__name__)

ENGINE_HOST_ENV = {"RAY_worker_niceness": "0"}
"""Ray starts every worker at niceness 15 (``worker_niceness``), below the
driver, raylet and GCS. An engine host is the hot path, and its engine
processes inherit the niceness: on a busy node each burst of the driver's
work would stall the engine. Its worker starts at 0, as Ray's own job
supervisor does (``dashboard/modules/job/job_manager.py``)."""


class EngineHost:
    """Ray actor body: one stage (one engine), serving concurrent batches.

    When its engine dies (:class:`EngineFailed`) the host exits: Ray restarts it
    with a fresh engine (``max_restarts``) and sends it again the calls it had
    not answered (``max_task_retries``), so each of its batches is generated
    once more, and lands once.
    """

    def __init__(self, spec: StageSpec) -> None:
        self.stage = spec.build()

    async def run(self, batch: pd.DataFrame) -> pd.DataFrame:
        try:
            return await self.stage.run(batch)
        except EngineFailed as e:
            log.error("engine host: %s; exiting for Ray to restart it", e)
            self.stage.close()  # its engine processes go first
            os._exit(1)

    async def set_batches_in_flight(self, n: int) -> None:
        self.stage.set_batches_in_flight(n)

    async def close(self) -> None:
        self.stage.close()


class Forward:
    """Ray Data UDF: hands each batch to an engine host and awaits its table.

    A batch goes to host ``batch_id mod hosts``: the pipeline's batches are of
    one size, so the hosts share them evenly.
    """

    def __init__(self, hosts: list[Any]) -> None:
        self.hosts = hosts

    async def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from ray.exceptions import RayActorError

        host = self.hosts[int(batch["batch_id"].iloc[0]) % len(self.hosts)]
        try:
            return await host.run.remote(batch)
        except RayActorError as e:
            raise EngineFailed(f"an engine host died past its restarts: {e}") from e


def on_host_death(future: Future) -> Future:
    """``future``, with an engine host that died past its restarts as :class:`EngineFailed`."""
    from ray.exceptions import RayActorError

    out: Future = Future()

    def done(f: Future) -> None:
        try:
            out.set_result(f.result())
        except RayActorError as e:
            out.set_exception(EngineFailed(f"an engine host died past its restarts: {e}"))
        except BaseException as e:  # noqa: BLE001 - the caller's future carries it
            out.set_exception(e)

    future.add_done_callback(done)
    return out


class RayExecutor:
    """Connects to ``executor.address`` or ``RAY_ADDRESS`` when set, else starts a
    local Ray; ``executor.concurrency`` engine hosts."""

    engine_process_alone = True

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg
        self._owns_ray = False
        self._hosts: list[Any] = []
        self._spec: StageSpec | None = None

    def __enter__(self) -> RayExecutor:
        import ray

        if not ray.is_initialized():
            address = self.cfg.address or os.environ.get("RAY_ADDRESS") or "local"
            kwargs: dict = {"include_dashboard": False, "logging_level": logging.WARNING}
            if address == "local":
                kwargs["num_cpus"] = os.cpu_count()
            with keep_sigterm_handler():  # a SIGTERM stops the run cleanly (exit 143)
                ray.init(address=address, **kwargs)
            self._owns_ray = True
        return self

    def __exit__(self, *exc: object) -> None:
        import ray

        self._release()
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def gpus(self) -> float:
        import ray

        return float(ray.cluster_resources().get("GPU", 0))

    def _release(self) -> None:
        import ray

        for host in self._hosts:
            try:
                ray.get(host.close.remote())
            except Exception as e:  # noqa: BLE001 - killing it below stops it anyway
                log.warning("ray: closing an engine host failed: %s", e)
            ray.kill(host)
        self._hosts, self._spec = [], None

    def engine_hosts(self, stage: StageSpec) -> list[Any]:
        """The hosts serving ``stage``: kept from an earlier map, else started."""
        import ray

        if self._spec is None or self._spec.replica != stage.replica:
            self._release()
            host = ray.remote(EngineHost).options(
                num_gpus=stage.num_gpus,
                num_cpus=stage.num_cpus,
                max_concurrency=1000,
                runtime_env={"env_vars": ENGINE_HOST_ENV},
                max_restarts=self.cfg.engine_restarts,
                max_task_retries=self.cfg.engine_restarts,
            )
            self._hosts = [host.remote(stage) for _ in range(self.cfg.concurrency)]
        elif self._spec.concurrency != stage.concurrency:
            ray.get([h.set_batches_in_flight.remote(stage.concurrency) for h in self._hosts])
        self._spec = stage
        return self._hosts

    def submitter(self, stage: StageSpec) -> Submit:
        """Batches straight to the engine hosts (``EngineHost.run``), round robin by
        ``batch_id``: a Ray Data dataset is fixed when it starts, and these batches
        are made from its own results."""
        hosts = self.engine_hosts(stage)

        def submit(batch: pd.DataFrame) -> Future:
            host = hosts[int(batch["batch_id"].iloc[0]) % len(hosts)]
            return on_host_death(host.run.remote(batch).future())

        return submit

    def map(self, stage: StageSpec, batches: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import ray
        from ray.data import ActorPoolStrategy

        hosts = self.engine_hosts(stage)
        log.info(
            "ray: %d batches on %d engine host(s), %g GPU and %g CPU each, %d batches in flight",
            len(batches),
            len(hosts),
            stage.num_gpus,
            stage.num_cpus,
            stage.concurrency,
        )
        ds = ray.data.from_pandas(batches)
        out = ds.map_batches(
            Forward,
            fn_constructor_kwargs={"hosts": hosts},
            batch_size=None,  # one block = one pipeline batch: keep the batches as cut
            batch_format="pandas",
            compute=ActorPoolStrategy(
                size=len(hosts),
                max_tasks_in_flight_per_actor=stage.concurrency,
                max_concurrent_calls_per_actor=stage.concurrency,
            ),
            num_cpus=0,  # the hosts hold the resources; a forwarder only awaits
        )
        # prefetch_batches=0: with prefetching, a finished block reaches the driver
        # only when the next one finishes too (measured: each batch one batch late,
        # the last two together); without it each block arrives as it completes.
        try:
            yield from out.iter_batches(batch_size=None, batch_format="pandas", prefetch_batches=0)
        except Exception as e:
            failed = engine_failure(e)
            if failed is None:
                raise
            raise EngineFailed(str(failed)) from None
