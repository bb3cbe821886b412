"""``tracking=mlflow``: one MLflow run per pipeline run, logged from the run folder.

Everything logged comes from the run's files (``run.json``, ``metrics.json``,
the parquet tables, ``report.html``), so ``python -m pipelines.track
<run_dir>`` can log a run later exactly as the pipeline would have. Logging is
idempotent: a run whose ``council.run_id`` tag is already in the experiment is
not logged twice.

Metric keys: the run-level figures by their names (``keyword_relevance``, …),
``agent/<agent_id>/<metric>`` per agent, ``role/<role>/<metric>`` per role
(``role=all``), ``scaling/<n>_agents/<column>`` for the scaling experiment and
``keyword/<keyword>/hit_rate``; a deliberation adds ``round/<metric>`` at step
= round, and ``round_gain/``, ``ranking/``, ``chair/`` and ``judge/`` figures.
With ``rows`` (the default) every proposal is also a row of the run's
``proposals.json`` table, and with ``traces`` an evaluation row (a trace) with
its scores (:mod:`pipelines.trackers.mlflow_rows`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import MlflowTrackingConfig
from pipelines.runtime.console import adopt
from pipelines.runtime.redact import redact_text
from pipelines.spec import run_folder
from pipelines.spec.run_folder import (
    METRICS_FILE,
    PAGE_DIR,
    RESULTS_FILE,
    RUN_INFO_FILE,
    TASK_METRICS_FILE,
    final,
)
from pipelines.trackers import Tracked
from pipelines.trackers.mlflow_rows import TABLE_FILE, log_traces, proposal_table, scalar_lists

log = logging.getLogger(__name__)

RUN_TAG = "council.run_id"
ARTIFACTS = [
    *run_folder.ARTIFACTS,
    ".hydra/config.yaml",
    ".hydra/overrides.yaml",
]
REDACTED = {".hydra/config.yaml", ".hydra/overrides.yaml"}
"""Artifacts uploaded through :func:`pipelines.runtime.redact.redact_text` (run.json is
redacted when written)."""
AGENT_METRICS = ["keyword_relevance", "keyword_full", "completion_tokens"]


def _key(text: str) -> str:
    """A key fragment MLflow takes from any text (a keyword), at most 100
    characters: ``k8s/helm`` stays, but a path MLflow refuses (``..``, ``/x``,
    ``a//b``, ``./a``) has its empty, ``.`` and ``..`` parts made ``_``."""
    parts = re.sub(r"[^\w\-./ ]", "_", text[:100]).split("/")
    return "/".join("_" if p.strip(".") == "" else p for p in parts)


def flatten_metrics(metrics: dict[str, Any], task_metrics: pd.DataFrame) -> dict[str, float]:
    """Every numeric figure of a run under its MLflow key."""
    out: dict[str, float] = {}

    def put(prefix: str, figures: dict[str, Any]) -> None:
        for k, v in figures.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            out[f"{prefix}{k}"] = float(v)

    put("", {k: metrics[k] for k in ("wall_s", "scoring_s") if k in metrics})
    put("", metrics["overall"])
    for kw, rate in metrics["overall"].get("keyword_hit_rates", {}).items():
        out[f"keyword/{_key(kw)}/hit_rate"] = float(rate)
    for role, figures in metrics.get("roles", {}).items():
        put(f"role/{role}/", figures)
    for row in metrics.get("scaling", []):
        put(f"scaling/{row['agents']}_agents/", row)
    if "sink" in metrics:
        put("sink/", metrics["sink"])
    if "cache" in metrics:
        put("cache/", metrics["cache"])
    for section in ("round_gain", "ranking", "chair", "judge"):
        if section in metrics:
            put(f"{section}/", metrics[section])
    for agent, points in metrics.get("ranking", {}).get("borda", {}).items():
        out[f"ranking/borda/{agent}"] = float(points)

    def put_tree(prefix: str, tree: dict[str, Any]) -> None:
        put(prefix, tree)
        for k, v in tree.items():
            if isinstance(v, dict):
                put_tree(f"{prefix}{_key(str(k))}/", v)

    # Ground truth: verdicts and accuracy per agent; a deliberation's flips, chair, judge.
    put_tree("truth/", metrics["overall"].get("truth", {}))
    deliberation = dict(metrics.get("truth", {}))
    for f in deliberation.pop("flips", []):
        put(f"truth/flips/{f['from_round']}_{f['to_round']}/", f)
    put_tree("truth/", deliberation)
    per_agent = task_metrics.groupby("agent_id")[AGENT_METRICS].mean()
    for agent, row in per_agent.iterrows():
        put(f"agent/{agent}/", row.to_dict())
    return out


def round_steps(metrics: dict[str, Any]) -> list[tuple[str, float, int]]:
    """A deliberation's per-round figures as ``(round/<metric>, value, step=round)``:
    MLflow draws each as a curve over the rounds."""
    out = []
    for figures in metrics.get("rounds", []):
        for name, value in figures.items():
            if name != "round" and isinstance(value, int | float) and not isinstance(value, bool):
                out.append((f"round/{name}", float(value), int(figures["round"])))
    return out


def proposals(run_dir: Path) -> pd.DataFrame:
    """The run's proposals (for the scaling experiment, the full council's; for a
    deliberation, the last round's)."""
    return final(pd.read_parquet(run_dir / RESULTS_FILE))


def task_keywords(task_metrics: pd.DataFrame) -> pd.DataFrame:
    return task_metrics[["role", "task_id", "keywords"]].drop_duplicates(["role", "task_id"])


class MlflowTracker:
    def __init__(self, cfg: MlflowTrackingConfig) -> None:
        self.name = cfg.name
        self.cfg = cfg

    def track(self, run_dir: Path) -> Tracked:
        return track_run(run_dir, self.cfg)


def track_run(run_dir: Path, cfg: MlflowTrackingConfig) -> Tracked:
    """Log the run in ``run_dir`` to MLflow (once); return where it is."""
    # Fail within seconds on an unreachable server instead of minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    adopt("mlflow", "alembic")  # MLflow's INFO lines: run.log's (pipelines/runtime/console.py)

    start = time.perf_counter()
    info = json.loads((run_dir / RUN_INFO_FILE).read_text())
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    task_metrics = pd.read_parquet(run_dir / TASK_METRICS_FILE)
    run_id = info["run_id"]
    experiment = cfg.experiment or f"council-eval/{info['role']}"

    uri = cfg.resolved_uri()
    where = f"{experiment!r} at {redact_text(uri)}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    found = client.search_runs([exp_id], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'")
    if found:
        return Tracked(found[0].info.run_id, where, False, time.perf_counter() - start)

    tags = {
        RUN_TAG: run_id,
        "council.role": info["role"],
        "council.model": info["model"],
        "council.executor": info["executor"],
        "council.host_kind": info["host_kind"],
        "council.experiment": info.get("experiment", "none"),
    }
    # Dated by the pipeline run, not by when it was logged (track may come later).
    run = client.create_run(
        exp_id, start_time=info.get("started_at_ms"), run_name=run_id, tags=tags
    )
    mlflow_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        flat = flatten_metrics(metrics, task_metrics)
        params = [Param(k, str(v)[:6000]) for k, v in info["params"].items()]
        items = [Metric(k, v, now, 0) for k, v in flat.items()]
        items += [Metric(k, v, now, step) for k, v, step in round_steps(metrics)]
        # Tags went with create_run; MLflow caps a batch at 100 params / 1000 metrics.
        for i in range(0, len(params), 100):
            client.log_batch(mlflow_id, params=params[i : i + 100])
        for i in range(0, len(items), 1000):
            client.log_batch(mlflow_id, metrics=items[i : i + 1000])
        with tempfile.TemporaryDirectory() as tmp:
            for name in ARTIFACTS:
                path = run_dir / name
                if not path.is_file() or path.is_symlink():  # a link may point anywhere
                    continue
                if name in REDACTED:  # the config as typed: sink.url=nats://u:pw@h
                    path = Path(tmp) / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(redact_text((run_dir / name).read_text()))
                client.log_artifact(mlflow_id, str(path), os.path.dirname(name) or None)
        pages = run_dir / PAGE_DIR
        if pages.is_dir() and not pages.is_symlink():  # report.html's later pages
            for page in sorted(pages.glob("page-*.js")):
                if page.is_file() and not page.is_symlink():
                    client.log_artifact(mlflow_id, str(page), PAGE_DIR)
        client.log_table(mlflow_id, scalar_lists(task_metrics), "task_metrics.json")
        shown = proposals(run_dir) if cfg.rows or cfg.traces else None
        if cfg.rows:
            client.log_table(mlflow_id, proposal_table(shown, task_metrics), TABLE_FILE)
        if cfg.traces:
            log_traces(uri, exp_id, mlflow_id, shown, task_keywords(task_metrics))
        client.set_terminated(mlflow_id, "FINISHED")
    except Exception:
        client.set_terminated(mlflow_id, "FAILED")
        raise
    return Tracked(mlflow_id, where, True, time.perf_counter() - start)
