"""The config schemas, which are also the runtime types.

One dataclass per config-group option. Hydra registers them (:func:`register`),
each ``conf/<group>/<option>.yaml`` extends its schema through its defaults
list and sets only what differs, and :func:`load` turns the composed config
into these classes with ``OmegaConf.to_object``, which runs each class's
``__post_init__`` checks: a wrong type fails at composition, a bad value at
load, both before anything starts. A field and its default are written here
and nowhere else.

``OmegaConf`` needs ``typing`` generics (``Optional``, ``Dict``, ``List``),
hence the ``noqa`` marks.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional  # noqa: UP035

from omegaconf import MISSING, DictConfig, OmegaConf

from pipelines import PROJECT_ROOT, UserError, runs_root
from pipelines.ids import check_id, dotted
from pipelines.tasks import DatasetCaps

ROLE_DIR = PROJECT_ROOT / "conf" / "role"
DATASET_DIR = PROJECT_ROOT / "datasets"
ALL_ROLES = "all"


def known_roles() -> list[str]:
    """Roles with a config file in ``conf/role/`` (``all`` excluded)."""
    return sorted(p.stem for p in ROLE_DIR.glob("*.yaml") if p.stem != ALL_ROLES)


@dataclass
class CouncilSpec:
    """How a council answers: size, temperature schedule, budget, seed.

    The run config extends it, so these are top-level keys (``agents=5``).
    """

    agents: int = 3
    temperature: float = 0.7
    diversity_factor: float = 1.3
    max_temperature: float = 2.0
    # Generation cap per proposal (a task's own max_tokens may lower it).
    max_tokens: int = 256
    # Run seed; per-(task, agent, repeat) seeds derive from it.
    seed: int = 0
    # Samples per (task, agent), each with its own seed; metrics average over them.
    repeats: int = 1
    # Append the role's persona lines (conf/role/<role>.yaml) to its prompt, cycled
    # over the agents: agent i gets persona (i-1) mod len.
    personas: bool = False

    def __post_init__(self) -> None:
        if self.agents < 1:
            raise UserError(f"agents must be >= 1, got {self.agents}")
        if self.repeats < 1:
            raise UserError(f"repeats must be >= 1, got {self.repeats}")
        if self.temperature < 0:
            raise UserError(f"temperature must be >= 0, got {self.temperature}")
        if self.diversity_factor <= 0:
            raise UserError(f"diversity_factor must be > 0, got {self.diversity_factor}")
        if self.max_temperature < self.temperature:
            raise UserError(
                f"max_temperature ({self.max_temperature}) is below temperature "
                f"({self.temperature})"
            )
        if self.max_tokens < 1:
            raise UserError(f"max_tokens must be >= 1, got {self.max_tokens}")


@dataclass
class RolePrompt:
    name: str = MISSING
    # The agents' system prompt.
    system_prompt: str = ""
    # Short persona lines; with personas=true agent i's prompt ends with line (i-1) mod len.
    personas: List[str] = field(default_factory=list)  # noqa: UP006


@dataclass
class RoleConfig(RolePrompt):
    # role=all: every role, composed by Hydra from conf/role/<role>.yaml.
    members: Dict[str, RolePrompt] = field(default_factory=dict)  # noqa: UP006

    def __post_init__(self) -> None:
        if self.name == ALL_ROLES:
            missing = sorted(set(known_roles()) - set(self.members))
            if missing:
                raise UserError(f"conf/role/all.yaml lacks role(s) {missing}")
        elif self.name not in known_roles():
            raise UserError(f"unknown role {self.name!r}; known: {[*known_roles(), ALL_ROLES]}")
        for name in self.prompts:  # it reaches NATS subjects and keys
            try:
                check_id(name, "role")
            except ValueError as e:
                raise UserError(str(e)) from None

    @property
    def system_prompts(self) -> dict[str, str]:
        """System prompt per role evaluated: this role, or every member of ``all``."""
        return {name: r.system_prompt for name, r in self.prompts.items()}

    @property
    def prompts(self) -> dict[str, RolePrompt]:
        """Each role evaluated, by name: this role, or every member of ``all``."""
        if self.members:
            return {m.name: m for m in self.members.values()}
        return {self.name: self}


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


@dataclass
class ExecutorConfig:
    name: str = MISSING
    # Engine replicas (Ray actors, Dask LocalCluster workers).
    concurrency: int = 1
    # Cluster address; null: RAY_ADDRESS / DASK_SCHEDULER_ADDRESS, else a local cluster.
    address: Optional[str] = None  # noqa: UP045
    # CPUs per replica (Ray actors; Dask workers run one thread each).
    num_cpus: float = 1.0
    # Ray: times an engine host whose engine died is restarted (a fresh engine);
    # the batches it held are retried on it. Local and Dask stop the run instead.
    engine_restarts: int = 2

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UserError(f"executor.concurrency must be >= 1, got {self.concurrency}")
        if self.engine_restarts < 0:
            raise UserError(f"executor.engine_restarts must be >= 0, got {self.engine_restarts}")


@dataclass
class SinkConfig:
    """What every sink option has; ``sink=none`` is this alone."""

    name: str = MISSING


@dataclass
class NatsSinkConfig(SinkConfig):
    """NATS JetStream: agent.response.completed|failed, deliberation.completed|failed."""

    name: str = "nats"
    # Server URL; null: an embedded nats-server, its store in <run dir>/nats.
    url: Optional[str] = None  # noqa: UP045
    # Created if missing, over agent.response.> and deliberation.>.
    stream: str = "COUNCIL"
    # Unacked publishes at once.
    max_in_flight: int = 1024
    # Wait for all acks at most this long.
    ack_timeout_s: float = 30.0
    # Server-side dedupe window for replays (Nats-Msg-Id).
    duplicate_window_s: float = 86400.0
    # Atomic batches, one ack each (nats-server >= 2.12); else one ack per message.
    atomic_batches: bool = True
    # Run a deliberation collector inside the run (else: python -m pipelines.collect).
    collector: bool = True
    # JetStream key-value bucket of deliberation statuses, keyed <run_id>.<role>.<task_id>.
    status_bucket: str = "council_status"
    # Retention of a stream / bucket this sink creates, or one that has no limit
    # (an operator's own limits are kept): oldest messages go first.
    stream_max_age_s: float = 30 * 86400.0
    stream_max_bytes: int = 4 << 30
    status_max_age_s: float = 30 * 86400.0
    status_max_bytes: int = 256 << 20

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise UserError(f"sink.max_in_flight must be >= 1, got {self.max_in_flight}")
        for key in ("stream", "status_bucket"):
            try:  # they reach subjects: $JS.API.STREAM.INFO.<stream>, $KV.<bucket>.<key>
                dotted(getattr(self, key))
            except ValueError as e:
                raise UserError(f"sink.{key}: {e}") from None
        if self.duplicate_window_s > self.stream_max_age_s > 0:
            raise UserError(
                f"sink.duplicate_window_s ({self.duplicate_window_s}) exceeds "
                f"sink.stream_max_age_s ({self.stream_max_age_s})"
            )

    def resolved_url(self) -> str | None:
        """``url``, else ``NATS_URL``; None: start an embedded server."""
        return self.url or os.environ.get("NATS_URL") or None


@dataclass
class TrackingConfig:
    """What every tracking option has; ``tracking=none`` is this alone."""

    name: str = MISSING


@dataclass
class MlflowTrackingConfig(TrackingConfig):
    """MLflow: one MLflow run per pipeline run."""

    name: str = "mlflow"
    # Tracking URI; null: MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db.
    uri: Optional[str] = None  # noqa: UP045
    # Experiment; null: council-eval/<role>.
    experiment: Optional[str] = None  # noqa: UP045
    # Log every proposal, with its keyword scores, as a row of one table per run
    # (proposals.json: one write whatever the run's size); false logs only the
    # run's figures, tables and files.
    rows: bool = True
    # Also log each proposal as an evaluation row (a trace with its scores) in
    # MLflow's Traces / Evaluation tab: ~63 ms a proposal on SQLite, for small runs.
    traces: bool = False

    def resolved_uri(self) -> str:
        return (
            self.uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
        )


@dataclass
class ExperimentConfig:
    name: str = "none"
    # Council sizes of the scaling experiment.
    agents: List[int] = field(default_factory=list)  # noqa: UP006


REVISE_PROMPT = (
    "Other members of the council answered the same task. Critique their proposals and "
    "your own: what is right, what is wrong, what is missing. Then write your revised "
    "proposal."
)
RANK_PROMPT = (
    "Rank the proposals below from best to worst for the task: correctness, relevance and "
    "completeness. Answer with JSON only: the proposal letters, best first."
)
CHAIR_PROMPT = (
    "You chair the council. Its members answered the task below and ranked each other's "
    "proposals. Write the council's final answer: keep what the proposals get right, fix "
    "what they get wrong, and be concise."
)
RUBRIC = (
    "Score the answer to the task below from 1 (useless) to 10 (excellent) for correctness, "
    "relevance and completeness. Answer with JSON only."
)


@dataclass
class DeliberationConfig:
    """Rounds of critique and revision, peer ranking and a chair (pipelines/plan.py)."""

    # Rounds of proposals; in round r >= 2 each agent revises after reading the
    # others' round r-1 proposals, anonymized and shuffled.
    rounds: int = 1
    # After the last round each agent ranks the anonymized final proposals, twice
    # (the second time in reversed order, to measure position bias).
    rank: bool = False
    # One more request writes the council's final answer from the proposals and
    # the aggregate ranking; if it fails the top-ranked proposal stands in.
    chair: bool = False
    rank_max_tokens: int = 64
    # null: max_tokens.
    chair_max_tokens: Optional[int] = None  # noqa: UP045
    revise_prompt: str = REVISE_PROMPT
    rank_prompt: str = RANK_PROMPT
    chair_prompt: str = CHAIR_PROMPT

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise UserError(f"deliberation.rounds must be >= 1, got {self.rounds}")
        if self.rank_max_tokens < 1 or (self.chair_max_tokens or 1) < 1:
            raise UserError("deliberation.rank_max_tokens and chair_max_tokens must be >= 1")


@dataclass
class JudgeConfig:
    """Rubric scores (1-10) of each proposal and the chair's answer, as structured
    output; the judge never sees who wrote what. ``judge=none`` is this alone."""

    name: str = MISSING
    max_tokens: int = 16
    temperature: float = 0.0
    rubric: str = RUBRIC

    def __post_init__(self) -> None:
        if self.max_tokens < 1 or self.temperature < 0:
            raise UserError("judge.max_tokens must be >= 1 and judge.temperature >= 0")


@dataclass
class OpenAIJudgeConfig(JudgeConfig):
    """``judge=openai``: the judge is any OpenAI-compatible server, not the council's engine."""

    name: str = "openai"
    engine: OpenAIEngineConfig = field(default_factory=OpenAIEngineConfig)
    # The judge server's model (the name it serves).
    model: Optional[str] = None  # noqa: UP045

    def model_config(self) -> ModelConfig:
        if not self.model:
            raise UserError("judge=openai needs the judge's model: set JUDGE_MODEL or judge.model")
        return ModelConfig(name=self.model, path=self.model)


CACHE_MODES = ("true", "false", "refresh")


@dataclass
class FailOnConfig:
    """What makes a finished run exit non-zero (3), so a scheduled run's status is true."""

    # Messages the sink never saw acked (they wait in outbox.jsonl).
    unpublished: bool = True
    # The tracker failed (the run's files are on disk; ``pipelines.track`` logs them later).
    tracking: bool = True
    # Share of requests that ended in an error row; more than this fails the run.
    max_error_rate: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise UserError(f"fail_on.max_error_rate must be in [0, 1], got {self.max_error_rate}")


@dataclass
class RunConfig(CouncilSpec):
    """A whole run: the council (top-level keys) and every plug-in."""

    role: RoleConfig = MISSING
    model: ModelConfig = MISSING
    engine: EngineConfig = MISSING
    executor: ExecutorConfig = MISSING
    sink: SinkConfig = MISSING
    tracking: TrackingConfig = MISSING
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    judge: JudgeConfig = MISSING
    deliberation: DeliberationConfig = field(default_factory=DeliberationConfig)
    fail_on: FailOnConfig = field(default_factory=FailOnConfig)
    # JSONL task file; null: datasets/<role>.jsonl (every role's file for role=all).
    dataset: Optional[str] = None  # noqa: UP045
    # Requests per pipeline batch: the unit that lands (a part, its messages).
    batch_size: int = 32
    # One batch in an engine at a time (engine.batches_in_flight=1): bit-equal
    # batches on a batch-variant engine, at the cost of throughput.
    deterministic: bool = False
    # Only the first `limit` tasks (per role for role=all).
    limit: Optional[int] = None  # noqa: UP045
    # What a dataset may hold (lines, prompts, keywords, tasks): DatasetCaps in
    # pipelines/tasks.py; dataset_caps.max_tasks=500000 raises one.
    dataset_caps: DatasetCaps = field(default_factory=DatasetCaps)
    # Compute embedding_diversity when the embedding model is installed.
    embeddings: bool = True
    # A deliberation whose agents answer further apart than this is TIMEOUT.
    deliberation_timeout_s: float = 300.0
    # Response cache (pipelines/cache.py): true answers hits and keeps the rest,
    # refresh generates everything and keeps it, false neither.
    cache: str = "true"
    # The cache's folder; null: <runs root>/cache.
    cache_dir: Optional[str] = None  # noqa: UP045

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.limit is not None and self.limit < 1:
            raise UserError(f"limit must be >= 1 (or null), got {self.limit}")
        if self.batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {self.batch_size}")
        self.cache = str(self.cache).lower()  # `cache=true` arrives as a bool
        if self.cache not in CACHE_MODES:
            raise UserError(f"cache must be one of {CACHE_MODES}, got {self.cache!r}")
        sizes = self.experiment.agents
        if self.experiment.name == "scaling" and self.deliberates:
            raise UserError(
                "experiment=scaling times single answers per council size; run deliberation "
                "(deliberation.*, judge) without it"
            )
        if self.experiment.name == "scaling" and (not sizes or min(sizes) < 1):
            raise UserError(f"experiment.agents must be council sizes >= 1, got {list(sizes)}")

    def batches_in_flight(self) -> int:
        """Batches each engine replica holds at once: one in the deterministic mode,
        and in the scaling experiment (each arm is timed on its own)."""
        if self.deterministic or self.experiment.name == "scaling":
            return 1
        return self.engine.batches_in_flight

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else runs_root() / "cache"

    @property
    def system_prompts(self) -> dict[str, str]:
        return self.role.system_prompts

    @property
    def role_personas(self) -> dict[str, list[str]]:
        """Persona lines per role when ``personas`` is on, else none."""
        if not self.personas:
            return {}
        return {name: list(r.personas) for name, r in self.role.prompts.items()}

    @property
    def deliberates(self) -> bool:
        """Whether requests depend on other answers (rounds, ranking, chair, judge)."""
        d = self.deliberation
        return d.rounds > 1 or d.rank or d.chair or self.judge.name != "none"

    @property
    def roles(self) -> list[str]:
        """The roles whose tasks this run evaluates."""
        return sorted(self.system_prompts)

    @property
    def datasets(self) -> tuple[Path, ...]:
        if self.dataset is not None:
            return (Path(self.dataset),)
        return tuple(DATASET_DIR / f"{r}.jsonl" for r in self.roles)

    @property
    def served_model(self) -> str:
        return self.engine.served_name(self.model)


SCHEMAS: dict[str, dict[str, type]] = {
    "engine": {"vllm": VLLMEngineConfig, "openai": OpenAIEngineConfig},
    "executor": {"ray": ExecutorConfig, "dask": ExecutorConfig, "local": ExecutorConfig},
    "sink": {"nats": NatsSinkConfig, "none": SinkConfig},
    "tracking": {"mlflow": MlflowTrackingConfig, "none": TrackingConfig},
    "judge": {"none": JudgeConfig, "council": JudgeConfig, "openai": OpenAIJudgeConfig},
}
"""Schema of each option of the plug-in groups; ``conf/<group>/<option>.yaml``
extends ``/schema/<group>/<option>``."""


def register() -> None:
    """Register the schemas and the ``project_root`` resolver (idempotent)."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    store = ConfigStore.instance()
    store.store(name="schema", node=RunConfig)
    for group, options in SCHEMAS.items():
        for option, schema in options.items():
            store.store(group=f"schema/{group}", name=option, node=schema)


def load(cfg: DictConfig) -> RunConfig:
    """The typed run config from a composed one; raises :class:`UserError`."""
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Compose ``conf/`` with Hydra overrides, outside a Hydra app."""
    from hydra import compose, initialize_config_dir

    register()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return load(compose("config", overrides=list(overrides)))


def to_record(cfg: RunConfig) -> dict[str, Any]:
    """Every resolved group of ``cfg`` as plain data (for run.json); see
    :func:`from_record`."""
    return asdict(cfg)


def from_record(record: dict[str, Any]) -> RunConfig:
    """The run config that :func:`to_record` wrote, typed again.

    The record is data: a ``${...}`` in one of its strings (a prompt, a URL)
    stays as written instead of being resolved (``${oc.env:VLLM_API_KEY}``).
    """
    record = _literal(record)
    node = OmegaConf.structured(RunConfig)
    for group, options in SCHEMAS.items():
        value = record.get(group, {"name": "none"})  # runs from before the group existed
        if value["name"] not in options:
            raise UserError(f"unknown {group} {value['name']!r}; known: {sorted(options)}")
        node[group] = OmegaConf.merge(OmegaConf.structured(options[value["name"]]), value)
    rest = {k: v for k, v in record.items() if k not in SCHEMAS}
    return load(OmegaConf.merge(node, rest))


def _literal(value: Any) -> Any:
    """``value`` with every string escaped against OmegaConf's interpolation."""
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, str):
        # OmegaConf reads "\\${" as a literal "${", and "\\\\" before "${" as one backslash.
        return re.sub(r"(\\*)\$\{", lambda m: m[1] * 2 + "\\${", value)
    return value
