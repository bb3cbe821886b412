"""Final answers: extraction, comparison, the majority vote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluators.answers import (
    choice_index,
    extract_answer,
    majority,
    matches_choice,
    matches_exact,
    matches_numeric,
    parse_number,
)

OUTPUTS = Path(__file__).parent / "smollm2_answers.jsonl"
"""90 real proposals of the embedded model (SmolLM2-135M-Instruct, float32, seeded,
temperatures 0.7 and 0.91, 96 tokens) to reasoning_gym basic_arithmetic, chain_sum
and gcd tasks under the ``Answer:`` instruction (the data role's prompt and a plain
one), each with the answer it states as read by a person (``null``: none stated):
70 state one, in every form the extractor reads, and 20 state none."""


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("The sum is 5.\nAnswer: 5", "5"),
        ("**Answer:** -4.", "-4"),
        ("Answer: 3\n\nSo the answer is: 7", "3"),  # the last Answer: line wins over phrases
        ("We get 12, so the final answer is 12", "12"),
        (r"Hence \boxed{3/4}.", "3/4"),
        ("Answer: $1,234.50", "1,234.50"),
        ("Final Answer = B) Paris", "B) Paris"),
        ("Answer: 2\nAnswer: 4", "4"),
        ("Answer: `x = 7`", "7"),  # the value of an equation
        ("The answer is `4.98`, so 1 / 2 = 0.5.", "4.98"),  # the quoted part
        ("Answer: 4 + 0 =", None),  # an open equation states nothing
        ("Your answer: 102.", "102"),
        ("2 + -8 = 10", "10"),  # a bare equation's value
        ("answer:", None),
        ("I do not know.", None),
        ("The question asks for an answer.", None),
    ],
)
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_extraction_on_real_model_outputs() -> None:
    cases = [json.loads(line) for line in OUTPUTS.read_text().splitlines()]
    assert len(cases) >= 20
    assert any(c["stated"] is None for c in cases) and any(c["stated"] for c in cases)
    for case in cases:
        assert extract_answer(case["proposal"]) == case["stated"], case["proposal"]


@given(st.integers(-(10**12), 10**12))
def test_parse_number_reads_integers_however_grouped(n: int) -> None:
    assert parse_number(str(n)) == n
    assert parse_number(f"{n:,}") == n
    assert parse_number(f"x = {n}.") == n


def test_numbers_fractions_and_ambiguity() -> None:
    assert parse_number("3/4") == 0.75
    assert parse_number("\u22124") == -4  # a minus sign
    assert parse_number("4 or 5") is None  # two numbers: no answer, not the first
    assert parse_number("4, i.e. 4.0") == 4
    assert matches_numeric("-4.0", "-4") and not matches_numeric("-4.1", "-4")
    assert matches_exact(" Paris. ", "paris") and not matches_exact("Paris, France", "Paris")


def test_choices_by_letter_or_text() -> None:
    choices = ["Rome", "Paris", "a dog"]
    assert choice_index("B", choices) == 1
    assert choice_index("(b)", choices) == 1
    assert choice_index("B) Paris", choices) == 1
    assert choice_index("paris", choices) == 1
    assert choice_index("a dog", choices) == 2  # a choice's text, not the letter a
    assert choice_index("D", choices) is None
    assert matches_choice("paris", "B", choices) and not matches_choice("A", "B", choices)


def test_majority_ignores_silence_and_breaks_ties_by_order() -> None:
    assert majority([None, "4", "5", "5 "]) == "5"
    assert majority(["4", "5"]) == "4"  # a split vote goes to the first answer
    assert majority(["Paris", "paris", "Rome"]) == "Paris"
    assert majority([None, None]) is None


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ("\n" * 40_000 + "Answer: 5", "5"),  # 152 s before
        ("the answer is" + " " * 40_000 + "x", "x"),
        ("the answer is" + "\n" * 40_000, None),
        ("Answer" + " " * 40_000 + ":", None),
        ("x" * 100_000 + "\nAnswer: 7", "7"),
    ],
    ids=["blank-lines", "spaces", "newlines-after", "spaces-before-colon", "long-reply"],
)
def test_extraction_is_linear_in_a_hostile_reply(reply: str, answer: str | None) -> None:
    import time

    start = time.perf_counter()
    assert extract_answer(reply) == answer
    assert time.perf_counter() - start < 2.0
