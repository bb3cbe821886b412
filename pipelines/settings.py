"""Turn the composed Hydra config into typed settings, once, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipelines import PROJECT_ROOT, UserError
from pipelines.council import CouncilSpec
from pipelines.engines import EngineConfig
from pipelines.executors import ExecutorConfig
from pipelines.sinks import SinkConfig
from pipelines.tracking import TrackingConfig

ROLE_DIR = PROJECT_ROOT / "conf" / "role"
DATASET_DIR = PROJECT_ROOT / "datasets"
ALL_ROLES = "all"


@dataclass(frozen=True)
class RunSettings:
    """Everything a pipeline run needs, typed and checked."""

    role: str
    system_prompts: dict[str, str]
    datasets: tuple[Path, ...]
    council: CouncilSpec
    limit: int | None
    engine: EngineConfig
    executor: ExecutorConfig
    sink: SinkConfig
    tracking: TrackingConfig
    experiment: str = "none"
    scaling_sizes: tuple[int, ...] = ()
    embeddings: bool = True

    @property
    def roles(self) -> list[str]:
        """The roles whose tasks this run evaluates."""
        return sorted(self.system_prompts)


def known_roles() -> list[str]:
    """Roles with a config file in ``conf/role/`` (``all`` excluded)."""
    return sorted(p.stem for p in ROLE_DIR.glob("*.yaml") if p.stem != ALL_ROLES)


def role_prompts(role: str, system_prompt: str) -> dict[str, str]:
    """System prompt per role evaluated: one role, or every role for ``all``."""
    if role != ALL_ROLES:
        return {role: system_prompt}
    return {r: str(OmegaConf.load(ROLE_DIR / f"{r}.yaml").system_prompt) for r in known_roles()}


def from_config(cfg: DictConfig) -> RunSettings:
    """Typed, validated settings from a composed config."""
    role = cfg.role.name
    if role not in (*known_roles(), ALL_ROLES):
        raise UserError(f"unknown role {role!r}; known: {[*known_roles(), ALL_ROLES]}")
    prompts = role_prompts(role, cfg.role.system_prompt)
    if cfg.dataset is not None:
        datasets: tuple[Path, ...] = (Path(cfg.dataset),)
    else:
        datasets = tuple(DATASET_DIR / f"{r}.jsonl" for r in sorted(prompts))
    if cfg.limit is not None and cfg.limit < 1:
        raise UserError(f"limit must be >= 1 (or null), got {cfg.limit}")
    council = CouncilSpec(
        agents=cfg.agents,
        temperature=cfg.temperature,
        diversity_factor=cfg.diversity_factor,
        max_temperature=cfg.max_temperature,
        max_tokens=cfg.max_tokens,
        seed=cfg.seed,
    )
    sizes = tuple(cfg.experiment.agents)
    if cfg.experiment.name == "scaling" and (not sizes or min(sizes) < 1):
        raise UserError(f"experiment.agents must be council sizes >= 1, got {list(sizes)}")
    # conf/engine mirrors EngineConfig; the model group adds what it fixes.
    engine_conf = OmegaConf.to_container(cfg.engine, resolve=True)
    served_model = engine_conf.pop("served_model") or cfg.model.name
    engine = EngineConfig(
        **engine_conf,
        model=cfg.model.path,
        served_model_name=served_model,
        dtype=cfg.model.dtype,
        max_model_len=cfg.model.max_model_len,
    )
    if engine.max_concurrency < 1 or engine.timeout_s <= 0 or engine.retries < 0:
        raise UserError(
            "engine.max_concurrency must be >= 1, engine.timeout_s > 0 and engine.retries >= 0"
        )
    executor = ExecutorConfig(
        name=cfg.executor.name,
        concurrency=cfg.executor.concurrency,
        batch_size=cfg.executor.batch_size,
        address=cfg.executor.address,
        num_cpus=cfg.executor.num_cpus,
    )
    return RunSettings(
        role=role,
        system_prompts=prompts,
        datasets=datasets,
        council=council,
        limit=cfg.limit,
        engine=engine,
        executor=executor,
        sink=SinkConfig(**OmegaConf.to_container(cfg.sink, resolve=True)),
        tracking=TrackingConfig(**OmegaConf.to_container(cfg.tracking, resolve=True)),
        experiment=cfg.experiment.name,
        scaling_sizes=sizes,
        embeddings=cfg.embeddings,
    )
