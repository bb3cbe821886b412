"""Final answers: find the one a proposal states, compare it with a reference, vote.

The prompts of a verifiable task ask for a last line ``Answer: <answer>``
(:data:`ANSWER_INSTRUCTION`). :func:`extract_answer` takes the last such line
(markdown emphasis, ``Final answer:`` and ``The answer is`` forms included),
else the last ``\\boxed{...}``; a proposal with neither has *no answer*, an
outcome of its own rather than a silent wrong one.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

ANSWER_INSTRUCTION = "End your reply with a last line of the form `Answer: <your final answer>`."
CODE_INSTRUCTION = "Reply with the whole function in one ```python code block."

# re reads \uff1a (a full-width colon) and \u2212 (a minus sign) in a pattern.
# Linear in the reply: the lead-in of a line stops at its end, and runs of spaces
# are taken whole (possessive *+): a reply of blank lines or spaces made the
# patterns backtrack quadratically (40,000 blank lines: 152 s).
_ANSWER_LINE = re.compile(
    r"(?im)^[ \t\r\f\v>#*_`-]*(?:(?:the|your|my)\s+)?(?:final\s+)?answer(?:\s+is)?"
    r"\s*+[*_]*+\s*+[:=\uff1a]\s*+(?P<text>.*\S)"
)
_ANSWER_IS = re.compile(
    r"(?i)\b(?:the|my|final)\s+(?:final\s+)?answer(?:\s+to\s+[^\n.\"`]{1,80}?)?\s+is\s*+"
    r"[:\uff1a]?\s*+(?P<text>[^\n]{0,1000}?)\s*(?:\.\s|\.?$)",
    re.M,
)
ANSWER_SCAN = 20_000
"""Characters, from a reply's end, searched for its answer (it states it last)."""
_BOXED = re.compile(r"\\boxed\{(?P<text>[^{}]*)\}")
_WRAPPERS = "*_`'\"$ \t"
_LETTER = re.compile(r"\(([a-z])\)(?:\s.*)?|([a-z])(?:[.):](?:\s.*)?)?")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|[-+]?\.\d+")
MINUS_SIGN = "\u2212"
SHORT_REPLY = 24
"""A reply of one value on a line at most this long, with no answer line, is the answer."""


def extract_answer(text: str) -> str | None:
    """The answer a proposal states last, cleaned; ``None`` when it states none.

    Looks for, in order: the last ``Answer: ...`` line (also ``**Answer:**``,
    ``Final answer = ...``), the last ``the answer [to ...] is ...`` phrase (up
    to the end of its sentence), the last ``\\boxed{...}``, and a reply that is
    only a value on one short line (:data:`SHORT_REPLY`); then the value it states
    (:func:`_value`). Markdown emphasis, backticks, quotes, ``$`` and a trailing
    period are stripped; an empty remainder is no answer. Only the reply's last
    :data:`ANSWER_SCAN` characters are read.
    """
    text = text[-ANSWER_SCAN:]
    for pattern in (_ANSWER_LINE, _ANSWER_IS, _BOXED):
        matches = list(pattern.finditer(text))
        for match in reversed(matches):
            raw = match.group("text")
            boxed = _BOXED.search(raw)
            answer = _value(boxed.group("text") if boxed else raw)
            if answer:
                return answer
    reply = clean(text)
    if _bare(reply):
        return _value(reply)  # a reply that is only a value is its own answer
    return None


_QUOTED = re.compile(r"[`\"](?P<text>[^`\"\n]+)[`\"]")
_INNER_ANSWER = re.compile(r"(?i)\banswer\s*[:=]")


def _value(answer: str) -> str | None:
    """The value an answer states: its first quoted part (```4.98`, so ...``), what
    follows a repeated ``Answer:``, and the right side of an equation (``x = 7``);
    an equation left open (``4 + 0 =``) states none."""
    if quoted := _QUOTED.search(answer):
        answer = quoted.group("text")
    answer = _INNER_ANSWER.split(answer)[-1]
    if "=" in answer:
        answer = answer.rsplit("=", 1)[1]
    return clean(answer) or None


def _bare(reply: str) -> bool:
    """One short line that is a value: a word, or anything with a digit (``10``,
    ``-4``, ``x = 3``), not a sentence (``I do not know``) nor a heading (``Answer:``)."""
    short = bool(reply) and "\n" not in reply and len(reply) <= SHORT_REPLY
    value = not any(c.isspace() for c in reply) or any(c.isdigit() for c in reply)
    return short and value and not reply.endswith(":")


_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(?P<code>.*?)(?:```|\Z)", re.S | re.I)


def extract_code(text: str) -> str | None:
    """The last fenced code block of ``text`` (```` ```python ```` or a bare fence; one
    cut off by the token cap runs to the end); None when there is none or it is empty."""
    blocks = [m.group("code") for m in _FENCE.finditer(text)]
    code = blocks[-1].strip("\n") if blocks else ""
    return code if code.strip() else None


def clean(answer: str) -> str:
    """``answer`` without surrounding markdown, quotes, ``$`` or a final period."""
    answer = answer.strip().strip(_WRAPPERS).strip()
    while answer.endswith((".", "。")) and not _NUMBER.fullmatch(answer):
        answer = answer[:-1].rstrip().strip(_WRAPPERS)
    return answer


def normalize_answer(answer: str) -> str:
    """Case-folded, whitespace collapsed, surrounding punctuation stripped."""
    return " ".join(clean(answer).casefold().split()).strip(" .,;:!?")


def parse_number(answer: str) -> float | None:
    """The number ``answer`` states (``-4``, ``1,234.5``, ``3/4``, ``$12``), or None
    when it states none or more than one distinct number."""
    found = {_to_float(m) for m in _NUMBER.findall(answer.replace(MINUS_SIGN, "-"))}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def _to_float(token: str) -> float | None:
    token = token.replace(",", "").replace(" ", "")
    try:
        return float(Fraction(token)) if "/" in token else float(token)
    except (ValueError, ZeroDivisionError):
        return None


def matches_exact(answer: str, reference: str) -> bool:
    """Equal after :func:`normalize_answer`."""
    return normalize_answer(answer) == normalize_answer(reference)


def matches_numeric(
    answer: str, reference: str, rel_tol: float = 1e-6, abs_tol: float = 1e-9
) -> bool:
    """Both state one number and they agree within ``rel_tol`` / ``abs_tol``."""
    a, r = parse_number(answer), parse_number(reference)
    return a is not None and r is not None and math.isclose(a, r, rel_tol=rel_tol, abs_tol=abs_tol)


def choice_index(answer: str, choices: Sequence[str]) -> int | None:
    """Which of ``choices`` ``answer`` picks: the choice's text, else its letter
    (``B``, ``(b)``, ``B)``, ``B. Paris``); None when it picks none."""
    text = normalize_answer(answer)
    texts = [normalize_answer(c) for c in choices]
    if texts.count(text) == 1:
        return texts.index(text)
    letter = _LETTER.fullmatch(text)
    if letter:
        index = ord(letter.group(1) or letter.group(2)) - ord("a")
        if index < len(choices):
            return index
    return None


def matches_choice(answer: str, reference: str, choices: Sequence[str]) -> bool:
    """``answer`` and ``reference`` pick the same one of ``choices``."""
    picked, wanted = choice_index(answer, choices), choice_index(reference, choices)
    return picked is not None and picked == wanted


def majority(answers: Sequence[str | None]) -> str | None:
    """The most frequent answer (compared after :func:`normalize_answer`); a tie goes
    to the one given first, so agent 1's answer wins a split vote. ``None`` answers
    (no answer stated) do not vote; None when nobody answered."""
    given = [a for a in answers if a is not None]
    if not given:
        return None
    keys = [normalize_answer(a) for a in given]
    counts = Counter(keys)
    best = max(counts.values())
    winner = next(k for k in keys if counts[k] == best)
    return given[keys.index(winner)]
