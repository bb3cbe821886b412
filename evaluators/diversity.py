"""Diversity of one task's proposals across the agents of a council.

Every function takes the N proposals of one task and returns a value in
[0, 1]; run-level figures are means over tasks (see ``pipelines.metrics``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise


def normalize(text: str) -> str:
    """Lower-case ``text`` and collapse runs of whitespace to one space."""
    return " ".join(text.lower().split())


def unique_ratio(proposals: Sequence[str]) -> float:
    """Distinct proposals / proposals, after :func:`normalize`.

    1.0 means every agent answered differently; 1/N means all N agreed.
    An empty list scores 0.0.
    """
    if len(proposals) == 0:
        return 0.0
    return len({normalize(p) for p in proposals}) / len(proposals)


def distinct_n(proposals: Sequence[str], n: int) -> float:
    """Distinct n-grams / total n-grams over all proposals (Li et al., 2016).

    Tokens are the lower-cased whitespace-separated words. 0.0 when the
    proposals hold no n-gram at all.
    """
    total = 0
    distinct: set[tuple[str, ...]] = set()
    for p in proposals:
        tokens = p.lower().split()
        if n == 1:
            grams = [(t,) for t in tokens]
        elif n == 2:
            grams = list(pairwise(tokens))
        else:
            grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        distinct.update(grams)
    return len(distinct) / total if total else 0.0


def distinct_1(proposals: Sequence[str]) -> float:
    """:func:`distinct_n` with n = 1."""
    return distinct_n(proposals, 1)


def distinct_2(proposals: Sequence[str]) -> float:
    """:func:`distinct_n` with n = 2."""
    return distinct_n(proposals, 2)


def self_bleu(proposals: Sequence[str]) -> float:
    """Mean BLEU of each proposal against the others as references, in [0, 1].

    Higher means more alike (1.0: copies). sacrebleu's sentence BLEU with
    effective order; a proposal that equals another after :func:`normalize`
    scores 1.0 (BLEU is unstable on very short texts, a copy is a copy).
    Fewer than two proposals: 0.0 (nothing to compare).
    """
    from sacrebleu.metrics import BLEU

    if len(proposals) < 2:
        return 0.0
    bleu = BLEU(effective_order=True)
    scores = []
    for i, hyp in enumerate(proposals):
        refs = [p for j, p in enumerate(proposals) if j != i]
        if normalize(hyp) in {normalize(r) for r in refs}:
            scores.append(1.0)
        else:
            scores.append(bleu.sentence_score(hyp, refs).score / 100)
    return sum(scores) / len(scores)


def mean_pairwise_cosine_distance(vectors: Sequence[Sequence[float]]) -> float:
    """``embedding_diversity``: mean of 1 - cos(a, b) over pairs, clipped to [0, 1].

    Takes the proposals' embeddings (computed outside, e.g. by
    ``pipelines.embeddings``). Fewer than two vectors: 0.0.
    """
    import numpy as np

    if len(vectors) < 2:
        return 0.0
    m = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    unit = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
    sims = unit @ unit.T
    iu = np.triu_indices(len(m), k=1)
    return float(np.clip(1.0 - sims[iu], 0.0, 1.0).mean())
