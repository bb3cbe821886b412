"""Ids that reach NATS, against a real nats-server: a task id cannot frame a
protocol command, and one task id in two roles is two deliberations."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipelines import PROJECT_ROOT
from pipelines.config import NatsSinkConfig
from pipelines.driver.status import read_statuses
from pipelines.runtime.ids import dotted
from pipelines.sinks.messages import agent_messages
from pipelines.sinks.nats import NatsSink
from pipelines.sinks.nats_server import embedded_server
from pipelines.sinks.publisher import connect, ensure_stream
from tests.nats_helpers import stream_contents

INJECTION = "a\r\nPUB $JS.API.STREAM.DELETE.COUNCIL 0\r\n"


def stream_exists(url: str, name: str = "COUNCIL") -> bool:
    async def look() -> bool:
        from nats.js.errors import NotFoundError

        nc = await connect(url)
        try:
            await nc.jetstream().stream_info(name)
            return True
        except NotFoundError:
            return False
        finally:
            await nc.close()

    return asyncio.run(look())


def make_stream(url: str) -> None:
    async def make() -> None:
        nc = await connect(url)
        await ensure_stream(nc.jetstream(), NatsSinkConfig())
        await nc.close()

    asyncio.run(make())


def test_a_dataset_line_that_injects_nats_protocol_is_refused_and_the_stream_is_intact(
    tmp_path: Path, model_dir: Path
) -> None:
    dataset = tmp_path / "devops.jsonl"
    good = {"task_id": "devops-001", "role": "devops", "prompt": "p", "keywords": ["k"]}
    hostile = {**good, "task_id": INJECTION}
    dataset.write_text(json.dumps(hostile) + "\n" + json.dumps(good) + "\n")
    with embedded_server(tmp_path / "nats") as url:
        make_stream(url)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines.run",
                f"hydra.run.dir={tmp_path / 'run'}",
                f"dataset={dataset}",
                f"sink.url={url}",
                "executor=local",
                "tracking=none",
                "max_tokens=4",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=PROJECT_ROOT,
        )
        assert stream_exists(url)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"{dataset}:1: field 'task_id': 'a\\r\\nPUB $JS.API" in proc.stderr
    assert "is not a valid id" in proc.stderr
    assert not (tmp_path / "run" / "results").exists()  # refused before any request


@pytest.mark.parametrize("bad", ["a\r\nb", "a\nb", "a b", "a\0b", "a*", ">", "a.b", "\x1b[2J", ""])
def test_no_name_holds_a_protocol_character(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot be a token"):
        dotted("run-1", "dev", bad)
    rows = pd.DataFrame(
        [
            {
                "run_id": "run-1",
                "task_id": bad,
                "role": "dev",
                "agent_id": "agent-dev-001",
                "agent_index": 1,
                "temperature": 0.7,
                "seed": 1,
                "proposal": "p",
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "finish_reason": "stop",
                "latency": 0.1,
                "error": None,
            }
        ]
    )
    with pytest.raises(ValueError, match="cannot be a token"):
        agent_messages(rows, "m", {("dev", bad): ["k"]}, council_size=1)


def answers(role: str, task: str, council: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run_id": "run-roles",
                "task_id": task,
                "role": role,
                "agent_id": f"agent-{role}-{a:03d}",
                "agent_index": a,
                "temperature": 0.7,
                "seed": a,
                "proposal": f"{role} answer {a}",
                "prompt_tokens": 3,
                "completion_tokens": 3,
                "finish_reason": "stop",
                "latency": 0.1,
                "error": None,
            }
            for a in range(1, council + 1)
        ]
    )


def test_one_task_id_in_two_roles_is_two_deliberations_with_two_statuses(tmp_path: Path) -> None:
    tasks = [("dev", "t-001"), ("qa", "t-001")]
    with embedded_server(tmp_path / "nats") as url:
        cfg = NatsSinkConfig(url=url)
        with NatsSink(cfg, tmp_path) as sink:
            sink.follow("run-roles", tasks, since_ms=int(time.time() * 1000), timeout_s=30)
            rows = pd.concat([answers("dev", "t-001", 2), answers("qa", "t-001", 2)])
            keywords = {("dev", "t-001"): ["dev"], ("qa", "t-001"): ["qa"]}
            sink.publish(agent_messages(rows, "m", keywords, council_size=2))
            assert sink.settle(15.0) == 0
        statuses = asyncio.run(read_statuses(url, cfg.status_bucket, "run-roles"))
        ended = [p for s, p in stream_contents(url) if s.startswith("deliberation.")]
    assert sorted((s["role"], s["status"]) for s in statuses) == [
        ("dev", "COMPLETED"),
        ("qa", "COMPLETED"),
    ]
    assert sorted((p["role"], p["scores"]["keyword_relevance"]) for p in ended) == [
        ("dev", 1.0),
        ("qa", 1.0),
    ]


def test_a_refused_connection_names_its_url_without_the_password(caplog) -> None:
    from pipelines.runtime.procs import free_port
    from pipelines.runtime.redact import redact_exc

    url = f"nats://council:S3cretPW@127.0.0.1:{free_port()}"  # nobody listens there
    with pytest.raises(Exception) as e:
        asyncio.run(connect(url))
    shown = redact_exc(e.value) + str(e.value) + caplog.text
    assert "S3cretPW" not in shown


def test_the_longest_role_still_makes_valid_run_and_agent_ids() -> None:
    """A role of 107 to 128 characters passed the id rule, then its run id (23
    characters longer) failed it at the first batch."""
    from pipelines.driver.pipeline import new_run_id
    from pipelines.runtime.ids import ROLE_MAX, agent_id, check_id, check_role

    longest = "r" * ROLE_MAX
    assert check_role(longest) == longest
    check_id(new_run_id(longest), "run_id")
    check_id(agent_id(longest, 1000), "agent_id")
    with pytest.raises(ValueError, match=f"at most {ROLE_MAX}"):
        check_role("r" * (ROLE_MAX + 1))
