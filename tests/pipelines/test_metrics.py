"""Aggregation over a hand-made results table, with hand-computed figures."""

import pandas as pd
import pytest

from pipelines.flow.scaling import scaling_table
from pipelines.scoring.metrics import (
    agent_table,
    run_metrics,
    score_rows,
    task_diversity,
    task_metrics,
    union_s,
)

KEYWORDS = {("devops", "t1"): ["redis", "queue"], ("devops", "t2"): ["pod"]}


def table() -> pd.DataFrame:
    rows = [
        # task, agent, proposal, tokens, batch, batch_s, error
        ("t1", 1, "Use Redis as a queue", 10, 0, 2.0, None),
        ("t1", 2, "use redis  as a QUEUE", 10, 0, 2.0, None),
        ("t1", 3, "Redis only", 4, 0, 2.0, None),
        ("t2", 1, "Scale the pods", 6, 1, 1.0, None),
        ("t2", 2, "", 0, 1, 1.0, "TimeoutError: boom"),
        ("t2", 3, "more pods", 2, 1, 1.0, None),
    ]
    return pd.DataFrame(
        [
            {
                "run_id": "r",
                "task_id": t,
                "role": "devops",
                "agent_id": f"agent-devops-00{a}",
                "agent_index": a,
                "temperature": 0.7 if a == 1 else 0.91,
                "proposal": p,
                "completion_tokens": n,
                "batch_id": b,
                "batch_s": s,
                "started_at": 100.0 + 2.0 * b,  # batch 0: 100-102, batch 1: 102-103
                "latency": s,
                "error": e,
            }
            for t, a, p, n, b, s, e in rows
        ]
    )


def test_run_metrics_worked_example() -> None:
    scored = score_rows(table(), KEYWORDS)
    assert scored["keyword_relevance"].tolist() == [1.0, 1.0, 0.5, 1.0, 0.0, 1.0]
    diversity = task_diversity(scored)
    # t1: two proposals equal after normalizing -> 2/3; t2: the failed one is left out -> 2/2
    assert diversity["unique_ratio"].tolist() == pytest.approx([2 / 3, 1.0])

    m = run_metrics(scored, diversity, wall_s=6.0)["overall"]
    assert m["requests"] == 6 and m["errors"] == 1
    assert m["keyword_relevance"] == pytest.approx(4.5 / 6)
    assert m["keyword_full_coverage"] == pytest.approx(4 / 6)
    assert m["unique_ratio"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["tokens_per_s"] == pytest.approx(32 / 6.0)
    assert m["generation_tokens_per_s"] == pytest.approx(32 / 3.0)  # batches 2 s + 1 s
    assert m["keyword_hit_rates"] == {
        "pod": pytest.approx(2 / 3),
        "queue": pytest.approx(2 / 3),
        "redis": 1.0,
    }

    per_agent = agent_table(scored).set_index("agent_id")
    assert per_agent.loc["agent-devops-002", "errors"] == 1
    assert per_agent.loc["agent-devops-001", "keyword_relevance"] == 1.0
    tm = task_metrics(scored, diversity)
    assert len(tm) == 6 and {"unique_ratio", "self_bleu", "keyword_hits"} <= set(tm.columns)


def test_scaling_factor_is_time_per_task_over_smallest_council() -> None:
    arms = []
    for n, seconds in [(1, 2.0), (3, 2.4), (5, 3.0)]:
        t = table().assign(
            council_size=n,
            batch_s=seconds,
            batch_id=[n * 10, n * 10, n * 10, n * 10 + 1, n * 10 + 1, n * 10 + 1],
            started_at=[n * 100.0] * 3 + [n * 100.0 + seconds] * 3,  # one after the other
        )
        arms.append(t)
    scored = score_rows(pd.concat(arms, ignore_index=True), KEYWORDS)
    out = scaling_table(scored).set_index("agents")
    # two batches per arm, two tasks: time per task = seconds
    assert out["time_per_task_s"].tolist() == pytest.approx([2.0, 2.4, 3.0])
    assert out["scaling_factor"].tolist() == pytest.approx([1.0, 1.2, 1.5])


def test_engine_busy_time_is_the_union_of_overlapping_batch_windows() -> None:
    # Three batches in flight together, then one after a gap.
    assert union_s([0.0, 0.5, 1.0, 10.0], [4.0, 4.0, 2.0, 1.0]) == pytest.approx(4.5 + 1.0)
    assert union_s([0.0, 5.0], [1.0, 1.0]) == pytest.approx(2.0)


def test_repeats_are_scored_sample_by_sample_and_their_spread_reported() -> None:
    # Two samples of the same council: all on topic in repeat 0, half in repeat 1.
    base = table().iloc[:3].assign(error=None)
    again = base.assign(
        repeat=1, proposal=["Use Redis", "use redis", "nothing"], completion_tokens=3
    )
    both = pd.concat([base.assign(repeat=0), again], ignore_index=True)
    scored = score_rows(both, KEYWORDS)
    diversity = task_diversity(scored)
    assert diversity[["task_id", "repeat"]].values.tolist() == [["t1", 0], ["t1", 1]]
    # Each repeat's diversity is over its own three answers.
    assert diversity["unique_ratio"].tolist() == pytest.approx([2 / 3, 2 / 3])
    m = run_metrics(scored, diversity, wall_s=1.0)["overall"]
    relevance = [(1 + 1 + 0.5) / 3, (0.5 + 0.5 + 0) / 3]
    assert m["keyword_relevance"] == pytest.approx(sum(relevance) / 2)
    assert m["repeats"] == 2
    assert m["keyword_relevance_repeat_sd"] == pytest.approx(pd.Series(relevance).std())
    assert m["unique_ratio_repeat_sd"] == pytest.approx(0.0)
