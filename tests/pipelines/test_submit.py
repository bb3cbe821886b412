"""``pipelines.submit`` without a cluster: its addresses, its command line, its help.
(The submission itself is tested against a real head in tests/integration/test_clusters.py.)"""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from pipelines import PROJECT_ROOT, UserError
from pipelines.executors.ray_jobs import DEFAULT_ADDRESS, entrypoint, job_address, runtime_env


def test_the_job_api_address_comes_from_the_flag_then_rays_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # a GCS address: not the job API
    assert job_address(None) == DEFAULT_ADDRESS
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265/")
    assert job_address(None) == "http://head:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "https://ray.example:443")
    assert job_address(None) == "https://ray.example:443"
    assert job_address("http://other:8265") == "http://other:8265"
    with pytest.raises(UserError, match="http://<head>:8265"):
        job_address("head:6379")


def test_overrides_reach_the_driver_as_arguments_never_as_shell() -> None:
    hostile = ["role=qa", "dataset=$(touch /tmp/owned)", "x=a;b", "y='q'"]
    for upload in (False, True):
        line = entrypoint(hostile, upload)
        run = line.split("&& ", 3)[-1].split("; status=")[0] if upload else line
        assert shlex.split(run) == ["python", "-m", "pipelines.run", *hostile]


def test_runtime_env_uploads_the_checkout_without_environments_or_models() -> None:
    env = runtime_env(True, "/data/runs", ["MLFLOW_TRACKING_URI=http://mlflow:5000"])
    assert env["working_dir"] == str(PROJECT_ROOT)
    assert {".venv", "models", "runs", ".git"} <= set(env["excludes"])
    assert env["env_vars"] == {
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "COUNCIL_RUNS_DIR": "/data/runs",
    }
    assert runtime_env(False, None, []) == {}
    with pytest.raises(UserError, match="KEY=VALUE"):
        runtime_env(False, None, ["NOVALUE"])


def test_help_names_the_job_api() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.submit", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0
    assert "--address" in done.stdout and "8265" in done.stdout
