"""The deliberation protocol, from both sides: the plan issues what the
collector waits for, whatever fails along the way."""

import itertools

import pandas as pd
import pytest

from pipelines.config import compose_config
from pipelines.deliberation.plan import Plan, check
from pipelines.driver.pipeline import council_requests
from pipelines.flow.stream import deliberation_plan
from pipelines.flow.tasks import Task
from pipelines.sinks.deliberation import Deliberation, payload_key
from pipelines.spec.protocol import CHAIR, JUDGE, PROPOSE, RANK, Answer, Protocol

TASKS = [Task(task_id="dev-001", role="dev", prompt="task", keywords=["k"])]
FULL = ["deliberation.rounds=2", "deliberation.rank=true", "deliberation.chair=true"]


def answered(requests: pd.DataFrame, fails: set[tuple[str, str, int]]) -> pd.DataFrame:
    """Requests as landed rows; those whose (agent, step, round) is in ``fails`` are
    error rows, rankings and scores answer in the schema."""

    def text(r: object) -> str:
        if r.step == RANK:
            return (
                '{"ranking": ["B", "A"]}'
                if r.shown.count(",") == 1
                else '{"ranking": ["C", "B", "A"]}'
            )
        return '{"score": 6}' if r.step == JUDGE else f"text of {r.agent_id}"

    rows = requests.assign(
        proposal=[text(r) for r in requests.itertuples()],
        error=[
            "engine refused" if (r.agent_id, r.step, r.round) in fails else None
            for r in requests.itertuples()
        ],
        completion_tokens=3,
        status=None,
    )
    return check(rows)


def issued_and_expected(overrides: list[str], fails: set[tuple[str, str, int]]):
    cfg = compose_config(["role=dev", *overrides])
    plan = Plan(cfg, TASKS, council_requests(cfg, TASKS), pd.DataFrame())
    todo, _ = plan.start()
    landed: list[pd.DataFrame] = []
    while len(todo):
        rows = answered(todo, fails)
        landed.append(rows)
        todo = plan.land(rows)
    rows = pd.concat(landed, ignore_index=True)
    d = Deliberation(
        run_id="r",
        task_id="dev-001",
        role="dev",
        model="m",
        council_size=cfg.agents,
        first_at=0.0,
        plan=deliberation_plan(cfg),
    )
    for r in rows.to_dict("records"):
        payload = r | {"status": "FAILED" if isinstance(r["error"], str) else "COMPLETED"}
        d.answers[payload_key(payload)] = payload
    return sorted(d.answers), sorted(d.expected), plan.total(), len(rows)


FAILURES = [
    set(),
    {("agent-dev-001", PROPOSE, 2)},  # one final proposal failed: two left to rank
    {("agent-dev-001", PROPOSE, 2), ("agent-dev-002", PROPOSE, 2)},  # one left: no ranking
    {("chair", CHAIR, 2)},  # the chair failed: its answer is not judged
    {("agent-dev-003", RANK, 2)},  # a ranking failed: the chair still comes
]


@pytest.mark.parametrize("fails", FAILURES, ids=range(len(FAILURES)))
@pytest.mark.parametrize("judge", ["none", "council"])
def test_the_plan_issues_exactly_what_the_collector_waits_for(fails, judge) -> None:
    issued, expected, total, n = issued_and_expected([*FULL, f"judge={judge}"], fails)
    assert issued == expected
    if not fails:
        assert n == total  # every answer succeeded: the plan's count holds


def test_what_each_failure_takes_away() -> None:
    p = Protocol(rounds=2, rank=True, chair=True, judge=True)
    agents = ["a", "b", "c"]
    assert p.requests(3) == 6 + 6 + 1 + 7
    finals = {Answer(a, PROPOSE, r): True for a, r in itertools.product(agents, (1, 2))}
    due = p.due(agents, finals)
    assert sum(d.step == RANK for d in due) == 6 and not any(d.step == CHAIR for d in due)
    one_left = finals | {Answer("a", PROPOSE, 2): False, Answer("b", PROPOSE, 2): False}
    due = p.due(agents, one_left)
    assert not any(d.step == RANK for d in due)
    assert any(d.step == CHAIR for d in due)  # a chair for one proposal, no ranking first
    # Round 2 waits for the whole of round 1; the collector expects it from the start.
    half = {Answer("a", PROPOSE, 1): True}
    assert [d.round for d in p.due(agents, half) if d.step == PROPOSE] == [1, 1, 1]
    assert [d.round for d in p.expected(agents, half) if d.step == PROPOSE] == [1] * 3 + [2] * 3
