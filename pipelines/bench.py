"""Executor benchmark: the same requests through raw ``vllm.LLM.chat`` and each executor.

``python -m pipelines.bench [--requests 60] [--max-tokens 64] [--executors ray dask local]``

Each contender loads its own engine (one at a time) and runs exactly the same
batches. Reported side by side, from one invocation: tokens/s over the engine
calls alone, tokens/s over the wall time without the engine load, the ratio of
the latter to raw ``LLM.chat``, and the per-batch overhead of the executor.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from pipelines import PROJECT_ROOT
from pipelines.config import register
from pipelines.council import batches, expand
from pipelines.executors import build_executor
from pipelines.pipeline import load_run_tasks
from pipelines.settings import RunSettings, from_config

log = logging.getLogger("pipelines.bench")


def settings_for(requests: int, max_tokens: int, batch_size: int) -> RunSettings:
    register()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "role=all",
                f"limit={-(-requests // (3 * 5))}",
                f"max_tokens={max_tokens}",
                f"executor.batch_size={batch_size}",
            ],
        )
    return from_config(cfg)


def bench_requests(
    requests: int, max_tokens: int, batch_size: int
) -> tuple[RunSettings, list[pd.DataFrame]]:
    """Settings and the batches of the first ``requests`` council requests (all roles)."""
    settings = settings_for(requests, max_tokens, batch_size)
    tasks = load_run_tasks(settings)
    table = expand(tasks, settings.council, settings.system_prompts, batch_size).head(requests)
    parts = batches(table)
    log.info("bench: %d requests in %d batches", len(table), len(parts))
    return settings, parts


def raw_vllm(settings: RunSettings, parts: list[pd.DataFrame]) -> dict[str, float]:
    """The reference: ``vllm.LLM.chat`` called directly on each batch."""
    from vllm import SamplingParams

    from pipelines.engines import chat_messages
    from pipelines.engines.vllm import VLLMEngine

    start = time.perf_counter()
    engine = VLLMEngine(settings.engine)
    load = time.perf_counter() - start
    busy, tokens = 0.0, 0
    for part in parts:
        rows = list(part.itertuples(index=False))
        params = [
            SamplingParams(temperature=r.temperature, seed=r.seed, max_tokens=r.max_tokens)
            for r in rows
        ]
        t = time.perf_counter()
        outs = engine.llm.chat([chat_messages(r) for r in rows], params, use_tqdm=False)
        busy += time.perf_counter() - t
        tokens += sum(len(o.outputs[0].token_ids) for o in outs)
    engine.close()
    return {"load_s": load, "busy_s": busy, "wall_s": load + busy, "tokens": tokens}


def through_executor(settings: RunSettings, name: str, parts: list[pd.DataFrame]) -> dict:
    from dataclasses import replace

    cfg = replace(settings.executor, name=name)
    start = time.perf_counter()
    with build_executor(cfg) as executor:
        out = pd.concat(list(executor.map(settings.engine, parts)))
        if hasattr(executor, "close"):
            executor.close()
    wall = time.perf_counter() - start
    busy = float(out.groupby("batch_id")["batch_s"].first().sum())
    return {
        "load_s": float(out["load_s"].max()),
        "busy_s": busy,
        "wall_s": wall,
        "tokens": int(out["completion_tokens"].sum()),
        "proposals": out.sort_values("row")["proposal"].tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--executors", nargs="+", default=["ray", "dask", "local"])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "bench-executors.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    settings, parts = bench_requests(args.requests, args.max_tokens, args.batch_size)

    runs = {"raw": raw_vllm(settings, parts)}
    for name in args.executors:
        runs[name] = through_executor(settings, name, parts)

    raw = runs["raw"]
    raw_rate = raw["tokens"] / raw["busy_s"]
    rows = []
    for name, r in runs.items():
        net = r["wall_s"] - r["load_s"]
        rows.append(
            {
                "contender": name,
                "tokens": r["tokens"],
                "load_s": r["load_s"],
                "busy_tokens_per_s": r["tokens"] / r["busy_s"],
                "net_tokens_per_s": r["tokens"] / net,
                "vs_raw": (r["tokens"] / net) / raw_rate,
                "overhead_per_batch_s": (net - r["busy_s"]) / len(parts),
            }
        )
    table = pd.DataFrame(rows)
    if "ray" in runs:
        ray_rate = table.set_index("contender").loc["ray", "net_tokens_per_s"]
        table["vs_ray"] = table["net_tokens_per_s"] / ray_rate
    same = {
        name: runs[name]["proposals"] == runs[args.executors[0]]["proposals"]
        for name in args.executors
    }
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"identical proposals to {args.executors[0]}: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"table": table.to_dict(orient="records"), "identical": same}, indent=2)
    )
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
