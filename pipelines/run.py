"""Hydra entry point: ``python -m pipelines.run role=devops [overrides]``.

Config groups (``conf/``): role, model, engine, executor, sink, tracking,
experiment; the schemas are in ``pipelines/config/``. Outputs go to the
Hydra run dir (``runs/<time>-<role>/``); ``--help`` lists every option,
``--cfg job`` prints the composed config.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pipelines.config import register
from pipelines.executors import HeldExecutors

log = logging.getLogger("pipelines.run")


def run_job(cfg: DictConfig, held: HeldExecutors) -> list[str]:
    """One run (one job of a multirun), on an executor from ``held``.

    Returns the ``fail_on`` rules the finished run broke (``pipelines.driver.verdict``).
    """
    from pipelines.config import load
    from pipelines.driver.pipeline import run_pipeline
    from pipelines.driver.preflight import preflight_run
    from pipelines.driver.summary import summary
    from pipelines.driver.verdict import ENDINGS, ended, problems, verdict
    from pipelines.runtime.console import quiet_console
    from pipelines.runtime.reaper import reaper

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    log.info("run folder: %s", out_dir.resolve())
    quiet_console(out_dir)
    try:
        run = load(cfg)
        preflight_run(run)
        # Killed, this run leaves nothing running (pipelines/runtime/reaper.py).
        with reaper(out_dir):
            outcome = run_pipeline(run, out_dir, executor=held)
    except ENDINGS as e:
        sys.exit(ended(e, out_dir))  # a multirun stops here too
    print(summary(outcome), flush=True)
    found = problems(outcome.metrics, run.fail_on)
    verdict(found, out_dir)
    return found


def main() -> None:
    from pipelines.runtime.stopping import stop_on_sigterm
    from pipelines.spec.exits import EXIT_RUN_FAILED

    register()
    failed: list[str] = []
    # Hydra multirun runs its jobs one after another in this process. Jobs with
    # one executor config share that executor, and so its engines (one load for
    # a temperature sweep, on Ray as in-process); released when the last job ends.
    # SIGTERM stops the run cleanly (pipelines/runtime/stopping.py), exit 143.
    with stop_on_sigterm(), HeldExecutors() as held:

        @hydra.main(config_path="../conf", config_name="config", version_base="1.3")
        def job(cfg: DictConfig) -> None:
            if run_job(cfg, held):
                failed.append(HydraConfig.get().runtime.output_dir)

        job()
    if failed:
        # Every job ran; the exit status says that some failed (listed above).
        print(f"{len(failed)} run(s) failed their fail_on rules: {failed}", file=sys.stderr)
        sys.exit(EXIT_RUN_FAILED)


if __name__ == "__main__":
    main()
