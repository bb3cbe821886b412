import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluators.keywords import (
    full_coverage,
    keyword_hit_rates,
    keyword_hits,
    keyword_pattern,
    keyword_relevance,
    keyword_spans,
)


@pytest.mark.parametrize(
    ("keyword", "text", "hit"),
    [
        ("queue", "Use a Queue for jobs", True),
        ("queue", "jobs are queued", True),
        ("queue", "queuing theory", True),
        ("queue", "many queues", True),
        ("queue", "a queueless design", False),
        ("worker", "Kubernetes workers", True),
        ("redis", "redistribute load", False),
        ("edge case", "edge-cases matter", True),
        ("edge case", "Edge  cases matter", True),
        ("edge case", "an edge of the case", False),
        ("dependency", "track dependencies", True),
        ("deploy", "a deployment", False),
        ("time series", "time-series data", True),
        ("hmac", "HMAC-SHA256 signatures", True),
        ("a a", "ba a a", True),  # a candidate inside a word, then a real hit overlapping it
    ],
)
def test_keyword_rule(keyword: str, text: str, hit: bool) -> None:
    assert keyword_hits(text, [keyword]) == [hit]


def test_keyword_relevance_is_share_of_hits() -> None:
    text = "Run Redis as the queue; Kubernetes pods poll it."
    assert keyword_hits(text, ["kubernetes", "redis", "queue", "worker"]) == [
        True,
        True,
        True,
        False,
    ]
    assert keyword_relevance(text, ["kubernetes", "redis", "queue", "worker"]) == 0.75
    assert keyword_relevance("", ["redis"]) == 0.0
    assert keyword_relevance("anything", []) == 0.0


keyword_lists = st.lists(
    st.sampled_from(["redis", "queue", "worker", "edge case", "pod"]), min_size=1, max_size=5
)


@given(st.text(max_size=200), keyword_lists)
def test_relevance_in_unit_interval(text: str, keywords: list[str]) -> None:
    assert 0.0 <= keyword_relevance(text, keywords) <= 1.0
    assert len(keyword_hits(text, keywords)) == len(keywords)


@given(keyword_lists)
def test_text_of_the_keywords_hits_all(keywords: list[str]) -> None:
    assert keyword_relevance(" and ".join(keywords).upper(), keywords) == 1.0


def test_aggregates_worked_example() -> None:
    hits = [[True, True], [True, False], [False, False]]
    assert full_coverage(hits) == pytest.approx(1 / 3)
    assert full_coverage([]) == 0.0
    rates = keyword_hit_rates([["Redis", "queue"]] * 3, hits)
    assert rates == {"queue": pytest.approx(1 / 3), "redis": pytest.approx(2 / 3)}


def lookbehind_hits(text: str, keywords: list[str]) -> list[bool]:
    """The rule as one plain regex per keyword (slow, obviously right)."""
    out = []
    for k in keywords:
        fast = keyword_pattern(k).pattern
        out.append(re.search(r"(?<!\w)" + fast, text.lower()) is not None)
    return out


# Texts built from keyword fragments, separators and letters exercise the
# boundary check: overlapping candidates, words inside words, joined words.
fragments = st.sampled_from(["a", "a a", "queue", "s", "re", "edge", "-", "_", " ", "case", "ing"])


@given(
    st.lists(fragments, max_size=20).map("".join),
    st.lists(st.sampled_from(["a a", "queue", "edge case", "a"]), min_size=1),
)
def test_literal_search_agrees_with_lookbehind_regex(text: str, keywords: list[str]) -> None:
    assert keyword_hits(text, keywords) == lookbehind_hits(text, keywords)


@given(
    st.lists(st.sampled_from(["a", "a a", "queue", "s", "re", "edge", "-", " ", "İ", "case"])).map(
        "".join
    ),
    st.lists(st.sampled_from(["a a", "queue", "edge case", "a", "i"]), min_size=1),
)
def test_spans_mark_exactly_the_keywords_that_hit(text: str, keywords: list[str]) -> None:
    spans = keyword_spans(text, keywords)
    assert spans == sorted(spans)
    assert all(end > start and start >= 0 and end <= len(text) for start, end in spans)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))  # merged
    for keyword, hit in zip(keywords, keyword_hits(text, keywords), strict=True):
        assert bool(keyword_spans(text, [keyword])) == hit


def test_spans_of_a_proposal() -> None:
    text = "Queues and edge-cases: a queued job."
    spans = keyword_spans(text, ["queue", "edge case"])
    assert [text[a:b] for a, b in spans] == ["Queues", "edge-cases", "queued"]
