"""Hydra entry point: ``python -m pipelines.run role=devops [overrides]``.

Config groups (``conf/``): role, model, engine, executor, sink, tracking.
Outputs go to the Hydra run dir (``runs/<time>-<role>/``); ``--help`` lists
every option, ``--cfg job`` prints the composed config.
"""

from __future__ import annotations

import atexit
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pipelines import UserError
from pipelines.config import register

log = logging.getLogger("pipelines.run")

register()

# Hydra multirun runs its jobs one after another in this process: with
# executor=local they share one in-process engine instead of loading it per job.
_local_executor: Any = None


def local_executor(settings: Any) -> Any:
    """The process-wide LocalExecutor for executor=local, else None."""
    global _local_executor
    if settings.executor.name != "local":
        return None
    if _local_executor is None:
        from pipelines.executors.local import LocalExecutor

        _local_executor = LocalExecutor(settings.executor)
        atexit.register(_local_executor.close)
    return _local_executor


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from pipelines.engines import preflight
    from pipelines.pipeline import run_pipeline, summary
    from pipelines.settings import from_config

    try:
        settings = from_config(cfg)
        preflight(settings.engine)
        outcome = run_pipeline(
            settings,
            Path(HydraConfig.get().runtime.output_dir),
            executor=local_executor(settings),
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(summary(outcome), flush=True)


if __name__ == "__main__":
    main()
