"""The console summary of a finished run: per-agent table, figures, where things are."""

from __future__ import annotations

import pandas as pd

from pipelines.deliberation.accuracy import truth_lines as deliberation_truth_lines
from pipelines.deliberation.rounds import deliberation_lines
from pipelines.driver.pipeline import RunOutcome
from pipelines.scoring.truth import truth_lines
from pipelines.spec.metrics import QUALITY_METRICS
from pipelines.spec.run_folder import (
    METRICS_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    SCALING_FILE,
    TABLES,
    TASK_METRICS_FILE,
)


def with_ci(figures: dict, name: str) -> str:
    """``name 0.412 [0.350, 0.470]``; the interval is left out when there is none."""
    text = f"{name:<22} {figures[name]:.3f}"
    if (low := figures.get(f"{name}_ci_low")) is not None:
        text += f"  [{low:.3f}, {figures[f'{name}_ci_high']:.3f}]"
    if (sd := figures.get(f"{name}_repeat_sd")) is not None:
        text += f"  sd {sd:.3f} over {figures['repeats']} repeats"
    return text


def summary(outcome: RunOutcome) -> str:
    """Console summary: per-agent table, run figures, where the files are."""
    m = outcome.metrics
    o = m["overall"]
    quality = "\n".join(f"  {with_ci(o, k)}" for k in QUALITY_METRICS if k in o)
    lines = [
        f"run {outcome.run_id}",
        outcome.agents.to_string(index=False, float_format=lambda x: f"{x:.3f}"),
        "",
        "quality (95% CI over tasks):",
        quality,
        *truth_lines(o),
        f"requests {o['requests']} (errors {o['errors']})  "
        f"tokens/s {o['tokens_per_s']:.1f} (engine busy: {o['generation_tokens_per_s']:.1f})  "
        f"latency p50 {o['latency_p50_s']:.2f} s p95 {o['latency_p95_s']:.2f} s  "
        f"wall {m['wall_s']:.1f} s  scoring {m['scoring_s']:.2f} s",
    ]
    if m.get("rows_reused"):
        lines.append(
            f"resumed: {m['rows_reused']} rows from earlier parts, "
            f"{m['rows_generated']} generated now"
        )
    if m.get("landing_delay_p50_s") is not None:
        lines.append(
            f"parts: engine finish to part on disk p50 {m['landing_delay_p50_s']:.3f} s "
            f"(max {m['landing_delay_max_s']:.3f} s)"
        )
    missed = sorted(o["keyword_hit_rates"].items(), key=lambda kv: kv[1])[:5]
    lines.append("least-hit keywords: " + ", ".join(f"{k} {v:.2f}" for k, v in missed))
    for role, r in m.get("roles", {}).items():
        lines.append(
            f"  {role:<10} keyword_relevance {r['keyword_relevance']:.3f}  "
            f"unique_ratio {r['unique_ratio']:.3f}  requests {r['requests']}"
        )
    lines += deliberation_lines(m)
    if truth := deliberation_truth_lines(m):
        lines += ["against reference answers:", *(f"  {line}" for line in truth)]
    if "scaling" in m:
        table = pd.DataFrame(m["scaling"])
        lines += ["", "scaling:", table.to_string(index=False, float_format=lambda x: f"{x:.3f}")]
    for name in (RESULTS_FILE, TASK_METRICS_FILE, METRICS_FILE, REPORT_FILE):
        lines.append(f"{name}: {outcome.out_dir / name}")
    for name in TABLES.values():
        if (outcome.out_dir / name).is_file():
            lines.append(f"{name}: {outcome.out_dir / name}")
    if "scaling" in m:
        lines.append(f"{SCALING_FILE}: {outcome.out_dir / SCALING_FILE}")
    if "tracking" in m:
        t = m["tracking"]
        if t["ok"]:
            lines.append(
                f"{t['name']}: run {t['run']} in {t['where']} "
                f"({t['seconds']:.2f} s, {100 * t['share_of_run']:.1f}% of the run)"
            )
        else:
            lines.append(
                f"{t['name']}: TRACKING FAILED ({t['error']}); the run's files are on disk: "
                f"python -m pipelines.track {outcome.out_dir} [--uri URI]"
            )
    if "sink" in m:
        n = m["sink"]
        lines.append(
            f"{n['name']}: {n['messages']} messages, acked {n['acked']} "
            f"(duplicate {n['duplicate']}), unpublished {n['unpublished']}"
            + (
                f", batch acked p50 {m['ack_delay_p50_s']:.2f} s after its engine finished"
                if m.get("ack_delay_p50_s") is not None
                else ""
            )
        )
        if n.get("open_deliberations"):
            lines.append(f"  {n['open_deliberations']} deliberation(s) did not end")
        if n.get("dead_lettered"):
            lines.append(
                f"  DEAD-LETTERED: {n['dead_lettered']} messages over the server's max_payload, "
                f"never sent; their ids are in {outcome.out_dir / 'dead.txt'}"
            )
        if n["unpublished"]:
            lines.append(
                f"  NOT PUBLISHED: {n['unpublished']} messages ({n['error']}); they are in "
                f"{outcome.out_dir / 'outbox.jsonl'}: "
                f"python -m pipelines.replay {outcome.out_dir} [--url URL]"
            )
    return "\n".join(lines)
