"""The response cache's key and store, without an engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from pipelines import UserError
from pipelines.config import compose_config
from pipelines.flow.cache import ResponseCache, engine_identity, request_keys


def requests(**changes: object) -> pd.DataFrame:
    row = {
        "system_prompt": "You are a QA engineer.",
        "prompt": "Test plan for the login page",
        "temperature": 0.7,
        "seed": 11,
        "max_tokens": 64,
    }
    return pd.DataFrame([row | changes])


def answers(error: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "proposal": "" if error else "Cover lockout and reset.",
                "prompt_tokens": 30,
                "completion_tokens": 0 if error else 6,
                "finish_reason": "" if error else "stop",
                "latency": 0.4,
                "error": error,
            }
        ]
    )


def test_the_key_holds_everything_that_decides_the_text(tmp_path: Path) -> None:
    cfg = compose_config(["role=qa"])
    identity = engine_identity(cfg.engine, cfg.model)
    (key,) = request_keys(requests(), identity)
    assert request_keys(requests(), identity) == [key]  # stable
    for change in [
        {"temperature": 0.91},
        {"seed": 12},
        {"max_tokens": 65},
        {"prompt": "Test plan for the login page!"},
        {"system_prompt": "You are a developer."},
    ]:
        assert request_keys(requests(**change), identity) != [key], change
    other_model = engine_identity(cfg.engine, dataclasses.replace(cfg.model, dtype="bfloat16"))
    assert request_keys(requests(), other_model) != [key]
    openai = compose_config(["role=qa", "engine=openai", "engine.url=http://a:8000"])
    served = engine_identity(openai.engine, openai.model)
    assert request_keys(requests(), served) != [key]


def test_answers_survive_the_process_and_errors_are_never_kept(tmp_path: Path) -> None:
    ResponseCache(tmp_path).put(["k1"], answers())
    ResponseCache(tmp_path).put(["k2"], answers(error="TimeoutError: 120 s"))
    found = ResponseCache(tmp_path).get(["k1", "k2", "k3"])
    assert list(found) == ["k1"]
    assert found["k1"]["proposal"] == "Cover lockout and reset."
    assert found["k1"]["completion_tokens"] == 6


def test_cache_mode_is_checked() -> None:
    assert compose_config(["cache=true"]).cache == "true"
    assert compose_config(["cache=refresh"]).cache == "refresh"
    with pytest.raises(UserError, match="cache must be one of"):
        compose_config(["cache=maybe"])


WRITER = """
import sys
from pathlib import Path
import pandas as pd
from pipelines.flow.cache import ResponseCache
cache, name = ResponseCache(Path(sys.argv[1])), sys.argv[2]
row = {"proposal": "p", "prompt_tokens": 1, "completion_tokens": 1, "finish_reason": "stop",
       "latency": 0.1, "error": None}
for i in range(100):
    cache.put([f"{name}-{i}"], pd.DataFrame([row]))
"""


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name]) for name in "abc"
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    keys = [f"{name}-{i}" for name in "abc" for i in range(100)]
    assert len(ResponseCache(tmp_path).get(keys)) == 300
