"""Shared fixtures and the test kinds, one per directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.prepare_model import DEFAULT_OUT, is_built

KINDS = {
    "evaluators": "unit",
    "pipelines": "unit",
    "tracking": "unit",
    "deploy": "unit",
    "sinks": "integration",
    "hardening": "integration",
    "integration": "integration",
    "bench": "bench",
}
"""Test directory → marker: unit (no engine, no server but short-lived CLIs),
integration (real vLLM, Ray, Dask, nats-server, mlflow server), bench (not in
the default run)."""


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(item.fspath).parent.name
        if folder not in KINDS:
            raise pytest.UsageError(f"{item.fspath}: tests/{folder}/ has no kind in KINDS")
        item.add_marker(KINDS[folder])


@pytest.fixture(scope="session", autouse=True)
def isolated_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs made by tests log to a throw-away MLflow store, never the project's, and
    use no response cache unless a test asks for one."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "NATS_URL", "COUNCIL_CACHE")}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.pop("NATS_URL", None)  # sink=nats starts its own server per run
    # Tests compare generations: no run answers from another's cache unless it says so.
    os.environ["COUNCIL_CACHE"] = "false"
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The embedded model folder (``make model`` builds it)."""
    if not is_built(DEFAULT_OUT):
        pytest.fail(f"{DEFAULT_OUT} is not built: run `make model` first")
    return DEFAULT_OUT
