"""Shared fixtures: composed configs and the embedded model folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from pipelines import PROJECT_ROOT
from pipelines.config import register
from pipelines.prepare_model import DEFAULT_OUT, is_built

CONF_DIR = PROJECT_ROOT / "conf"


@pytest.fixture(scope="session", autouse=True)
def isolated_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs made by tests log to a throw-away MLflow store, never the project's."""
    import os

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "NATS_URL")}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.pop("NATS_URL", None)  # sink=nats starts its own server per run
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def compose_cfg() -> Callable[..., DictConfig]:
    """Compose the real ``conf/`` with a list of overrides."""
    register()

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The embedded model folder (``make model`` builds it)."""
    if not is_built(DEFAULT_OUT):
        pytest.fail(f"{DEFAULT_OUT} is not built: run `make model` first")
    return DEFAULT_OUT
