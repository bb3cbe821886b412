"""Identifiers that reach NATS: one rule for ids, one builder for names.

A task id, a role and an agent id go into subjects, key-value keys and the
``Nats-Msg-Id`` header, which nats-py writes into the protocol as they are
(``PUB <subject> ...\\r\\n``). A CR or LF there frames a second command on the
run's connection; a space, ``*`` or ``>`` breaks the framing or widens a
subscription; a ``.`` makes one id two tokens. So every id obeys
:data:`ID_PATTERN` (checked where it enters: the dataset loader, the config,
a run folder), and every dotted name is built by :func:`dotted`, which refuses
a token outside :data:`TOKEN_PATTERN` whatever its caller checked.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
"""A task id, role, agent id or run id: a letter or digit, then letters,
digits, ``_`` and ``-``; at most 128 characters."""

ID_RULE = "1-128 characters: letters, digits, '_' and '-', starting with a letter or digit"

TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
"""One token of a dotted name (the names' other pieces: steps, rounds, orders)."""

_ID = re.compile(ID_PATTERN)
_TOKEN = re.compile(TOKEN_PATTERN)


def check_id(value: object, what: str = "") -> str:
    """``value`` when it obeys :data:`ID_PATTERN`; else ``ValueError`` saying why
    (the value shown escaped and cut: it may hold CR, ESC or a megabyte)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        shown = repr(value[:80] + "..." if isinstance(value, str) and len(value) > 80 else value)
        raise ValueError(f"{what + ' ' if what else ''}{shown} is not a valid id ({ID_RULE})")
    return value


ROLE_MAX = 105
"""The longest role: a run id holds it with 23 characters more
(``<YYYYmmdd-HHMMSS>-<role>-<hex6>``), an agent id with 10 (``agent-<role>-001``),
and each must stay within :data:`ID_PATTERN`'s 128."""


def check_role(value: object) -> str:
    """``value`` when it is an id of at most :data:`ROLE_MAX` characters."""
    role = check_id(value, "role")
    if len(role) > ROLE_MAX:
        raise ValueError(
            f"role {role[:40]!r}... is {len(role)} characters: at most {ROLE_MAX}, for the run "
            "and agent ids built from it to stay within 128"
        )
    return role


Id = Annotated[str, AfterValidator(lambda v: check_id(v))]
"""A pydantic field that obeys :data:`ID_PATTERN` (the error names the value)."""


def dotted(*tokens: str) -> str:
    """``a.b.c`` from tokens that each obey :data:`TOKEN_PATTERN`.

    Raises:
        ValueError: a token that is empty or holds anything else (a dot, a
            space, CR, LF, NUL, ``*``, ``>``), whoever built it.
    """
    for token in tokens:
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise ValueError(f"{token!r} cannot be a token of a NATS name")
    return ".".join(tokens)


def deliberation_id(run_id: str, role: str, task_id: str) -> str:
    """A deliberation's key in the status bucket and its ``Nats-Msg-Id``."""
    return dotted(run_id, role, task_id)


def agent_id(role: str, index: int) -> str:
    """Agent id of the ``index``-th (1-based) agent of ``role``."""
    return f"agent-{role}-{index:03d}"
