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
batches and its scheduler sees one queue. The forwarders stay on the driver's
node: they only await, and a worker node that dies takes no forwarder with it.

A cluster is joined by address (``executor.address``, ``RAY_ADDRESS``) as a
driver: :func:`preflight` checks that the head answers and accepts this
driver's token before anything starts. ``ray://`` (Ray Client) is refused: Ray
Data does not run under it; ``python -m pipelines.submit`` runs the driver on
the cluster through Ray's job API instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import UserError
from pipelines.config import ExecutorConfig
from pipelines.engines import EngineFailed, engine_failure
from pipelines.executors import StageSpec, Submit
from pipelines.runtime.console import adopt, route_ray_worker_output
from pipelines.runtime.procs import connect_error
from pipelines.runtime.stopping import keep_sigterm_handler

log = logging.getLogger(__name__)

ENGINE_HOST_ENV = {"RAY_worker_niceness": "0"}
"""Ray starts every worker at niceness 15 (``worker_niceness``), below the
driver, raylet and GCS. An engine host is the hot path, and its engine
processes inherit the niceness: on a busy node each burst of the driver's
work would stall the engine. Its worker starts at 0, as Ray's own job
supervisor does (``dashboard/modules/job/job_manager.py``)."""


CLOSE_TIMEOUT_S = 30.0
"""How long closing an engine host may take (one on a lost node never answers;
killing it stops it anyway)."""

AUTH_HELP = (
    "set RAY_AUTH_MODE=token and give this driver the cluster's token: "
    "RAY_AUTH_TOKEN=<token> or the token file (~/.ray/auth_token or RAY_AUTH_TOKEN_PATH); "
    "`ray get-auth-token` on the head prints it"
)
"""The fix for a refused token, as Ray's token-auth docs give it."""


def cluster_address(cfg: ExecutorConfig) -> str | None:
    """The cluster this run joins: ``executor.address``, else ``RAY_ADDRESS``; None: a
    local Ray of its own."""
    address = cfg.address or os.environ.get("RAY_ADDRESS") or None
    return None if address in (None, "local") else address


def submit_hint(address: str) -> str:
    """The command that runs this driver on the cluster at ``address`` instead."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0] or "<head>"
    return f"python -m pipelines.submit --address http://{host}:8265 <overrides>"


def preflight(cfg: ExecutorConfig) -> None:
    """Fail in seconds, before anything starts, when the cluster cannot be joined.

    ``ray://`` is refused (Ray Data does not run under Ray Client); a head that
    does not answer, or that refuses this driver's token, is a :class:`UserError`
    naming the fix, instead of ``ray.init``'s minute of retries and warnings.
    """
    address = cluster_address(cfg)
    if address is None or address == "auto":
        return
    if address.startswith("ray://"):
        raise UserError(
            f"executor address {address}: Ray Data does not run under Ray Client (ray://); "
            f"run the driver on the cluster instead: {submit_hint(address)}"
        )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"executor address {address!r}: expected host:port of the Ray head (GCS)")
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if token_file and not os.environ.get("RAY_AUTH_TOKEN"):
        # Ray aborts the process (a native check) on a token file it cannot read.
        try:
            readable = bool(Path(token_file).read_text().strip())
        except OSError:
            readable = False
        if not readable:
            raise UserError(f"ray: RAY_AUTH_TOKEN_PATH={token_file} is missing or empty")
    if e := connect_error(host, int(port)):
        raise UserError(f"ray: nothing answers at {address} (the head's GCS port): {e}")
    from ray.exceptions import AuthenticationError, RpcError

    try:
        with quiet_stderr():  # Ray's C++ client logs the refusal once more, unasked
            from ray._raylet import GcsClient  # what `ray status` asks first

            GcsClient(address=address)
    except AuthenticationError:
        mode = os.environ.get("RAY_AUTH_MODE", "")
        why = "token refused" if mode == "token" else "token auth is on there"
        raise UserError(
            f"ray: the cluster at {address} refused this driver ({why}): {AUTH_HELP}"
        ) from None
    except RpcError as e:
        raise UserError(
            f"ray: the cluster at {address} does not answer as a Ray head: {e}"
        ) from None


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 into a scratch file while the block runs (native code writes
    there directly); what it caught goes to the debug log."""
    with tempfile.TemporaryFile() as caught:
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            if text := caught.read().decode(errors="replace").strip():
                log.debug("ray: %s", text)


@contextlib.contextmanager
def loopback_node() -> Iterator[None]:
    """A local Ray started in the block binds and advertises 127.0.0.1.

    On Linux Ray resolves a node address of 127.0.0.1 to the host's routable
    address; its single-machine mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
    what it runs on macOS and Windows) keeps loopback, and every server of the
    node then listens there only. That flag is read once, at import; the driver
    sets it for the start alone, so a later ``ray.init`` by address in the same
    process still advertises this host's address.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


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

    async def node(self) -> dict[str, Any]:
        """Where this host runs: Ray's node id and address, and its pid."""
        import ray

        context = ray.get_runtime_context()
        return {
            "node_id": context.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
        }

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
            address = cluster_address(self.cfg)
            # a SIGTERM stops the run cleanly (exit 143)
            with keep_sigterm_handler():
                if address is None:
                    with loopback_node():
                        ray.init(
                            address="local",
                            num_cpus=os.cpu_count(),
                            include_dashboard=False,
                            logging_level=logging.WARNING,
                        )
                else:
                    ray.init(address=address, logging_level=logging.WARNING)
                    log.info(
                        "ray: driver on node %s of the cluster at %s",
                        ray.get_runtime_context().get_node_id()[:12],
                        address,
                    )
            self._owns_ray = True
        import ray.data  # configures Ray Data's loggers, adopted below

        # Ray's, Ray Data's and the workers' INFO lines go to run.log (runtime/console.py).
        adopt("ray", "ray.data")
        route_ray_worker_output()
        # The run's progress is its batch lines: Ray Data's bars, on a terminal,
        # redraw over them (and its notice that they are off says nothing to a user).
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
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
                ray.get(host.close.remote(), timeout=CLOSE_TIMEOUT_S)
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
                # A batch is retried until its host is back: restarted after its
                # engine died, or placed on another node after its node died
                # (unavailable until Ray declares the node dead). Bounded by the
                # restarts: past them the host is dead and the call fails.
                max_task_retries=-1,
            )
            self._hosts = [host.remote(stage) for _ in range(self.cfg.concurrency)]
            self.log_placement()
        elif self._spec.concurrency != stage.concurrency:
            ray.get([h.set_batches_in_flight.remote(stage.concurrency) for h in self._hosts])
        self._spec = stage
        return self._hosts

    def log_placement(self) -> None:
        """Say which node each engine host runs on, once it is up (not waited for)."""

        def say(i: int, f: Future) -> None:
            if f.exception() is None:
                where = f.result()
                log.info(
                    "ray: engine host %d on node %s (%s), pid %d",
                    i,
                    where["node_id"][:12],
                    where["node_ip"],
                    where["pid"],
                )

        for i, h in enumerate(self._hosts):
            h.node.remote().future().add_done_callback(lambda f, i=i: say(i, f))

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
        # One block per batch, built here: from_pandas runs a 1-CPU task per frame
        # for its metadata, which never runs on a cluster whose CPUs the engine
        # hosts hold (seen: a head with --num-cpus 0 and one engine node).
        ds = ray.data.from_blocks(batches)
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
            # ... on the driver's node, which lives as long as the run
            label_selector={"ray.io/node-id": ray.get_runtime_context().get_node_id()},
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
