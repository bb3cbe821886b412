"""``pipelines.submit`` without a cluster: its addresses, its command line, its help.
(The submission itself is tested against a real head in tests/integration/test_clusters.py.)"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

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


def test_the_upload_leaves_a_checkouts_credentials_behind(tmp_path: Path) -> None:
    """Ray's own packaging of a working directory with the excludes: the job's files
    are readable by every job of the cluster (they used to carry .env and keys)."""
    import zipfile

    from ray._private.runtime_env.packaging import create_package

    from pipelines.executors.ray_jobs import UPLOAD_EXCLUDES

    checkout = tmp_path / "checkout"
    kept = ["pipelines/run.py", "conf/config.yaml", "datasets/dev/tasks.jsonl", "README.md"]
    secret = [
        ".env",
        ".env.production",
        ".envrc",
        "deploy/tls.key",
        "certs/ca.pem",
        "conf/.env",
        ".aws/credentials",
        "kubeconfig",
        "id_ed25519",
        "nats.creds",
    ]
    for name in kept + secret:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text("x")
    package = tmp_path / "package.zip"
    create_package(str(checkout), package, include_gitignore=True, excludes=UPLOAD_EXCLUDES)
    names = {n for n in zipfile.ZipFile(package).namelist() if not n.endswith("/")}
    assert names == set(kept)


def test_a_credential_typed_on_the_command_line_is_refused_before_submitting() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.submit",
            "--address",
            "http://127.0.0.1:9",  # nothing is reached: refused first
            "--env",
            "NATS_TOKEN=S3cretTok",
            "role=dev",
            "sink.url=nats://council:S3cretPW@nats:4222",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert "the Ray dashboard shows" in done.stderr and "--env NATS_TOKEN=" in done.stderr
    assert "S3cret" not in done.stderr + done.stdout
