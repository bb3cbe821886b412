"""Deliberations: one per (run, task), from its agents' messages to its outcome.

A pure state machine, fed agent payloads with the time each was published,
and the clock. A deliberation is IN_PROGRESS from its first agent message; it
ends COMPLETED when every agent of the council answered (each of its
``repeats`` samples), FAILED when every
agent reported and one failed, TIMEOUT when not every agent reported within
``timeout_s`` of the first message. Each end yields the deliberation message
(with the task's keyword and lexical diversity scores) and a status record;
the collector publishes them. Messages after the end are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evaluators import (
    borda,
    coverage,
    full_coverage,
    keyword_hits,
    lexical_diversity,
    self_bleu,
    top,
)
from pipelines.runtime.ids import agent_id, deliberation_id
from pipelines.sinks.messages import (
    DELIBERATION_COMPLETED,
    DELIBERATION_FAILED,
    SCHEMA_VERSION,
    TASK_SCORES,
    Message,
    now_iso,
)
from pipelines.spec.protocol import PROPOSE, Answer, Protocol, chair_order

PENDING, IN_PROGRESS = "PENDING", "IN_PROGRESS"
COMPLETED, FAILED, TIMEOUT = "COMPLETED", "FAILED", "TIMEOUT"
FINAL = (COMPLETED, FAILED, TIMEOUT)


def status_key(run_id: str, role: str, task_id: str) -> str:
    """The key of a deliberation in the status bucket: ``<run_id>.<role>.<task_id>``."""
    return deliberation_id(run_id, role, task_id)


def status_record(
    run_id: str,
    task_id: str,
    role: str,
    status: str,
    answered: list[str] | None = None,
    missing: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "task_id": task_id,
        "role": role,
        "status": status,
        "answered": answered or [],
        "missing": missing or [],
        "updated_at": now_iso(),
    }


def task_scores(payloads: list[dict[str, Any]], expected: int) -> dict[str, Any]:
    """Keyword scores over the ``expected`` answers (a missing or failed one is a
    miss) and lexical diversity over the answers (every repeat together);
    ``embedding_diversity`` is left to the run."""
    ok = [p["proposal"] for p in payloads if p["status"] == COMPLETED]
    keywords = payloads[0]["keywords"] if payloads else []
    hits = [keyword_hits(p, keywords) for p in ok]
    hits += [[False] * len(keywords)] * (expected - len(hits))
    scores: dict[str, Any] = dict.fromkeys(TASK_SCORES)
    scores["keyword_relevance"] = sum(coverage(h) for h in hits) / len(hits) if hits else 0.0
    scores["keyword_full_coverage"] = full_coverage(hits)
    if ok:
        scores.update(lexical_diversity(ok))
        scores["self_bleu"] = self_bleu(ok)
    return scores


def answer_key(
    agent: str, repeat: int, step: str = "propose", round_: int = 1, target: str = ""
) -> str:
    """An answer's name in a deliberation: the agent, with ``@r`` for round r > 1,
    ``rank:<agent>:<order>``, ``chair`` or ``judge:<target>@<round>`` for the other
    steps, and ``#k`` for repeat k > 0."""
    if step == "propose":
        name = agent + (f"@{round_}" if round_ > 1 else "")
    elif step == "rank":
        name = f"rank:{agent}:{target}"
    elif step == "chair":
        name = "chair"
    else:
        name = f"judge:{target}@{round_}"
    return f"{name}#{repeat}" if repeat else name


def payload_key(payload: dict[str, Any]) -> str:
    return answer_key(
        payload["agent_id"],
        int(payload.get("repeat", 0)),
        payload.get("step", "propose"),
        int(payload.get("round", 1)),
        payload.get("target", ""),
    )


@dataclass
class Deliberation:
    run_id: str
    task_id: str
    role: str
    model: str
    council_size: int
    first_at: float
    repeats: int = 1
    plan: dict[str, Any] = field(default_factory=dict)
    """rounds, rank, chair, judge; empty: one round of proposals."""
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_at: float = 0.0

    @property
    def rounds(self) -> int:
        return int(self.plan.get("rounds", 1))

    @property
    def agents(self) -> list[str]:
        return [agent_id(self.role, i) for i in range(1, self.council_size + 1)]

    @property
    def protocol(self) -> Protocol:
        known = {k: v for k, v in self.plan.items() if k in Protocol.__dataclass_fields__}
        return Protocol(**known)

    @property
    def expected(self) -> list[str]:
        """Every answer the deliberation waits for (``Protocol.expected``, per repeat)."""
        keys = []
        for k in range(self.repeats):
            landed = {
                Answer(
                    p["agent_id"],
                    p.get("step", PROPOSE),
                    int(p.get("round", 1)),
                    p.get("target", ""),
                ): p["status"] == COMPLETED
                for p in self.answers.values()
                if int(p.get("repeat", 0)) == k
            }
            keys += [
                answer_key(a.agent, k, *a[1:]) for a in self.protocol.expected(self.agents, landed)
            ]
        return keys


def outcome(d: Deliberation) -> dict[str, Any]:
    """A deliberating council's result: its last round, the peer ranking (Borda
    counts over the rankings that parsed), the chair's answer (or the top-ranked
    proposal standing in for a failed chair) and the judge's scores."""
    by_step: dict[str, list[dict[str, Any]]] = {}
    for p in d.answers.values():
        by_step.setdefault(p.get("step", "propose"), []).append(p)

    finals = [p for p in by_step.get("propose", []) if int(p.get("round", 1)) == d.rounds]
    proposals = {payload_key(p): p["proposal"] for p in finals if p["status"] == COMPLETED}
    rankings = [p for p in by_step.get("rank", []) if p["status"] == COMPLETED and p.get("parsed")]
    names = [p["agent_id"] for p in finals if p["status"] == COMPLETED]
    points = borda([p["parsed"] for p in rankings], names)
    order = top(points, names)
    chairs = {int(p.get("repeat", 0)): p for p in by_step.get("chair", [])}
    chair = []
    for k in range(d.repeats):
        c = chairs.get(k)
        if c is not None and c["status"] == COMPLETED:
            chair.append({"repeat": k, "answer": c["proposal"], "fallback": False, "error": None})
        elif d.plan.get("chair"):
            # The stand-in is the top of this repeat's own rankings (as in chair.parquet).
            mine = [p for p in finals if int(p.get("repeat", 0)) == k and p["status"] == COMPLETED]
            ranked = [p["parsed"] for p in rankings if int(p.get("repeat", 0)) == k]
            _, mine_order = chair_order(ranked, [p["agent_id"] for p in mine])
            best = next((p for a in mine_order for p in mine if p["agent_id"] == a), None)
            chair.append(
                {
                    "repeat": k,
                    "answer": best["proposal"] if best else "",
                    "fallback": True,
                    "source": best["agent_id"] if best else None,
                    "error": c.get("error") if c else "no chair request",
                }
            )
    return {
        "rounds": d.rounds,
        "final_round": proposals,
        "ranking": {
            "borda": points,
            "order": order,
            "rankings": len(by_step.get("rank", [])),
            "valid": len(rankings),
        },
        "chair": chair,
        "judge": {
            f"{p['target']}@{p.get('round', 1)}"
            + (f"#{p['repeat']}" if p.get("repeat") else ""): p["parsed"]
            for p in by_step.get("judge", [])
            if p["status"] == COMPLETED
        },
    }


@dataclass
class Outcome:
    """What ending a deliberation produced."""

    message: Message
    key: str
    record: dict[str, Any]


ENDED_KEPT = 100_000


class Deliberations:
    """Every open deliberation; ``add`` and ``expire`` return the ones that ended."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.open: dict[tuple[str, str, str], Deliberation] = {}
        self.ended: dict[tuple[str, str, str], str] = {}
        """The newest :data:`ENDED_KEPT` ended deliberations (a later answer to one
        is ignored); older ones are forgotten, so a long-lived collector's state
        does not grow with every run it ever saw."""

    def add(
        self, payload: dict[str, Any], at: float
    ) -> tuple[dict[str, Any] | None, Outcome | None]:
        """Take one agent payload published at ``at`` (Unix seconds).

        Returns the IN_PROGRESS record when it opened a deliberation, and the
        outcome when it ended one.
        """
        key = (payload["run_id"], payload["role"], payload["task_id"])
        if key in self.ended:
            return None, None
        started = None
        d = self.open.get(key)
        if d is None:
            d = Deliberation(
                run_id=payload["run_id"],
                task_id=payload["task_id"],
                role=payload["role"],
                model=payload.get("model", ""),
                council_size=int(payload["council_size"]),
                first_at=at,
                repeats=int(payload.get("repeats", 1)),
                plan=dict(payload.get("plan") or {}),
            )
            self.open[key] = d
            started = status_record(d.run_id, d.task_id, d.role, IN_PROGRESS)
        d.answers[payload_key(payload)] = payload
        d.last_at = max(d.last_at, at)
        if d.last_at - d.first_at > self.timeout_s:
            return started, self._end(d, TIMEOUT, d.last_at)
        if set(d.expected) <= set(d.answers):
            failed = any(
                p["status"] != COMPLETED
                for p in d.answers.values()
                if p.get("step", "propose") == "propose"
            )
            return started, self._end(d, FAILED if failed else COMPLETED, d.last_at)
        if started is not None:
            started["answered"] = sorted(d.answers)
        return started, None

    def expire(self, now: float) -> list[Outcome]:
        """End as TIMEOUT every deliberation open for longer than the timeout."""
        late = [d for d in self.open.values() if now - d.first_at > self.timeout_s]
        return [self._end(d, TIMEOUT, now) for d in late]

    def _end(self, d: Deliberation, status: str, at: float) -> Outcome:
        del self.open[(d.run_id, d.role, d.task_id)]
        self.ended[(d.run_id, d.role, d.task_id)] = status
        while len(self.ended) > ENDED_KEPT:
            del self.ended[next(iter(self.ended))]  # the oldest (dicts keep order)
        finals = [
            d.answers[a]
            for a in sorted(d.answers)
            if d.answers[a].get("step", "propose") == "propose"
            and int(d.answers[a].get("round", 1)) == d.rounds
        ]
        answered = [a for a in sorted(d.answers) if d.answers[a]["status"] == COMPLETED]
        agents = d.expected
        missing = [a for a in agents if a not in answered]
        payload = {
            "schema_version": SCHEMA_VERSION,
            "run_id": d.run_id,
            "task_id": d.task_id,
            "role": d.role,
            "status": status,
            "model": d.model,
            "agents": agents,
            "answered": answered,
            "missing": missing,
            "elapsed_s": round(at - d.first_at, 3),
            "timeout_s": self.timeout_s,
            "scores": task_scores(finals, d.council_size * d.repeats),
            "created_at": now_iso(),
        }
        if d.plan:
            payload |= outcome(d)
        subject = DELIBERATION_COMPLETED if status == COMPLETED else DELIBERATION_FAILED
        key = status_key(d.run_id, d.role, d.task_id)
        record = status_record(d.run_id, d.task_id, d.role, status, answered, missing)
        return Outcome(Message(subject, key, payload), key, record)
