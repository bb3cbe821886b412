"""Ray Data executor: an actor pool of GenerateStage, one engine per actor."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pandas as pd

from pipelines.engines import EngineConfig
from pipelines.executors import ExecutorConfig
from pipelines.stage import GenerateStage

log = logging.getLogger(__name__)


class RayExecutor:
    """Maps the stage with ``Dataset.map_batches`` over an actor pool.

    Connects to ``executor.address`` or ``RAY_ADDRESS`` when set, else starts a
    local Ray. Each actor asks for ``engine.num_gpus`` GPUs (GPU pinning); when
    that is unset, one GPU if the cluster has any, else none.
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

    def map(self, engine: EngineConfig, batches: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import ray
        from ray.data import ActorPoolStrategy

        num_gpus = engine.num_gpus
        if num_gpus is None:
            num_gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        log.info(
            "ray: %d batches on %d actor(s), num_gpus=%s per actor",
            len(batches),
            self.cfg.concurrency,
            num_gpus,
        )
        ds = ray.data.from_pandas(batches)
        out = ds.map_batches(
            GenerateStage,
            fn_constructor_kwargs={"engine": engine},
            batch_size=None,  # one block = one pipeline batch: keep the batches as cut
            batch_format="pandas",
            compute=ActorPoolStrategy(size=self.cfg.concurrency),
            num_gpus=num_gpus,
            num_cpus=self.cfg.num_cpus if self.cfg.num_cpus is not None else 1,
        )
        yield from out.iter_batches(batch_size=None, batch_format="pandas")
