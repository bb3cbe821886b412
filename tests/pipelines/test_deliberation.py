"""The deliberation state machine: outcomes by answers and by the clock."""

import pytest

from pipelines.sinks.deliberation import COMPLETED, FAILED, IN_PROGRESS, TIMEOUT, Deliberations
from pipelines.sinks.messages import DELIBERATION_COMPLETED, DELIBERATION_FAILED


def agent(index: int, task: str = "dev-001", status: str = "COMPLETED", text: str = "") -> dict:
    return {
        "run_id": "r1",
        "task_id": task,
        "role": "dev",
        "agent_id": f"agent-dev-{index:03d}",
        "council_size": 3,
        "status": status,
        "model": "m",
        "proposal": text or f"use a cache and a queue, answer {index}",
        "keywords": ["cache", "queue", "redis"],
    }


def test_all_answers_complete_with_the_task_scores() -> None:
    state = Deliberations(timeout_s=10)
    started, ended = state.add(agent(1), at=100.0)
    assert started["status"] == IN_PROGRESS and ended is None
    assert state.add(agent(2), at=101.0) == (None, None)
    _, ended = state.add(agent(3), at=102.5)

    assert ended.message.subject == DELIBERATION_COMPLETED
    assert ended.message.msg_id == "r1.dev-001" and ended.key == "r1.dev-001"
    p = ended.message.payload
    assert (p["status"], p["elapsed_s"], p["missing"]) == (COMPLETED, 2.5, [])
    assert p["answered"] == ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
    assert p["scores"]["keyword_relevance"] == pytest.approx(2 / 3)  # cache, queue; no redis
    assert p["scores"]["keyword_full_coverage"] == 0.0
    assert p["scores"]["unique_ratio"] == 1.0 and p["scores"]["embedding_diversity"] is None
    assert ended.record["status"] == COMPLETED
    # A late duplicate (a replay) changes nothing.
    assert state.add(agent(3), at=200.0) == (None, None)


def test_a_failed_agent_ends_it_failed_once_all_reported() -> None:
    state = Deliberations(timeout_s=10)
    state.add(agent(1), at=0.0)
    assert state.add(agent(2, status="FAILED", text=" "), at=0.5)[1] is None
    _, ended = state.add(agent(3), at=1.0)
    assert ended.message.subject == DELIBERATION_FAILED
    assert ended.message.payload["status"] == FAILED
    assert ended.message.payload["missing"] == ["agent-dev-002"]


def test_the_clock_times_out_a_deliberation_missing_an_agent() -> None:
    state = Deliberations(timeout_s=2)
    state.add(agent(1), at=10.0)
    state.add(agent(2), at=10.5)
    assert state.expire(now=12.0) == []  # 2.0 s: not past the timeout
    (ended,) = state.expire(now=12.1)
    p = ended.message.payload
    assert (ended.message.subject, p["status"]) == (DELIBERATION_FAILED, TIMEOUT)
    assert p["missing"] == ["agent-dev-003"] and p["elapsed_s"] == pytest.approx(2.1)
    assert state.add(agent(3), at=13.0) == (None, None)  # too late: stays TIMEOUT


def test_answers_spread_past_the_timeout_end_it_timeout() -> None:
    state = Deliberations(timeout_s=2)
    state.add(agent(1), at=0.0)
    state.add(agent(2), at=1.0)
    _, ended = state.add(agent(3), at=5.0)  # stored late (a replay after a pause)
    assert ended.message.payload["status"] == TIMEOUT


def test_with_repeats_it_waits_for_every_sample_of_every_agent() -> None:
    state = Deliberations(timeout_s=10)
    answers = [
        {**agent(i), "repeat": r, "repeats": 2, "proposal": f"a cache, sample {r} of {i}"}
        for r in range(2)
        for i in range(1, 4)
    ]
    for a in answers[:-1]:
        assert state.add(a, at=1.0)[1] is None
    assert state.add(answers[0], at=1.5)[1] is None  # a duplicate is not a new answer
    _, ended = state.add(answers[-1], at=2.0)
    p = ended.message.payload
    assert p["status"] == COMPLETED and p["missing"] == []
    assert p["agents"] == [
        "agent-dev-001",
        "agent-dev-002",
        "agent-dev-003",
        "agent-dev-001#1",
        "agent-dev-002#1",
        "agent-dev-003#1",
    ]
    assert p["scores"]["keyword_relevance"] == pytest.approx(1 / 3)
