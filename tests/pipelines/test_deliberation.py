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
    assert ended.message.msg_id == "r1.dev.dev-001" and ended.key == "r1.dev.dev-001"
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


PLAN = {"rounds": 2, "rank": True, "chair": True, "judge": True}


def step(kind: str, index: int = 0, round_: int = 2, target: str = "", **extra) -> dict:
    """A deliberating council's message: a proposal (index > 0), ranking, chair or score."""
    payload = agent(index or 1) | {"plan": PLAN, "step": kind, "round": round_, "target": target}
    if kind == "chair":
        payload["agent_id"] = "chair"
    if kind == "judge":
        payload["agent_id"] = "judge"
    return payload | extra


def test_a_deliberating_council_ends_after_its_rounds_rankings_chair_and_scores() -> None:
    state = Deliberations(timeout_s=60)
    at = iter(range(100))
    agents = [f"agent-dev-00{i}" for i in (1, 2, 3)]
    for r in (1, 2):
        for i in (1, 2, 3):
            assert state.add(step("propose", i, r), at=next(at))[1] is None
            assert (
                state.add(step("judge", round_=r, target=agents[i - 1], parsed=i + 5), next(at))[1]
                is None
            )
    for i in (1, 2, 3):
        for order in ("forward", "reversed"):
            ranking = step(
                "rank", i, target=order, parsed=["agent-dev-003", "agent-dev-001", "agent-dev-002"]
            )
            assert state.add(ranking, at=next(at))[1] is None
    chair = step("chair", status="FAILED", proposal="", error="prompt too long")
    _, ended = state.add(chair, at=next(at))  # a failed chair is scored by nobody: it ends here

    p = ended.message.payload
    assert p["status"] == COMPLETED and p["rounds"] == 2
    assert sorted(p["final_round"]) == ["agent-dev-001@2", "agent-dev-002@2", "agent-dev-003@2"]
    assert p["ranking"]["order"] == ["agent-dev-003", "agent-dev-001", "agent-dev-002"]
    assert p["ranking"]["borda"] == {"agent-dev-001": 6, "agent-dev-002": 0, "agent-dev-003": 12}
    (c,) = p["chair"]
    assert c["fallback"] and c["source"] == "agent-dev-003" and c["error"] == "prompt too long"
    assert c["answer"] == "use a cache and a queue, answer 3"
    assert p["judge"]["agent-dev-002@2"] == 7 and len(p["judge"]) == 6
    assert "chair" in p["missing"]


def test_a_deliberating_council_waits_for_the_chairs_score() -> None:
    state = Deliberations(timeout_s=60)
    plan = {"rounds": 1, "rank": False, "chair": True, "judge": True}
    for i in (1, 2, 3):
        state.add(agent(i) | {"plan": plan}, at=0.0)
        state.add(
            step("judge", round_=1, target=f"agent-dev-00{i}", parsed=5) | {"plan": plan}, at=0.0
        )
    assert state.add(step("chair", round_=1) | {"plan": plan}, at=1.0)[1] is None
    _, ended = state.add(step("judge", round_=1, target="chair", parsed=9) | {"plan": plan}, at=2.0)
    p = ended.message.payload
    assert p["status"] == COMPLETED and p["chair"][0]["fallback"] is False
    assert p["judge"]["chair@1"] == 9


def test_with_repeats_a_failed_chair_has_one_stand_in_in_the_message_and_the_table() -> None:
    """repeats=2, both chairs fail: each repeat's stand-in is the top of that
    repeat's own rankings, in the NATS message as in chair.parquet. Repeat 0's
    rankings tie agent 2 and agent 3 (the agents' order breaks it: agent 2);
    repeat 1's put agent 3 first, so pooling both repeats would name agent 3 twice."""
    import pandas as pd

    from pipelines.deliberation.rounds import chair_table

    plan = {"rounds": 1, "rank": True, "chair": True}
    a1, a2, a3 = (f"agent-dev-00{i}" for i in (1, 2, 3))
    rankings_of = {0: ([a2, a3, a1], [a3, a2, a1]), 1: ([a3, a1, a2], [a3, a1, a2])}
    payloads, proposals, rankings, chairs = [], [], [], []
    for k in (0, 1):
        for i in (1, 2, 3):
            p = agent(i, text=f"answer {i} of repeat {k}") | {"plan": plan, "round": 1}
            payloads.append(p | {"repeat": k, "repeats": 2, "step": "propose", "target": ""})
            proposals.append(
                {"run_id": "r1", "role": "dev", "task_id": "dev-001", "repeat": k}
                | {"round": 1, "agent_id": p["agent_id"], "proposal": p["proposal"]}
                | {"error": None}
            )
        for i in (1, 2, 3):
            for order, ranking in zip(("forward", "reversed"), rankings_of[k], strict=True):
                payloads.append(
                    agent(i)
                    | {"plan": plan, "repeat": k, "repeats": 2, "step": "rank"}
                    | {"round": 1, "target": order, "parsed": ranking}
                )
                rankings.append(
                    {"role": "dev", "task_id": "dev-001", "repeat": k, "ranking": ranking}
                )
        payloads.append(
            agent(1)
            | {"plan": plan, "repeat": k, "repeats": 2, "step": "chair", "round": 1}
            | {"agent_id": "chair", "target": "", "status": "FAILED", "proposal": ""}
            | {"error": "prompt too long"}
        )
        chairs.append(
            {"role": "dev", "task_id": "dev-001", "repeat": k, "proposal": ""}
            | {"error": "prompt too long", "completion_tokens": 0}
        )

    state, ended = Deliberations(timeout_s=60), None
    for at, payload in enumerate(payloads):
        _, ended = state.add(payload, at=at)
    assert ended is not None, "the deliberation never ended"
    message = {c["repeat"]: c["source"] for c in ended.message.payload["chair"]}
    table = chair_table(pd.DataFrame(proposals), pd.DataFrame(chairs), pd.DataFrame(rankings))
    parquet = dict(zip(table["repeat"], table["source"], strict=True))

    assert message == parquet == {0: a2, 1: a3}
    assert table["fallback"].all()
