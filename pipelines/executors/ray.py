"""Ray Data executor: an actor pool of the stage, one replica per actor."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pandas as pd

from pipelines.config import ExecutorConfig
from pipelines.executors import StageSpec

log = logging.getLogger(__name__)


class RayExecutor:
    """Maps the stage with ``Dataset.map_batches`` over an actor pool.

    Connects to ``executor.address`` or ``RAY_ADDRESS`` when set, else starts a
    local Ray. Each actor asks for the spec's GPUs (GPU pinning) and CPUs.
    """

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg
        self._owns_ray = False

    def __enter__(self) -> RayExecutor:
        import ray

        if not ray.is_initialized():
            address = self.cfg.address or os.environ.get("RAY_ADDRESS") or "local"
            kwargs: dict = {"include_dashboard": False, "logging_level": logging.WARNING}
            if address == "local":
                kwargs["num_cpus"] = os.cpu_count()
            ray.init(address=address, **kwargs)
            self._owns_ray = True
        return self

    def __exit__(self, *exc: object) -> None:
        import ray

        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def gpus(self) -> float:
        import ray

        return float(ray.cluster_resources().get("GPU", 0))

    def map(self, stage: StageSpec, batches: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import ray
        from ray.data import ActorPoolStrategy

        log.info(
            "ray: %d batches on %d actor(s), %g GPU and %g CPU per actor",
            len(batches),
            self.cfg.concurrency,
            stage.num_gpus,
            stage.num_cpus,
        )
        ds = ray.data.from_pandas(batches)
        out = ds.map_batches(
            stage.cls,
            fn_constructor_kwargs=dict(stage.kwargs),
            batch_size=None,  # one block = one pipeline batch: keep the batches as cut
            batch_format="pandas",
            compute=ActorPoolStrategy(size=self.cfg.concurrency),
            num_gpus=stage.num_gpus,
            num_cpus=stage.num_cpus,
        )
        # prefetch_batches=0: with prefetching, a finished block reaches the driver
        # only when the next one finishes too (measured: each batch one batch late,
        # the last two together); without it each block arrives as it completes.
        yield from out.iter_batches(batch_size=None, batch_format="pandas", prefetch_batches=0)
