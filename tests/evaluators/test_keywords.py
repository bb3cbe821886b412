import pytest

from evaluators.keywords import keyword_hits, keyword_relevance

pytestmark = pytest.mark.unit


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
