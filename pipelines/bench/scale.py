"""Cost as work grows: the pipeline against raw vLLM at 180, 3,000 and 15,000 requests
(the library of ``python -m pipelines.bench_scale``).
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import PROJECT_ROOT
from pipelines.bench import raw_vllm
from pipelines.config import compose_config, known_roles
from pipelines.driver.pipeline import council_requests, load_run_tasks
from pipelines.flow.tasks import load_tasks
from pipelines.spec.run_folder import METRICS_FILE, PAGE_DIR, PHASES_FILE, REPORT_FILE, RESULTS_FILE

log = logging.getLogger("pipelines.bench_scale")

AGENTS = 3
ANGLES = [
    "for a team of {n} engineers",
    "under a budget of {n} hours",
    "with {n} services in production",
    "when traffic grows {n} times",
    "for a system {n} years old",
    "with an outage every {n} days",
    "across {n} regions",
    "with {n} releases a week",
]
"""Phrases that vary a shipped task's prompt (``{n}``: a seeded number)."""


def synthetic_tasks(per_role: int, seed: int = 0) -> list[dict[str, Any]]:
    """``per_role`` generated tasks for every role, seeded: each a shipped task's
    prompt with a varying angle, and 3 of that role's keywords."""
    rng = random.Random(seed)
    out = []
    for role in known_roles():
        shipped = load_tasks(PROJECT_ROOT / "datasets" / f"{role}.jsonl")
        pool = sorted({k for t in shipped for k in t.keywords})
        for i in range(per_role):
            base = shipped[i % len(shipped)]
            angle = rng.choice(ANGLES).format(n=rng.randint(2, 500))
            out.append(
                {
                    "task_id": f"{role}-s{i + 1:05d}",
                    "role": role,
                    "prompt": f"{base.prompt.rstrip('.?')} {angle}.",
                    "keywords": rng.sample(pool, 3),
                }
            )
    return out


def write_tasks(path: Path, tasks: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return path


def run_overrides(dataset: Path, max_tokens: int, executor: str, extra: list[str]) -> list[str]:
    """The pipeline's overrides, which the raw ceiling's requests come from too."""
    return [
        "role=all",
        f"dataset={dataset}",
        f"max_tokens={max_tokens}",
        f"executor={executor}",
        "cache=false",  # both generate every request
        *extra,
    ]


def pipeline_run(size_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """``python -m pipelines.run`` in a process of its own; its figures."""
    run_dir, store = size_dir / "run", size_dir / "mlflow.db"
    args = [
        *overrides,
        "sink=nats",
        "tracking=mlflow",
        f"tracking.uri=sqlite:///{store}",
        "tracking.experiment=bench-scale",
        f"hydra.run.dir={run_dir}",
    ]
    before = store.stat().st_size if store.exists() else 0
    console = size_dir / "console.txt"
    t = time.perf_counter()
    with console.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.run", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
            check=False,
        )
    total = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"the run exited {done.returncode}: see {console}")
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    phases = json.loads((run_dir / PHASES_FILE).read_text())
    report = [run_dir / REPORT_FILE, *(run_dir / PAGE_DIR).glob("*")]
    return {
        "total_s": total,
        "tokens": metrics["generated_tokens"],
        "requests": metrics["rows_generated"],
        "phases": phases,
        "driver_peak_rss_mb": metrics["driver_peak_rss_mb"],
        "report_mb": sum(p.stat().st_size for p in report if p.is_file()) / 2**20,
        "report_html_mb": (run_dir / REPORT_FILE).stat().st_size / 2**20,
        "mlflow_growth_mb": (store.stat().st_size - before) / 2**20,
        "tracking_s": metrics.get("tracking", {}).get("seconds"),
        "console_lines": len(console.read_text().splitlines()),
    }


def size_row(size: int, raws: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    """One size's figures: the pipeline against the mean of the raw runs around it."""
    raw_s = sum(r["total_s"] for r in raws) / len(raws)
    phases = run["phases"]
    seconds = dict(phases["seconds"])
    # Before run_pipeline: the interpreter, imports, Hydra, preflight.
    seconds["start"] = seconds.get("start", 0.0) + run["total_s"] - phases["total_s"]
    after = phases["after_last_batch_s"]
    return {
        "requests": size,
        "raw_s": raw_s,
        "raw_busy_s": sum(r["busy_s"] for r in raws) / len(raws),
        "raw_runs": len(raws),
        "pipeline_s": run["total_s"],
        "vs_raw": raw_s / run["total_s"],
        "ms_per_request": 1000 * run["total_s"] / size,
        "raw_ms_per_request": 1000 * raw_s / size,
        "after_last_batch_s": after,
        "after_last_batch_share": after / run["total_s"],
        **{f"{k}_s": v for k, v in seconds.items()},
        "driver_peak_rss_mb": run["driver_peak_rss_mb"],
        "report_html_mb": run["report_html_mb"],
        "report_mb": run["report_mb"],
        "mlflow_growth_mb": run["mlflow_growth_mb"],
        "console_lines": run["console_lines"],
        "identical_to_raw": run.get("identical"),
    }


def with_marginals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each size's cost of one more request, from the size before it: fixed costs
    (start, loads) cancel, so a flat figure means time grows linearly."""
    out = []
    for before, row in zip([None, *rows], rows, strict=False):
        if before is not None and row["requests"] > before["requests"]:
            added = row["requests"] - before["requests"]
            row = row | {
                "marginal_ms_per_request": 1000
                * (row["pipeline_s"] - before["pipeline_s"])
                / added,
                "raw_marginal_ms_per_request": 1000 * (row["raw_s"] - before["raw_s"]) / added,
            }
        out.append(row)
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table a person reads: one column per size."""
    table = pd.DataFrame(rows).set_index("requests").T
    return table.to_markdown(floatfmt=".3g")


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["requests"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(sizes, [r["ms_per_request"] for r in rows], "o-", label="pipeline (end to end)")
    ax.plot(sizes, [r["raw_ms_per_request"] for r in rows], "s--", label="raw vllm.LLM.chat")
    after = [1000 * r["after_last_batch_s"] / r["requests"] for r in rows]
    ax.plot(sizes, after, "^:", label="pipeline after the last batch")
    ax.set_xscale("log")
    ax.set_xlabel("requests (role=all, 3 agents, synthetic tasks)")
    ax.set_ylabel("ms per request")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("council-eval: time per request as work grows", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def bench_size(
    size: int, out: Path, max_tokens: int, executor: str, bracket: bool, extra: list[str]
) -> dict[str, Any]:
    size_dir = out / str(size)
    dataset = write_tasks(size_dir / "tasks.jsonl", synthetic_tasks(-(-size // (AGENTS * 5))))
    overrides = run_overrides(dataset, max_tokens, executor, extra)
    settings = compose_config(overrides)
    table = council_requests(settings, load_run_tasks(settings))
    log.info("bench_scale: %d requests: raw", len(table))
    raws = [raw_vllm(settings, table)]
    log.info("bench_scale: %d requests: pipeline", len(table))
    run = pipeline_run(size_dir, overrides)
    if bracket:
        log.info("bench_scale: %d requests: raw again", len(table))
        raws.append(raw_vllm(settings, table))
    run["identical"] = same_proposals(table, raws[0].pop("proposals"), size_dir / "run")
    for r in raws:
        r.pop("proposals", None)
    (size_dir / "figures.json").write_text(json.dumps({"raw": raws, "pipeline": run}, indent=2))
    return size_row(len(table), raws, run)


def same_proposals(table: pd.DataFrame, raw: list[str], run_dir: Path) -> float:
    """Share of the run's proposals equal to raw's for the same (task, agent)."""
    key = ["role", "task_id", "agent_id"]
    want = table[key].assign(raw=raw)
    got = pd.read_parquet(run_dir / RESULTS_FILE, columns=[*key, "proposal"])
    both = want.merge(got, on=key, how="inner")
    return float((both["raw"] == both["proposal"]).sum() / len(table))
