"""The config schemas: every option composes into its own class, values are checked."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from pipelines import PROJECT_ROOT, UserError
from pipelines.config import (
    DATASET_DIR,
    SCHEMAS,
    ModelConfig,
    RunConfig,
    VLLMEngineConfig,
    compose_config,
    from_record,
    known_roles,
    to_record,
)
from pipelines.engines import preflight

PLUGIN_OPTIONS = [(g, o) for g, options in SCHEMAS.items() for o in options]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (PROJECT_ROOT / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize("group", list(SCHEMAS))
def test_every_option_file_has_a_schema_and_every_schema_a_file(group: str) -> None:
    assert options(group) == sorted(SCHEMAS[group])


@pytest.mark.parametrize(("group", "option"), PLUGIN_OPTIONS, ids="=".join)
def test_each_option_builds_its_own_schema_class(group: str, option: str) -> None:
    built = getattr(compose_config([f"{group}={option}"]), group)
    assert type(built) is SCHEMAS[group][option]
    assert built.name == option


@pytest.mark.parametrize("option", options("role"))
def test_each_role_composes(option: str) -> None:
    cfg = compose_config([f"role={option}"])
    assert cfg.role.name == option
    assert all(cfg.system_prompts.values())


def test_defaults() -> None:
    cfg = compose_config()
    assert cfg.role.name == "devops"
    assert cfg.datasets == (DATASET_DIR / "devops.jsonl",)
    assert (cfg.temperature, cfg.diversity_factor, cfg.batch_size) == (0.7, 1.3, 32)
    assert cfg.executor.name == "ray"
    assert isinstance(cfg.engine, VLLMEngineConfig)
    assert cfg.engine.enable_chunked_prefill is False
    assert Path(cfg.model.path).is_absolute()


def test_role_all_prompts_are_composed_by_hydra() -> None:
    """Every role's prompt is in the composed config (what .hydra/config.yaml
    and MLflow record), equal to its own file, and overridable."""
    cfg = compose_config(["role=all", "role.members.qa.system_prompt=Test it."])
    assert cfg.roles == known_roles() == ["architect", "data", "dev", "devops", "qa"]
    assert len(cfg.datasets) == 5
    for role in ["architect", "data", "dev", "devops"]:
        own = OmegaConf.load(PROJECT_ROOT / "conf" / "role" / f"{role}.yaml").system_prompt
        assert cfg.system_prompts[role] == own
    assert cfg.system_prompts["qa"] == "Test it."


def test_overrides_take_effect() -> None:
    cfg = compose_config(
        ["agents=5", "temperature=0.2", "limit=2", "dataset=x.jsonl", "batch_size=16"]
    )
    assert (cfg.agents, cfg.temperature, cfg.limit, cfg.batch_size) == (5, 0.2, 2, 16)
    assert cfg.datasets == (Path("x.jsonl"),)


def test_a_field_of_another_option_is_refused() -> None:
    with pytest.raises(ConfigCompositionException):
        compose_config(["engine=vllm", "engine.url=http://x:8000"])  # openai's field
    with pytest.raises(ConfigCompositionException):
        compose_config(["sink=none", "sink.stream=X"])


def test_unknown_role_lists_known() -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["role=ops"])
    assert "devops" in str(err.value.__cause__ or err.value)


def test_wrong_type_fails_at_compose() -> None:
    with pytest.raises((ValidationError, ConfigCompositionException)):
        compose_config(["agents=three"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agents=0", "agents must be >= 1"),
        ("temperature=-1", "temperature"),
        ("limit=0", "limit"),
        ("batch_size=0", "batch_size"),
        ("executor.concurrency=0", "concurrency"),
        ("engine.gpu_memory_utilization=1.5", "gpu_memory_utilization"),
        ("sink.max_in_flight=0", "max_in_flight"),
    ],
)
def test_bad_values(override: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        compose_config([override])


def test_missing_model_folder_says_how_to_build(tmp_path: Path) -> None:
    engine = VLLMEngineConfig()
    with pytest.raises(UserError, match="prepare_model"):
        preflight(engine, ModelConfig(name="m", path=str(tmp_path / "none")))
    # Hub ids are the engine's business.
    preflight(engine, ModelConfig(name="m", path="Qwen/Qwen3-0.6B"))


def test_environment_reaches_sink_tracking_and_timeout(monkeypatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://nats:4222")
    monkeypatch.setenv("DELIBERATION_TIMEOUT", "12.5")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("VLLM_URL", "http://vllm:8000")
    cfg = compose_config(["engine=openai"])
    assert (cfg.sink.name, cfg.sink.url, cfg.deliberation_timeout_s) == (
        "nats",
        "nats://nats:4222",
        12.5,
    )
    assert (cfg.tracking.name, cfg.tracking.resolved_uri()) == ("mlflow", "http://mlflow:5000")
    assert cfg.engine.url == "http://vllm:8000"
    assert cfg.served_model == cfg.model.name


def test_unset_environment_gives_embedded_defaults(monkeypatch) -> None:
    for var in ("NATS_URL", "DELIBERATION_TIMEOUT", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    cfg = compose_config()
    assert cfg.sink.resolved_url() is None and cfg.deliberation_timeout_s == 300.0
    assert cfg.tracking.resolved_uri() == f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"


@pytest.mark.parametrize(
    "overrides",
    [["role=all", "engine=openai", "sink=none"], ["executor=dask", "tracking=none", "seed=7"]],
)
def test_record_gives_back_the_same_typed_config(overrides: list[str]) -> None:
    cfg = compose_config(overrides)
    again = from_record(to_record(cfg))
    assert isinstance(again, RunConfig)
    assert again == cfg
    assert type(again.engine) is type(cfg.engine) and type(again.sink) is type(cfg.sink)


def test_the_engine_core_runs_inline_only_on_a_cpu_process_of_its_own() -> None:
    from pipelines.flow.stream import placed_engine

    engine = compose_config([]).engine
    assert engine.inline_core is None  # left to the placement
    assert placed_engine(engine, process_alone=True, gpus=0).inline_core is True
    assert placed_engine(engine, process_alone=True, gpus=1).inline_core is False
    assert (
        placed_engine(engine, process_alone=False, gpus=0).inline_core is None
    )  # its process decides
    chosen = compose_config(["engine.inline_core=false"]).engine
    assert placed_engine(chosen, process_alone=True, gpus=0).inline_core is False
    remote = compose_config(["engine=openai"]).engine
    assert placed_engine(remote, process_alone=True, gpus=0) is remote
