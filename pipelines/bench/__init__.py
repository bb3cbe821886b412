"""Generation benchmark: the same requests through raw vLLM, the pipeline's
executors and Ray Data LLM, one engine at a time, in one invocation.

``python -m pipelines.bench [--requests 180] [--max-tokens 256] [--executors ray dask local]
[--peers ray-data-llm]``

Contenders:

- ``raw``: ``vllm.LLM.chat`` in one call over every request: the ceiling (the
  engine's own continuous batching, nothing around it). It runs first and
  again after every other contender, so each contender is compared with the
  raw runs just before and after it: on a shared machine the engine's own
  speed drifts over minutes.
- ``ray``, ``dask``, ``local``: the pipeline's generate stage through that
  executor, on the pipeline's batches (``--batch-size``), with
  ``engine.batches_in_flight`` batches in each engine.
- ``ray-data-llm``: ``ray.data.llm``'s vLLM processor on the same requests.
- ``raw-inline``: ``raw`` with vLLM's engine core inline
  (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), as a Ray engine host on CPU runs it:
  what the ceiling would be without vLLM's engine processes.
- ``ray-runtime``: ``raw-inline`` while a local Ray pipeline rests beside it
  (every Ray process up, nothing generating; ``pipelines.bench.ray_runtime``):
  what Ray's own runtime costs an engine on the same cores. Read its
  ``gen`` figures: its end to end is raw-inline's own (the resting Ray starts
  before it).

Reported per contender:

- ``gen_tok_s``: tokens over the engine's busy time (the union of its batches'
  windows; raw: the ``chat`` call). ``gen_vs_raw`` divides it by the raw runs'.
- ``e2e_tok_s``: tokens over everything from the contender's start to its
  engines stopped (cluster start, engine load and stop included).
  ``e2e_vs_raw``: the same against raw.
- ``start_s`` (cluster start), ``load_s`` (engine load), ``stop_s``.
- ``identical``: whether its proposals equal the first raw run's, row for row.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from pipelines import PROJECT_ROOT
from pipelines.bench.ray_runtime import beside_resting_ray
from pipelines.config import RunConfig, compose_config
from pipelines.driver.pipeline import load_run_tasks
from pipelines.engines import chat_messages
from pipelines.executors import build_executor
from pipelines.flow.council import batches, expand
from pipelines.flow.stream import generate_stage
from pipelines.runtime.procs import live_descendants
from pipelines.scoring.metrics import engine_busy_s
from pipelines.spec.exits import EXIT_FAILED, EXIT_OK

log = logging.getLogger("pipelines.bench")

RAY_DATA_LLM_CPUS = 8
"""Logical CPUs for Ray Data LLM's local Ray: its chat-template, tokenize and
detokenize stages are 1-CPU actors each, and with two logical CPUs the engine
actor is never placed."""


def bench_requests(
    requests: int, max_tokens: int, batch_size: int, overrides: list[str] | None = None
) -> tuple[RunConfig, pd.DataFrame]:
    """The config and the first ``requests`` council requests (all roles)."""
    settings = compose_config(
        [
            "role=all",
            f"limit={-(-requests // (3 * 5))}",
            f"max_tokens={max_tokens}",
            f"batch_size={batch_size}",
            "cache=false",  # every contender generates
            *(overrides or []),
        ]
    )
    tasks = load_run_tasks(settings)
    table = expand(tasks, settings, settings.system_prompts, batch_size).head(requests)
    log.info("bench: %d requests in %d batches", len(table), len(batches(table)))
    return settings, table


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


def raw_vllm(settings: RunConfig, table: pd.DataFrame) -> dict[str, Any]:
    """The ceiling: one ``vllm.LLM.chat`` call over every request."""
    from vllm import SamplingParams

    from pipelines.engines.vllm import close_llm, load_llm

    wait_engines_gone()
    t0 = time.perf_counter()
    llm, procs = load_llm(settings.engine, settings.model)
    load = time.perf_counter() - t0
    rows = list(table.itertuples(index=False))
    params = [
        SamplingParams(temperature=r.temperature, seed=r.seed, max_tokens=r.max_tokens)
        for r in rows
    ]
    t = time.perf_counter()
    outs = llm.chat([chat_messages(r) for r in rows], params, use_tqdm=False)
    busy = time.perf_counter() - t
    t = time.perf_counter()
    close_llm(llm, procs)
    stop = time.perf_counter() - t
    return {
        "start_s": 0.0,
        "load_s": load,
        "stop_s": stop,
        "busy_s": busy,
        "total_s": time.perf_counter() - t0,
        "tokens": sum(len(o.outputs[0].token_ids) for o in outs),
        "proposals": [o.outputs[0].text for o in outs],
    }


def inline_core(settings: RunConfig) -> RunConfig:
    """``settings`` with vLLM's engine core inline, as a Ray engine host on CPU runs it."""
    return replace(settings, engine=replace(settings.engine, inline_core=True))


def through_executor(settings: RunConfig, name: str, table: pd.DataFrame) -> dict[str, Any]:
    """The pipeline's batches through ``executor=name``; times from the stage's stamps."""
    wait_engines_gone()
    t0 = time.time()
    with build_executor(replace(settings.executor, name=name)) as executor:
        t_map = time.time()
        out = pd.concat(list(executor.map(generate_stage(settings, executor), batches(table))))
        t_last = time.time()
    t_end = time.time()
    return {
        "start_s": t_map - t0,
        "load_s": float(out["load_s"].max()),
        "stop_s": t_end - t_last,
        "busy_s": engine_busy_s(out),
        "total_s": t_end - t0,
        "tokens": int(out["completion_tokens"].sum()),
        "proposals": out.sort_values("row")["proposal"].tolist(),
    }


def ray_data_llm(settings: RunConfig, table: pd.DataFrame) -> dict[str, Any]:
    """The same requests through ``ray.data.llm``'s vLLM processor (a local Ray)."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    wait_engines_gone()
    engine, model = settings.engine, settings.model
    for key, value in engine.env.items():
        os.environ.setdefault(key, str(value))
    t0 = time.time()
    ray.init(num_cpus=RAY_DATA_LLM_CPUS, include_dashboard=False, logging_level=logging.WARNING)
    try:
        config = vLLMEngineProcessorConfig(
            model_source=model.path,
            engine_kwargs={
                "dtype": model.dtype,
                "max_model_len": model.max_model_len,
                "enforce_eager": engine.enforce_eager,
                "gpu_memory_utilization": engine.gpu_memory_utilization,
                "enable_chunked_prefill": engine.enable_chunked_prefill,
                **engine.extra_engine_kwargs,
            },
            batch_size=settings.batch_size,
            concurrency=1,
            # Without a bundle the engine actor asks for a GPU; on CPU it never starts.
            placement_group_config={"bundles": [{"CPU": 1}]},
            # vLLM's Ray metrics wrappers fail to import in this build.
            log_engine_metrics=False,
        )
        processor = build_processor(
            config,
            preprocess=lambda row: {
                "messages": chat_messages(pd.Series(row)),
                "sampling_params": {
                    "temperature": float(row["temperature"]),
                    "seed": int(row["seed"]),
                    "max_tokens": int(row["max_tokens"]),
                },
            },
            postprocess=lambda row: {
                "row": row["row"],
                "proposal": row["generated_text"],
                "tokens": len(row["generated_tokens"]),
            },
        )
        columns = ["row", "system_prompt", "prompt", "temperature", "seed", "max_tokens"]
        t_map = time.time()
        out = processor(ray.data.from_pandas(table[columns])).to_pandas()
        t_last = time.time()
    finally:
        ray.shutdown()
    t_end = time.time()
    return {
        "start_s": t_map - t0,
        "load_s": float("nan"),  # inside the processor's window, not reported apart
        "stop_s": t_end - t_last,
        "busy_s": t_last - t_map,  # engine start included: an upper bound
        "total_s": t_end - t0,
        "tokens": int(out["tokens"].sum()),
        "proposals": out.sort_values("row")["proposal"].tolist(),
    }


def summarize(runs: list[tuple[str, dict]], reference: list[str]) -> pd.DataFrame:
    """One row per contender; each against the mean of the raw runs around it."""
    rows = []
    for i, (name, r) in enumerate(runs):
        if name == "raw":
            around = [r]
        else:
            around = [runs[j][1] for j in (i - 1, i + 1) if j < len(runs) and runs[j][0] == "raw"]
        gen_ref = sum(a["tokens"] / a["busy_s"] for a in around) / len(around)
        e2e_ref = sum(a["tokens"] / a["total_s"] for a in around) / len(around)
        gen, e2e = r["tokens"] / r["busy_s"], r["tokens"] / r["total_s"]
        rows.append(
            {
                "contender": name,
                "tokens": r["tokens"],
                "gen_tok_s": gen,
                "gen_vs_raw": gen / gen_ref,
                "e2e_tok_s": e2e,
                "e2e_vs_raw": e2e / e2e_ref,
                "total_s": r["total_s"],
                "start_s": r["start_s"],
                "load_s": r["load_s"],
                "stop_s": r["stop_s"],
                "identical": r.get("proposals") == reference,
            }
        )
    return pd.DataFrame(rows)


def write(out: Path, settings: RunConfig, table: pd.DataFrame, result: pd.DataFrame) -> None:
    """The table so far (rewritten after each contender: a long bench keeps its figures)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "requests": len(table),
                "batches": len(batches(table)),
                "max_tokens": settings.max_tokens,
                "batches_in_flight": settings.batches_in_flight(),
                "table": result.to_dict(orient="records"),
            },
            indent=2,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=180, help="council requests (all roles)")
    parser.add_argument("--max-tokens", type=int, default=256, help="generation cap per request")
    parser.add_argument("--batch-size", type=int, default=30, help="requests per pipeline batch")
    parser.add_argument("--executors", nargs="*", default=["ray", "dask", "local"])
    parser.add_argument(
        "--peers",
        nargs="*",
        default=["ray-data-llm"],
        choices=["ray-data-llm", "raw-inline", "ray-runtime"],
    )
    parser.add_argument(
        "--min-vs-raw",
        type=float,
        default=0.9,
        help="exit 1 when an executor's end-to-end tokens/s is below this share of raw's",
    )
    parser.add_argument(
        "overrides", nargs="*", help="run config overrides, e.g. engine.batches_in_flight=1"
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "bench-executors.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    settings, table = bench_requests(
        args.requests, args.max_tokens, args.batch_size, args.overrides
    )
    runs: list[tuple[str, dict]] = [("raw", raw_vllm(settings, table))]
    contenders = [*args.executors, *args.peers]
    failed = []
    for name in contenders:
        log.info("bench: %s", name)
        try:
            if name == "ray-data-llm":
                runs.append((name, ray_data_llm(settings, table)))
            elif name == "raw-inline":
                runs.append((name, raw_vllm(inline_core(settings), table)))
            elif name == "ray-runtime":
                raw = partial(raw_vllm, inline_core(settings), table)
                runs.append((name, beside_resting_ray(raw, settings, table)))
            else:
                runs.append((name, through_executor(settings, name, table)))
        except Exception:
            log.exception("bench: %s failed; the bench goes on", name)
            failed.append(name)
            continue
        log.info("bench: raw again")
        runs.append(("raw", raw_vllm(settings, table)))
        write(args.out, settings, table, summarize(runs, runs[0][1]["proposals"]))

    result = summarize(runs, runs[0][1]["proposals"])
    print(result.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    write(args.out, settings, table, result)
    print(f"written: {args.out}")
    executors = result[result["contender"].isin(args.executors)]
    slow = executors[executors["e2e_vs_raw"] < args.min_vs_raw]["contender"].tolist()
    if slow:
        print(f"below {args.min_vs_raw:.2f} x raw end to end: {slow}")
    differ = executors[~executors["identical"]]["contender"].tolist()
    if differ:
        print(f"proposals differ from raw's: {differ}")
    if failed:
        print(f"failed: {failed}")
    return EXIT_OK if not slow and not differ and not failed else EXIT_FAILED
