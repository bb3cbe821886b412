"""The deliberation plan: which requests become ready as answers land.

A council deliberates per (role, task, repeat), a *group*:

1. round 1: every agent proposes (the council's first requests);
2. round r >= 2, once every round r-1 answer of the group is in: each agent
   reads its own round r-1 proposal and the others', anonymized and shuffled
   by a seeded permutation of its own, and revises;
3. ``deliberation.rank``, once the last round is in: each agent ranks the
   anonymized final proposals, twice (the second time shown in reverse), as
   JSON following a schema;
4. ``deliberation.chair``, once the rankings are in: one request writes the
   council's answer from the final proposals in Borda order;
5. ``judge``: every proposal and the chair's answer is scored 1-10 as soon as
   it lands, by a judge that sees only the task and the text.

The plan is pure: it is fed landed rows (:meth:`Plan.land`) and returns the
requests they made ready, so one task's round 2 is in flight while another's
round 1 still runs, and a resume feeds it the rows its parts hold.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import RunConfig
from pipelines.deliberation.prompts import (
    JUDGE_SCHEMA,
    chair_prompt,
    judge_prompt,
    parse_ranking,
    parse_score,
    ranking_prompt,
    ranking_schema,
    revision_prompt,
)
from pipelines.flow.council import REQUEST_COLUMNS, request_seed, user_message
from pipelines.flow.parts import KEY_COLUMNS
from pipelines.flow.tasks import Task
from pipelines.runtime.ids import agent_id
from pipelines.spec.protocol import (
    CHAIR,
    CHAIR_ID,
    JUDGE,
    JUDGE_ID,
    ORDERS,
    PROPOSE,
    RANK,
    STEPS,
    Answer,
    chair_order,
)

Key = tuple[str, str, str, int, str, int, str]
"""role, task_id, agent_id, repeat, step, round, target (``parts.KEY_COLUMNS``)."""
Group = tuple[str, str, int]
"""role, task_id, repeat: one council deliberating one task."""


def failed(error: Any) -> bool:
    """Whether a row's ``error`` value marks it an error row."""
    return isinstance(error, str) and bool(error)


def ok(row: dict[str, Any] | None) -> bool:
    """Whether a landed row has an answer (not an error)."""
    return row is not None and not failed(row.get("error"))


def row_key(row: dict[str, Any]) -> Key:
    return tuple(row[c] for c in KEY_COLUMNS)  # type: ignore[return-value]


def check(rows: pd.DataFrame) -> pd.DataFrame:
    """Parse the structured answers of landed rows: ``parsed`` holds a ranking's agent
    ids (JSON, best first) or a judge's score; an answer that does not parse turns
    its row into an error row."""
    rows = rows.copy()
    parsed: list[str | None] = []
    errors = rows["error"].tolist()
    for i, r in enumerate(rows[["step", "shown", "proposal"]].itertuples(index=False)):
        value = None
        if r.step in (RANK, JUDGE) and not failed(errors[i]):
            try:
                if r.step == RANK:
                    shown = json.loads(r.shown)
                    value = json.dumps([shown[p] for p in parse_ranking(r.proposal, len(shown))])
                else:
                    value = str(parse_score(r.proposal))
            except ValueError as e:
                errors[i] = str(e)
        parsed.append(value)
    rows["error"] = errors
    rows["parsed"] = parsed
    return rows


class Plan:
    """The requests of a deliberating run, issued as their inputs land."""

    def __init__(
        self, cfg: RunConfig, tasks: list[Task], first: pd.DataFrame, held: pd.DataFrame
    ) -> None:
        """``first``: the round-1 requests (``council.expand``); ``held``: the rows
        earlier sessions landed (``parts.read_parts``)."""
        self.cfg, self.d = cfg, cfg.deliberation
        self.held = held
        self.protocol = cfg.protocol
        self.tasks = {(t.role, t.task_id): t for t in tasks}
        self.first = first
        self.rows = {row_key(r): r for r in first.to_dict("records")}
        self.landed: dict[Group, dict[Key, dict[str, Any]]] = {}
        self.issued: set[Key] = set()
        self._next_row = len(first) * self.d.rounds

    def total(self) -> int:
        """Requests of the whole run when every answer succeeds."""
        groups = len(self.first) // self.cfg.agents
        return groups * self.protocol.requests(self.cfg.agents)

    def start(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(round-1 requests still to answer, further requests the rows earlier
        sessions landed make ready)."""
        held = self.held
        held_keys = {row_key(r) for r in held.to_dict("records")} if len(held) else set()
        first = self.first[[row_key(r) not in held_keys for r in self.first.to_dict("records")]]
        self.issued |= held_keys | {row_key(r) for r in first.to_dict("records")}
        return first, self.land(check(held) if len(held) else held)

    def check(self, rows: pd.DataFrame) -> pd.DataFrame:
        return check(rows)

    def land(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Take landed (checked) rows; return the requests they made ready."""
        touched: list[Group] = []
        for r in rows.to_dict("records"):
            group = (r["role"], r["task_id"], int(r["repeat"]))
            self.landed.setdefault(group, {})[row_key(r)] = r
            if group not in touched:
                touched.append(group)
        new = [request for g in touched for request in self._advance(g)]
        return pd.DataFrame(new, columns=REQUEST_COLUMNS)

    # -- one group ----------------------------------------------------------

    def _advance(self, g: Group) -> list[dict[str, Any]]:
        """The requests of ``g`` the protocol makes due and the plan has not issued."""
        role, task_id, repeat = g
        got = self.landed[g]
        agents = [agent_id(role, i) for i in range(1, self.cfg.agents + 1)]
        landed = {Answer(k[2], k[4], k[5], k[6]): ok(row) for k, row in got.items()}
        task = user_message(self.tasks[(role, task_id)])
        last = self.d.rounds

        def answer(agent: str, step: str, r: int) -> dict[str, Any] | None:
            return got.get((role, task_id, agent, repeat, step, r, ""))

        def finals() -> list[tuple[str, dict[str, Any]]]:
            return [(a, p) for a in agents if ok(p := answer(a, PROPOSE, last))]  # type: ignore[misc]

        new: list[dict[str, Any]] = []
        for due in self.protocol.due(agents, landed):
            agent, step, r, target = due
            if not self._due(g, agent, step, r, target):
                continue
            if step == PROPOSE:  # a revision (round 1 is issued from the start)
                own = answer(agent, PROPOSE, r - 1)
                others = [
                    (b, p) for b in agents if b != agent and ok(p := answer(b, PROPOSE, r - 1))
                ]
                shown = [
                    others[i] for i in self._permutation(g, agent, f"{PROPOSE}:{r}", len(others))
                ]
                prompt = revision_prompt(
                    task,
                    own["proposal"] if ok(own) else None,  # type: ignore[index]
                    [p["proposal"] for _, p in shown],  # type: ignore[index]
                    self.d.revise_prompt,
                )
                new += self._issue(g, agent, PROPOSE, r, "", prompt, [b for b, _ in shown])
            elif step == JUDGE:
                text = answer(target, CHAIR if target == CHAIR_ID else PROPOSE, r)
                prompt = judge_prompt(task, text["proposal"], self.cfg.judge.rubric)  # type: ignore[index]
                new += self._issue(
                    g, JUDGE_ID, JUDGE, r, target, prompt, [], json.dumps(JUDGE_SCHEMA)
                )
            elif step == RANK:
                answered = finals()
                forward = [answered[i] for i in self._permutation(g, agent, RANK, len(answered))]
                shown = forward if target == ORDERS[0] else forward[::-1]
                prompt = ranking_prompt(task, [p["proposal"] for _, p in shown], self.d.rank_prompt)
                schema = json.dumps(ranking_schema(len(shown)))
                new += self._issue(g, agent, RANK, r, target, prompt, [b for b, _ in shown], schema)
            else:  # the chair
                answered = finals()
                rankings = [
                    json.loads(row["parsed"])
                    for key, row in got.items()
                    if key[4] == RANK and ok(row) and row.get("parsed")
                ]
                points, order = chair_order(rankings, [a for a, _ in answered])
                texts = {a: p["proposal"] for a, p in answered}
                prompt = chair_prompt(
                    task,
                    [texts[a] for a in order],
                    [points[a] for a in order] if rankings else None,
                    self.d.chair_prompt,
                )
                new += self._issue(g, CHAIR_ID, CHAIR, r, "", prompt, order)
        return new

    def _due(self, g: Group, agent: str, step: str, r: int, target: str) -> bool:
        """Whether that request is still to issue (checked before rendering its prompt:
        every landing revisits its group)."""
        return (g[0], g[1], agent, g[2], step, r, target) not in self.issued

    def _issue(
        self,
        g: Group,
        agent: str,
        step: str,
        r: int,
        target: str,
        prompt: str,
        shown: list[str],
        schema: str = "",
    ) -> list[dict[str, Any]]:
        """The request for one key, unless it was issued already."""
        role, task_id, repeat = g
        key: Key = (role, task_id, agent, repeat, step, r, target)
        if key in self.issued:
            return []
        self.issued.add(key)
        first = self.rows.get((role, task_id, agent, repeat, PROPOSE, 1, ""))
        if first is None:  # chair or judge: not an agent of the council
            first = self.rows[(role, task_id, agent_id(role, 1), repeat, PROPOSE, 1, "")]
            index, temperature = 0, self.cfg.temperature
            system = "" if step == JUDGE else self.cfg.system_prompts[role]
        else:
            index, temperature, system = first["agent_index"], first["temperature"], None
        if step == PROPOSE:
            row = int(first["row"]) + len(self.first) * (r - 1)
        else:
            row, self._next_row = self._next_row, self._next_row + 1
        budget = {
            PROPOSE: first["max_tokens"],
            RANK: self.d.rank_max_tokens,
            CHAIR: self.d.chair_max_tokens or first["max_tokens"],
            JUDGE: self.cfg.judge.max_tokens,
        }[step]
        return [
            {
                **first,
                "row": row,
                "batch_id": -1,
                "agent_id": agent,
                "agent_index": index,
                "round": r,
                "temperature": self.cfg.judge.temperature if step == JUDGE else temperature,
                "seed": request_seed(self.cfg.seed, task_id, agent, repeat, f"{step}:{r}:{target}"),
                "step": step,
                "target": target,
                "shown": json.dumps(shown),
                "json_schema": schema,
                "system_prompt": first["system_prompt"] if system is None else system,
                "prompt": prompt,
                "max_tokens": int(budget),
            }
        ]

    def _permutation(self, g: Group, agent: str, what: str, n: int) -> list[int]:
        """A seeded order of ``n`` proposals for what ``agent`` reads in ``g``."""
        _, task_id, repeat = g
        seed = request_seed(self.cfg.seed, task_id, agent, repeat, f"shuffle:{what}")
        return [int(i) for i in np.random.default_rng(seed).permutation(n)]


def split_steps(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A run's rows by step (every step present, possibly empty)."""
    steps = rows["step"] if "step" in rows else pd.Series(PROPOSE, index=rows.index)
    return {s: rows[steps == s].reset_index(drop=True) for s in STEPS}
