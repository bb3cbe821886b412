"""Compare council runs recorded in MLflow: ``python -m pipelines.compare``.

Prints one row per run (newest first): date, role, model, agents, temperature
and the chosen metrics; ``*`` marks the best value of each metric, and
``Δ<metric>`` is the change against the previous run of the same
configuration (role, model, agents, temperature, diversity factor, max tokens).
Writes CSV / Markdown tables and a PNG plot on request.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from pipelines.config import MlflowTrackingConfig

DEFAULT_METRICS = [
    "keyword_relevance",
    "unique_ratio",
    "distinct_2",
    "self_bleu",
    "tokens_per_s",
    "scaling/5_agents/scaling_factor",
]
LOWER_IS_BETTER = {"self_bleu", "latency_p50_s", "latency_p95_s", "wall_s"}
CONFIG = ["role", "model", "agents", "temperature", "diversity_factor", "max_tokens"]


def fetch_runs(
    uri: str, experiments: list[str] | None, role: str | None, last: int | None
) -> pd.DataFrame:
    """Runs of the council-eval experiments (or the named ones), newest first."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    import mlflow

    mlflow.set_tracking_uri(uri)
    if experiments is None:
        found = mlflow.search_experiments(filter_string="name LIKE 'council-eval/%'")
        experiments = [e.name for e in found]
    if not experiments:
        return pd.DataFrame()
    filters = f"params.role = '{role}'" if role else ""
    return mlflow.search_runs(
        experiment_names=experiments,
        filter_string=filters,
        order_by=["attributes.start_time DESC"],
        max_results=last or 1000,
    )


def comparison(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The comparison table: identity, config, metrics, deltas vs same config."""
    table = pd.DataFrame(
        {
            "run": runs.get("tags.mlflow.runName", runs["run_id"]),
            "date": pd.to_datetime(runs["start_time"]).dt.strftime("%Y-%m-%d %H:%M"),
            **{c: runs.get(f"params.{c}") for c in CONFIG},
        }
    )
    for m in metrics:
        table[m] = runs.get(f"metrics.{m}")
    # Previous run of the same config = the next row of its group (newest first).
    groups = table.groupby(CONFIG, dropna=False, sort=False)
    for m in metrics:
        table[f"Δ{m}"] = table[m] - groups[m].shift(-1)
    return table


def best_marks(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Formatted copy with ``*`` after the best value of each metric."""
    shown = table.copy()
    for m in metrics:
        col = pd.to_numeric(table[m], errors="coerce")
        if col.notna().any():
            best = col.idxmin() if m in LOWER_IS_BETTER else col.idxmax()
            shown[m] = [
                "" if pd.isna(v) else f"{v:.3f}" + ("*" if i == best else "")
                for i, v in col.items()
            ]
        else:
            shown[m] = ""
        d = pd.to_numeric(table[f"Δ{m}"], errors="coerce")
        shown[f"Δ{m}"] = ["" if pd.isna(v) else f"{v:+.3f}" for v in d]
    return shown


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
    parser = argparse.ArgumentParser(prog="python -m pipelines.compare", description=__doc__)
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

    uri = MlflowTrackingConfig(uri=args.uri).resolved_uri()
    metrics = args.metric or DEFAULT_METRICS
    runs = fetch_runs(uri, args.experiment, args.role, args.last)
    if runs.empty:
        print(f"no council-eval runs at {uri}", file=sys.stderr)
        return 1
    table = comparison(runs, metrics)
    shown = best_marks(table, metrics)
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        print(shown.to_string(index=False))
    print(f"\n{len(table)} runs from {uri}; * best, Δ vs the previous run of the same config")
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.markdown:
        args.markdown.write_text(shown.to_markdown(index=False) + "\n")
    if args.plot:
        plot(table, metrics[0], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
