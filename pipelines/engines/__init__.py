"""Engines turn batches of chat requests into completions.

An engine takes batches as they are submitted and holds up to
``batches_in_flight`` of them at once, so that its scheduler sees one queue
rather than one batch at a time; each batch's future resolves when its last
request finishes.

Each engine module is imported only when chosen, so ``--help`` and the tests
of other parts never import vLLM.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from pipelines import RunStopped, UserError
from pipelines.config import (
    EngineConfig,
    ModelConfig,
    OpenAIEngineConfig,
)

ENGINES = {
    "vllm": "pipelines.engines.vllm:VLLMEngine",
    "openai": "pipelines.engines.openai:OpenAIEngine",
}
"""Engine name (``conf/engine/<name>.yaml``) → ``module:class``."""


class EngineFailed(RunStopped):
    """The engine as a whole failed (its process died, the server is gone): the
    batches it held have no answers. Never turned into error rows: the run stops
    (or, under Ray, the engine is restarted and its batches retried), keeping
    what landed for a resume. A request the engine refuses on its own (a prompt
    over the context) is an error row instead."""


def engine_failure(error: BaseException) -> EngineFailed | None:
    """The :class:`EngineFailed` behind ``error`` (a cluster's wrapper of it), if any."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        if isinstance(e, EngineFailed):
            return e
        seen.add(id(e))
        # A cluster's task error keeps the task's own exception as ``cause`` (Ray).
        cause = getattr(e, "cause", None)
        task_cause = cause if isinstance(cause, BaseException) else None
        e = e.__cause__ or task_cause or e.__context__
    return None


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

    batches_in_flight: int
    """Submitted batches it holds at once; may change between submits."""

    def submit(
        self, requests: pd.DataFrame, on_start: Callable[[], None] | None = None
    ) -> Future[list[Completion]]:
        """Queue one batch; returns at once. Thread-safe.

        ``on_start`` is called when the engine takes the batch in (it may wait
        behind ``batches_in_flight`` others).

        The future gives one completion per request row, in row order. Rows
        carry ``system_prompt``, ``prompt``, ``temperature``, ``seed`` and
        ``max_tokens``. A failed request is a completion with ``error`` set; a
        failed engine fails the future with :class:`EngineFailed`.
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


def json_schema(row: Any) -> dict[str, Any] | None:
    """The JSON schema a request row asks its output to follow (guided decoding), if any."""
    text = getattr(row, "json_schema", None)
    return json.loads(text) if isinstance(text, str) and text else None


def preflight(cfg: EngineConfig, model: ModelConfig) -> None:
    """Fail fast, before any cluster or engine starts, on what would fail later.

    Raises :class:`UserError` when the local model folder is missing (an
    in-process engine) or the server is unreachable or lacks the model
    (``openai``).
    """
    if isinstance(cfg, OpenAIEngineConfig):
        from pipelines.engines.openai import check_server

        check_server(cfg, model)
        return
    local = Path(model.path).is_absolute() or model.path.startswith(".")
    if local and not (Path(model.path) / "config.json").is_file():
        raise UserError(
            f"model folder {model.path} not found (or has no config.json); build the "
            "embedded model with `python -m pipelines.prepare_model` (or `make model`)"
        )


def build_engine(cfg: EngineConfig, model: ModelConfig) -> Engine:
    """Instantiate the engine named by ``cfg.name`` for ``model``."""
    if cfg.name not in ENGINES:
        raise UserError(f"unknown engine {cfg.name!r}; known: {sorted(ENGINES)}")
    module, cls = ENGINES[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg, model)


def generate(engine: Engine, requests: pd.DataFrame) -> list[Completion]:
    """One batch, waited for."""
    return engine.submit(requests).result()
