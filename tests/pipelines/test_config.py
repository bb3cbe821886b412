from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from pipelines import PROJECT_ROOT, UserError
from pipelines.engines import EngineConfig, preflight
from pipelines.settings import DATASET_DIR, from_config, known_roles

pytestmark = pytest.mark.unit

GROUPS = ["role", "model", "engine", "executor", "sink", "tracking"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (PROJECT_ROOT / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override", [f"{g}={o}" for g in GROUPS for o in options(g)], ids=lambda o: o
)
def test_every_config_option_composes_and_types(compose_cfg, override: str) -> None:
    settings = from_config(compose_cfg(override))
    assert settings.council.agents == 3
    assert settings.engine.model


def test_defaults(compose_cfg) -> None:
    s = from_config(compose_cfg())
    assert s.role == "devops"
    assert s.datasets == (DATASET_DIR / "devops.jsonl",)
    assert (s.council.temperature, s.council.diversity_factor) == (0.7, 1.3)
    assert s.executor.name == "ray"
    assert s.engine.enable_chunked_prefill is False
    assert Path(s.engine.model).is_absolute()


def test_role_all_carries_every_prompt(compose_cfg) -> None:
    s = from_config(compose_cfg("role=all"))
    assert s.roles == known_roles() == ["architect", "data", "dev", "devops", "qa"]
    assert len(s.datasets) == 5
    assert all(s.system_prompts.values())


def test_overrides_reach_settings(compose_cfg) -> None:
    s = from_config(compose_cfg("agents=5", "temperature=0.2", "limit=2", "dataset=x.jsonl"))
    assert (s.council.agents, s.council.temperature, s.limit) == (5, 0.2, 2)
    assert s.datasets == (Path("x.jsonl"),)


def test_unknown_role_lists_known(compose_cfg) -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg("role=ops")
    assert "devops" in str(err.value.__cause__ or err.value)


def test_wrong_type_fails_at_compose(compose_cfg) -> None:
    with pytest.raises((ValidationError, ConfigCompositionException)):
        compose_cfg("agents=three")


@pytest.mark.parametrize(
    ("override", "message"),
    [("agents=0", "agents must be >= 1"), ("temperature=-1", "temperature"), ("limit=0", "limit")],
)
def test_bad_values(compose_cfg, override: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        from_config(compose_cfg(override))


def test_missing_model_folder_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="prepare_model"):
        preflight(EngineConfig(name="vllm", model=str(tmp_path / "none"), served_model_name="m"))
    # Hub ids are the engine's business.
    preflight(EngineConfig(name="vllm", model="Qwen/Qwen3-0.6B", served_model_name="m"))


def test_environment_reaches_sink_and_tracking(compose_cfg, monkeypatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://nats:4222")
    monkeypatch.setenv("DELIBERATION_TIMEOUT", "12.5")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    s = from_config(compose_cfg())
    assert (s.sink.name, s.sink.url, s.sink.deliberation_timeout_s) == (
        "nats",
        "nats://nats:4222",
        12.5,
    )
    assert (s.tracking.name, s.tracking.resolved_uri()) == ("mlflow", "http://mlflow:5000")


def test_unset_environment_gives_embedded_defaults(compose_cfg, monkeypatch) -> None:
    for var in ("NATS_URL", "DELIBERATION_TIMEOUT", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    s = from_config(compose_cfg())
    assert s.sink.url is None and s.sink.deliberation_timeout_s == 300.0
    assert s.tracking.resolved_uri() == f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
