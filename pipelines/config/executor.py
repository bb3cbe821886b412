"""``executor`` group: where batches run (ray, dask, local)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from pipelines import UserError


@dataclass
class ExecutorConfig:
    name: str = MISSING
    # Engine replicas (Ray actors, Dask LocalCluster workers).
    concurrency: int = 1
    # Cluster address; null: RAY_ADDRESS / DASK_SCHEDULER_ADDRESS, else a local cluster.
    address: Optional[str] = None  # noqa: UP045
    # CPUs per replica (Ray actors; Dask workers run one thread each).
    num_cpus: float = 1.0
    # Ray: times an engine host whose engine died is restarted (a fresh engine);
    # the batches it held are retried on it. Local and Dask stop the run instead.
    engine_restarts: int = 2

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UserError(f"executor.concurrency must be >= 1, got {self.concurrency}")
        if self.engine_restarts < 0:
            raise UserError(f"executor.engine_restarts must be >= 0, got {self.engine_restarts}")
