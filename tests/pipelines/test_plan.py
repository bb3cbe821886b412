"""The deliberation plan: what becomes ready when, anonymized and seeded.

The plan is pure; these tests land hand-written answers in it (no engine).
"""

import json
import re

import pandas as pd
import pytest

from pipelines.config import compose_config
from pipelines.deliberation.plan import Plan, check
from pipelines.deliberation.prompts import LETTERS, parse_ranking, parse_score
from pipelines.driver.pipeline import council_requests
from pipelines.flow.council import agent_prompt, expand
from pipelines.flow.tasks import Task
from pipelines.spec.protocol import CHAIR, JUDGE, ORDERS, RANK

TASKS = [Task(task_id=f"dev-00{i}", role="dev", prompt=f"task {i}", keywords=["k"]) for i in (1, 2)]
FULL = ["deliberation.rounds=2", "deliberation.rank=true", "deliberation.chair=true"]


def plan(*overrides: str, held: pd.DataFrame | None = None) -> Plan:
    cfg = compose_config(["role=dev", *overrides])
    return Plan(cfg, TASKS, council_requests(cfg, TASKS), pd.DataFrame() if held is None else held)


def text_of(agent: str, round_: int) -> str:
    """A test answer that names its author by number only (agent ids must not leak)."""
    return f"answer {int(agent[-3:])} of round {round_}"


def answer(requests: pd.DataFrame, text=lambda r: text_of(r.agent_id, r.round)) -> pd.DataFrame:
    """Requests as landed rows, each answered with ``text(row)``."""
    return check(
        requests.assign(
            proposal=[text(r) for r in requests.itertuples()],
            error=None,
            completion_tokens=3,
        )
    )


def test_a_tasks_next_round_is_ready_when_its_own_round_is_in() -> None:
    p = plan(*FULL, "judge=council")
    first, ready = p.start()
    assert len(first) == 6 and ready.empty
    task1 = first[first["task_id"] == "dev-001"]
    new = p.land(answer(task1.iloc[:2]))  # two of three agents: round 2 must wait
    assert set(new["step"]) == {JUDGE}  # ... but their texts can be judged now
    new = p.land(answer(task1.iloc[2:]))
    revise = new[new["step"] == "propose"]
    assert set(revise["task_id"]) == {"dev-001"} and set(revise["round"]) == {2}
    assert len(revise) == 3 and len(new[new["step"] == JUDGE]) == 1
    # Rows follow round 1's numbering, one block of rows per round.
    assert sorted(revise["row"]) == sorted(task1["row"] + 6)


def test_revision_prompts_show_the_others_anonymized_and_own_proposal_apart() -> None:
    p = plan(*FULL)
    first, _ = p.start()
    revise = p.land(answer(first))
    assert len(revise) == 6
    for r in revise.itertuples():
        shown = json.loads(r.shown)
        assert r.agent_id not in shown and len(shown) == 2
        assert "agent-" not in r.prompt
        assert f"Your previous proposal:\n{text_of(r.agent_id, 1)}" in r.prompt
        # Proposal A is the first shown agent's text, B the second's.
        for letter, other in zip(LETTERS, shown, strict=False):
            assert f"Proposal {letter}:\n{text_of(other, 1)}" in r.prompt


def test_rankings_follow_the_last_round_and_the_chair_follows_the_rankings() -> None:
    p = plan(*FULL)
    first, _ = p.start()
    second = p.land(answer(first))
    ranks = p.land(answer(second))
    assert set(ranks["step"]) == {RANK} and len(ranks) == 2 * 3 * len(ORDERS)
    schema = json.loads(ranks["json_schema"].iloc[0])
    assert schema["properties"]["ranking"]["items"]["enum"] == ["A", "B", "C"]
    for _, pair in ranks.groupby(["task_id", "agent_id"]):
        forward, reverse = (json.loads(pair[pair["target"] == o]["shown"].iloc[0]) for o in ORDERS)
        assert reverse == forward[::-1] and sorted(forward) == sorted(p.first["agent_id"].unique())

    # Each ranker prefers agent 3, then 2, then 1: the chair reads them in that order.
    def ranking(r) -> str:
        shown = json.loads(r.shown)
        best_first = sorted(shown, reverse=True)
        return json.dumps({"ranking": [LETTERS[shown.index(a)] for a in best_first]})

    task1 = ranks[ranks["task_id"] == "dev-001"]
    assert p.land(answer(task1.iloc[:-1], ranking)).empty  # one ranking still out
    (chair,) = p.land(answer(task1.iloc[-1:], ranking)).itertuples()
    assert chair.step == CHAIR and chair.agent_id == "chair" and chair.task_id == "dev-001"
    assert json.loads(chair.shown) == ["agent-dev-003", "agent-dev-002", "agent-dev-001"]
    assert f"Proposal A (12 Borda points):\n{text_of('agent-dev-003', 2)}" in chair.prompt
    assert "agent-" not in chair.prompt


def test_the_position_of_an_agents_own_proposal_varies_and_is_seeded() -> None:
    def own_positions(seed: int) -> list[int]:
        p = plan(*FULL, f"seed={seed}")
        first, _ = p.start()
        ranks = p.land(answer(p.land(answer(first))))
        ranks = ranks[ranks["target"] == "forward"]
        return [
            json.loads(s).index(a) for s, a in zip(ranks["shown"], ranks["agent_id"], strict=True)
        ]

    assert own_positions(0) == own_positions(0)  # seeded: a rerun renders the same prompts
    assert len(set(own_positions(0))) > 1  # not always at the same place
    assert any(own_positions(s) != own_positions(0) for s in (1, 2, 3))


def test_a_ranking_that_does_not_parse_is_an_error_row() -> None:
    p = plan("deliberation.rank=true")
    first, _ = p.start()
    ranks = p.land(answer(first))
    bad = {
        0: '{"ranking": ["A", "A", "B"]}',  # a letter twice
        1: '{"ranking": ["A", "B"',  # cut off
        2: "B, A, C",  # not JSON
        3: '{"order": ["A", "B", "C"]}',  # no ranking
    }
    rows = answer(ranks.iloc[:4], lambda r: bad[r.Index])
    assert rows["parsed"].isna().all()
    assert rows["error"].str.startswith("malformed ranking").all()
    good = answer(ranks.iloc[4:5], lambda r: '{"ranking": ["C", "A", "B"]}')
    shown = json.loads(good["shown"].iloc[0])
    assert json.loads(good["parsed"].iloc[0]) == [shown[2], shown[0], shown[1]]


def test_judge_requests_score_each_text_blind() -> None:
    p = plan("judge=council")
    first, _ = p.start()
    judged = p.land(answer(first))
    assert len(judged) == 6 and set(judged["target"]) == set(first["agent_id"])
    assert (judged["agent_id"] == "judge").all() and (judged["temperature"] == 0.0).all()
    assert (
        not judged["prompt"].str.contains("agent-").any() and (judged["system_prompt"] == "").all()
    )
    scores = answer(judged, lambda r: '{"score": 7}' if r.Index % 2 else '{"score": 11}')
    assert [p if isinstance(p, str) else None for p in scores["parsed"]] == [None, "7"] * 3
    assert scores["error"].dropna().str.contains("outside 1..10").all()


def test_a_resume_issues_only_what_the_held_rows_lack() -> None:
    full = plan(*FULL)
    first, _ = full.start()
    landed = answer(first)
    second = full.land(landed)
    held = pd.concat([landed, answer(second.iloc[:2])])
    resumed = plan(*FULL, held=held)
    todo, ready = resumed.start()
    assert todo.empty  # every round-1 request is held
    assert sorted(ready["row"]) == sorted(second["row"].iloc[2:])
    assert resumed.total() == full.total() == 6 * 2 + 12 + 2


def test_parsers() -> None:
    assert parse_ranking('{"ranking": ["B", "C", "A"]}', 3) == [1, 2, 0]
    with pytest.raises(ValueError, match="malformed ranking"):
        parse_ranking('{"ranking": ["B", "C", "D"]}', 3)
    assert parse_score('{"score": 10}') == 10
    for text in ('{"score": true}', '{"score": 3.5}', "{}", "7"):
        with pytest.raises(ValueError):
            parse_score(text)


def test_personas_cycle_over_the_agents_when_on() -> None:
    cfg = compose_config(["role=dev", "agents=4", "personas=true"])
    table = council_requests(cfg, TASKS[:1])
    personas = cfg.role.personas
    assert len(personas) == 3
    expected = [agent_prompt(cfg.role.system_prompt, personas, i) for i in (1, 2, 3, 4)]
    assert table["system_prompt"].tolist() == expected
    assert expected[0].endswith(personas[0]) and expected[3].endswith(personas[0])
    assert len(set(expected)) == 3
    off = expand(TASKS[:1], cfg, cfg.system_prompts, 32)
    assert set(off["system_prompt"]) == {cfg.role.system_prompt}
    assert not re.search("Persona", compose_config(["role=dev"]).system_prompts["dev"])
