"""Structured Hydra config: the schema every ``conf/`` file is merged into.

Types are checked by OmegaConf when Hydra composes the config; ranges are
checked when :func:`pipelines.settings.from_config` builds the typed objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional  # noqa: UP035 - OmegaConf needs typing generics

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from pipelines import PROJECT_ROOT


@dataclass
class RoleConf:
    name: str = MISSING
    system_prompt: str = MISSING


@dataclass
class ModelConf:
    name: str = MISSING
    # Local folder or hub id handed to the engine.
    path: str = MISSING
    dtype: str = "bfloat16"
    max_model_len: int = 2048


@dataclass
class EngineConf:
    name: str = MISSING
    enforce_eager: bool = True
    gpu_memory_utilization: float = 0.3
    enable_chunked_prefill: bool = False
    # GPUs per engine replica; null: 1 when the cluster has GPUs, else 0.
    num_gpus: Optional[float] = None  # noqa: UP045
    extra_engine_kwargs: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    # Environment for the engine process, set unless already set.
    env: Dict[str, str] = field(default_factory=dict)  # noqa: UP006
    # engine=openai only: the server, its model name (null: model.name) and client.
    url: Optional[str] = None  # noqa: UP045
    served_model: Optional[str] = None  # noqa: UP045
    api_key_env: str = "VLLM_API_KEY"
    max_concurrency: int = 64
    timeout_s: float = 120.0
    retries: int = 3
    extra_body: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006


@dataclass
class ExecutorConf:
    name: str = MISSING
    concurrency: int = 1
    batch_size: int = 32
    address: Optional[str] = None  # noqa: UP045
    num_cpus: Optional[float] = None  # noqa: UP045


@dataclass
class SinkConf:
    name: str = "none"
    # NATS server URL; null: NATS_URL, else an embedded server in the run folder.
    url: Optional[str] = None  # noqa: UP045
    stream: str = "COUNCIL"
    max_in_flight: int = 1024
    ack_timeout_s: float = 30.0
    duplicate_window_s: float = 86400.0
    deliberation_timeout_s: float = 300.0
    # Atomic batches, one ack each (nats-server >= 2.12); else one ack per message.
    atomic_batches: bool = True


@dataclass
class TrackingConf:
    name: str = "none"
    # Tracking URI; null: MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db.
    uri: Optional[str] = None  # noqa: UP045
    # Experiment name; null: council-eval/<role>.
    experiment: Optional[str] = None  # noqa: UP045


@dataclass
class ExperimentConf:
    name: str = "none"
    # Council sizes of the scaling experiment.
    agents: List[int] = field(default_factory=list)  # noqa: UP006


@dataclass
class Config:
    role: RoleConf = MISSING
    model: ModelConf = MISSING
    engine: EngineConf = MISSING
    executor: ExecutorConf = MISSING
    sink: SinkConf = MISSING
    tracking: TrackingConf = MISSING
    experiment: ExperimentConf = field(default_factory=ExperimentConf)
    # JSONL task file; null: datasets/<role>.jsonl (every role's file for role=all).
    dataset: Optional[str] = None  # noqa: UP045
    agents: int = 3
    temperature: float = 0.7
    diversity_factor: float = 1.3
    max_temperature: float = 2.0
    max_tokens: int = 256
    seed: int = 0
    # Only the first `limit` tasks (per role for role=all).
    limit: Optional[int] = None  # noqa: UP045
    # Compute embedding_diversity when the embedding model is installed.
    embeddings: bool = True


def register() -> None:
    """Register the schema and the ``project_root`` resolver (idempotent)."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    ConfigStore.instance().store(name="schema", node=Config)
