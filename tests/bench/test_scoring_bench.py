"""Scoring cost: 100,000 proposals of ~1,000 characters (run with `make bench`)."""

from __future__ import annotations

import random
import time

import pandas as pd

from pipelines.scoring.metrics import score_rows, task_diversity

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
    diversity = task_diversity(scored, bleu=False)
    elapsed = time.perf_counter() - start

    sample = scored[scored["task_id"].isin([f"t{i}" for i in range(200)])]
    bleu_start = time.perf_counter()
    task_diversity(sample)
    bleu_s = time.perf_counter() - bleu_start

    print(
        f"\nscored {total} proposals ({sum(map(len, texts)) / total:.0f} chars each, "
        f"{len(diversity)} tasks x {agents} agents): keywords + exact + distinct-n in "
        f"{elapsed:.2f} s = {total / elapsed:,.0f} proposals/s; with self_bleu, "
        f"200 tasks take {bleu_s:.2f} s"
    )
    assert len(diversity) == total // agents
    assert set(diversity.columns) >= {"unique_ratio", "distinct_1", "distinct_2"}
    assert scored["keyword_relevance"].between(0, 1).all()
    assert elapsed < 10.0
