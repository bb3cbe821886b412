"""The whole run: :class:`RunConfig`, its composition and its record in run.json."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from pipelines import PROJECT_ROOT, UserError, runs_root
from pipelines.config.deliberation import (
    SELF_CONSISTENCY,
    DeliberationConfig,
    ExperimentConfig,
    JudgeConfig,
    OpenAIJudgeConfig,
)
from pipelines.config.engine import EngineConfig, ModelConfig, OpenAIEngineConfig, VLLMEngineConfig
from pipelines.config.executor import ExecutorConfig
from pipelines.config.roles import (
    DATASET_DIR,
    CouncilSpec,
    DatasetCaps,
    RoleConfig,
)
from pipelines.config.sink import NatsSinkConfig, SinkConfig
from pipelines.config.tracking import MlflowTrackingConfig, TrackingConfig
from pipelines.spec.protocol import Protocol

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
    # pipelines/flow/tasks.py; dataset_caps.max_tasks=500000 raises one.
    dataset_caps: DatasetCaps = field(default_factory=DatasetCaps)
    # Compute embedding_diversity when the embedding model is installed.
    embeddings: bool = True
    # Seconds of sandboxed code checks (python_tests tasks) in one scoring; past
    # them a code proposal is "unscored" (not run, not wrong). null: no limit.
    code_budget_s: Optional[float] = 1800.0  # noqa: UP045
    # A deliberation whose agents answer further apart than this is TIMEOUT.
    deliberation_timeout_s: float = 300.0
    # Response cache (pipelines/flow/cache.py): true answers hits and keeps the rest,
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
        if self.code_budget_s is not None and self.code_budget_s <= 0:
            raise UserError(f"code_budget_s must be > 0 (or null), got {self.code_budget_s}")
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
        if self.experiment.name == SELF_CONSISTENCY:
            self._one_agent_at_the_council_budget()

    def _one_agent_at_the_council_budget(self) -> None:
        """``experiment=self_consistency``: agent 1 of the council (base temperature, no
        persona) sampled as many times per task as the council described by ``agents``
        and ``deliberation.*`` sends requests (proposals, rankings, chair), one round;
        the majority vote of its samples is its answer. Idempotent (a resume re-reads it)."""
        if self.judge.name != "none":
            raise UserError(
                "experiment=self_consistency votes over samples; run it with judge=none"
            )
        d, e = self.deliberation, self.experiment
        council = Protocol(d.rounds, d.rank, d.chair).requests(self.agents)
        if e.samples is not None and e.samples < 1:
            raise UserError(f"experiment.samples must be >= 1 (or null), got {e.samples}")
        if e.samples is None:
            steps = [f"rounds={d.rounds}"] + [
                s for s, on in (("rank", d.rank), ("chair", d.chair)) if on
            ]
            e.budget_of = f"agents={self.agents} " + " ".join(steps)
            e.samples = council
        self.agents, self.diversity_factor, self.personas = e.samples, 1.0, False
        self.deliberation = DeliberationConfig()

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
    def protocol(self) -> Protocol:
        """What this run's deliberation asks of each (task, repeat)."""
        d = self.deliberation
        return Protocol(d.rounds, d.rank, d.chair, judge=self.judge.name != "none")

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
