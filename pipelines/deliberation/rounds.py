"""A deliberation's tables and figures: per round, the ranking, the chair, the judge.

Tables (next to ``results.parquet``, which holds every round's proposals):

- ``rankings.parquet``: one row per (task, repeat, ranker, order) with the
  agents it ranked, best first (``ranking``), or the error of a malformed one;
- ``chair.parquet``: one row per (task, repeat): the council's final answer,
  the chair's or, when the chair's request failed, the top-ranked proposal
  (``fallback``), with the Borda order it came from;
- ``judge.parquet``: one row per judged text (each proposal and the chair's
  answer) with its 1-10 ``score``.

Figures (``metrics.json``): ``rounds`` (per round: keyword relevance,
diversity, judge score), ``round_gain`` (last round minus the first),
``ranking`` (Borda counts, Kendall's W, position bias), ``chair`` (fallbacks,
chair against the best single agent) and ``judge``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluators import coverage, kendall_w, keyword_hits, rank_agreement, standing
from pipelines.deliberation.accuracy import deliberation_truth
from pipelines.deliberation.plan import failed
from pipelines.runtime.durable import write_parquet
from pipelines.scoring.metrics import Embed, task_figures, truth_means
from pipelines.spec.metrics import ROUND_METRICS
from pipelines.spec.protocol import CHAIR, CHAIR_ID, JUDGE, ORDERS, PROPOSE, RANK, chair_order
from pipelines.spec.run_folder import TABLES, final

GROUP = ["role", "task_id", "repeat"]


def rankings_table(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.assign(
        ranker=rows["agent_id"],
        order=rows["target"],
        shown=[json.loads(s) for s in rows["shown"]],
        ranking=[json.loads(p) if isinstance(p, str) else None for p in rows["parsed"]],
        answer=rows["proposal"],
    )
    columns = ["run_id", *GROUP, "round", "ranker", "order", "shown", "ranking", "answer"]
    return out[[*columns, "error", "completion_tokens", "cached"]].reset_index(drop=True)


def judge_table(rows: pd.DataFrame) -> pd.DataFrame:
    scores = pd.to_numeric(rows["parsed"], errors="coerce")
    out = rows.assign(score=scores, answer=rows["proposal"])
    columns = ["run_id", *GROUP, "round", "target", "score", "answer", "error", "cached"]
    return out[columns].reset_index(drop=True)


def chair_table(
    proposals: pd.DataFrame, chair: pd.DataFrame, rankings: pd.DataFrame
) -> pd.DataFrame:
    """The council's final answer per (task, repeat): the chair's, else the top-ranked
    proposal (``fallback``) with the chair's error kept."""
    every = final(proposals)
    finals = every[~every["error"].map(failed)]
    chairs = {(r["role"], r["task_id"], r["repeat"]): r for r in chair.to_dict("records")}
    ranked: dict[tuple, list[list[str]]] = {}
    for key, ranking in zip(rankings[GROUP].values.tolist(), rankings["ranking"], strict=True):
        if ranking is not None:
            ranked.setdefault(tuple(key), []).append(list(ranking))
    rows = []
    for key, group in every.groupby(GROUP, sort=True):
        ok = finals[(finals[GROUP] == pd.Series(key, index=GROUP)).all(axis=1)]
        names = ok["agent_id"].tolist()
        points, order = chair_order(ranked.get(tuple(key), []), names)
        row = chairs.get(tuple(key))
        record = {
            "run_id": group["run_id"].iloc[0],
            **dict(zip(GROUP, key, strict=True)),
            "order": order,
            "borda": [points[a] for a in order],
        }
        if row is not None and not failed(row["error"]):
            record |= {"answer": row["proposal"], "source": CHAIR_ID, "fallback": False}
            record |= {"error": None, "completion_tokens": int(row["completion_tokens"])}
        else:
            error = row["error"] if row is not None else "no chair request (no proposal to chair)"
            texts = dict(zip(ok["agent_id"], ok["proposal"], strict=True))
            best = order[0] if order else None
            record |= {"answer": texts.get(best, ""), "source": best, "fallback": True}
            record |= {"error": error, "completion_tokens": 0}
        rows.append(record)
    return pd.DataFrame(rows)


def write_tables(
    steps: Mapping[str, pd.DataFrame], out_dir: Path, chair: bool
) -> dict[str, pd.DataFrame]:
    """Write the ranking, chair and judge tables of a deliberating run; returns them."""
    tables = {
        "rankings": rankings_table(steps[RANK]),
        "judge": judge_table(steps[JUDGE]),
    }
    if chair:
        tables["chair"] = chair_table(steps[PROPOSE], steps[CHAIR], tables["rankings"])
    for name, table in tables.items():
        write_parquet(out_dir / TABLES[name], table)
    return tables


def _mean(values: Any) -> float | None:
    values = [float(v) for v in values if v is not None and not pd.isna(v)]
    return float(np.mean(values)) if values else None


def round_figures(
    scored: pd.DataFrame,
    last_per_task: pd.DataFrame,
    embed: Embed | None,
    judge: pd.DataFrame,
) -> list[dict[str, Any]]:
    """Per round: keyword relevance, diversity, mean judge score and (with reference
    answers) accuracy of its proposals.

    ``scored``: every round's proposals, scored (``score_rows``); ``last_per_task``:
    the last round's per-task figures, already made for the run's own figures.
    """
    out = []
    last = scored["round"].max()
    for r, part in scored.groupby("round", sort=True):
        diversity = last_per_task if r == last else task_figures(part, embed)
        figures: dict[str, Any] = {
            "round": int(r),
            "proposals": len(part),
            "errors": int(part["error"].map(failed).sum()),
            "keyword_relevance": float(part["keyword_relevance"].mean()),
        }
        for name in ("distinct_2", "self_bleu", "embedding_diversity"):
            figures[name] = _mean(diversity[name]) if name in diversity else None
        scores = judge[(judge["round"] == r) & (judge["target"] != CHAIR_ID)]["score"]
        figures["judge_score"] = _mean(scores)
        truth = truth_means(part, diversity)
        figures.update({k: v for k, v in truth.items() if k in ROUND_METRICS})
        out.append(figures)
    return out


def ranking_figures(rankings: pd.DataFrame) -> dict[str, Any]:
    """Borda counts per agent, agreement (Kendall's W) and position bias."""
    valid = rankings[rankings["ranking"].notna()]
    borda_total: dict[str, int] = {}
    wins: dict[str, int] = {}
    w_values, agreement, first = [], [], []
    for _, group in valid.groupby(GROUP, sort=True):
        lists = [list(r) for r in group["ranking"]]
        points, order = standing(lists, sorted(lists[0]))
        for agent, p in points.items():
            borda_total[agent] = borda_total.get(agent, 0) + p
        winner = order[0]
        wins[winner] = wins.get(winner, 0) + 1
        w_values.append(kendall_w(lists))
        by_ranker = {(r.ranker, r.order): list(r.ranking) for r in group.itertuples()}
        for ranker in group["ranker"].unique():
            pair = [by_ranker.get((ranker, o)) for o in ORDERS]
            if pair[0] is not None and pair[1] is not None:
                agreement.append(rank_agreement(pair[0], pair[1]))
    for r in valid.itertuples():
        first.append(r.ranking[0] == r.shown[0])
    sizes = [len(s) for s in valid["shown"]]
    return {
        "rankings": len(rankings),
        "valid": len(valid),
        "errors": len(rankings) - len(valid),
        "borda": dict(sorted(borda_total.items())),
        "wins": dict(sorted(wins.items())),
        "kendall_w": _mean(w_values),
        "position_agreement": _mean(agreement),
        "first_shown_ranked_first": _mean(first),
        "first_shown_by_chance": _mean([1 / n for n in sizes]),
    }


def chair_figures(
    chair: pd.DataFrame,
    scored: pd.DataFrame,
    judge: pd.DataFrame,
    keywords: Mapping[tuple[str, str], list[str]],
) -> dict[str, Any]:
    """Fallbacks, and the chair's answer against the best single agent (judge score
    and keyword relevance, per task and repeat, averaged); ``scored``: every round's
    proposals, scored."""
    last = int(scored["round"].max())
    finals = final(scored)
    scores = {
        (r.role, r.task_id, r.repeat, r.target): r.score
        for r in judge[judge["round"] == last].itertuples()
    }
    chair_kw, best_kw, chair_judge, best_judge = [], [], [], []
    for r in chair.itertuples():
        group = finals[
            (finals["role"] == r.role)
            & (finals["task_id"] == r.task_id)
            & (finals["repeat"] == r.repeat)
        ]
        chair_kw.append(coverage(keyword_hits(r.answer, keywords[(r.role, r.task_id)])))
        best_kw.append(float(group["keyword_relevance"].max()) if len(group) else 0.0)
        key = (r.role, r.task_id, r.repeat)
        agent_scores = [scores.get((*key, a)) for a in group["agent_id"]]
        agent_scores = [s for s in agent_scores if s is not None and not pd.isna(s)]
        own = scores.get((*key, CHAIR_ID)) if not r.fallback else scores.get((*key, r.source))
        if own is not None and not pd.isna(own) and agent_scores:
            chair_judge.append(float(own))
            best_judge.append(float(max(agent_scores)))
    out: dict[str, Any] = {
        "answers": len(chair),
        "fallbacks": int(chair["fallback"].sum()),
        "fallback_errors": sorted({e for e in chair["error"] if failed(e)}),
        "keyword_relevance": _mean(chair_kw),
        "best_agent_keyword_relevance": _mean(best_kw),
        "judge_score": _mean(chair_judge),
        "best_agent_judge_score": _mean(best_judge),
    }
    if chair_judge:
        out["judge_minus_best_agent"] = _mean(np.subtract(chair_judge, best_judge))
    return out


def deliberation_figures(
    scored: pd.DataFrame,
    last_per_task: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    keywords: Mapping[tuple[str, str], list[str]],
    embed: Embed | None,
    judge_name: str,
) -> dict[str, Any]:
    """The ``rounds``, ``round_gain``, ``ranking``, ``chair`` and ``judge`` sections,
    and ``truth`` (:mod:`pipelines.deliberation.accuracy`) with reference answers.

    ``scored``: every round's proposals, scored once (``score_rows``);
    ``last_per_task``: the last round's per-task figures.
    """
    judge = tables["judge"]
    rounds = round_figures(scored, last_per_task, embed, judge)
    out: dict[str, Any] = {"rounds": rounds}
    if len(rounds) > 1:
        out["round_gain"] = {
            name: rounds[-1][name] - rounds[0][name]
            for name in ROUND_METRICS
            if rounds[-1].get(name) is not None and rounds[0].get(name) is not None
        }
    if len(tables["rankings"]):
        out["ranking"] = ranking_figures(tables["rankings"])
    if "chair" in tables:
        out["chair"] = chair_figures(tables["chair"], scored, judge, keywords)
    if judge_name != "none":
        out["judge"] = {
            "name": judge_name,
            "scores": int(judge["score"].notna().sum()),
            "errors": int(judge["error"].map(failed).sum()),
            "mean_score": _mean(judge["score"]),
        }
    if rounds[-1].get("accuracy") is not None:
        out["truth"] = deliberation_truth(scored, last_per_task, dict(tables))
    return out


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def deliberation_lines(m: dict) -> list[str]:
    """Per-round figures, the ranking, the chair and the judge (a deliberating run)."""
    if "rounds" not in m:
        return []
    table = pd.DataFrame(m["rounds"])
    lines = [
        "",
        f"deliberation: {m.get('rows_generated', 0)} requests generated in all steps "
        f"({m.get('generated_tokens', 0)} tokens), {m.get('engine_loads', 0)} engine load(s)",
        "per round (the figures above are the last round's):",
    ]
    lines.append(table.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-"))
    if gain := m.get("round_gain"):
        lines.append(
            "gain, last round - first: " + ", ".join(f"{k} {v:+.3f}" for k, v in gain.items())
        )
    return lines + deliberation_notes(m)


def deliberation_notes(m: dict) -> list[str]:
    """One line each for the peer ranking, the chair and the judge."""
    lines: list[str] = []
    if r := m.get("ranking"):
        lines.append(
            f"peer ranking: {r['valid']}/{r['rankings']} rankings parsed, Kendall's W "
            f"{_num(r['kendall_w'])}, forward/reversed agreement (tau) "
            f"{_num(r['position_agreement'])}, first shown ranked first "
            f"{_num(r['first_shown_ranked_first'])} (chance {_num(r['first_shown_by_chance'])})"
        )
        lines.append("  Borda: " + ", ".join(f"{a} {p}" for a, p in r["borda"].items()))
    if c := m.get("chair"):
        lines.append(
            f"chair: {c['answers']} answers, {c['fallbacks']} fallbacks to the top-ranked "
            f"proposal; judge {_num(c['judge_score'], '.2f')} vs best agent "
            f"{_num(c['best_agent_judge_score'], '.2f')}; keywords "
            f"{_num(c['keyword_relevance'])} vs best agent "
            f"{_num(c['best_agent_keyword_relevance'])}"
        )
        for error in c["fallback_errors"][:3]:
            lines.append(f"  chair failed: {error[:160]}")
    if j := m.get("judge"):
        lines.append(
            f"judge ({j['name']}): {j['scores']} scores, {j['errors']} errors, "
            f"mean {_num(j['mean_score'], '.2f')}"
        )
    return lines
