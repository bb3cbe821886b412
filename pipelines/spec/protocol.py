"""The deliberation protocol: the answers of one council deliberating one task
(one repeat: a *group*) and when each is due.

1. every agent proposes (round 1);
2. round r >= 2: every agent revises, once every round r-1 proposal is in;
3. ``rank``: once the last round is in and at least two proposals succeeded,
   every agent ranks them, in each order of :data:`ORDERS`;
4. ``chair``: once the rankings are in (or none were due) and any proposal
   succeeded, one answer writes the council's, from the proposals in
   :func:`chair_order`; if it fails, the first of that order stands in;
5. ``judge``: a score for every proposal that succeeded, and for the chair's
   answer when it succeeded.

The plan (``pipelines.deliberation.plan``) issues what :meth:`Protocol.due`
returns, the collector (``pipelines.sinks.deliberation``) waits for what
:meth:`Protocol.expected` returns, and the run's tables and the collector's
message name the same stand-in for a failed chair: this module is the one
statement of those rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from evaluators import standing

PROPOSE, RANK, CHAIR, JUDGE = "propose", "rank", "chair", "judge"
STEPS = (PROPOSE, RANK, CHAIR, JUDGE)
ORDERS = ("forward", "reversed")
"""The orders each agent ranks a set in: as shown, then reversed (position bias)."""
CHAIR_ID, JUDGE_ID = "chair", "judge"
"""The ``agent_id`` of the chair's and the judge's answers (not agents of the council)."""


class Answer(NamedTuple):
    """One answer of a group: who gives it, at which step and round, about what
    (a ranking's order, a score's author; else empty)."""

    agent: str
    step: str
    round: int
    target: str = ""


Landed = Mapping[Answer, bool]
"""The answers of a group that landed, each with whether it succeeded."""


@dataclass(frozen=True)
class Protocol:
    """What a deliberation's settings (``deliberation.*``, ``judge``) ask of a group."""

    rounds: int = 1
    rank: bool = False
    chair: bool = False
    judge: bool = False

    def due(self, agents: Sequence[str], landed: Landed) -> list[Answer]:
        """Every answer whose inputs are in, given what ``landed``: the answers
        the plan issues (those it issued already included), in issue order."""
        return self._answers(agents, landed, ahead=False)

    def expected(self, agents: Sequence[str], landed: Landed) -> list[Answer]:
        """Every answer the group waits for, given what ``landed``: every round's
        proposals from the start, then the rest as their inputs arrive (the
        chair as soon as the last round is in)."""
        return self._answers(agents, landed, ahead=True)

    def complete(self, agents: Sequence[str], landed: Landed) -> bool:
        """Whether every answer the group waits for has landed."""
        return all(a in landed for a in self.expected(agents, landed))

    def requests(self, agents: int) -> int:
        """A group's answers when every one succeeds."""
        proposals = self.rounds * agents
        ranks = agents * len(ORDERS) if self.rank and agents >= 2 else 0
        chair = int(self.chair)
        return proposals + ranks + chair + (proposals + chair if self.judge else 0)

    def _answers(self, agents: Sequence[str], landed: Landed, ahead: bool) -> list[Answer]:
        last = self.rounds
        out = [Answer(a, PROPOSE, 1) for a in agents]
        for r in range(2, last + 1):
            if not ahead and not all(Answer(a, PROPOSE, r - 1) in landed for a in agents):
                break
            out += [Answer(a, PROPOSE, r) for a in agents]
        if self.judge:
            scored = sorted(a for a, ok in landed.items() if a.step == PROPOSE and ok)
            out += [Answer(JUDGE_ID, JUDGE, a.round, a.agent) for a in scored]
        finals = [Answer(a, PROPOSE, last) for a in agents]
        if not all(f in landed for f in finals):
            return out
        answered = [f.agent for f in finals if landed[f]]
        ranking = self.rank and len(answered) >= 2
        ranks = [Answer(a, RANK, last, o) for a in agents for o in ORDERS] if ranking else []
        out += ranks
        settled = ahead or all(r in landed for r in ranks)
        chair = Answer(CHAIR_ID, CHAIR, last)
        if self.chair and answered and settled:
            out.append(chair)
        if self.judge and landed.get(chair):
            out.append(Answer(JUDGE_ID, JUDGE, last, CHAIR_ID))
        return out


def chair_order(
    rankings: Sequence[Sequence[str]], answered: Sequence[str]
) -> tuple[dict[str, int], list[str]]:
    """The Borda points of the agents that ``answered`` (last round) from one
    group's ``rankings``, and those agents by points (ties in council order):
    the order the chair reads the proposals in, and whose proposal stands in
    for a failed chair (the first)."""
    return standing(rankings, answered)
