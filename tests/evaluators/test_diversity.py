import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluators.diversity import (
    distinct_1,
    distinct_2,
    lexical_diversity,
    mean_pairwise_cosine_distance,
    normalize,
    self_bleu,
    unique_ratio,
)

words = st.sampled_from(["redis", "queue", "worker", "pod", "scale", "the", "a", "of"])
texts = st.lists(words, max_size=30).map(" ".join)
councils = st.lists(texts, min_size=1, max_size=6)
METRICS = [unique_ratio, distinct_1, distinct_2, self_bleu]


@given(councils)
def test_values_in_unit_interval(proposals: list[str]) -> None:
    for metric in METRICS:
        assert 0.0 <= metric(proposals) <= 1.0


@given(st.lists(words, min_size=1, max_size=30).map(" ".join), st.integers(2, 6))
def test_identical_proposals(text: str, n: int) -> None:
    proposals = [text] * n
    assert unique_ratio(proposals) == pytest.approx(1 / n)
    assert self_bleu(proposals) == 1.0


@given(councils, st.randoms())
def test_permutation_invariant(proposals: list[str], rnd) -> None:
    shuffled = proposals[:]
    rnd.shuffle(shuffled)
    for metric in METRICS:
        assert metric(shuffled) == pytest.approx(metric(proposals))


def test_empty_proposals_are_handled() -> None:
    assert unique_ratio([]) == 0.0
    assert distinct_1([""]) == 0.0
    assert distinct_2(["one"]) == 0.0  # no bigram at all
    assert self_bleu(["only one"]) == 0.0
    assert self_bleu(["", ""]) == 1.0  # two empty answers are copies
    assert 0.0 <= self_bleu(["", "some text here"]) <= 1.0


def test_worked_examples() -> None:
    assert unique_ratio(["a b", "A  b", "c"]) == pytest.approx(2 / 3)
    assert normalize("  Hello\n World ") == "hello world"
    # unigrams: a b c a b d -> 6 total, {a, b, c, d} distinct
    assert distinct_1(["a b c", "a b d"]) == pytest.approx(4 / 6)
    # bigrams: (a b)(b c)(a b)(b d) -> 4 total, 3 distinct
    assert distinct_2(["a b c", "a b d"]) == pytest.approx(3 / 4)
    # Disjoint vocabularies share no n-gram: BLEU 0 both ways.
    assert self_bleu(["alpha beta gamma delta", "one two three four"]) == 0.0


def test_mean_pairwise_cosine_distance() -> None:
    assert mean_pairwise_cosine_distance([[1, 0], [1, 0]]) == pytest.approx(0.0)
    assert mean_pairwise_cosine_distance([[1, 0], [0, 1]]) == pytest.approx(1.0)
    # pairs: (e1,e1)=0, (e1,e2)=1, (e1,e2)=1 -> mean 2/3
    assert mean_pairwise_cosine_distance([[1, 0], [1, 0], [0, 1]]) == pytest.approx(2 / 3)
    assert mean_pairwise_cosine_distance([[1, 0]]) == 0.0
    assert mean_pairwise_cosine_distance([[0, 0], [1, 0]]) == 1.0  # a zero vector is unlike all


@given(councils)
def test_lexical_diversity_equals_the_separate_metrics(proposals: list[str]) -> None:
    assert lexical_diversity(proposals) == {
        "unique_ratio": unique_ratio(proposals),
        "distinct_1": distinct_1(proposals),
        "distinct_2": distinct_2(proposals),
    }


def test_self_bleu_never_exceeds_one() -> None:
    # sacrebleu scored this council 100.00000000000002 (found by hypothesis).
    long = "redis redis redis redis redis queue redis redis queue redis redis queue redis queue"
    assert self_bleu(["redis", "queue", long, long]) == 1.0
