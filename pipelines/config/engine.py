"""``model`` and ``engine`` groups: what is loaded and how it is served (vllm, openai)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional  # noqa: UP035

from omegaconf import MISSING

from pipelines import UserError


@dataclass
class ModelConfig:
    name: str = MISSING
    # Local folder or hub id handed to the engine.
    path: str = MISSING
    dtype: str = "bfloat16"
    max_model_len: int = 2048


@dataclass
class EngineConfig:
    """What every engine option has; each option extends it."""

    name: str = MISSING
    # GPUs per engine replica; null: 1 when the cluster has GPUs, else 0.
    num_gpus: Optional[float] = None  # noqa: UP045
    # Pipeline batches each replica holds at once (one queue for the engine's
    # scheduler); 1 is the deterministic mode (`deterministic=true`).
    batches_in_flight: int = 8

    def __post_init__(self) -> None:
        if self.batches_in_flight < 1:
            raise UserError(f"engine.batches_in_flight must be >= 1, got {self.batches_in_flight}")

    def replica_gpus(self, cluster_gpus: float) -> float:
        """GPUs each replica asks for, on a cluster with ``cluster_gpus`` GPUs.

        The one place where this is decided; executors only honour it.
        """
        if self.num_gpus is not None:
            return float(self.num_gpus)
        return 1.0 if cluster_gpus > 0 else 0.0

    def served_name(self, model: ModelConfig) -> str:
        """The model name requests and messages carry."""
        return model.name


@dataclass
class VLLMEngineConfig(EngineConfig):
    """In-process ``vllm.LLM``, one per executor replica."""

    name: str = "vllm"
    enforce_eager: bool = True
    # Share of device (or, on CPU, host) memory for weights and KV cache; vLLM's
    # default 0.92 does not start on a 24 GiB host.
    gpu_memory_utilization: float = 0.3
    # Seeded requests + chunked prefill crash the CPU build ("CPU Generator does
    # not use offset") once a prefill is split across steps.
    enable_chunked_prefill: bool = False
    # Where vLLM's engine core (scheduler and model) runs: true, in the process
    # that holds the engine (VLLM_ENABLE_V1_MULTIPROCESSING=0); false, in
    # processes of its own (vLLM's default); null, true on a CPU engine host that
    # has a process to itself (executor=ray), else false. Outputs do not change;
    # inline, the load spawns no engine and worker processes (each imports vLLM
    # again). On CPU an inline engine uses every allowed CPU less
    # VLLM_CPU_NUM_OF_RESERVED_CPU, as vLLM's own CPU worker does.
    inline_core: Optional[bool] = None  # noqa: UP045
    # KV cache block size in tokens; null: 32 on CPU (vLLM's CPU default is 128),
    # vLLM's default elsewhere (16 on a GPU). Prefix caching (on by default) reuses
    # whole blocks only: a council's agents share their ~80-token role and task
    # prompt, which fills no 128-token block, and two of 32 (measured on CPU,
    # role=all: busy time 0.51x that of block 128).
    block_size: Optional[int] = None  # noqa: UP045
    # Passed to vllm.LLM as is: +engine.extra_engine_kwargs.max_num_seqs=64
    extra_engine_kwargs: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    # Set for the engine unless already in the environment. The CPU build keeps
    # one core for its front end by default, halving decode on two cores.
    env: Dict[str, str] = field(  # noqa: UP006
        default_factory=lambda: {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.gpu_memory_utilization <= 1:
            raise UserError(
                f"engine.gpu_memory_utilization must be in (0, 1], got "
                f"{self.gpu_memory_utilization}"
            )


@dataclass
class OpenAIEngineConfig(EngineConfig):
    """A running OpenAI-compatible server (``vllm serve``); workers send HTTP."""

    name: str = "openai"
    num_gpus: Optional[float] = 0.0  # noqa: UP045
    # Server root, with or without /v1.
    url: Optional[str] = None  # noqa: UP045
    # The model name the server serves; null: model.name.
    served_model: Optional[str] = None  # noqa: UP045
    # Environment variable holding the API key, if the server wants one.
    api_key_env: str = "VLLM_API_KEY"
    # Requests in flight per worker: at least batch_size, so a whole batch is in flight.
    max_concurrency: int = 64
    # Per request; each retry has its own.
    timeout_s: float = 120.0
    # Retries after the first attempt (connection errors, 408, 409, 429, 5xx).
    retries: int = 3
    # Extra request fields: +engine.extra_body.top_k=20
    extra_body: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_concurrency < 1 or self.timeout_s <= 0 or self.retries < 0:
            raise UserError(
                "engine.max_concurrency must be >= 1, engine.timeout_s > 0 and engine.retries >= 0"
            )

    def served_name(self, model: ModelConfig) -> str:
        return self.served_model or model.name
