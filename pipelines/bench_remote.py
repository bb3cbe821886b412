"""Remote-engine benchmark: ``engine=openai`` against a vLLM server vs in-process vLLM.

``python -m pipelines.bench_remote [--requests 60] [--max-tokens 64] [--concurrency 4 16 64]``

Runs the same requests through ``vllm.LLM.chat`` (one call) in this process, then
(after that engine is closed) through :class:`OpenAIEngine` against a vLLM
OpenAI server started for the same model, once per client concurrency.
Reports tokens/s over the engine calls, and each remote rate over the
in-process one, side by side from one invocation.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from pipelines import PROJECT_ROOT
from pipelines.bench import bench_requests, raw_vllm
from pipelines.config import OpenAIEngineConfig
from pipelines.engines import generate
from pipelines.engines.openai import OpenAIEngine
from pipelines.flow.council import batches
from pipelines.serve_model import served
from pipelines.spec.exits import EXIT_OK

log = logging.getLogger("pipelines.bench_remote")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.bench_remote", description=__doc__)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "bench-remote.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    settings, table = bench_requests(args.requests, args.max_tokens, args.batch_size)
    parts = batches(table)
    raw = raw_vllm(settings, table)
    raw_rate = raw["tokens"] / raw["busy_s"]
    rows = [
        {
            "engine": "vllm (in-process)",
            "concurrency": None,
            "tokens": raw["tokens"],
            "errors": 0,
            "tokens_per_s": raw_rate,
            "vs_in_process": 1.0,
        }
    ]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_file = args.out.with_suffix(".server.log")
    with served(settings.engine, settings.model, log_file=log_file) as url:
        for concurrency in args.concurrency:
            engine = OpenAIEngine(
                OpenAIEngineConfig(url=url, max_concurrency=concurrency), settings.model
            )
            start = time.perf_counter()
            completions = [c for part in parts for c in generate(engine, part)]
            busy = time.perf_counter() - start
            tokens = sum(c.completion_tokens for c in completions)
            rows.append(
                {
                    "engine": "openai (server)",
                    "concurrency": concurrency,
                    "tokens": tokens,
                    "errors": sum(c.error is not None for c in completions),
                    "tokens_per_s": tokens / busy,
                    "vs_in_process": tokens / busy / raw_rate,
                }
            )

    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    best = table.iloc[1:].sort_values("tokens_per_s").iloc[-1]
    print(
        f"best remote concurrency: {int(best['concurrency'])} "
        f"({best['vs_in_process']:.2f}x in-process tokens/s)"
    )
    args.out.write_text(json.dumps(table.to_dict(orient="records"), indent=2))
    print(f"written: {args.out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
