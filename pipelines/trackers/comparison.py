"""Council runs side by side, from MLflow: their figures, the paired test on per-task
scores (the library of ``python -m pipelines.compare``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import UserError
from pipelines.scoring.stats import Paired, paired
from pipelines.spec.metrics import LOWER_IS_BETTER, QUALITY_METRICS
from pipelines.trackers.records import run_task_scores

CONFIG = [
    "role",
    "model",
    "agents",
    "temperature",
    "diversity_factor",
    "max_tokens",
    "rounds",
    "experiment",
]
CONFIG_DEFAULTS = {"rounds": "1", "experiment": "none"}
"""Config columns that runs from before they existed lack, and their value then."""


def comparison(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The comparison table: identity, config, metrics, deltas vs same config.

    ``prev`` is the row of the previous run of the same config (or NaN).
    """
    table = pd.DataFrame(
        {
            "run": runs.get("tags.mlflow.runName", runs["run_id"]),
            "date": pd.to_datetime(runs["start_time"]).dt.strftime("%Y-%m-%d %H:%M"),
            **{c: runs.get(f"params.{c}") for c in CONFIG},
        }
    )
    for column, default in CONFIG_DEFAULTS.items():
        table[column] = table[column].fillna(default) if column in table else default
    for m in metrics:
        table[m] = runs.get(f"metrics.{m}")
    # Previous run of the same config = the next row of its group (newest first).
    keys = [table[c] for c in CONFIG]
    prev = pd.Series(table.index, index=table.index).groupby(keys, dropna=False, sort=False)
    table["prev"] = prev.shift(-1)
    for m in metrics:
        table[f"Δ{m}"] = table[m] - table[m].groupby(keys, dropna=False, sort=False).shift(-1)
    return table


def paired_metric(a: pd.DataFrame | None, b: pd.DataFrame | None, metric: str) -> Paired | None:
    """B - A on the tasks both runs scored; None when they share none."""
    if a is None or b is None or metric not in a or metric not in b:
        return None
    both = a[[metric]].merge(b[[metric]], left_index=True, right_index=True, suffixes=("_a", "_b"))
    if both.empty:
        return None
    return paired(both[f"{metric}_a"].to_numpy(), both[f"{metric}_b"].to_numpy())


def better(result: Paired, metric: str) -> bool:
    """Is B significantly better than A on ``metric``?"""
    higher = result.diff > 0
    return result.significant and higher != (metric in LOWER_IS_BETTER)


def significant_best(
    table: pd.DataFrame, metric: str, scores: list[pd.DataFrame | None]
) -> int | None:
    """The row of the run significantly better on ``metric`` than every other
    run it shares tasks with (at least one); None when no run is."""
    col = pd.to_numeric(table[metric], errors="coerce")
    if col.notna().sum() < 2:
        return None
    best = col.idxmin() if metric in LOWER_IS_BETTER else col.idxmax()
    rivals = [
        r
        for i in table.index
        if i != best and (r := paired_metric(scores[i], scores[best], metric)) is not None
    ]
    return best if rivals and all(better(r, metric) for r in rivals) else None


def best_marks(
    table: pd.DataFrame, metrics: list[str], scores: list[pd.DataFrame | None]
) -> pd.DataFrame:
    """Formatted copy: ``*`` after a significantly best value, non-significant Δ
    in parentheses. Only quality metrics have the per-task scores to test."""
    shown = table.drop(columns="prev")
    for m in metrics:
        col = pd.to_numeric(table[m], errors="coerce")
        best = significant_best(table, m, scores) if m in QUALITY_METRICS else None
        shown[m] = [
            "" if pd.isna(v) else f"{v:.3f}" + ("*" if i == best else "") for i, v in col.items()
        ]
        deltas = []
        for i, d in pd.to_numeric(table[f"Δ{m}"], errors="coerce").items():
            prev = table.at[i, "prev"]
            if pd.isna(d):
                deltas.append("")
                continue
            result = (
                paired_metric(scores[int(prev)], scores[i], m) if m in QUALITY_METRICS else None
            )
            noise = result is not None and not result.significant
            deltas.append(f"({d:+.3f})" if noise else f"{d:+.3f}")
        shown[f"Δ{m}"] = deltas
    return shown


def paired_table(uri: str, a: Any, b: Any) -> tuple[pd.DataFrame, int]:
    """Per quality metric: A, B, B - A, its interval, p and the verdict; and the
    number of tasks both runs scored."""
    scores = [run_task_scores(uri, r.info.run_id) for r in (a, b)]
    if any(s is None for s in scores):
        raise UserError("both runs need their task_metrics.parquet artifact")
    rows, shared = [], 0
    for m in QUALITY_METRICS:
        result = paired_metric(scores[0], scores[1], m)
        if result is None:
            continue
        shared = max(shared, result.tasks)
        verdict = result.verdict
        if result.significant:
            verdict += f" ({'B' if better(result, m) else 'A'} better)"
        rows.append(
            {
                "metric": m,
                "A": result.mean_a,
                "B": result.mean_b,
                "B-A": result.diff,
                "95% CI": ""
                if result.ci is None
                else f"[{result.ci[0]:+.3f}, {result.ci[1]:+.3f}]",
                "p": result.p_value,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows), shared


def plot(table: pd.DataFrame, metric: str, path: Path) -> None:
    """A metric over time, one line per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    data = table.assign(when=pd.to_datetime(table["date"]), value=table[metric])
    for key, part in data.sort_values("when").groupby(CONFIG[:4], dropna=False):
        ax.plot(part["when"], part["value"], "o-", label=" ".join(map(str, key)))
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, title="role model agents T")
    fig.autofmt_xdate()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
