"""engine=openai against a real vLLM OpenAI server (CPU build, embedded model).

The server lives for this module only, so it never runs beside another engine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pipelines import PROJECT_ROOT, UserError
from pipelines.engines.openai import OpenAIEngine, check_server
from pipelines.nats_server import free_port
from pipelines.pipeline import run_pipeline
from pipelines.serve_model import served
from pipelines.settings import RunSettings, from_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(compose_cfg, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = from_config(compose_cfg("engine=vllm", "model.max_model_len=1024")).engine
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with served(engine, log_file=log) as url:
        yield url


def remote(compose_cfg, url: str, *overrides: str) -> RunSettings:
    return from_config(compose_cfg("engine=openai", f"engine.url={url}", *overrides))


def test_pipeline_on_ray_through_the_server(compose_cfg, server: str, tmp_path: Path) -> None:
    settings = remote(
        compose_cfg,
        server,
        "role=architect",
        "executor=ray",
        "sink=none",
        "tracking=none",
        "limit=2",
        "max_tokens=16",
    )
    results = run_pipeline(settings, tmp_path).results

    assert len(results) == 2 * 3
    assert results["error"].isna().all()
    assert (results["proposal"].str.strip().str.len() > 0).all()
    assert results["temperature"].tolist() == pytest.approx([0.7, 0.91, 0.91] * 2)
    assert results["completion_tokens"].between(1, 16).all()
    assert (results["prompt_tokens"] > 0).all()
    assert set(results["finish_reason"]) <= {"stop", "length"}
    assert (tmp_path / "metrics.json").is_file()


def test_request_past_its_timeout_is_an_error_row_and_the_others_succeed(
    compose_cfg, server: str
) -> None:
    # ignore_eos makes generation lengths exact: 900 tokens take far longer than 2 s here.
    settings = remote(
        compose_cfg,
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
    completions = OpenAIEngine(settings.engine).generate(rows)

    assert [c.error is None for c in completions] == [True, False, True]
    assert "Timeout" in completions[1].error
    assert [completions[0].completion_tokens, completions[2].completion_tokens] == [4, 4]
    assert completions[1].latency == pytest.approx(2.0, abs=1.0)


def test_server_without_the_model_is_named_with_what_it_serves(compose_cfg, server: str) -> None:
    settings = remote(compose_cfg, server, "engine.served_model=Qwen/Qwen3-0.6B")
    with pytest.raises(UserError, match="serves \\['SmolLM2-135M-Instruct'\\]"):
        check_server(settings.engine)


def test_unreachable_server_is_a_clear_error_within_seconds(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.run",
            "engine=openai",
            f"engine.url={url}",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    elapsed = time.perf_counter() - start

    assert proc.returncode == 2
    assert f"cannot reach an OpenAI-compatible server at {url}" in proc.stderr
    assert "make serve-model" in proc.stderr
    assert elapsed < 30  # interpreter and imports included; the probe itself is one refused connect
    assert not (tmp_path / "results.parquet").exists()
