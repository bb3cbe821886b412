"""What the collector accepts of an agent message: its schema and its bounds.

Anyone who can publish on ``agent.response.>`` reaches the collector, and the
collector replays the stream from its start on every restart: one message that
crashed it (a JSON list, a missing key) or made it hold millions of agents
would crash it again each time. :func:`agent_payload` refuses such a message
with a reason; the collector logs the reason and goes on. Fields it does not
read are let through (a later schema may add some).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipelines.runtime.ids import Id, check_id

MAX_AGENTS = 1024
"""Agents of one council (a run's ``agents`` or scaling arm)."""
MAX_REPEATS = 1024
MAX_ROUNDS = 64
MAX_KEYWORDS = 1024
MAX_MESSAGE_BYTES = 8 << 20
"""The server's own cap is ``max_payload`` (1 MiB by default)."""
MAX_ANSWERS = 4096
"""Answers one deliberation waits for (agents x repeats x rounds): the collector's
work per message grows with it (1,024 x 64 x 64 took 23 s a message)."""
MAX_KEYWORD_CHARS = 200


class _Plan(BaseModel):
    model_config = ConfigDict(extra="allow")

    rounds: int = Field(1, ge=1, le=MAX_ROUNDS)
    rank: bool = False
    chair: bool = False
    judge: bool = False


class AgentPayload(BaseModel):
    """The fields of ``agent.response.*`` the collector reads (messages.py writes them)."""

    model_config = ConfigDict(extra="allow")

    run_id: Id
    role: Id
    task_id: Id
    agent_id: Id
    status: Literal["COMPLETED", "FAILED"]
    council_size: int = Field(ge=1, le=MAX_AGENTS)
    repeat: int = Field(0, ge=0, lt=MAX_REPEATS)
    repeats: int = Field(1, ge=1, le=MAX_REPEATS)
    keywords: list[str] = Field(default_factory=list, max_length=MAX_KEYWORDS)
    proposal: str | None = None
    model: str = ""
    step: Literal["propose", "rank", "chair", "judge"] = "propose"
    round: int = Field(1, ge=1, le=MAX_ROUNDS)
    target: str = ""
    plan: _Plan | None = None
    parsed: Any = None

    @field_validator("target")
    @classmethod
    def _a_target(cls, value: str) -> str:
        return check_id(value) if value else value

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        if any(not k.strip() or len(k) > MAX_KEYWORD_CHARS for k in value):
            raise ValueError(f"a keyword is blank or over {MAX_KEYWORD_CHARS} characters")
        return value

    @model_validator(mode="after")
    def _what_the_collector_reads(self) -> AgentPayload:
        rounds = self.plan.rounds if self.plan is not None else 1
        if self.council_size * self.repeats * rounds > MAX_ANSWERS:
            raise ValueError(
                f"council_size x repeats x rounds is over {MAX_ANSWERS} answers a deliberation"
            )
        if self.proposal is None:
            self.proposal = ""  # a failed agent's, or a COMPLETED one that sent none
        if self.parsed is not None and self.step == "rank":
            ranking = self.parsed
            if not isinstance(ranking, list) or len(ranking) > self.council_size:
                raise ValueError("a ranking is a list of at most council_size agent ids")
            for agent in ranking:
                if not isinstance(agent, str):
                    raise ValueError("a ranking is a list of agent ids")
                check_id(agent)
        score = self.parsed
        if self.step == "judge" and score is not None and not _number(score):
            raise ValueError("a judge's score is a number")
        return self


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def agent_payload(data: bytes) -> dict[str, Any] | str:
    """The message's payload, checked; or why it is refused."""
    if len(data) > MAX_MESSAGE_BYTES:
        return f"{len(data)} bytes, more than {MAX_MESSAGE_BYTES}"
    try:
        record = json.loads(data)
    except (ValueError, RecursionError) as e:
        return f"not JSON ({type(e).__name__})"
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    if "council_size" not in record:
        return "no council_size (an agent message of an older schema)"
    try:
        checked = AgentPayload.model_validate(record)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        why = first["msg"].removeprefix("Value error, ")
        return f"field {where!r}: {why}" if where else why
    payload = checked.model_dump()
    if checked.plan is None:
        payload.pop("plan")  # no plan: one round of proposals
    return payload
