"""Ground truth: each proposal's final answer checked against its task's reference.

Per proposal (:func:`score_truth`): ``answer_extracted`` (the answer it states,
:func:`evaluators.answers.extract_answer`), ``verdict`` (``correct``, ``wrong``,
``no_answer`` when it states none, ``failed`` when its request failed) and
``correct`` (1.0 or 0.0; NaN for a task without a reference, and for a code
proposal left ``unscored`` once the scoring's sandbox time, ``code_budget_s``,
is spent: not run is not wrong). Per task and
repeat (:func:`task_truth`): ``majority_accuracy`` (the council's majority
answer is right) and ``pass_at_n`` (some agent is right). Tasks without a
reference have none of these figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from evaluators.answers import majority
from pipelines.scoring.stats import bootstrap_ci
from pipelines.spec.verifiers import PYTHON_TESTS, Reference

log = logging.getLogger(__name__)

CORRECT, WRONG, NO_ANSWER, FAILED = "correct", "wrong", "no_answer", "failed"
UNSCORED = "unscored"
"""A code proposal not run: the scoring's sandbox time was spent."""
TRUTH_COLUMNS = ["answer_extracted", "verdict", "correct", "no_answer"]
GROUP = ["role", "task_id", "repeat"]


References = Mapping[tuple[str, str], Reference]


class CodeClock:
    """What is left of one scoring's sandbox time (None: no limit)."""

    def __init__(self, budget_s: float | None) -> None:
        self.left = budget_s
        self.unscored = 0

    def check(self, reference: Reference, answer: str) -> str:
        """The verdict of ``answer``; a code check only while time is left."""
        if reference.verifier != PYTHON_TESTS:
            return CORRECT if reference.check(answer) else WRONG
        if self.left is not None and self.left <= 0:
            self.unscored += 1
            return UNSCORED
        start = time.monotonic()
        right = reference.check(answer)
        if self.left is not None:
            self.left -= time.monotonic() - start
        return CORRECT if right else WRONG


def verdict(
    text: str, failed: bool, reference: Reference, clock: CodeClock | None = None
) -> tuple[str | None, str]:
    """A proposal's extracted answer and verdict."""
    if failed:
        return None, FAILED
    answer = reference.extract(text)
    if answer is None:
        return None, NO_ANSWER
    return answer, (clock or CodeClock(None)).check(reference, answer)


def score_truth(
    scored: pd.DataFrame, refs: References, code_budget_s: float | None = None
) -> pd.DataFrame:
    """``scored`` plus :data:`TRUTH_COLUMNS` (NaN ``correct`` where a task has no
    reference, or a code proposal was not run within ``code_budget_s`` seconds of
    sandboxed checks in all)."""
    out = scored.copy()
    keys = zip(out["role"].tolist(), out["task_id"].tolist(), strict=True)
    rows = zip(keys, out["proposal"].tolist(), out["error"].notna().tolist(), strict=True)
    clock = CodeClock(code_budget_s)
    extracted, verdicts = [], []
    for key, text, failed in rows:
        ref = refs.get(key)
        answer, v = verdict(text or "", failed, ref, clock) if ref is not None else (None, None)
        extracted.append(answer)
        verdicts.append(v)
    if clock.unscored:
        log.warning(
            "%d code proposal(s) not run: the scoring's %g s of sandboxed checks were spent "
            "(code_budget_s); their verdict is %r, not wrong",
            clock.unscored,
            code_budget_s,
            UNSCORED,
        )
    out["answer_extracted"] = extracted
    out["verdict"] = verdicts
    known = [v not in (None, UNSCORED) for v in verdicts]
    out["correct"] = [
        float(v == CORRECT) if k else np.nan for v, k in zip(verdicts, known, strict=True)
    ]
    out["no_answer"] = [
        float(v == NO_ANSWER) if k else np.nan for v, k in zip(verdicts, known, strict=True)
    ]
    return out


def chair_verdicts(
    chair: pd.DataFrame, refs: References
) -> dict[tuple[str, str, int], tuple[str | None, str]]:
    """The answer stated in each chair answer (``chair.parquet``) and its verdict,
    by (role, task_id, repeat)."""
    return {
        (r.role, r.task_id, r.repeat): verdict(r.answer or "", False, ref)
        for r in chair.itertuples()
        if (ref := refs.get((r.role, r.task_id))) is not None
    }


def task_truth(
    scored: pd.DataFrame,
    chaired: Mapping[tuple[str, str, int], tuple[str | None, str]] | None = None,
) -> pd.DataFrame:
    """Per (role, task_id, repeat) of a task with a reference: ``majority_answer``,
    ``majority_accuracy`` and ``pass_at_n`` over its proposals (``scored`` holds
    :data:`TRUTH_COLUMNS`; a failed or answerless proposal does not vote; a task with
    a proposal left :data:`UNSCORED` has no row), and
    ``answer_accuracy``: the council's answer is right, the chair's where ``chaired``
    (:func:`chair_verdicts`) holds one (also as ``chair_answer`` and ``chair_verdict``),
    else the vote's."""
    rows = []
    known = scored[scored["verdict"].notna()]
    for (role, task_id, repeat), group in known.groupby(GROUP, sort=False):
        if (group["verdict"] == UNSCORED).any():
            continue  # a vote with proposals not run cannot be judged
        group = group.sort_values("agent_index")
        # pandas keeps a missing answer as NaN in a string column
        answers = [a if isinstance(a, str) else None for a in group["answer_extracted"]]
        vote = majority(answers)
        # The vote is one of the answers: its verdict is known (no second sandbox run).
        right = float(vote is not None and group["correct"].iloc[answers.index(vote)] == 1.0)
        from_chair = (chaired or {}).get((role, task_id, repeat))
        row = {
            "role": role,
            "task_id": task_id,
            "repeat": repeat,
            "majority_answer": vote,
            "majority_accuracy": right,
            "pass_at_n": float(group["correct"].max()),
            "answer_accuracy": right if from_chair is None else float(from_chair[1] == CORRECT),
        }
        if chaired is not None:
            row["chair_answer"], row["chair_verdict"] = from_chair or (None, None)
        rows.append(row)
    chair_columns = ["chair_answer", "chair_verdict"] if chaired is not None else []
    columns = [*GROUP, *TASK_TRUTH_COLUMNS, *chair_columns]
    return pd.DataFrame(rows, columns=columns)


TASK_TRUTH_COLUMNS = ["majority_answer", "majority_accuracy", "pass_at_n", "answer_accuracy"]


def with_ci(values: pd.Series | np.ndarray) -> dict[str, float | None]:
    """The mean of per-task ``values`` and its 95 % bootstrap interval."""
    x = np.asarray(values, dtype=float)
    ci = bootstrap_ci(x)
    mean = float(np.nanmean(x)) if np.isfinite(x).any() else None
    return {"mean": mean, "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None}


def interval(f: dict[str, Any], signed: bool = False) -> str:
    """``0.412 [0.350, 0.470]`` from a :func:`with_ci` record (``-`` without a mean)."""
    if not f or f.get("mean") is None:
        return "-"
    fmt = "+.3f" if signed else ".3f"
    text = format(f["mean"], fmt)
    if f.get("ci_low") is not None:
        text += f" [{format(f['ci_low'], fmt)}, {format(f['ci_high'], fmt)}]"
    return text


def agent_accuracy(scored: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """Per agent: accuracy over tasks with its interval (tasks are the resampled unit)."""
    known = scored[scored["verdict"].notna()]
    out = {}
    for agent, part in known.groupby("agent_id", sort=True):
        per_task = part.groupby(["role", "task_id"], sort=False)["correct"].mean()
        out[str(agent)] = {**with_ci(per_task), "tasks": len(per_task)}
    return out


def auroc(scores: pd.Series | np.ndarray, labels: pd.Series | np.ndarray) -> float | None:
    """How well ``scores`` separate right answers from wrong ones: the probability
    that a right one scores above a wrong one (ties count half; Mann-Whitney U over
    the pairs). 0.5 is chance; None without both kinds or with a missing score."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    keep = np.isfinite(s) & np.isfinite(y)
    s, y = s[keep], y[keep]
    right, wrong = s[y == 1.0], s[y == 0.0]
    if not len(right) or not len(wrong):
        return None
    u = mannwhitneyu(right, wrong, alternative="two-sided").statistic
    return float(u / (len(right) * len(wrong)))


def truth_section(scored: pd.DataFrame, per_task: pd.DataFrame) -> dict[str, Any]:
    """The ``truth`` section of metrics.json: verdict counts, accuracy per agent,
    and whether keyword relevance tracks correctness (AUROC over the proposals)."""
    known = scored[scored["verdict"].notna()]
    counts = known["verdict"].value_counts()
    out: dict[str, Any] = {
        "tasks": int(per_task[["role", "task_id"]].drop_duplicates().shape[0]),
        "proposals": len(known),
        **{v: int(counts.get(v, 0)) for v in (CORRECT, WRONG, NO_ANSWER, FAILED)},
        "agents": agent_accuracy(scored),
    }
    if "keyword_relevance" in known:
        out["keyword_auroc"] = auroc(known["keyword_relevance"], known["correct"])
    return out


def truth_lines(overall: dict[str, Any]) -> list[str]:
    """Console lines: verdicts, accuracy per agent, whether keywords track truth."""
    t = overall.get("truth")
    if not t:
        return []
    auc = t.get("keyword_auroc")
    lines = [
        f"ground truth: {t['tasks']} tasks, {t['proposals']} proposals: {t[CORRECT]} correct, "
        f"{t[WRONG]} wrong, {t[NO_ANSWER]} with no final answer, {t[FAILED]} failed; "
        f"keyword relevance vs correct AUROC {'-' if auc is None else f'{auc:.2f}'} (0.5 chance)",
        "  accuracy per agent: "
        + ", ".join(f"{agent} {interval(f)}" for agent, f in t["agents"].items()),
    ]
    return lines
