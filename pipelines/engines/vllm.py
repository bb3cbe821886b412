"""In-process vLLM engine: one ``vllm.LLM`` fed from a queue of batches.

One thread owns the engine: it loads it, adds the requests of up to
``batches_in_flight`` batches (``LLM.enqueue_chat``, the rendering
``LLM.chat`` uses) and steps the engine (``LLMEngine.step``) while any is
unfinished. vLLM's scheduler therefore sees one continuous queue: when a batch
finishes, the next one's requests join those still running instead of
waiting for the slowest request of the batch before. Each batch resolves its
own future as soon as its last request finishes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psutil

from pipelines import UserError
from pipelines.config import ModelConfig, VLLMEngineConfig
from pipelines.engines import Completion, EngineFailed, chat_messages, json_schema
from pipelines.runtime.procs import live_descendants, reap

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class _Batch:
    """One submitted batch while its requests are in the engine."""

    rows: list[Any]
    future: Future
    on_start: Callable[[], None] | None = None
    done: dict[int, Completion] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    """Request id → row position."""
    started: float = 0.0
    """Unix time the engine took the batch in."""

    def finish(self) -> None:
        self.future.set_result([self.done[i] for i in range(len(self.rows))])


def load_llm(cfg: VLLMEngineConfig, model: ModelConfig) -> tuple[Any, list[psutil.Process]]:
    """A ``vllm.LLM`` with the run's settings, and the engine processes it started."""
    for key, value in cfg.env.items():
        os.environ.setdefault(key, str(value))  # the caller's environment wins
    from vllm import LLM, envs
    from vllm.utils.system_utils import set_env_var

    start = time.perf_counter()
    before = {p.pid for p in live_descendants()}
    # Both variables only for the load: engines loaded later in this process,
    # and the processes they spawn, see the process's own.
    with contextlib.ExitStack() as load:
        inline_core = core_placement(cfg.inline_core)
        if inline_core is not None:
            mode = "0" if inline_core else "1"
            load.enter_context(set_env_var("VLLM_ENABLE_V1_MULTIPROCESSING", mode))
        envs.disable_envs_cache()  # an earlier engine in this process froze vLLM's settings
        inline = not envs.VLLM_ENABLE_V1_MULTIPROCESSING
        if inline and (threads := inline_cpu_threads()):
            load.enter_context(set_env_var("OMP_NUM_THREADS", str(threads)))
        llm = LLM(
            model=model.path,
            served_model_name=cfg.served_name(model),
            dtype=model.dtype,
            max_model_len=model.max_model_len,
            enforce_eager=cfg.enforce_eager,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            # Seeded requests + chunked prefill crash the CPU build (VLLMEngineConfig).
            enable_chunked_prefill=cfg.enable_chunked_prefill,
            **block_size(cfg),
            **cfg.extra_engine_kwargs,
        )
    procs = [p for p in live_descendants("VLLM::") if p.pid not in before]
    log.info(
        "vllm: loaded %s in %.1f s, engine core %s",
        model.path,
        time.perf_counter() - start,
        "inline" if inline else f"in {len(procs)} process(es) of its own",
    )
    return llm, procs


CPU_BLOCK_SIZE = 32
"""KV block size on CPU: a council's shared prompt prefix fills whole blocks that
prefix caching reuses (VLLMEngineConfig.block_size)."""


def block_size(cfg: VLLMEngineConfig) -> dict[str, int]:
    """``block_size`` for ``vllm.LLM``: the config's, else 32 on CPU, else vLLM's."""
    if "block_size" in cfg.extra_engine_kwargs:
        return {}
    if cfg.block_size is not None:
        return {"block_size": cfg.block_size}
    from vllm.platforms import current_platform

    return {"block_size": CPU_BLOCK_SIZE} if current_platform.is_cpu() else {}


def core_placement(inline_core: bool | None) -> bool | None:
    """``engine.inline_core`` where this process can honour it. A daemonic process
    (the worker of a stock ``dask worker``, under its nanny) may not start
    children, so vLLM's engine core process cannot start there: the core runs
    inline unless the config asks otherwise, which is then an error that says
    what to change."""
    if not multiprocessing.current_process().daemon:
        return inline_core
    if inline_core is False:
        raise UserError(
            "engine.inline_core=false, but this worker is a daemonic process and may not "
            "start vLLM's engine core process: leave engine.inline_core unset, or start the "
            "Dask workers with DASK_DISTRIBUTED__WORKER__DAEMON=False"
        )
    if inline_core is None:
        log.info("vllm: a daemonic worker process: the engine core runs inline")
    return True


def inline_cpu_threads() -> int | None:
    """For an inline engine on CPU: set this thread's torch threads to those vLLM's
    CPU worker would take, every CPU this process may run on less
    ``VLLM_CPU_NUM_OF_RESERVED_CPU``, and return how many (None on a GPU). Ray
    sets ``OMP_NUM_THREADS`` to an actor's ``num_cpus`` (1 by default), which an
    engine process of vLLM's own overrides and an inline one would keep."""
    import torch
    from vllm import envs
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return None
    threads = max(1, len(os.sched_getaffinity(0)) - (envs.VLLM_CPU_NUM_OF_RESERVED_CPU or 0))
    torch.set_num_threads(threads)  # OpenMP's count is per thread: the one that loads steps
    return threads


def engine_died(error: BaseException) -> bool:
    """Whether ``error`` says the engine core is gone (not one request's fault)."""
    from vllm.v1.engine.exceptions import EngineDeadError

    return isinstance(error, EngineDeadError | EngineFailed)


def close_llm(llm: Any, procs: list[psutil.Process]) -> None:
    """Stop the engine now, and return only once its processes are gone."""
    llm.llm_engine.engine_core.shutdown()
    # shutdown() signals the engine core; its worker can outlive it by
    # seconds on a loaded host.
    killed = reap(procs)
    if killed:
        log.warning("vllm: killed engine processes that outlived shutdown: %s", killed)


class VLLMEngine:
    """Owns one ``vllm.LLM``; per-request temperature, seed and max_tokens.

    ``submit`` is thread-safe and returns at once; every engine call happens on
    the engine's own thread.
    """

    def __init__(self, cfg: VLLMEngineConfig, model: ModelConfig) -> None:
        self.cfg, self.model = cfg, model
        self.batches_in_flight = cfg.batches_in_flight
        self._inbox: queue.Queue = queue.Queue()
        self._closed: Exception | None = None  # set once the engine takes no more batches
        self._closing = threading.Lock()
        self._procs: list[psutil.Process] = []
        loaded: Future = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(loaded,), name="vllm-engine", daemon=True
        )
        self._thread.start()
        loaded.result()  # the load's exception, if any, raises here

    def submit(self, requests: pd.DataFrame, on_start: Callable[[], None] | None = None) -> Future:
        """Queue one batch; the future gives its completions, in row order."""
        future: Future = Future()
        with self._closing:
            if self._closed is not None:
                future.set_exception(self._closed)
            else:
                self._inbox.put(_Batch(list(requests.itertuples(index=False)), future, on_start))
        return future

    def close(self) -> None:
        """Stops the engine; returns once its processes are gone."""
        with self._closing:
            if self._closed is None:
                self._closed = EngineFailed("the vLLM engine is closed")
                self._inbox.put(_STOP)
        self._thread.join()

    # -- the engine thread -------------------------------------------------

    def _serve(self, loaded: Future) -> None:
        try:
            llm, self._procs = load_llm(self.cfg, self.model)
        except BaseException as e:  # noqa: BLE001 - handed to the constructor's caller
            loaded.set_exception(e)
            return
        loaded.set_result(None)
        threading.Thread(
            target=self._watch, args=(llm,), name="vllm-engine-watch", daemon=True
        ).start()
        waiting: list[_Batch] = []  # submitted, not yet in the engine
        running: dict[str, _Batch] = {}  # request id → its batch
        admitted: list[_Batch] = []
        stopping = False
        try:
            while not stopping:
                # Block only when the engine is idle; else take what has arrived.
                block = not running and not waiting
                while True:
                    try:
                        item = self._inbox.get(block=block)
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    waiting.append(item)
                    block = False
                admitted = [b for b in admitted if not b.future.done()]
                while waiting and len(admitted) < self.batches_in_flight:
                    batch = waiting.pop(0)
                    batch.started = time.time()
                    if batch.on_start is not None:
                        batch.on_start()
                    self._enqueue(llm, batch, running)
                    admitted.append(batch)
                    if len(batch.done) == len(batch.rows):  # every row failed to enqueue
                        batch.finish()
                if running:
                    self._step(llm, running)
        except BaseException as e:  # every caller learns why
            failed = EngineFailed(f"the vLLM engine failed: {type(e).__name__}: {e}")
            log.error("vllm: %s", failed)
            self._fail([*waiting, *running.values()], failed)
            if not isinstance(e, Exception):
                raise
        finally:
            self._fail([*waiting, *running.values()], EngineFailed("the vLLM engine was closed"))
            self._shutdown(llm)

    def _enqueue(self, llm: Any, batch: _Batch, running: dict[str, _Batch]) -> None:
        """Add a batch's requests; a row the engine refuses gets an error completion."""
        try:
            ids = llm.enqueue_chat(
                [chat_messages(r) for r in batch.rows], self._params(batch.rows), use_tqdm=False
            )
            positions = list(enumerate(ids))
        except Exception as e:  # an engine-wide failure re-raises; else isolate the rows
            if engine_died(e):
                raise
            log.warning("vllm: batch of %d refused (%s); adding row by row", len(batch.rows), e)
            positions = []
            for i, row in enumerate(batch.rows):
                try:
                    (rid,) = llm.enqueue_chat(
                        [chat_messages(row)], self._params([row]), use_tqdm=False
                    )
                    positions.append((i, rid))
                except Exception as row_error:  # the row carries it
                    if engine_died(row_error):
                        raise
                    batch.done[i] = Completion(error=f"{type(row_error).__name__}: {row_error}")
        for i, rid in positions:
            # Outputs carry the caller's id; enqueue returns the engine's
            # ("<id>-<8 random characters>").
            key = rid.rsplit("-", 1)[0]
            batch.ids[key] = i
            running[key] = batch

    @staticmethod
    def _params(rows: list[Any]) -> list[Any]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        def structured(row: Any) -> Any:
            schema = json_schema(row)
            return StructuredOutputsParams(json=schema) if schema else None

        return [
            SamplingParams(
                temperature=float(r.temperature),
                seed=int(r.seed),
                max_tokens=int(r.max_tokens),
                structured_outputs=structured(r),
            )
            for r in rows
        ]

    @staticmethod
    def _step(llm: Any, running: dict[str, _Batch]) -> None:
        now = time.time()
        for out in llm.llm_engine.step():
            if not out.finished:
                continue
            batch = running.pop(out.request_id)
            gen = out.outputs[0]
            m = out.metrics
            latency = m.last_token_ts - m.queued_ts if m and m.last_token_ts else 0.0
            batch.done[batch.ids[out.request_id]] = Completion(
                proposal=gen.text,
                prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(gen.token_ids),
                finish_reason=gen.finish_reason or "",
                latency=latency or now - batch.started,
            )
            if len(batch.done) == len(batch.rows):
                batch.finish()

    def _watch(self, llm: Any) -> None:
        """Turn the death of an engine process into an error on the engine thread.

        vLLM's synchronous client never returns from ``step()`` once its engine
        core is gone: its monitor stops the output thread without queueing an
        error (its asynchronous client queues ``EngineDeadError``). Queue one.
        """
        from vllm.v1.engine.exceptions import EngineDeadError

        client = llm.llm_engine.engine_core
        outputs = getattr(client, "outputs_queue", None)
        if outputs is None or not self._procs:
            return  # an engine in this process: its failures raise here
        while self._closed is None:
            gone, _ = psutil.wait_procs(self._procs, timeout=1.0)
            if gone and self._closed is None:
                names = ", ".join(f"{p.pid}" for p in gone)
                log.error("vllm: engine process(es) died: pid %s", names)
                outputs.put_nowait(EngineDeadError())
                return

    def _fail(self, unfinished: list[_Batch], error: Exception) -> None:
        """Fail ``unfinished`` and whatever is still queued; refuse later batches."""
        with self._closing:
            self._closed = self._closed or error
            while True:
                try:
                    item = self._inbox.get(block=False)
                except queue.Empty:
                    break
                if item is not _STOP:
                    unfinished.append(item)
        for batch in unfinished:  # a batch may appear more than once
            if not batch.future.done():
                batch.future.set_exception(self._closed)

    def _shutdown(self, llm: Any) -> None:
        try:
            close_llm(llm, self._procs)
        except Exception as e:  # noqa: BLE001 - a failed engine may not shut down cleanly
            log.warning("vllm: shutting the engine down failed: %s", e)
            reap(self._procs, timeout=0)
