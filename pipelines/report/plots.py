"""The report's figures (matplotlib), each returned as a PNG data URI.

Figures stay readable at any run size: horizontal bars for named things (labels
never overlap), distributions instead of one bar per task, the top and bottom
keywords instead of all of them, and 95 % intervals as error bars.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pandas as pd

from pipelines.scoring.stats import bootstrap_ci

BLUE, GREEN, RED, GREY = "#4c72b0", "#55a868", "#c44e52", "#8c8c8c"
KEYWORDS_SHOWN = 10
"""Keywords shown at each end of the hit-rate ranking."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    # Labels are data (a keyword, a task): `$\frac{1}{$` is text, not mathtext
    # that fails to parse and takes the report down with it.
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def _uri(fig: Any) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def mean_ci(values: pd.Series) -> tuple[float, float, float]:
    """Mean and its 95 % bootstrap interval (the mean twice when there is none)."""
    mean = float(values.mean())
    low, high = bootstrap_ci(values.to_numpy()) or (mean, mean)
    return mean, low, high


def _errors(rows: list[tuple[float, float, float]]) -> np.ndarray:
    """matplotlib's asymmetric ``xerr`` from (mean, low, high) rows."""
    return np.array([[m - lo for m, lo, _ in rows], [hi - m for m, _, hi in rows]])


def interval_bars(labels: list[str], rows: list[tuple[float, float, float]], xlabel: str) -> str:
    """One horizontal bar per label with its 95 % interval."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.32 * len(labels)))
    y = np.arange(len(labels))
    ax.barh(y, [r[0] for r in rows], xerr=_errors(rows), color=BLUE, capsize=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return _uri(fig)


def per_agent(tm: pd.DataFrame) -> str:
    """Keyword relevance per agent (95 % interval over its tasks), temperature in the label."""
    labels, rows = [], []
    for (_, agent), part in tm.groupby(["role", "agent_id"], sort=True):
        per_task = part.groupby("task_id")["keyword_relevance"].mean()
        labels.append(f"{agent}  T={part['temperature'].iloc[0]:g}")
        rows.append(mean_ci(per_task))
    return interval_bars(labels, rows, "keyword relevance (95% CI over tasks)")


def by_temperature(tm: pd.DataFrame) -> str:
    """Keyword relevance against temperature, with 95 % intervals over tasks."""
    plt = _pyplot()
    points = []
    for t, part in tm.groupby("temperature", sort=True):
        points.append(
            (float(t), *mean_ci(part.groupby(["role", "task_id"])["keyword_relevance"].mean()))
        )
    x = [p[0] for p in points]
    rows = [p[1:] for p in points]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.errorbar(x, [r[0] for r in rows], yerr=_errors(rows), fmt="o-", color=BLUE, capsize=4)
    ax.set_xlabel("temperature")
    ax.set_ylabel("keyword relevance")
    ax.set_ylim(0, 1)
    ax.set_xticks(x, [f"{t:g}" for t in x])
    ax.grid(alpha=0.3)
    return _uri(fig)


def keyword_extremes(hit_rates: dict[str, float]) -> str:
    """The least and the most hit keywords, at most ``KEYWORDS_SHOWN`` each."""
    plt = _pyplot()
    rates = pd.Series(hit_rates, dtype=float).sort_values(kind="stable")
    n = min(KEYWORDS_SHOWN, -(-len(rates) // 2))
    low, high = rates.iloc[:n], rates.iloc[::-1].iloc[:n]
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.8 + 0.3 * n), sharex=True)
    for ax, part, color, title in (
        (axes[0], low, RED, f"least hit ({n} of {len(rates)})"),
        (axes[1], high, GREEN, f"most hit ({n} of {len(rates)})"),
    ):
        y = np.arange(len(part))
        ax.barh(y, part.to_numpy(), color=color)
        for i, v in enumerate(part.to_numpy()):
            ax.text(v + 0.01, i, f"{v:.2f}", va="center", fontsize=7)
        ax.set_yticks(y, list(part.index), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("share of proposals with the keyword", fontsize=8)
    fig.tight_layout()
    return _uri(fig)


def diversity_spread(per_task: pd.DataFrame, metrics: list[str]) -> str:
    """Per-task diversity figures as box plots, one panel per metric, one box per role."""
    plt = _pyplot()
    roles = sorted(per_task["role"].unique())
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(3 * len(metrics), 0.9 + 0.35 * len(roles)), sharey=True
    )
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        data = [per_task.loc[per_task["role"] == r, metric].dropna().to_numpy() for r in roles]
        ax.boxplot(data, orientation="horizontal", widths=0.6, showmeans=True)
        ax.set_yticks(np.arange(1, len(roles) + 1), roles, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_title(metric, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _uri(fig)


def round_curves(rounds: list[dict[str, Any]], chair_score: float | None = None) -> str:
    """Per-round curves: quality and diversity (0-1) on the left, the judge's mean
    score (1-10) on the right, with the chair's answer as a dashed line."""
    plt = _pyplot()
    table = pd.DataFrame(rounds).set_index("round")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, color in zip(
        ("keyword_relevance", "distinct_2", "self_bleu", "embedding_diversity"),
        (BLUE, GREEN, RED, GREY),
        strict=True,
    ):
        if name in table and table[name].notna().any():
            left.plot(table.index, table[name], marker="o", color=color, label=name)
    left.set_ylim(0, 1)
    left.set_xlabel("round")
    left.set_xticks(table.index)
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    if "judge_score" in table and table["judge_score"].notna().any():
        right.plot(table.index, table["judge_score"], marker="o", color=BLUE, label="proposals")
        if chair_score is not None:
            right.axhline(chair_score, color=RED, linestyle="--", label="chair's answer")
        right.legend(fontsize=7)
    else:
        right.text(0.5, 0.5, "no judge (judge=none)", ha="center", va="center", color=GREY)
    right.set_ylim(1, 10)
    right.set_xlabel("round")
    right.set_ylabel("judge score, mean")
    right.set_xticks(table.index)
    right.grid(alpha=0.3)
    return _uri(fig)
