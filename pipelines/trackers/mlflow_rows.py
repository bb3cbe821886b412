"""A run's proposals in MLflow, row by row.

- ``proposals.json`` (``tracking.rows``, the default): one MLflow table per run,
  a row per proposal with its task, agent, temperature, text and keyword
  scores, written in one call whatever the run's size. MLflow's UI shows it
  in the run's Artifacts, and ``mlflow.load_table("proposals.json",
  run_ids=[...])`` reads it back across runs.
- Evaluation rows (``tracking.traces``, off by default): each proposal as a
  trace holding the task and agent (inputs), the proposal (outputs) and the
  expected keywords (expectations), with the project's evaluators attached as
  assessments, listed in the run's Traces / Evaluation tab. Logged with
  ``mlflow.genai.evaluate`` on static outputs: no model and no LLM judge (the
  scorers are the pure functions of :mod:`evaluators`), so it works offline.
  It costs ~63 ms a proposal on a SQLite store (3,000 proposals: 189 s), so it
  suits small runs. Rows go one at a time: with its default 10 workers on a
  SQLite store, MLflow exhausts its connection pool and drops traces
  (measured: 56 of 180 kept). Its progress bar and banner go to the log.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pandas as pd

from evaluators import coverage, keyword_hits
from pipelines.spec.run_folder import upgrade

log = logging.getLogger(__name__)

WORKERS_ENV = "MLFLOW_GENAI_EVAL_MAX_WORKERS"
TABLE_FILE = "proposals.json"
TABLE_COLUMNS = [
    "role",
    "task_id",
    "agent_id",
    "repeat",
    "temperature",
    "proposal",
    "completion_tokens",
    "finish_reason",
    "error",
    "keywords",
    "keyword_hits",
    "keyword_relevance",
    "keyword_full",
]


def proposal_table(results: pd.DataFrame, task_metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per proposal with its scores (list columns as text: :func:`scalar_lists`)."""
    key = ["role", "task_id", "agent_id", "repeat"]
    results, tm = upgrade(results, ["repeat"]), upgrade(task_metrics, ["repeat"])
    scores = [c for c in TABLE_COLUMNS if (c in tm and c not in results) or c in key]
    rows = scalar_lists(results.merge(tm[scores], on=key, how="left"))
    return rows[[c for c in TABLE_COLUMNS if c in rows]].reset_index(drop=True)


def scalar_lists(table: pd.DataFrame) -> pd.DataFrame:
    """MLflow tables hold scalars: the list columns become comma-joined text."""
    out = table.copy()
    for col in ("keywords", "keyword_hits"):
        if col in out:
            out[col] = out[col].map(lambda v: ",".join(map(str, v)) if v is not None else "")
    return out


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


@contextlib.contextmanager
def fluent_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``mlflow.*``) pointed at ``uri`` while entered, then
    back as it was, the process's ``MLFLOW_TRACKING_URI`` included.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the
    process's environment; left there, every later run of the same process (a
    night's next run, a resume) would take this run's URI for its own default.
    """
    import mlflow

    saved = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)  # unsets the variable too
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def log_traces(
    uri: str, experiment_id: str, mlflow_run_id: str, results: pd.DataFrame, keywords: pd.DataFrame
) -> int:
    """Log every proposal as an evaluation row (a trace) of the MLflow run; returns
    the count."""
    os.environ.setdefault(WORKERS_ENV, "1")
    import mlflow

    data = evaluation_rows(results, keywords)
    shown = io.StringIO()  # the banner and the bar: the log's, not the console's
    with fluent_uri(uri):
        mlflow.set_experiment(experiment_id=experiment_id)
        with (
            mlflow.start_run(run_id=mlflow_run_id),
            contextlib.redirect_stdout(shown),
            contextlib.redirect_stderr(shown),
            mock.patch.dict(os.environ, {"TQDM_DISABLE": "1"}),
        ):
            mlflow.genai.evaluate(data=data, scorers=scorers())
    log.info("mlflow: %d evaluation rows logged%s", len(data), _tail(shown.getvalue()))
    return len(data)


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f" ({lines[-1]})" if lines else ""
