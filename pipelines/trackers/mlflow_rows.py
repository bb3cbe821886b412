"""Each proposal of a run as one MLflow evaluation row: a trace holding the task
and agent (inputs), the proposal (outputs) and the expected keywords
(expectations), with the project's evaluators attached as assessments.

Logged with ``mlflow.genai.evaluate`` on static outputs: it needs no model and
no LLM judge (the scorers are the pure functions of :mod:`evaluators`), so it
works offline, and MLflow's UI lists the rows with their scores in the run's
Traces / Evaluation tab. Rows go one at a time by default: with its default 10
workers on a SQLite store, MLflow exhausts its connection pool and drops traces
(measured: 56 of 180 kept).
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from evaluators import coverage, keyword_hits

WORKERS_ENV = "MLFLOW_GENAI_EVAL_MAX_WORKERS"


def evaluation_rows(results: pd.DataFrame, keywords: pd.DataFrame) -> list[dict[str, Any]]:
    """One ``{inputs, outputs, expectations}`` record per proposal.

    Args:
        results: the run's results table.
        keywords: per (role, task_id) the expected ``keywords``.
    """
    rows = results.merge(keywords, on=["role", "task_id"], how="left")
    return [
        {
            "inputs": {
                "role": r.role,
                "task_id": r.task_id,
                "agent_id": r.agent_id,
                "repeat": int(getattr(r, "repeat", 0)),
                "temperature": float(r.temperature),
                "prompt": r.prompt,
            },
            "outputs": r.proposal or "",
            "expectations": {"keywords": list(r.keywords)},
        }
        for r in rows.itertuples()
    ]


def scorers() -> list[Any]:
    """The project's per-proposal evaluators as MLflow scorers."""
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    def explain(outputs: str, keywords: list[str]) -> tuple[list[bool], str]:
        hits = keyword_hits(outputs, keywords)
        found = [k for k, h in zip(keywords, hits, strict=True) if h]
        missed = [k for k, h in zip(keywords, hits, strict=True) if not h]
        return hits, f"hit: {', '.join(found) or '-'}; missed: {', '.join(missed) or '-'}"

    @scorer(name="keyword_relevance")
    def relevance(outputs: str, expectations: dict[str, Any]) -> Any:
        hits, why = explain(outputs, expectations["keywords"])
        return Feedback(value=coverage(hits), rationale=why)

    @scorer(name="keyword_full")
    def full(outputs: str, expectations: dict[str, Any]) -> Any:
        hits, why = explain(outputs, expectations["keywords"])
        return Feedback(value=bool(hits) and all(hits), rationale=why)

    return [relevance, full]


def log_rows(
    uri: str, experiment_id: str, mlflow_run_id: str, results: pd.DataFrame, keywords: pd.DataFrame
) -> int:
    """Log every proposal as an evaluation row of the MLflow run; returns the count."""
    os.environ.setdefault(WORKERS_ENV, "1")
    import mlflow

    data = evaluation_rows(results, keywords)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run(run_id=mlflow_run_id):
        mlflow.genai.evaluate(data=data, scorers=scorers())
    return len(data)
