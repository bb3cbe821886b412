"""Scoring cost: 100,000 proposals of ~1,000 characters (run with `make bench`)."""

from __future__ import annotations

import random
import time

import pandas as pd
import pytest

from evaluators import distinct_1, distinct_2, unique_ratio
from pipelines.metrics import score_rows

pytestmark = pytest.mark.bench

VOCAB = [
    "kubernetes",
    "redis",
    "queue",
    "worker",
    "deploy",
    "scale",
    "pod",
    "node",
    "service",
    "cache",
    "retry",
    "backoff",
    "the",
    "a",
    "of",
    "to",
    "and",
    "with",
    "for",
    "in",
    "on",
    "is",
    "are",
    "be",
    "use",
    "run",
    "build",
    "test",
    "monitor",
    "alert",
    "metric",
]


def proposals(n: int, rnd: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 1000:
            words.append(rnd.choice(VOCAB))
        out.append(" ".join(words))
    return out


def test_scoring_100k_proposals_under_10_s() -> None:
    rnd = random.Random(0)
    agents, total = 5, 100_000
    texts = proposals(total, rnd)
    tasks = [f"t{i // agents}" for i in range(total)]
    keywords = {("devops", t): rnd.sample(VOCAB[:12], 4) for t in set(tasks)}
    table = pd.DataFrame({"role": "devops", "task_id": tasks, "proposal": texts, "error": None})

    start = time.perf_counter()
    scored = score_rows(table, keywords)
    per_task = scored.groupby("task_id", sort=False)["proposal"].agg(lambda s: s.tolist())
    exact = per_task.map(unique_ratio)
    d1, d2 = per_task.map(distinct_1), per_task.map(distinct_2)
    elapsed = time.perf_counter() - start

    print(
        f"\nscored {total} proposals ({sum(map(len, texts)) / total:.0f} chars each, "
        f"{len(per_task)} tasks x {agents} agents): keywords + exact + distinct-n in "
        f"{elapsed:.2f} s = {total / elapsed:,.0f} proposals/s"
    )
    assert len(exact) == len(d1) == len(d2) == total // agents
    assert elapsed < 10.0
