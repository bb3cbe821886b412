"""Council runs as MLflow recorded them: find them, name one, read its per-task scores.

A run can be named by its MLflow run id (32 hex digits), by its council-eval
run id (the ``council.run_id`` tag, also its folder's name in ``runs/``), or as
``<experiment>/latest`` (``~N`` for the N-th before it), where the experiment
is its full name or a role (``devops/latest`` is ``council-eval/devops/latest``).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import UserError
from pipelines.scoring.metrics import task_scores
from pipelines.spec.run_folder import TASK_METRICS_FILE
from pipelines.trackers.mlflow import RUN_TAG
from pipelines.trackers.mlflow_rows import fluent_uri

EXPERIMENT_PREFIX = "council-eval/"
LATEST = re.compile(r"(?P<experiment>.+)/latest(?:~(?P<back>\d+))?")
MLFLOW_ID = re.compile(r"[0-9a-f]{32}")


def client(uri: str) -> Any:
    """An MLflow client that fails within seconds on an unreachable server."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def council_experiments(mlflow: Any) -> list[Any]:
    return mlflow.search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'")


def fetch_runs(
    uri: str, experiments: list[str] | None, role: str | None, last: int | None
) -> pd.DataFrame:
    """Runs of the council-eval experiments (or the named ones), newest first."""
    mlflow_client = client(uri)  # bounded retries before the fluent API starts
    import mlflow

    if experiments is None:
        experiments = [e.name for e in council_experiments(mlflow_client)]
    if not experiments:
        return pd.DataFrame()
    filters = f"params.role = '{role}'" if role else ""
    with fluent_uri(uri):
        return mlflow.search_runs(
            experiment_names=experiments,
            filter_string=filters,
            order_by=["attributes.start_time DESC"],
            max_results=last or 1000,
        )


def resolve(uri: str, ref: str) -> Any:
    """The MLflow run ``ref`` names (see the module doc); UserError if none."""
    mlflow = client(uri)
    if m := LATEST.fullmatch(ref):
        name, back = m["experiment"], int(m["back"] or 0)
        exp = mlflow.get_experiment_by_name(name) or mlflow.get_experiment_by_name(
            EXPERIMENT_PREFIX + name
        )
        if exp is None:
            raise UserError(f"{ref}: no experiment {name!r} at {uri}")
        runs = mlflow.search_runs(
            [exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=back + 1
        )
        if len(runs) <= back:
            raise UserError(f"{ref}: {exp.name!r} holds {len(runs)} run(s)")
        return runs[back]
    if MLFLOW_ID.fullmatch(ref):
        from mlflow.exceptions import MlflowException

        try:
            return mlflow.get_run(ref)
        except MlflowException:
            pass  # a council run id can look like this too
    ids = [e.experiment_id for e in council_experiments(mlflow)]
    found = mlflow.search_runs(ids, filter_string=f"tags.`{RUN_TAG}` = '{ref}'") if ids else []
    if not found:
        raise UserError(
            f"no run {ref!r} at {uri} (an MLflow run id, a council run id, or E/latest)"
        )
    return found[0]


def run_task_scores(uri: str, mlflow_run_id: str) -> pd.DataFrame | None:
    """Per-task quality metrics of a run, from its ``task_metrics.parquet``
    artifact; None when the run has none."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client(uri).download_artifacts(mlflow_run_id, TASK_METRICS_FILE, tmp)
        except (MlflowException, OSError):
            return None
        return task_scores(pd.read_parquet(Path(path)))


def label(run: Any) -> str:
    """``<council run id> (<mlflow id>)`` and the config that tells runs apart."""
    p, tags = run.data.params, run.data.tags
    config = " ".join(
        f"{k}={p[k]}" for k in ("role", "model", "agents", "temperature", "seed") if k in p
    )
    if p.get("rounds", "1") != "1":
        config += f" rounds={p['rounds']}"
    if p.get("experiment", "none") != "none":
        budget = p.get("experiment.budget_of")
        config += f" experiment={p['experiment']}" + (f" (budget of {budget})" if budget else "")
    return f"{tags.get(RUN_TAG, run.info.run_name)} ({run.info.run_id[:8]}) {config}"
