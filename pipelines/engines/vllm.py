"""In-process vLLM engine: one ``vllm.LLM``, a whole batch per ``chat`` call."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pandas as pd

from pipelines.config import ModelConfig, VLLMEngineConfig
from pipelines.engines import Completion, chat_messages
from pipelines.procs import live_descendants, reap

log = logging.getLogger(__name__)


class VLLMEngine:
    """Owns one ``vllm.LLM``; per-request temperature, seed and max_tokens."""

    def __init__(self, cfg: VLLMEngineConfig, model: ModelConfig) -> None:
        for key, value in cfg.env.items():
            os.environ.setdefault(key, str(value))  # the caller's environment wins
        from vllm import LLM

        start = time.perf_counter()
        before = {p.pid for p in live_descendants()}
        self.llm = LLM(
            model=model.path,
            served_model_name=cfg.served_name(model),
            dtype=model.dtype,
            max_model_len=model.max_model_len,
            enforce_eager=cfg.enforce_eager,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            # Seeded requests + chunked prefill crash the CPU build (VLLMEngineConfig).
            enable_chunked_prefill=cfg.enable_chunked_prefill,
            **cfg.extra_engine_kwargs,
        )
        # The engine-core and worker processes this engine started, for close().
        self._procs = [p for p in live_descendants("VLLM::") if p.pid not in before]
        log.info("vllm: loaded %s in %.1f s", model.path, time.perf_counter() - start)

    def generate(self, requests: pd.DataFrame) -> list[Completion]:
        rows = list(requests.itertuples(index=False))
        try:
            return self._chat(rows)
        except Exception as e:  # noqa: BLE001 - isolate the failing rows below
            if len(rows) == 1:
                return [Completion(error=f"{type(e).__name__}: {e}")]
            log.warning("vllm: batch of %d failed (%s); retrying row by row", len(rows), e)
            return [c for row in rows for c in self.generate(pd.DataFrame([row]))]

    def _chat(self, rows: list[Any]) -> list[Completion]:
        from vllm import SamplingParams

        params = [
            SamplingParams(
                temperature=float(r.temperature), seed=int(r.seed), max_tokens=int(r.max_tokens)
            )
            for r in rows
        ]
        start = time.perf_counter()
        outputs = self.llm.chat([chat_messages(r) for r in rows], params, use_tqdm=False)
        wall = time.perf_counter() - start
        completions = []
        for out in outputs:
            gen = out.outputs[0]
            m = out.metrics
            # Engine timestamps when stats are on; else the batch's wall time.
            latency = m.last_token_ts - m.queued_ts if m and m.last_token_ts else wall
            completions.append(
                Completion(
                    proposal=gen.text,
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=len(gen.token_ids),
                    finish_reason=gen.finish_reason or "",
                    latency=latency,
                )
            )
        return completions

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            # Stops the engine-core process now rather than at interpreter exit.
            llm.llm_engine.engine_core.shutdown()
            self.llm = None
            # shutdown() signals the engine core; its worker can outlive it by
            # seconds on a loaded host. Return only once all are gone.
            killed = reap(self._procs)
            if killed:
                log.warning("vllm: killed engine processes that outlived shutdown: %s", killed)
