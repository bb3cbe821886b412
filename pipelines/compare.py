"""Compare council runs recorded in MLflow: ``python -m pipelines.compare``.

``python -m pipelines.compare A B`` compares two runs task by task: per quality
metric, the paired difference B - A over the tasks both ran, its 95 % bootstrap
interval, the Wilcoxon signed-rank p-value and whether it is significant.

Without runs, it lists them (newest first): date, role, model, agents,
temperature and the chosen metrics. ``*`` marks a quality metric's best value
only where that run is significantly better than every other listed run it
shares tasks with; ``Δ<metric>`` is the change against the previous run of the
same configuration (role, model, agents, temperature, diversity factor, max
tokens), in parentheses where it is not significant. Writes CSV / Markdown
tables and a PNG plot on request.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import UserError
from pipelines.config import MlflowTrackingConfig
from pipelines.metrics import QUALITY_METRICS
from pipelines.records import fetch_runs, label, resolve, run_task_scores
from pipelines.stats import Paired, paired

DEFAULT_METRICS = [
    "keyword_relevance",
    "unique_ratio",
    "distinct_2",
    "self_bleu",
    "tokens_per_s",
    "scaling/5_agents/scaling_factor",
]
LOWER_IS_BETTER = {"self_bleu", "latency_p50_s", "latency_p95_s", "wall_s"}
CONFIG = ["role", "model", "agents", "temperature", "diversity_factor", "max_tokens", "rounds"]
CONFIG_DEFAULTS = {"rounds": "1"}
"""Config columns that runs from before they existed lack, and their value then."""
DELIBERATION_METRICS = [
    "round_gain/keyword_relevance",
    "round_gain/judge_score",
    "judge/mean_score",
    "ranking/kendall_w",
    "chair/judge_minus_best_agent",
]
"""Shown by default when some listed run deliberated."""


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="two runs to compare task by task: an MLflow run id, a council run id, "
        "or EXPERIMENT/latest[~N] (EXPERIMENT may be a role: devops/latest)",
    )
    parser.add_argument("--uri", help="tracking URI (default: MLFLOW_TRACKING_URI, else SQLite)")
    parser.add_argument(
        "--experiment", action="append", help="experiment name(s) (default: council-eval/*)"
    )
    parser.add_argument("--role", help="only runs of this role")
    parser.add_argument("--last", type=int, help="only the newest N runs")
    parser.add_argument(
        "--metric", action="append", help=f"metric(s) to show (default: {DEFAULT_METRICS})"
    )
    parser.add_argument("--csv", type=Path, help="write the table as CSV")
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown")
    parser.add_argument("--plot", type=Path, help="write a PNG of the first metric over time")
    args = parser.parse_args(argv)
    if len(args.runs) not in (0, 2):
        parser.error(f"give two runs to compare, or none to list them (got {len(args.runs)})")

    uri = MlflowTrackingConfig(uri=args.uri).resolved_uri()
    try:
        if args.runs:
            return compare_two(uri, args.runs, args)
        return list_runs(uri, args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def compare_two(uri: str, refs: list[str], args: argparse.Namespace) -> int:
    a, b = (resolve(uri, ref) for ref in refs)
    table, shared = paired_table(uri, a, b)
    print(f"A: {label(a)}\nB: {label(b)}\n{shared} shared tasks\n")
    if table.empty:
        print("the runs share no task: nothing to compare", file=sys.stderr)
        return 1
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(
        "\nB-A: mean paired difference over shared tasks; 95% CI: bootstrap over tasks; "
        "p: Wilcoxon signed-rank. Significant when the CI excludes 0 and p < 0.05."
    )
    write_tables(table, table, args)
    return 0


def list_runs(uri: str, args: argparse.Namespace) -> int:
    runs = fetch_runs(uri, args.experiment, args.role, args.last)
    if runs.empty:
        print(f"no council-eval runs at {uri}", file=sys.stderr)
        return 1
    metrics = args.metric or [
        *DEFAULT_METRICS,
        *(m for m in DELIBERATION_METRICS if runs.get(f"metrics.{m}", pd.Series()).notna().any()),
    ]
    table = comparison(runs, metrics)
    tested = any(m in QUALITY_METRICS for m in metrics)
    scores = [run_task_scores(uri, r) if tested else None for r in runs["run_id"]]
    shown = best_marks(table, metrics, scores)
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        print(shown.to_string(index=False))
    print(
        f"\n{len(table)} runs from {uri}; * significantly best (quality metrics, paired over "
        "shared tasks); Δ vs the previous run of the same config, (in parentheses) when not "
        "significant"
    )
    write_tables(table.drop(columns="prev"), shown, args)
    if args.plot:
        plot(table, metrics[0], args.plot)
    return 0


def write_tables(table: pd.DataFrame, shown: pd.DataFrame, args: argparse.Namespace) -> None:
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.markdown:
        args.markdown.write_text(shown.to_markdown(index=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
