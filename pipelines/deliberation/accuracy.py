"""A deliberation against reference answers: what the rounds changed (flips), the
chair against the majority vote and the best agent, the judge against the truth.

Every figure here needs tasks with a reference answer; ``metrics.json`` holds
them under ``truth`` beside the other deliberation sections. Intervals are 95 %
bootstrap intervals over tasks (``pipelines.scoring.stats``).
"""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd

from pipelines.scoring.truth import CORRECT, NO_ANSWER, auroc, interval, with_ci
from pipelines.spec.protocol import CHAIR_ID

GROUP = ["role", "task_id", "repeat"]


def flips(scored: pd.DataFrame) -> list[dict[str, Any]]:
    """Between each two consecutive rounds: how many (task, repeat, agent) answers went
    right → wrong and wrong → right (an answer that failed or stated none is wrong).

    ``scored``: every round's proposals with the truth columns.
    """
    known = scored[scored["verdict"].notna()]
    table = known.pivot_table(
        index=[*GROUP, "agent_id"], columns="round", values="correct", aggfunc="first"
    )
    rounds = sorted(table.columns)
    out = []
    for before, after in itertools.pairwise(rounds):
        pair = table[[before, after]].dropna()
        out.append(
            {
                "from_round": int(before),
                "to_round": int(after),
                "answers": len(pair),
                "right_to_wrong": int(((pair[before] == 1) & (pair[after] == 0)).sum()),
                "wrong_to_right": int(((pair[before] == 0) & (pair[after] == 1)).sum()),
            }
        )
    return out


def chair_truth(finals: pd.DataFrame, per_task: pd.DataFrame) -> dict[str, Any]:
    """The chair's answer against the last round's majority vote and its best agent.

    Args:
        finals: the last round's proposals with the truth columns.
        per_task: the last round's per-task figures with the chair's verdicts
            (``chair_verdict``, :func:`pipelines.scoring.truth.task_truth`).
    """
    if "chair_verdict" not in per_task or per_task["chair_verdict"].isna().all():
        return {}
    table = per_task[per_task["chair_verdict"].notna()]
    table = table.assign(chair_correct=(table["chair_verdict"] == CORRECT).astype(float))
    per = table.groupby(["role", "task_id"], sort=False)[["chair_correct", "majority_accuracy"]]
    means = per.mean()
    known = finals[finals["verdict"].notna()]
    by_agent = known.groupby("agent_id")["correct"].mean()
    best = str(by_agent.idxmax()) if len(by_agent) else None
    out: dict[str, Any] = {
        "accuracy": with_ci(means["chair_correct"]),
        "majority_accuracy": with_ci(means["majority_accuracy"]),
        "no_answer": int((table["chair_verdict"] == NO_ANSWER).sum()),
    }
    diff = (means["chair_correct"] - means["majority_accuracy"]).to_numpy()
    out["minus_majority"] = with_ci(diff)
    if best is not None:
        agent = known[known["agent_id"] == best].groupby(["role", "task_id"])["correct"].mean()
        both = means.join(agent.rename("best"), how="inner")
        out["best_agent"] = {"agent_id": best, **with_ci(both["best"])}
        out["minus_best_agent"] = with_ci((both["chair_correct"] - both["best"]).to_numpy())
    return out


def judge_agreement(judge: pd.DataFrame, scored: pd.DataFrame) -> float | None:
    """AUROC of the judge's scores of the agents' proposals against their correctness
    (0.5: the judge does not tell right from wrong)."""
    rows = judge[(judge["target"] != CHAIR_ID) & judge["score"].notna()]
    if rows.empty:
        return None
    known = scored[scored["verdict"].notna()][[*GROUP, "round", "agent_id", "correct"]]
    both = rows.merge(
        known.rename(columns={"agent_id": "target"}), on=[*GROUP, "round", "target"], how="inner"
    )
    return auroc(both["score"], both["correct"])


def deliberation_truth(
    scored: pd.DataFrame, per_task_last: pd.DataFrame, tables: dict[str, pd.DataFrame]
) -> dict[str, Any]:
    """The ``truth`` section of a deliberation: flips, the chair, the judge.

    Args:
        scored: every round's proposals with the truth columns.
        per_task_last: the last round's per-task figures (with the chair's verdicts).
        tables: the run's rankings, judge and chair tables.
    """
    out: dict[str, Any] = {"flips": flips(scored)}
    last = scored[scored["round"] == scored["round"].max()]
    if "chair" in tables:
        out["chair"] = chair_truth(last, per_task_last)
    if len(tables.get("judge", ())):
        out["judge_auroc"] = judge_agreement(tables["judge"], scored)
    return out


def truth_lines(m: dict[str, Any]) -> list[str]:
    """Lines of the console and the report: accuracy per round, the flips, the chair,
    the judge's AUROC."""
    t = m.get("truth")
    if not t:
        return []
    lines = []
    per_round = [
        f"round {r['round']} {r['accuracy']:.3f} (majority {r['majority_accuracy']:.3f}, "
        f"pass@N {r['pass_at_n']:.3f})"
        for r in m["rounds"]
        if r.get("accuracy") is not None
    ]
    lines.append("accuracy: " + "; ".join(per_round))
    for f in t["flips"]:
        lines.append(
            f"round {f['from_round']} -> {f['to_round']}: {f['wrong_to_right']} wrong -> "
            f"right, {f['right_to_wrong']} right -> wrong (of {f['answers']} answers)"
        )
    if c := t.get("chair"):
        best = c.get("best_agent", {})
        lines.append(
            f"chair {interval(c['accuracy'])} vs majority {interval(c['majority_accuracy'])}: "
            f"{interval(c['minus_majority'], signed=True)}; vs best agent {best.get('agent_id')} "
            f"{interval(best)}: {interval(c.get('minus_best_agent', {}), signed=True)}"
        )
    if t.get("judge_auroc") is not None:
        lines.append(f"judge score vs correct AUROC {t['judge_auroc']:.2f} (0.5 chance)")
    return lines
