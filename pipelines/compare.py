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

import pandas as pd

from pipelines import UserError
from pipelines.config import MlflowTrackingConfig
from pipelines.runtime.redact import redact_text
from pipelines.spec.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from pipelines.spec.metrics import DEFAULT_METRICS, PRESENT_METRICS, QUALITY_METRICS
from pipelines.trackers.comparison import best_marks, comparison, paired_table, plot
from pipelines.trackers.records import fetch_runs, label, resolve, run_task_scores


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
        return EXIT_BAD_INPUT


def compare_two(uri: str, refs: list[str], args: argparse.Namespace) -> int:
    a, b = (resolve(uri, ref) for ref in refs)
    table, shared = paired_table(uri, a, b)
    print(f"A: {label(a)}\nB: {label(b)}\n{shared} shared tasks\n")
    if table.empty:
        print("the runs share no task: nothing to compare", file=sys.stderr)
        return EXIT_FAILED
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(
        "\nB-A: mean paired difference over shared tasks; 95% CI: bootstrap over tasks; "
        "p: Wilcoxon signed-rank. Significant when the CI excludes 0 and p < 0.05."
    )
    write_tables(table, table, args)
    return EXIT_OK


def list_runs(uri: str, args: argparse.Namespace) -> int:
    runs = fetch_runs(uri, args.experiment, args.role, args.last)
    if runs.empty:
        print(f"no council-eval runs at {redact_text(uri)}", file=sys.stderr)
        return EXIT_FAILED
    metrics = args.metric or [
        *DEFAULT_METRICS,
        *(m for m in PRESENT_METRICS if runs.get(f"metrics.{m}", pd.Series()).notna().any()),
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
    return EXIT_OK


def write_tables(table: pd.DataFrame, shown: pd.DataFrame, args: argparse.Namespace) -> None:
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.markdown:
        args.markdown.write_text(shown.to_markdown(index=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
