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

One module per group (``engine``, ``executor``, ``sink``, ``tracking``,
``deliberation``: experiment, deliberation and judge; ``roles``), and ``run``
for the whole :class:`RunConfig`; every name is importable from here.
"""

from pipelines.config.deliberation import (
    CHAIR_PROMPT,
    RANK_PROMPT,
    REVISE_PROMPT,
    RUBRIC,
    DeliberationConfig,
    ExperimentConfig,
    JudgeConfig,
    OpenAIJudgeConfig,
)
from pipelines.config.engine import EngineConfig, ModelConfig, OpenAIEngineConfig, VLLMEngineConfig
from pipelines.config.executor import ExecutorConfig
from pipelines.config.roles import (
    ALL_ROLES,
    DATASET_DIR,
    ROLE_DIR,
    CouncilSpec,
    DatasetCaps,
    RoleConfig,
    RolePrompt,
    known_roles,
)
from pipelines.config.run import (
    CACHE_MODES,
    SCHEMAS,
    FailOnConfig,
    RunConfig,
    compose_config,
    from_record,
    load,
    register,
    to_record,
)
from pipelines.config.sink import NatsSinkConfig, SinkConfig
from pipelines.config.tracking import MlflowTrackingConfig, TrackingConfig

__all__ = [
    "ALL_ROLES",
    "CACHE_MODES",
    "CHAIR_PROMPT",
    "DATASET_DIR",
    "RANK_PROMPT",
    "REVISE_PROMPT",
    "ROLE_DIR",
    "RUBRIC",
    "SCHEMAS",
    "CouncilSpec",
    "DatasetCaps",
    "DeliberationConfig",
    "EngineConfig",
    "ExecutorConfig",
    "ExperimentConfig",
    "FailOnConfig",
    "JudgeConfig",
    "MlflowTrackingConfig",
    "ModelConfig",
    "NatsSinkConfig",
    "OpenAIEngineConfig",
    "OpenAIJudgeConfig",
    "RoleConfig",
    "RolePrompt",
    "RunConfig",
    "SinkConfig",
    "TrackingConfig",
    "VLLMEngineConfig",
    "compose_config",
    "from_record",
    "known_roles",
    "load",
    "register",
    "to_record",
]
