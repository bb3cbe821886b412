"""Fail fast on a whole run's set-up, before any cluster or engine starts."""

from __future__ import annotations

from pipelines.config import OpenAIJudgeConfig, RunConfig
from pipelines.engines import preflight
from pipelines.executors import preflight as preflight_executor


def preflight_run(cfg: RunConfig) -> None:
    """:func:`preflight` for the run's engine and, with ``judge=openai``, its judge;
    and the cluster its executor joins."""
    preflight_executor(cfg.executor)
    preflight(cfg.engine, cfg.model)
    if isinstance(cfg.judge, OpenAIJudgeConfig):
        preflight(cfg.judge.engine, cfg.judge.model_config())
