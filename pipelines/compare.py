"""Compare council runs recorded in MLflow: ``python -m pipelines.compare``.

``python -m pipelines.compare A B`` compares two runs task by task: per quality
metric, the paired difference B - A over the tasks both ran, its 95 % bootstrap
interval, the Wilcoxon signed-rank p-value and whether it is significant.

With ``--gate`` it decides whether B regressed against A (exit 5): per gated
metric the mean per-task drop, a one-sided Wilcoxon p-value corrected over the
gated metrics (Holm, or ``--correction bh``) and a tolerance (``--tolerance
METRIC=DROP``); a metric regressed when its corrected test rejects at
``--alpha`` and its drop exceeds its tolerance. Each line also says the drop
the pair detects with 80 % power; ``--tasks-for EFFECT`` the paired tasks
needed to detect that drop (``pipelines/scoring/gate.py``).

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
from pipelines.spec.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_REGRESSED
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
    gate = parser.add_argument_group("gate (two runs)")
    gate.add_argument("--gate", action="store_true", help="exit 5 when B regressed against A")
    gate.add_argument("--alpha", type=float, default=0.05, help="level of the gate (0.05)")
    gate.add_argument("--correction", choices=["holm", "bh"], default="holm")
    gate.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=DROP",
        help="gate METRIC, regressed only past this drop (default: answer_accuracy and "
        "no_answer_rate at 0.02 where tasks have references, else keyword_relevance)",
    )
    gate.add_argument(
        "--tasks-for", type=float, metavar="EFFECT", help="paired tasks to detect this drop"
    )
    args = parser.parse_args(argv)
    if len(args.runs) not in (0, 2):
        parser.error(f"give two runs to compare, or none to list them (got {len(args.runs)})")

    uri = MlflowTrackingConfig(uri=args.uri).resolved_uri()
    try:
        if args.runs and args.gate:
            return gate_two(uri, args.runs, args)
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


def gate_two(uri: str, refs: list[str], args: argparse.Namespace) -> int:
    from pipelines.scoring.gate import TOLERANCES, default_metrics, gate, tasks_for
    from pipelines.spec.metrics import LOWER_IS_BETTER

    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha {args.alpha}: between 0 and 1")
    tolerances: dict[str, float] = {}
    for item in args.tolerance:
        metric, sep, value = item.partition("=")
        try:
            tolerances[metric] = float(value) if sep else TOLERANCES[metric]
        except (ValueError, KeyError):
            raise UserError(f"--tolerance {item!r}: expected METRIC=DROP") from None
    a, b = (resolve(uri, ref) for ref in refs)
    scores = [run_task_scores(uri, r.info.run_id) for r in (a, b)]
    if scores[0] is None or scores[1] is None:
        raise UserError("both runs need their task_metrics.parquet artifact")
    both = scores[0].merge(scores[1], left_index=True, right_index=True, suffixes=("_a", "_b"))
    shared = {c for c in scores[0].columns if c in scores[1].columns}
    metrics = list(tolerances) or default_metrics(shared)
    missing = [m for m in metrics if m not in shared]
    if missing or not metrics or both.empty:
        raise UserError(f"nothing to gate: the runs share no task scores of {missing or metrics}")
    pairs = {m: (both[f"{m}_a"].to_numpy(), both[f"{m}_b"].to_numpy()) for m in metrics}
    tolerances = {m: tolerances.get(m, TOLERANCES.get(m, 0.0)) for m in metrics}
    gated = gate(pairs, tolerances, frozenset(LOWER_IS_BETTER), args.alpha, args.correction)
    regressed = [g for g in gated if g.regressed]
    verdict = (
        "REGRESSED: " + ", ".join(f"{g.metric} dropped {g.drop:+.3f}" for g in regressed)
        if regressed
        else "passed: no gated metric regressed"
    )
    print(f"{verdict} (B against A, {args.correction} at alpha {args.alpha:g})")
    print(f"A: {label(a)}\nB: {label(b)}\n{len(both)} shared tasks\n")
    table = pd.DataFrame(
        {
            "metric": g.metric,
            "A": g.mean_a,
            "B": g.mean_b,
            "drop": g.drop,
            "95% CI": "" if g.ci is None else f"[{g.ci[0]:+.3f}, {g.ci[1]:+.3f}]",
            "p": g.p,
            f"p ({args.correction})": g.p_adjusted,
            "tolerance": g.tolerance,
            "detects": g.detectable,
            "verdict": "REGRESSED" if g.regressed else "ok",
        }
        for g in gated
    )
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(
        "\ndrop: mean per-task A-B (B-A where lower is better), positive is worse; p: one-sided "
        "Wilcoxon signed-rank; detects: the drop found with 80% power at this many tasks"
    )
    if args.tasks_for:
        for g in gated:
            if g.tasks > 1:  # drops that never vary: any drop shows at once
                n = tasks_for(args.tasks_for, g.spread, g.level)
                print(
                    f"{g.metric}: {n} paired tasks detect a drop of {args.tasks_for:g} (80% power)"
                )
    write_tables(table, table, args)
    return EXIT_REGRESSED if regressed else EXIT_OK


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
