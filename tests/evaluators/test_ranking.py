"""Peer-ranking figures against hand-computed values and their invariants."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluators import borda, kendall_w, rank_agreement, top

ITEMS = ["a", "b", "c", "d"]
rankings_of_items = st.lists(st.permutations(ITEMS), min_size=2, max_size=6)


def test_borda_counts_positions() -> None:
    points = borda([["a", "b", "c"], ["b", "a", "c"], ["b", "c", "a"]], ["a", "b", "c"])
    assert points == {"a": 2 + 1 + 0, "b": 1 + 2 + 2, "c": 0 + 0 + 1}
    assert borda([], ["a", "b"]) == {"a": 0, "b": 0}
    assert top({"a": 1, "b": 1, "c": 0}, ["b", "a", "c"]) == ["b", "a", "c"]  # ties keep order


def test_kendall_w_hand_computed() -> None:
    assert kendall_w([["a", "b", "c"]] * 3) == 1.0
    assert kendall_w([["a", "b", "c"], ["c", "b", "a"]]) == 0.0
    # Rank sums a=4, b=3, c=5 (m=2, n=3): S = 0+1+1 = 2, W = 12*2 / (4 * 24) = 0.25
    assert kendall_w([["a", "b", "c"], ["b", "c", "a"]]) == pytest.approx(0.25)
    assert kendall_w([["a", "b"]]) is None and kendall_w([["a", "b"], ["a", "c"]]) is None


def test_rank_agreement_is_kendalls_tau() -> None:
    assert rank_agreement(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert rank_agreement(["a", "b", "c"], ["c", "b", "a"]) == -1.0
    assert rank_agreement(["a", "b", "c"], ["b", "a", "c"]) == pytest.approx(1 / 3)


@given(rankings_of_items)
def test_kendall_w_is_within_0_and_1_and_borda_sums_to_the_total(rankings: list) -> None:
    w = kendall_w(rankings)
    assert w is not None and -1e-12 <= w <= 1 + 1e-12
    n = len(ITEMS)
    assert sum(borda(rankings, ITEMS).values()) == len(rankings) * n * (n - 1) // 2
