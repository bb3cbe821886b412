"""A remote engine that answers badly costs one error row, never the run: a stand-in
OpenAI-compatible server on loopback sends what a broken or hostile one could."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipelines.config import compose_config
from pipelines.driver.pipeline import RunOutcome, run_pipeline
from tests.engine_helpers import stand_in_engine


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("no-choices", "ValueError: the server's reply holds no choice"),
        ("huge", "ValueError: the server's reply holds 20,971,520 characters for at most 8 tokens"),
        ("trickle", "TimeoutError"),
    ],
)
def test_a_bad_reply_is_one_error_row_and_the_run_finishes(
    tmp_path: Path, mode: str, error: str
) -> None:
    content = "x" * (20 << 20) if mode == "huge" else "Answer: 4"
    with stand_in_engine(content, mode) as server:
        outcome = run(tmp_path, server)
    errors = outcome.results["error"].tolist()
    assert len(errors) == 2 and all(e and e.startswith(error) for e in errors), errors
    assert (outcome.results["proposal"].fillna("") == "").all()


def run(tmp_path: Path, server: str) -> RunOutcome:
    cfg = compose_config(
        [
            "role=devops",
            "limit=1",
            "agents=2",
            "max_tokens=8",
            "engine=openai",
            f"engine.url={server}",
            "engine.timeout_s=1",
            "engine.retries=0",
            "executor=local",
            "sink=none",
            "tracking=none",
            "embeddings=false",
        ]
    )
    start = time.monotonic()
    outcome = run_pipeline(cfg, tmp_path / "run", executor=None)
    assert time.monotonic() - start < 120  # the trickle alone would take minutes
    return outcome
