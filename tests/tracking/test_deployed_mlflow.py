"""deploy/k8s's MLflow on a real ``mlflow server``: every request but /health needs
a user, and the pipeline signs in with the credentials the manifests give it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipelines import PROJECT_ROOT
from pipelines.config import compose_config
from pipelines.driver.pipeline import run_pipeline
from pipelines.runtime.procs import http_ok
from tests.engine_helpers import stand_in_engine
from tests.mlflow_helpers import ADMIN_PASSWORD, mlflow_server


def deployed_auth_config(tmp_path: Path) -> Path:
    """The ConfigMap's ini, its user store in a folder here instead of the volume."""
    from deploy.check import DEPLOY

    text = (DEPLOY / "k8s/base/mlflow-auth.ini").read_text()
    assert "database_uri = sqlite:////mlflow/basic_auth.db" in text
    path = tmp_path / "auth.ini"
    path.write_text(text.replace("////mlflow/", f"///{tmp_path}/"))
    return path


def track(run_dir: Path, url: str, **credentials: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.track", str(run_dir), "--uri", url],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
        env=env | credentials,
    )


def test_the_deployed_mlflow_admits_only_the_pipelines_user(tmp_path: Path) -> None:
    with stand_in_engine() as server:
        overrides = ["engine=openai", f"engine.url={server}", "executor=local", "sink=none"]
        cfg = compose_config(
            ["role=devops", "limit=1", "agents=2", "max_tokens=8", "tracking=none", *overrides]
        )
        run_pipeline(cfg, tmp_path / "run", executor=None)
    with mlflow_server(tmp_path / "mlflow", deployed_auth_config(tmp_path)) as url:
        assert http_ok(f"{url}/health")  # the probes need no user
        anonymous = track(tmp_path / "run", url)
        assert anonymous.returncode != 0
        assert "401" in anonymous.stderr or "Unauthorized" in anonymous.stderr
        wrong = track(
            tmp_path / "run", url, MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD="x"
        )
        assert wrong.returncode != 0
        tracked = track(
            tmp_path / "run",
            url,
            MLFLOW_TRACKING_USERNAME="admin",
            MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD,
        )
        assert tracked.returncode == 0, tracked.stderr[-3000:]
        assert "logged as MLflow run" in tracked.stdout
