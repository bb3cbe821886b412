"""engine=openai against a real vLLM OpenAI server (CPU build, embedded model).

The server lives for this module only, so it never runs beside another engine.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pipelines import PROJECT_ROOT, UserError
from pipelines.config import RunConfig, compose_config
from pipelines.driver.pipeline import run_pipeline
from pipelines.driver.preflight import preflight_run
from pipelines.engines import generate
from pipelines.engines.openai import PROBE_TIMEOUT_S, OpenAIEngine, check_server
from pipelines.flow.parts import part_files
from pipelines.runtime.procs import free_port
from pipelines.serve_model import served


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cfg = compose_config(["engine=vllm", "model.max_model_len=1024"])
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with served(cfg.engine, cfg.model, log_file=log) as url:
        yield url


def remote(url: str, *overrides: str) -> RunConfig:
    return compose_config(["engine=openai", f"engine.url={url}", *overrides])


def test_pipeline_on_ray_through_the_server(server: str, tmp_path: Path) -> None:
    settings = remote(
        server,
        "role=architect",
        "executor=ray",
        "sink=none",
        "tracking=none",
        "limit=2",
        "max_tokens=16",
        "batch_size=4",
    )
    results = run_pipeline(settings, tmp_path).results

    # Each batch landed as its own part: 6 requests in 3 + 3.
    assert [len(pd.read_parquet(p)) for p in part_files(tmp_path)] == [3, 3]

    assert len(results) == 2 * 3
    assert results["error"].isna().all()
    assert (results["proposal"].str.strip().str.len() > 0).all()
    assert results["temperature"].tolist() == pytest.approx([0.7, 0.91, 0.91] * 2)
    assert results["completion_tokens"].between(1, 16).all()
    assert (results["prompt_tokens"] > 0).all()
    assert set(results["finish_reason"]) <= {"stop", "length"}
    assert (tmp_path / "metrics.json").is_file()


def test_a_judge_server_scores_every_proposal_with_structured_output(
    server: str, tmp_path: Path
) -> None:
    """judge=openai: any OpenAI-compatible server; here the same one, reached through
    the judge's own engine (response_format json_schema), not the council's."""
    model = compose_config([]).model.name
    settings = remote(
        server,
        "role=dev",
        "executor=local",
        "sink=none",
        "tracking=none",
        "limit=1",
        "agents=2",
        "max_tokens=8",
        "judge=openai",
        f"judge.engine.url={server}",
        f"judge.model={model}",
    )
    outcome = run_pipeline(settings, tmp_path)

    judge = pd.read_parquet(tmp_path / "judge.parquet")
    assert sorted(judge["target"]) == ["agent-dev-001", "agent-dev-002"]
    assert judge["error"].isna().all(), judge["error"].tolist()
    assert judge["score"].between(1, 10).all()
    assert outcome.metrics["judge"] == {
        "name": "openai",
        "scores": 2,
        "errors": 0,
        "mean_score": judge["score"].mean(),
    }
    assert outcome.metrics["rounds"][0]["judge_score"] == judge["score"].mean()


def test_judge_openai_without_a_model_is_a_clear_error(server: str) -> None:
    with pytest.raises(UserError, match="JUDGE_MODEL"):
        preflight_run(remote(server, "judge=openai", f"judge.engine.url={server}"))


def test_request_past_its_timeout_is_an_error_row_and_the_others_succeed(server: str) -> None:
    # ignore_eos makes generation lengths exact: 900 tokens take far longer than 2 s here.
    settings = remote(
        server,
        "engine.timeout_s=2",
        "engine.retries=0",
        "+engine.extra_body.ignore_eos=true",
    )
    rows = pd.DataFrame(
        {
            "system_prompt": "",
            "prompt": ["Name a queue.", "Write a long essay on queues.", "Name a cache."],
            "temperature": 0.7,
            "seed": [1, 2, 3],
            "max_tokens": [4, 900, 4],
        }
    )
    completions = generate(OpenAIEngine(settings.engine, settings.model), rows)

    assert [c.error is None for c in completions] == [True, False, True]
    assert "Timeout" in completions[1].error
    assert [completions[0].completion_tokens, completions[2].completion_tokens] == [4, 4]
    # Bounds from the request: given up at its timeout, not after 900 tokens or a retry.
    timeout = settings.engine.timeout_s
    assert timeout <= completions[1].latency < 2 * timeout


def test_the_engine_holds_batches_in_flight_together(server: str) -> None:
    """Two batches submitted at once are both at the server before either returns;
    with one in flight, the second waits for the first."""
    settings = remote(server, "+engine.extra_body.ignore_eos=true")
    batch = pd.DataFrame(
        {"system_prompt": "", "prompt": ["Name a queue."], "temperature": 0.7, "seed": 1}
    ).assign(max_tokens=48)
    engine = OpenAIEngine(settings.engine, settings.model)

    def second_starts_before_first_ends(depth: int) -> bool:
        engine.batches_in_flight = depth
        started: list[float] = []
        finished: list[float] = []
        first_done = threading.Event()

        def stamp(_: object) -> None:  # on the engine's thread, before it takes the next batch
            finished.append(time.time())
            first_done.set()

        futures = [engine.submit(batch, lambda: started.append(time.time())) for _ in "ab"]
        futures[0].add_done_callback(stamp)
        futures[1].result()
        assert first_done.wait(timeout=60)
        return max(started) < finished[0]

    try:
        assert second_starts_before_first_ends(2)
        assert not second_starts_before_first_ends(1)
    finally:
        engine.close()


def test_server_without_the_model_is_named_with_what_it_serves(server: str) -> None:
    settings = remote(server, "engine.served_model=Qwen/Qwen3-0.6B")
    with pytest.raises(UserError, match="serves \\['SmolLM2-135M-Instruct'\\]"):
        check_server(settings.engine, settings.model)


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    return proc, time.perf_counter() - start


def test_unreachable_server_is_a_clear_error_within_seconds(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    # The same command without the probe: interpreter, imports and composition.
    baseline, startup = run_cli("engine=openai", f"engine.url={url}", "--cfg", "job")
    assert baseline.returncode == 0, baseline.stderr
    proc, elapsed = run_cli("engine=openai", f"engine.url={url}", f"hydra.run.dir={tmp_path}")

    assert proc.returncode == 2
    assert f"cannot reach an OpenAI-compatible server at {url}" in proc.stderr
    assert "make serve-model" in proc.stderr
    # A refused connect costs nothing like the probe's timeout, let alone retries.
    assert elapsed < startup + PROBE_TIMEOUT_S
    assert not (tmp_path / "results.parquet").exists()
