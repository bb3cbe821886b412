"""Engines turn a batch of chat requests into completions.

Each engine module is imported only when chosen, so ``--help`` and the tests
of other parts never import vLLM.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from pipelines import UserError

ENGINES = {
    "vllm": "pipelines.engines.vllm:VLLMEngine",
    "openai": "pipelines.engines.openai:OpenAIEngine",
}
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
    # engine=openai: a running OpenAI-compatible server (e.g. `vllm serve`).
    url: str | None = None
    api_key_env: str = "VLLM_API_KEY"
    max_concurrency: int = 64
    timeout_s: float = 120.0
    retries: int = 3
    extra_body: dict[str, Any] = field(default_factory=dict)


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


def chat_messages(row: Any) -> list[dict[str, str]]:
    """The chat turns of one request row."""
    messages = []
    if row.system_prompt:
        messages.append({"role": "system", "content": row.system_prompt})
    messages.append({"role": "user", "content": row.prompt})
    return messages


def preflight(cfg: EngineConfig) -> None:
    """Fail fast, before any cluster or engine starts, on what would fail later.

    Raises :class:`UserError` when the local model folder is missing
    (``vllm``) or the server is unreachable or lacks the model (``openai``).
    """
    if cfg.name == "openai":
        from pipelines.engines.openai import check_server

        check_server(cfg)
        return
    local = Path(cfg.model).is_absolute() or cfg.model.startswith(".")
    if local and not (Path(cfg.model) / "config.json").is_file():
        raise UserError(
            f"model folder {cfg.model} not found (or has no config.json); build the "
            "embedded model with `python -m pipelines.prepare_model` (or `make model`)"
        )


def build_engine(cfg: EngineConfig) -> Engine:
    """Instantiate the engine named by ``cfg.name``."""
    if cfg.name not in ENGINES:
        raise UserError(f"unknown engine {cfg.name!r}; known: {sorted(ENGINES)}")
    module, cls = ENGINES[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg)
