import pytest

from evaluators.diversity import normalize, unique_ratio

pytestmark = pytest.mark.unit


def test_unique_ratio_counts_distinct_after_normalizing() -> None:
    assert unique_ratio(["a b", "A  b", "c"]) == pytest.approx(2 / 3)
    assert unique_ratio(["x", "x", "x"]) == pytest.approx(1 / 3)
    assert unique_ratio(["x", "y", "z"]) == 1.0
    assert unique_ratio([]) == 0.0
    assert normalize("  Hello\n World ") == "hello world"
