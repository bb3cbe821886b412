"""Diversity of one task's proposals across the agents of a council.

Every function takes the N proposals of one task and returns a value in
[0, 1]; run-level figures are means over tasks (see ``pipelines.scoring.metrics``).
"""

from __future__ import annotations

from collections.abc import Sequence


def tokenize(text: str) -> list[str]:
    """The words of ``text``: lower-cased, split on whitespace."""
    return text.lower().split()


def normalize(text: str) -> str:
    """Lower-case ``text`` and collapse runs of whitespace to one space."""
    return " ".join(tokenize(text))


def unique_ratio(proposals: Sequence[str]) -> float:
    """Distinct proposals / proposals, after :func:`normalize`.

    1.0 means every agent answered differently; 1/N means all N agreed.
    An empty list scores 0.0.
    """
    return _unique_ratio([tokenize(p) for p in proposals])


def distinct_n(proposals: Sequence[str], n: int) -> float:
    """Distinct n-grams / total n-grams over all proposals (Li et al., 2016).

    Tokens are the words of :func:`tokenize`; n-grams do not cross proposals.
    0.0 when the proposals hold no n-gram at all.
    """
    return _distinct([tokenize(p) for p in proposals], n)


def distinct_1(proposals: Sequence[str]) -> float:
    """:func:`distinct_n` with n = 1."""
    return distinct_n(proposals, 1)


def distinct_2(proposals: Sequence[str]) -> float:
    """:func:`distinct_n` with n = 2."""
    return distinct_n(proposals, 2)


def lexical_diversity(proposals: Sequence[str]) -> dict[str, float]:
    """``unique_ratio``, ``distinct_1`` and ``distinct_2`` of one task at once.

    Same values as the three functions, from one tokenization of each
    proposal (splitting is most of the cost).
    """
    tokens = [tokenize(p) for p in proposals]
    return {
        "unique_ratio": _unique_ratio(tokens),
        "distinct_1": _distinct(tokens, 1),
        "distinct_2": _distinct(tokens, 2),
    }


def _unique_ratio(tokens: Sequence[list[str]]) -> float:
    if not tokens:
        return 0.0
    # Compare word lists of equal length: a list comparison stops at the first
    # differing word, cheaper than joining or hashing whole proposals.
    by_length: dict[int, list[list[str]]] = {}
    for words in tokens:
        seen = by_length.setdefault(len(words), [])
        if words not in seen:
            seen.append(words)
    return sum(map(len, by_length.values())) / len(tokens)


def _distinct(tokens: Sequence[list[str]], n: int) -> float:
    total = 0
    distinct: set[str | tuple[str, ...]] = set()
    for words in tokens:
        if n == 1:
            distinct.update(words)
            total += len(words)
        else:
            distinct.update(zip(*(words[i:] for i in range(n)), strict=False))
            total += max(len(words) - n + 1, 0)
    return len(distinct) / total if total else 0.0


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
            # sacrebleu can return 100.00000000000001: keep the [0, 1] promise.
            scores.append(min(bleu.sentence_score(hyp, refs).score / 100, 1.0))
    return sum(scores) / len(scores)


def mean_pairwise_cosine_distance(vectors: Sequence[Sequence[float]]) -> float:
    """``embedding_diversity``: mean of 1 - cos(a, b) over pairs, clipped to [0, 1].

    Takes the proposals' embeddings (computed outside, e.g. by
    ``pipelines.scoring.embeddings``). Fewer than two vectors: 0.0.
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
