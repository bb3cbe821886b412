"""Keyword relevance: does a proposal mention the keywords a task expects?

Matching rule, per keyword:
- case-insensitive and on whole words (``queue`` does not match ``queueless``);
- words of a multi-word keyword may be joined by spaces or hyphens
  (``edge case`` matches ``edge-case``, ``edge cases`` and ``Edge  Case``);
- the last word may carry a simple English inflection: ``-s``, ``-es``,
  ``-ed``, ``-ing``, with a final ``e`` dropped before ``-ed``/``-ing``
  (``queue`` matches ``queues``, ``queued``, ``queuing``) and a final ``y``
  turned into ``-ies``/``-ied`` (``dependency`` matches ``dependencies``).

Derivations that change the word (``deploy`` vs ``deployment``) are not
matched: they often change the meaning, and a task that accepts both can
list the keyword that way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache

_SEPARATOR = r"[\s\-_]+"


def _inflected(word: str) -> str:
    """Regex for one word and its simple inflections."""
    forms = [re.escape(word) + r"(?:s|es|ed|ing)?"]
    if word.endswith("e") and len(word) > 2:
        forms.append(re.escape(word[:-1]) + r"(?:ed|ing)")
    if word.endswith("y") and len(word) > 2:
        forms.append(re.escape(word[:-1]) + r"(?:ies|ied)")
    return "(?:" + "|".join(forms) + ")"


@lru_cache(maxsize=4096)
def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """Compiled pattern for ``keyword`` by the module's rule, on lower-cased text.

    The pattern starts with the keyword's first letters (so the regex engine
    scans for that literal, several times faster than a leading look-behind);
    :func:`keyword_hits` checks the word boundary before a candidate.
    """
    words = [w for w in re.split(_SEPARATOR, keyword.strip().lower()) if w]
    if not words:
        raise ValueError(f"empty keyword: {keyword!r}")
    parts = [re.escape(w) for w in words[:-1]] + [_inflected(words[-1])]
    return re.compile(_SEPARATOR.join(parts) + r"(?!\w)")


def _found(pattern: re.Pattern[str], text: str) -> bool:
    """Whether ``pattern`` matches ``text`` at a start of word."""
    return next(_matches(pattern, text), None) is not None


def _matches(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """The matches of ``pattern`` in ``text`` that begin a word, left to right."""
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        start = m.start()
        if start == 0 or not _is_word_char(text[start - 1]):
            yield m
            pos = m.end()
        else:
            pos = start + 1


def _is_word_char(char: str) -> bool:
    """``\\w`` of Python's ``re`` on one character."""
    return char.isalnum() or char == "_"


def keyword_hits(proposal: str, keywords: Sequence[str]) -> list[bool]:
    """Whether each keyword occurs in ``proposal`` (same order as ``keywords``)."""
    text = proposal.lower()
    return [_found(keyword_pattern(k), text) for k in keywords]


def keyword_spans(proposal: str, keywords: Sequence[str]) -> list[tuple[int, int]]:
    """Where ``keywords`` occur in ``proposal``: sorted, merged ``(start, end)``
    character spans, by the same rule as :func:`keyword_hits` (for highlighting)."""
    text = proposal.lower()
    found = sorted(m.span() for k in keywords for m in _matches(keyword_pattern(k), text))
    if len(text) != len(proposal):  # a few characters lower-case to two (İ): map back
        origin = [i for i, c in enumerate(proposal) for _ in c.lower()]
        found = [(origin[a], origin[b - 1] + 1) for a, b in found]
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def keyword_relevance(proposal: str, keywords: Sequence[str]) -> float:
    """Share of ``keywords`` found in ``proposal``: hits / len(keywords), in [0, 1]."""
    return coverage(keyword_hits(proposal, keywords))


def coverage(hits: Sequence[bool]) -> float:
    """Share of true values; 0.0 for no keywords."""
    return sum(hits) / len(hits) if hits else 0.0


def full_coverage(hits_per_proposal: Sequence[Sequence[bool]]) -> float:
    """``keyword_full_coverage``: share of proposals that hit every keyword."""
    if not hits_per_proposal:
        return 0.0
    return sum(bool(h) and all(h) for h in hits_per_proposal) / len(hits_per_proposal)


def keyword_hit_rates(
    keywords_per_proposal: Sequence[Sequence[str]],
    hits_per_proposal: Sequence[Sequence[bool]],
) -> dict[str, float]:
    """Per keyword (lower-cased): share of the proposals expecting it that hit it."""
    seen: dict[str, int] = {}
    hit: dict[str, int] = {}
    for keywords, hits in zip(keywords_per_proposal, hits_per_proposal, strict=True):
        for k, h in zip(keywords, hits, strict=True):
            key = k.lower()
            seen[key] = seen.get(key, 0) + 1
            hit[key] = hit.get(key, 0) + h
    return {k: hit[k] / seen[k] for k in sorted(seen)}
