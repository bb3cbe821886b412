"""Deliberation prompts and the structured outputs they ask for.

Every text an agent, the chair or the judge reads about other answers is
anonymized: proposals are labelled by letter (``Proposal A``) in the order the
caller chose, and no agent id ever appears. Rankings and judge scores are JSON
that follows a schema (guided decoding); the parsers turn an answer that does
not follow it into a ``ValueError``, never a default.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from typing import Any

LETTERS = string.ascii_uppercase
SCORE_MIN, SCORE_MAX = 1, 10
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": SCORE_MIN, "maximum": SCORE_MAX}},
    "required": ["score"],
    "additionalProperties": False,
}


def _proposals(texts: Sequence[str], points: Sequence[int] | None = None) -> str:
    blocks = []
    for i, text in enumerate(texts):
        extra = f" ({points[i]} Borda points)" if points is not None else ""
        blocks.append(f"Proposal {LETTERS[i]}{extra}:\n{text.strip()}")
    return "\n\n".join(blocks)


def revision_prompt(task: str, own: str | None, others: Sequence[str], instruction: str) -> str:
    """Round r >= 2: the task, the agent's own round r-1 proposal, the others'."""
    parts = [f"Task:\n{task}"]
    if own is not None:
        parts.append(f"Your previous proposal:\n{own.strip()}")
    if others:
        parts.append(f"Proposals of the other council members:\n\n{_proposals(others)}")
    parts.append(instruction)
    return "\n\n".join(parts)


def ranking_schema(n: int) -> dict[str, Any]:
    """JSON of a ranking of ``n`` proposals: their letters, best first."""
    return {
        "type": "object",
        "properties": {
            "ranking": {
                "type": "array",
                "items": {"type": "string", "enum": list(LETTERS[:n])},
                "minItems": n,
                "maxItems": n,
            }
        },
        "required": ["ranking"],
        "additionalProperties": False,
    }


def ranking_prompt(task: str, proposals: Sequence[str], instruction: str) -> str:
    letters = ", ".join(LETTERS[: len(proposals)])
    return (
        f"{instruction}\n\nTask:\n{task}\n\n{_proposals(proposals)}\n\n"
        f'Answer as {{"ranking": [...]}} with each of {letters} exactly once.'
    )


def parse_ranking(text: str, n: int) -> list[int]:
    """Positions (0-based, in the order shown) best first; ValueError unless the answer
    is JSON naming each of the ``n`` letters exactly once."""
    try:
        ranking = json.loads(text)["ranking"]
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        raise ValueError(f"malformed ranking ({type(e).__name__}): {text[:80]!r}") from None
    letters = list(LETTERS[:n])
    if not isinstance(ranking, list) or sorted(map(str, ranking)) != letters:
        raise ValueError(f"malformed ranking (not each of {letters} once): {ranking!r:.80}")
    return [letters.index(letter) for letter in ranking]


def chair_prompt(
    task: str, proposals: Sequence[str], points: Sequence[int] | None, instruction: str
) -> str:
    """The chair's request: the final proposals in the council's aggregate order."""
    order = "in the council's ranking order" if points is not None else "unranked"
    return (
        f"{instruction}\n\nTask:\n{task}\n\nThe council's proposals, {order}:\n\n"
        f"{_proposals(proposals, points)}\n\nThe council's final answer:"
    )


def judge_prompt(task: str, answer: str, rubric: str) -> str:
    return (
        f"{rubric}\n\nTask:\n{task}\n\nAnswer:\n{answer.strip()}\n\n"
        f'Reply as {{"score": n}} with n from {SCORE_MIN} to {SCORE_MAX}.'
    )


def parse_score(text: str) -> int:
    """The judge's score; ValueError unless JSON with an integer score in range."""
    try:
        score = json.loads(text)["score"]
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        raise ValueError(f"malformed score ({type(e).__name__}): {text[:80]!r}") from None
    if isinstance(score, bool) or not isinstance(score, int):
        raise ValueError(f"malformed score (not an integer): {score!r:.40}")
    if not SCORE_MIN <= score <= SCORE_MAX:
        raise ValueError(f"score {score} outside {SCORE_MIN}..{SCORE_MAX}")
    return score
