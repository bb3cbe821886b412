"""Remote engine: chat completions from a running OpenAI-compatible server.

Any executor can run it: each worker sends the requests of up to
``batches_in_flight`` batches concurrently (at most ``max_concurrency`` per
batch in flight) with the official ``openai`` client,
which retries connection errors, 408, 409, 429 and 5xx with exponential
backoff. A request that still fails becomes a row with ``error`` set.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pandas as pd

from pipelines import UserError
from pipelines.config import ModelConfig, OpenAIEngineConfig
from pipelines.engines import Completion, chat_messages, json_schema
from pipelines.runtime.redact import redact_text

PROBE_TIMEOUT_S = 5.0
"""How long the start-up check waits for the server."""


def base_url(cfg: OpenAIEngineConfig) -> str:
    """The server root, without a trailing ``/`` or ``/v1``."""
    if not cfg.url:
        raise UserError("engine=openai needs a server: set VLLM_URL or engine.url")
    url = cfg.url.rstrip("/")
    return url.removesuffix("/v1")


def api_key(cfg: OpenAIEngineConfig) -> str:
    """The key from ``cfg.api_key_env``; vLLM without ``--api-key`` takes any."""
    return os.environ.get(cfg.api_key_env) or "EMPTY"


def check_server(cfg: OpenAIEngineConfig, model: ModelConfig) -> None:
    """Raise :class:`UserError` within seconds unless the server serves the model."""
    import httpx

    url = base_url(cfg)
    try:
        resp = httpx.get(
            f"{url}/v1/models",
            headers={"Authorization": f"Bearer {api_key(cfg)}"},
            timeout=PROBE_TIMEOUT_S,
        )
        resp.raise_for_status()
        served = [m["id"] for m in resp.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError) as e:
        raise UserError(
            f"cannot reach an OpenAI-compatible server at {url} ({type(e).__name__}: {e}); "
            "start one with `make serve-model`, or point VLLM_URL (or engine.url) at one"
        ) from e
    name = cfg.served_name(model)
    if name not in served:
        raise UserError(
            f"the server at {url} serves {served}, not {name!r}; "
            "set VLLM_MODEL (or engine.served_model) to one of them"
        )


def structured_output(row: Any) -> dict[str, Any]:
    """``response_format`` for a row that asks for JSON following a schema."""
    schema = json_schema(row)
    if schema is None:
        return {}
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        }
    }


CHARS_PER_TOKEN = 64
"""The most characters a reply may hold per token asked for (a token is a few
characters; a server sending far more is not answering the request)."""


def completion(resp: Any, max_tokens: int, latency: float) -> Completion:
    """A server's reply as a :class:`Completion`, checked: a choice, and a text no
    longer than ``max_tokens`` could be.

    Raises:
        ValueError: the reply is not one the request could have had.
    """
    choices = getattr(resp, "choices", None) or []
    if not choices:
        raise ValueError("the server's reply holds no choice")
    choice = choices[0]
    text = choice.message.content or ""
    if len(text) > max_tokens * CHARS_PER_TOKEN:
        raise ValueError(
            f"the server's reply holds {len(text):,} characters for at most {max_tokens} tokens"
        )
    usage = resp.usage
    return Completion(
        proposal=text,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        finish_reason=choice.finish_reason or "",
        latency=latency,
    )


class OpenAIEngine:
    """Sends each request as one ``/v1/chat/completions`` call."""

    def __init__(self, cfg: OpenAIEngineConfig, model: ModelConfig) -> None:
        check_server(cfg, model)
        self.cfg = cfg
        self.model = cfg.served_name(model)
        self.url = base_url(cfg)
        self.batches_in_flight = cfg.batches_in_flight
        self._pools: list[tuple[int, ThreadPoolExecutor]] = []  # (depth, pool)

    def submit(
        self, requests: pd.DataFrame, on_start: Callable[[], None] | None = None
    ) -> Future[list[Completion]]:
        # One thread (and event loop) per batch in flight; a new depth, a new pool
        # (the old one finishes what it holds).
        depth = self.batches_in_flight
        if not self._pools or self._pools[-1][0] != depth:
            self._pools.append((depth, ThreadPoolExecutor(depth, "openai-batch")))
        rows = list(requests.itertuples(index=False))

        def run() -> list[Completion]:
            if on_start is not None:
                on_start()
            return asyncio.run(self._generate(rows))

        return self._pools[-1][1].submit(run)

    async def _generate(self, rows: list[Any]) -> list[Completion]:
        from openai import AsyncOpenAI

        # One client per batch: its connection pool belongs to this event loop.
        async with AsyncOpenAI(
            base_url=f"{self.url}/v1",
            api_key=api_key(self.cfg),
            timeout=self.cfg.timeout_s,
            max_retries=self.cfg.retries,
        ) as client:
            slots = asyncio.Semaphore(self.cfg.max_concurrency)
            return await asyncio.gather(*(self._one(client, slots, r) for r in rows))

    async def _one(self, client: Any, slots: asyncio.Semaphore, row: Any) -> Completion:
        async with slots:
            start = time.perf_counter()
            try:
                # The client's timeout is per read (a body trickled a byte at a time
                # outlives it): one deadline for the request and its retries.
                resp = await asyncio.wait_for(
                    client.chat.completions.create(
                        model=self.model,
                        messages=chat_messages(row),
                        temperature=float(row.temperature),
                        seed=int(row.seed),
                        max_tokens=int(row.max_tokens),
                        extra_body=self.cfg.extra_body or None,
                        **structured_output(row),
                    ),
                    timeout=self.cfg.timeout_s * (self.cfg.retries + 1),
                )
                return completion(resp, int(row.max_tokens), time.perf_counter() - start)
            except Exception as e:  # noqa: BLE001 - the row carries the error, the run goes on
                error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                return Completion(error=redact_text(error), latency=time.perf_counter() - start)

    def close(self) -> None:
        """Waits for the batches in flight."""
        for _, pool in self._pools:
            pool.shutdown()
