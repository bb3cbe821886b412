"""Live publishing benchmark: the same requests with ``sink=nats`` and ``sink=none``.

``python -m pipelines.bench_stream [--rounds 2] [--limit 2] [--max-tokens 32]``

One in-process engine (``executor=local``, loaded once) runs the same requests
as whole pipeline runs, alternating ``none, nats, none, nats, …, none``, so
each ``nats`` run sits between two ``none`` runs (the engine's own speed
drifts on a shared host). With the in-process executor a batch's publishing
happens between engine calls, so its whole cost shows: the worst case.

Reported per ``nats`` run: generation tokens/s over the mean of the ``none``
runs around it, and the median delay from a batch's engine finish to its
agent messages acked by the (embedded) server.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

from pipelines import PROJECT_ROOT
from pipelines.config import ExecutorConfig, compose_config
from pipelines.driver.pipeline import run_pipeline
from pipelines.executors.local import LocalExecutor
from pipelines.spec.exits import EXIT_FAILED, EXIT_OK

log = logging.getLogger("pipelines.bench_stream")


def one_run(local: LocalExecutor, sink: str, overrides: list[str], root: Path) -> dict:
    cfg = compose_config([*overrides, f"sink={sink}"])
    out = run_pipeline(cfg, Path(tempfile.mkdtemp(dir=root)), executor=local)
    m = out.metrics
    return {
        "sink": sink,
        "tokens": m["generated_tokens"],
        "tok_s": m["generated_tokens"] / m["generation_wall_s"],
        "ack_delay_p50_s": m["ack_delay_p50_s"] if sink != "none" else None,
        "landing_delay_p50_s": m["landing_delay_p50_s"],
        "proposals": out.results["proposal"].tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.bench_stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=2, help="nats runs (each bracketed)")
    parser.add_argument("--limit", type=int, default=2, help="tasks per role (role=all)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-cost", type=float, default=0.02, help="exit 1 above this")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "bench-stream.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    overrides = [
        "role=all",
        f"limit={args.limit}",
        f"max_tokens={args.max_tokens}",
        f"batch_size={args.batch_size}",
        "executor=local",
        "tracking=none",
        "embeddings=false",
        "cache=false",  # every run generates
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    with (
        tempfile.TemporaryDirectory() as root,
        LocalExecutor(ExecutorConfig(name="local")) as local,
    ):
        one_run(local, "none", overrides, Path(root))  # warm-up: engine load, first batches
        runs.append(one_run(local, "none", overrides, Path(root)))
        for _ in range(args.rounds):
            runs.append(one_run(local, "nats", overrides, Path(root)))
            runs.append(one_run(local, "none", overrides, Path(root)))
    rows = []
    for i, r in enumerate(runs):
        if r["sink"] == "nats":
            around = statistics.mean([runs[i - 1]["tok_s"], runs[i + 1]["tok_s"]])
            rows.append({**r, "vs_none_around": r["tok_s"] / around})
        else:
            rows.append({**r, "vs_none_around": None})
    table = pd.DataFrame(rows).drop(columns="proposals")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    same = all(r["proposals"] == runs[0]["proposals"] for r in runs)
    nats = table[table["sink"] == "nats"]
    cost = 1 - float(nats["vs_none_around"].median())
    ack = float(nats["ack_delay_p50_s"].median())
    print(
        f"live publishing cost: {100 * cost:.1f}% of generation tokens/s (median of "
        f"{len(nats)} bracketed runs); batch acked {ack:.3f} s after its engine finished "
        f"(median); identical proposals: {same}"
    )
    args.out.write_text(json.dumps({"runs": table.to_dict(orient="records"), "cost": cost}))
    return EXIT_OK if same and cost <= args.max_cost and ack <= 1.0 else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
