"""``report.html``: one self-contained page per run (tables + matplotlib plots).

``python -m pipelines.report <run_dir>`` rebuilds it from the run's files.
"""

from __future__ import annotations

import base64
import html
import io
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.metrics import QUALITY_METRICS, agent_table

REPORT_FILE = "report.html"
QUALITY = QUALITY_METRICS
THROUGHPUT = [
    "requests",
    "errors",
    "completion_tokens",
    "tokens_per_s",
    "generation_tokens_per_s",
    "requests_per_s",
    "latency_p50_s",
    "latency_p95_s",
]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _plots(tm: pd.DataFrame, hit_rates: dict[str, float]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    agents = tm.groupby("agent_id").agg(
        keyword_relevance=("keyword_relevance", "mean"), temperature=("temperature", "first")
    )
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(agents.index, agents["keyword_relevance"], color="#4c72b0")
    for i, t in enumerate(agents["temperature"]):
        ax.text(i, 0.02, f"T={t:g}", ha="center", color="white", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("keyword relevance")
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    plots.append(("Keyword relevance by agent", _png(fig)))

    diversity = [c for c in ["distinct_2", "self_bleu", "embedding_diversity"] if c in tm]
    per_task = tm.groupby("task_id")[diversity].first()
    fig, ax = plt.subplots(figsize=(8, 3))
    per_task.plot.bar(ax=ax, width=0.8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    ax.set_ylabel("per task")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(fontsize=8)
    plots.append(
        (
            "Diversity per task (higher distinct-2 / embedding, lower self-BLEU = more diverse)",
            _png(fig),
        )
    )

    rates = pd.Series(hit_rates).sort_values()
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.18 * len(rates))))
    ax.barh(rates.index, rates.values, color="#55a868")
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of proposals hitting the keyword")
    ax.tick_params(axis="y", labelsize=7)
    plots.append(("Per-keyword hit rates", _png(fig)))

    by_temp = tm.groupby("temperature")[["keyword_relevance", "completion_tokens"]].mean()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(by_temp.index, by_temp["keyword_relevance"], "o-", label="keyword relevance")
    ax.set_xlabel("temperature")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    plots.append(("Temperature vs keyword relevance", _png(fig)))
    return plots


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.3f}", border=0, classes="t")


def render(run_dir: Path) -> str:
    """The report page for the run in ``run_dir``."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    tm = pd.read_parquet(run_dir / "task_metrics.parquet")
    overall = metrics["overall"]
    summary = pd.DataFrame(
        [
            {"metric": k, "value": f"{v:.3f}" if isinstance(v, float) else str(v)}
            for k in QUALITY + THROUGHPUT
            if (v := overall.get(k)) is not None
        ]
    )
    agents = agent_table(tm)
    diversity_cols = [c for c in QUALITY[2:] if c in tm]
    per_task = tm.groupby(["role", "task_id"])[diversity_cols].first().reset_index()
    sections = [
        ("Summary", _table(summary)),
        ("Agents", _table(agents)),
        *[(title, img) for title, img in _plots(tm, overall.get("keyword_hit_rates", {}))],
        ("Diversity per task", _table(per_task)),
    ]
    if "scaling" in metrics:
        sections.insert(2, ("Scaling", _table(pd.DataFrame(metrics["scaling"]))))
    title = f"council-eval run {html.escape(metrics['run_id'])}"
    body = "\n".join(f"<h2>{html.escape(t)}</h2>\n{c}" for t, c in sections)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 70em; }}
table.t {{ border-collapse: collapse; font-size: 0.9em; }}
table.t td, table.t th {{ padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; }}
table.t th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
</style></head>
<body><h1>{title}</h1>
<p>wall {metrics["wall_s"]:.1f} s · {overall["requests"]} requests · {overall["errors"]} errors</p>
{body}
</body></html>
"""


def write_report(run_dir: Path) -> Path:
    path = run_dir / REPORT_FILE
    path.write_text(render(run_dir), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m pipelines.report <run_dir>", file=sys.stderr)
        return 2
    print(write_report(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
