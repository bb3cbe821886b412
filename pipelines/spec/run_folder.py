"""The run folder: the name of every file a run writes, reading what older
versions wrote, and the rows that stand for the run (its final answers).

::

    <run>/
      run.json                 RUN_INFO_FILE: id, config, where it is tracked
      results/part-*.parquet   PARTS_DIR: each batch as it landed
      results.parquet          RESULTS_FILE: every proposal (every round, every arm)
      task_metrics.parquet     TASK_METRICS_FILE: per task (and repeat)
      metrics.json             METRICS_FILE: the run's figures
      rankings.parquet chair.parquet judge.parquet    TABLES: a deliberation's steps
      scaling.parquet          SCALING_FILE: the scaling experiment's arms
      phases.json              PHASES_FILE: where the time went
      report.html report/      REPORT_FILE, PAGE_DIR (the task cards after page 1)
      outbox.jsonl acked.txt   OUTBOX_FILE, ACKED_FILE: messages kept until acked
      dead.txt                 DEAD_FILE: messages the server cannot take (too big)
      nats/url                 NATS_DIR, URL_FILE: a run's own nats-server (store, URL)
      procs.json .lock run.log PROCS_FILE, LOCK_FILE, RUN_LOG_FILE
"""

from __future__ import annotations

from typing import Any

import pandas as pd

RUN_INFO_FILE = "run.json"
PARTS_DIR = "results"
RESULTS_FILE = "results.parquet"
TASK_METRICS_FILE = "task_metrics.parquet"
METRICS_FILE = "metrics.json"
TABLES = {"rankings": "rankings.parquet", "chair": "chair.parquet", "judge": "judge.parquet"}
SCALING_FILE = "scaling.parquet"
PHASES_FILE = "phases.json"
REPORT_FILE = "report.html"
PAGE_DIR = "report"
OUTBOX_FILE = "outbox.jsonl"
ACKED_FILE = "acked.txt"
DEAD_FILE = "dead.txt"
"""Ids of outbox messages over the server's ``max_payload``: recorded, never retried."""
NATS_DIR = "nats"
URL_FILE = "url"
"""In :data:`NATS_DIR`: the run's own server's URL while it runs."""
PROCS_FILE = "procs.json"
LOCK_FILE = ".lock"
RUN_LOG_FILE = "run.log"

ARTIFACTS = (
    RUN_INFO_FILE,
    METRICS_FILE,
    RESULTS_FILE,
    TASK_METRICS_FILE,
    SCALING_FILE,
    *TABLES.values(),
    REPORT_FILE,
)
"""The files a tracker keeps with the run (those of them the run wrote)."""

DEFAULTS: dict[str, Any] = {
    "repeat": 0,
    "step": "propose",
    "round": 1,
    "target": "",
    "cached": False,
}
"""The columns tables written by older versions lack, with the value they stand
for there (before repeats, deliberation steps and rounds, the response cache)."""


def upgrade(table: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """``table`` with the :data:`DEFAULTS` columns it lacks (of ``columns``, when given)."""
    missing = {
        name: value
        for name, value in DEFAULTS.items()
        if name not in table and (columns is None or name in columns)
    }
    return table.assign(**missing) if missing else table


def final(results: pd.DataFrame) -> pd.DataFrame:
    """The rows that stand for the run: the full council's (the scaling
    experiment's largest arm) in the last round (a deliberation's)."""
    if len(results) and "council_size" in results:
        results = results[results["council_size"] == results["council_size"].max()]
    if len(results) and "round" in results:
        results = results[results["round"] == results["round"].max()]
    return results
