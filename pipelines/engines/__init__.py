"""Engines turn a batch of chat requests into completions.

Each engine module is imported only when chosen, so ``--help`` and the tests
of other parts never import vLLM.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from pipelines import UserError

ENGINES = {"vllm": "pipelines.engines.vllm:VLLMEngine"}
"""Engine name (``conf/engine/<name>.yaml``) → ``module:class``."""


@dataclass(frozen=True)
class EngineConfig:
    """Typed engine settings; picklable, so executors ship it to workers."""

    name: str
    model: str
    served_model_name: str
    dtype: str = "bfloat16"
    max_model_len: int = 2048
    enforce_eager: bool = True
    gpu_memory_utilization: float = 0.3
    enable_chunked_prefill: bool = False
    num_gpus: float | None = None
    extra_engine_kwargs: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """One request's outcome; ``error`` is set (and text empty) on failure."""

    proposal: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""
    latency: float = 0.0
    error: str | None = None


class Engine(Protocol):
    """What a stage needs from an engine."""

    def generate(self, requests: pd.DataFrame) -> list[Completion]:
        """One completion per request row, in row order.

        Rows carry ``system_prompt``, ``prompt``, ``temperature``, ``seed`` and
        ``max_tokens``. A failed request is a completion with ``error`` set.
        """
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...


def build_engine(cfg: EngineConfig) -> Engine:
    """Instantiate the engine named by ``cfg.name``."""
    if cfg.name not in ENGINES:
        raise UserError(f"unknown engine {cfg.name!r}; known: {sorted(ENGINES)}")
    module, cls = ENGINES[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg)
