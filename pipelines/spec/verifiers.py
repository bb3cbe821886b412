"""The verifiers a task's reference answer may name (the dataset's ``verifier``
field), what each needs, and the check itself.

``exact``: equal after normalizing case, spaces and surrounding punctuation;
``numeric``: one number, equal within 1e-6 (relative); ``choice``: the same
one of the task's ``choices`` (by letter or text); ``reasoning_gym:<dataset>``:
that generator's own ``score_answer`` on the task's ``metadata`` (1.0 is right),
in the sandbox (several of them ``eval()`` the answer: :class:`GymScorer`);
``python_tests``: the proposal's last code block, after the task's
``metadata.preamble`` (imports, the signature), passes the task's ``tests``
(``check(<entry_point>)``) in the sandbox (:mod:`pipelines.runtime.sandbox`).
"""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from evaluators.answers import (
    choice_index,
    extract_answer,
    extract_code,
    matches_choice,
    matches_exact,
    matches_numeric,
    parse_number,
)
from pipelines.runtime import sandbox

log = logging.getLogger(__name__)

EXACT, NUMERIC, CHOICE, REASONING_GYM = "exact", "numeric", "choice", "reasoning_gym"
PYTHON_TESTS = "python_tests"
VERIFIERS = (EXACT, NUMERIC, CHOICE, f"{REASONING_GYM}:<dataset>", PYTHON_TESTS)


def problem(
    verifier: str | None,
    answer: str | None,
    choices: list[str] | None = None,
    has_metadata: bool = False,
    tests: str | None = None,
    entry_point: str | None = None,
) -> str | None:
    """What makes a task's reference answer unusable, as ``field 'x': ...``; None if fine."""
    kind, _, dataset = (verifier or "").partition(":")
    known = kind in (EXACT, NUMERIC, CHOICE, PYTHON_TESTS) and not dataset
    if verifier is not None and not known and not (kind == REASONING_GYM and dataset):
        return f"field 'verifier': unknown {verifier!r} (one of {', '.join(VERIFIERS)})"
    if answer is None:
        return f"field 'answer': required by verifier {verifier!r}" if verifier else None
    if kind == NUMERIC and parse_number(answer) is None:
        return f"field 'answer': {answer[:40]!r} is not one number (verifier 'numeric')"
    if kind == CHOICE:
        if not choices or len(choices) < 2:
            return "field 'choices': verifier 'choice' needs 2 or more choices"
        if choice_index(answer, choices) is None:
            return f"field 'answer': {answer[:40]!r} is none of the choices (a letter or a text)"
    if kind == REASONING_GYM:
        if dataset not in reasoning_gym_datasets():
            return f"field 'verifier': reasoning_gym has no dataset {dataset!r}"
        if sandbox.bwrap() is None:
            return f"field 'verifier': {NO_GYM_SANDBOX}"
        if not has_metadata:
            return f"field 'metadata': required by verifier {verifier!r} (its scorer reads it)"
    if kind == PYTHON_TESTS:
        if not tests or not entry_point or not entry_point.isidentifier():
            return "field 'tests': verifier 'python_tests' needs tests and an entry_point name"
        if sandbox.bwrap() is None:
            return f"field 'verifier': {NO_SANDBOX}"
    elif tests is not None or entry_point is not None:
        return "field 'tests': only verifier 'python_tests' runs tests"
    return None


NO_SANDBOX = f"python_tests runs code only in a sandbox, which needs bubblewrap: {sandbox.INSTALL}"
NO_GYM_SANDBOX = (
    "reasoning_gym's scorers run answers as code (eval, sympy) only in a sandbox, which needs "
    f"bubblewrap: {sandbox.INSTALL}"
)


@cache
def reasoning_gym_datasets() -> frozenset[str]:
    """The generators of the installed ``reasoning_gym`` (imported on first use: ~1.5 s)."""
    from reasoning_gym.factory import DATASETS

    return frozenset(DATASETS)


class GymScorer:
    """reasoning_gym's scorers, in a sandboxed worker of their own (``gym_scorer.py``):
    several ``eval()`` the answer, which is model text. One worker for the process,
    started on first use; an answer whose scoring does not end within the worker's
    time limit, or that kills it, is scored wrong (and the worker started again).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._worker: sandbox.Worker | None = None

    def score(self, dataset: str, answer: str, entry: dict[str, Any]) -> float:
        """The generator's ``score_answer`` (its default instance: the scorers read the
        task's own entry, not the generator's settings); 0.0 when it gave no score.

        Raises:
            sandbox.SandboxFailed: the sandbox could not start.
        """
        with self._lock:
            if self._worker is None:
                source = (Path(__file__).parent / "gym_scorer.py").read_text()
                self._worker = sandbox.Worker(source)
                atexit.register(self._worker.close)
            request = {"dataset": dataset, "answer": answer, "entry": entry}
            reply = self._worker.ask(request)
        if reply is None or "score" not in reply:
            why = (
                "no score (timed out, or it ended the worker)"
                if reply is None
                else str(reply.get("error"))[:200]
            )
            log.warning("reasoning_gym:%s: answer %r scored wrong: %s", dataset, answer[:60], why)
            return 0.0
        return float(reply["score"])


GYM = GymScorer()


@dataclass(frozen=True)
class Reference:
    """A task's reference answer and how an answer is checked against it."""

    answer: str
    verifier: str = EXACT
    choices: tuple[str, ...] = ()
    metadata: Mapping[str, Any] | None = None
    question: str = ""
    tests: str = ""
    entry_point: str = ""

    def extract(self, text: str) -> str | None:
        """The final answer a proposal states (its last code block for code tasks)."""
        return extract_code(text) if self.verifier == PYTHON_TESTS else extract_answer(text)

    def check(self, answer: str) -> bool:
        """Is ``answer`` (an extracted final answer) right?"""
        kind, _, dataset = self.verifier.partition(":")
        if kind == PYTHON_TESTS:
            # Exit 0 alone is no pass: a proposal that calls os._exit(0) or raises
            # SystemExit(0) before the tests run exits 0 too. The pass is the line
            # printed after check() returned, with a token new to each check.
            preamble = str((self.metadata or {}).get("preamble", ""))
            token = secrets.token_hex(16)
            program = (
                f"{preamble}\n\n{answer}\n\n{self.tests}\n\ncheck({self.entry_point})\n"
                f"print({token!r}, flush=True)\n"
            )
            outcome = sandbox.run_python(program)
            if outcome.status == sandbox.FAILED and outcome.output.startswith("bwrap: "):
                sandbox.self_test()  # bwrap itself failed: an error, not a wrong answer
            return outcome.passed and outcome.output.rstrip().endswith(token)
        if kind == NUMERIC:
            return matches_numeric(answer, self.answer)
        if kind == CHOICE:
            return matches_choice(answer, self.answer, self.choices)
        if kind == REASONING_GYM:
            entry = {"question": self.question, "answer": self.answer, "metadata": self.metadata}
            return GYM.score(dataset, answer, dict(entry)) >= 1.0
        return matches_exact(answer, self.answer)
