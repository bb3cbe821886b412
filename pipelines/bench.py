"""Executor benchmark: the same requests through raw ``vllm.LLM.chat`` and each executor.

``python -m pipelines.bench [--requests 60] [--max-tokens 64] [--executors ray dask local]``

Every contender loads its own engine (one engine at a time) and runs exactly
the same batches. Raw ``LLM.chat`` runs first and again after each executor,
so each executor is compared with the raw runs just before and after it: on a
shared machine the engine's own speed drifts over minutes, and a single raw
run at the start would charge that drift to the executors.

Reported per contender, from one invocation:

- ``steady_tok_s``: tokens over the steady window, from the start of the first
  engine call to the arrival of the last result at the caller. This is the
  executor's throughput once its workers are up; ``vs_raw`` divides it by the
  mean of the two neighbouring raw runs.
- ``overhead_per_batch_s``: (steady window - engine time) / batches: dispatch,
  transfer and result delivery.
- ``start_s`` (cluster start), ``worker_s`` (worker start and imports, before
  the engine load), ``load_s`` (engine load) and ``stop_s`` (engines and cluster
  stopped): the fixed costs, paid once per run.
- ``e2e_tok_s``: tokens over everything (fixed costs included), for scale.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from pipelines import PROJECT_ROOT
from pipelines.config import RunConfig, compose_config
from pipelines.council import batches, expand
from pipelines.executors import build_executor
from pipelines.pipeline import load_run_tasks
from pipelines.procs import live_descendants
from pipelines.stream import generate_stage

log = logging.getLogger("pipelines.bench")


def bench_requests(
    requests: int, max_tokens: int, batch_size: int
) -> tuple[RunConfig, list[pd.DataFrame]]:
    """The config and the batches of the first ``requests`` council requests (all roles)."""
    settings = compose_config(
        [
            "role=all",
            f"limit={-(-requests // (3 * 5))}",
            f"max_tokens={max_tokens}",
            f"batch_size={batch_size}",
            "cache=false",  # every contender generates
        ]
    )
    tasks = load_run_tasks(settings)
    table = expand(tasks, settings, settings.system_prompts, batch_size).head(requests)
    parts = batches(table)
    log.info("bench: %d requests in %d batches", len(table), len(parts))
    return settings, parts


def wait_engines_gone(timeout: float = 60.0) -> None:
    """Block until no vLLM engine process of ours is left, so contenders never overlap."""
    deadline = time.monotonic() + timeout
    alive: list[psutil.Process] = []
    while time.monotonic() < deadline:
        alive = live_descendants("VLLM::")
        if not alive:
            return
        time.sleep(0.5)
    log.warning("bench: engine processes still alive after %.0f s: %s", timeout, alive)


def raw_vllm(settings: RunConfig, parts: list[pd.DataFrame]) -> dict[str, Any]:
    """The reference: ``vllm.LLM.chat`` called directly on each batch."""
    from vllm import SamplingParams

    from pipelines.engines import chat_messages
    from pipelines.engines.vllm import VLLMEngine

    wait_engines_gone()
    start = time.perf_counter()
    engine = VLLMEngine(settings.engine, settings.model)
    load = time.perf_counter() - start
    busy, tokens, proposals = 0.0, 0, []
    first = time.perf_counter()
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
        proposals += [o.outputs[0].text for o in outs]
    window = time.perf_counter() - first
    t = time.perf_counter()
    engine.close()
    stop = time.perf_counter() - t
    return {
        "start_s": 0.0,
        "worker_s": 0.0,
        "load_s": load,
        "stop_s": stop,
        "busy_s": busy,
        "window_s": window,
        "total_s": load + window + stop,
        "tokens": tokens,
        "proposals": proposals,
    }


def through_executor(settings: RunConfig, name: str, parts: list[pd.DataFrame]) -> dict:
    """The same batches through ``executor=name``; times from the stage's own stamps."""
    wait_engines_gone()
    t0 = time.time()
    with build_executor(replace(settings.executor, name=name)) as executor:
        t_map = time.time()
        out = pd.concat(list(executor.map(generate_stage(settings, executor), parts)))
        t_last = time.time()
    t_end = time.time()
    per_batch = out.groupby("batch_id").agg(busy=("batch_s", "first"), at=("started_at", "first"))
    first_start = float(per_batch["at"].min())
    load = float(out["load_s"].max())
    return {
        "start_s": t_map - t0,
        "worker_s": first_start - t_map - load,
        "load_s": load,
        "stop_s": t_end - t_last,
        "busy_s": float(per_batch["busy"].sum()),
        "window_s": t_last - first_start,
        "total_s": t_end - t0,
        "tokens": int(out["completion_tokens"].sum()),
        "proposals": out.sort_values("row")["proposal"].tolist(),
    }


def summarize(runs: list[tuple[str, dict]], n_batches: int) -> pd.DataFrame:
    """One row per contender; each executor against the raw runs around it."""
    rows = []
    for i, (name, r) in enumerate(runs):
        steady = r["tokens"] / r["window_s"]
        if name == "raw":
            reference = steady
        else:
            around = [runs[j][1] for j in (i - 1, i + 1) if j < len(runs) and runs[j][0] == "raw"]
            reference = sum(a["tokens"] / a["window_s"] for a in around) / len(around)
        rows.append(
            {
                "contender": name,
                "tokens": r["tokens"],
                "engine_tok_s": r["tokens"] / r["busy_s"],
                "steady_tok_s": steady,
                "vs_raw": steady / reference,
                "overhead_per_batch_s": (r["window_s"] - r["busy_s"]) / n_batches,
                "start_s": r["start_s"],
                "worker_s": r["worker_s"],
                "load_s": r["load_s"],
                "stop_s": r["stop_s"],
                "e2e_tok_s": r["tokens"] / r["total_s"],
            }
        )
    table = pd.DataFrame(rows)
    if "ray" in table["contender"].values:
        ray_rate = table.set_index("contender").loc["ray", "steady_tok_s"]
        table["vs_ray"] = table["steady_tok_s"] / ray_rate
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=60, help="council requests (all roles)")
    parser.add_argument("--max-tokens", type=int, default=64, help="generation cap per request")
    parser.add_argument("--batch-size", type=int, default=32, help="requests per engine call")
    parser.add_argument("--executors", nargs="+", default=["ray", "dask", "local"])
    parser.add_argument(
        "--min-vs-raw",
        type=float,
        default=0.9,
        help="exit 1 when an executor's steady tokens/s is below this share of raw (default 0.9)",
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "bench-executors.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    settings, parts = bench_requests(args.requests, args.max_tokens, args.batch_size)
    runs: list[tuple[str, dict]] = [("raw", raw_vllm(settings, parts))]
    for name in args.executors:
        log.info("bench: executor %s", name)
        runs.append((name, through_executor(settings, name, parts)))
        log.info("bench: raw again")
        runs.append(("raw", raw_vllm(settings, parts)))

    table = summarize(runs, len(parts))
    reference = runs[0][1]["proposals"]
    same = {f"{i}:{name}": r["proposals"] == reference for i, (name, r) in enumerate(runs)}
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"identical proposals to the first raw run: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "requests": args.requests,
                "batches": len(parts),
                "max_tokens": args.max_tokens,
                "table": table.to_dict(orient="records"),
                "identical": same,
            },
            indent=2,
        )
    )
    print(f"written: {args.out}")
    slow = table[table["vs_raw"] < args.min_vs_raw]["contender"].tolist()
    if slow:
        print(f"below {args.min_vs_raw:.2f} x raw: {slow}")
    return 0 if all(same.values()) and not slow else 1


if __name__ == "__main__":
    sys.exit(main())
