"""One redaction for everything a run writes down or sends: secrets become ``***``.

A secret reaches text in three shapes, and :func:`redact_text` masks each:

- a URL's user info: ``nats://user:pw@host`` → ``nats://user:***@host``, and a
  token alone, ``nats://TOKEN@host`` → ``nats://***@host`` (the user info is
  taken up to the last ``@`` before a space, so a password holding ``/``, ``?``
  or ``#`` is masked whole; the URL is never parsed, so a comma list of
  servers or a port past 65535 cannot make it fail);
- a secret-named query key: ``?token=…``, ``&api_key=…``;
- a secret-named key with its value: ``HF_TOKEN=…``, ``password: …``,
  ``"api_key": "…"``, ``{api_key: …}`` (a value runs to a space, ``,``, ``;``
  or ``}``, a quote inside it included);
- an HTTP credential: ``Authorization: Bearer …`` / ``Basic …`` / ``Token …``;
- a token recognizable on its own (:data:`TOKEN_SHAPES`: ``sk-…``, ``hf_…``,
  ``ghp_…``, ``github_pat_…``, ``xoxb-…``, ``AKIA…``) and a PEM private key block;
- a secret-named fragment key: ``#access_token=…``.

:func:`redact` walks a record (run.json's config, MLflow params): a value under
a secret-named key is masked whole, every other string goes through
:func:`redact_text`. :func:`install_log_redaction` does the same to every log
record of the process.
A name is secret when one of its words (split at ``_ - .``) is a secret word:
``HF_TOKEN``, ``api_key``, ``password``; not ``max_tokens`` or ``api_key_env``
(which names a variable, not its value).
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

SECRET_WORDS = frozenset(
    {
        "token",
        "key",
        "apikey",
        "secret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "signature",
        "sig",
        "cookie",
        "jwt",
        "nkey",
    }
)
"""Words that make a name secret."""

ALONE_SECRET = frozenset(
    {
        "token",
        "apikey",
        "secret",
        "password",
        "passwd",
        "pwd",
        "credentials",
        "authorization",
        "cookie",
    }
)
"""Words that make a secret name on their own (``key``, ``auth``, ``sig`` need a
second word, ``api_key``, ``auth_token``, except as a record's or query's key or a
quoted one: ``{"key": …}``, ``?sig=…``)."""

NOT_SECRET_LAST = frozenset(
    {"env", "file", "path", "name", "id", "size", "len", "mode", "type", "kind", "method"}
)
"""A last word that names where a secret is, how it is used, or a figure about
one, not the secret (``RAY_AUTH_TOKEN_PATH``, ``RAY_AUTH_MODE=token``)."""

_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
# User info runs to the last '@' before a space, a quote or ",<scheme>://" (the
# next server of a comma list).
_URL_USERINFO = re.compile(
    rf"(?P<scheme>\b{_SCHEME})(?P<info>(?:(?!,{_SCHEME})[^\s@'\"])*(?:@(?:(?!,{_SCHEME})[^\s@'\"])*)*)@"
)
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
_QUERY = re.compile(rf"(?P<lead>[?&;#](?P<name>{_NAME})=)(?P<value>[^&#\s'\"]*)")
_ASSIGN = re.compile(
    rf"(?P<lead>(?P<q>[\"']?)\b(?P<name>{_NAME})(?P=q)\s*[:=]\s*)"
    rf"(?P<value>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s,;{{}}][^\s,;}}]*)"
)
HTTP_SCHEMES = ("bearer", "basic", "token")
# After an Authorization header name, any credential; elsewhere a "Bearer …" or
# "Basic …" whose credential looks like one (a digit or symbol in it, or 20+
# characters), so that prose ("basic arithmetic") stays as it is.
_HTTP_CREDENTIAL = re.compile(
    r"(?P<lead>\b(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?i:bearer|basic|token)\s+)"
    r"[^\s\"',;}]+"
    r"|(?P<bare>\b(?:Bearer|Basic)\s+)"
    r"(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-]|[A-Za-z0-9._~+/=-]{20})[A-Za-z0-9._~+/=-]+"
)
TOKEN_SHAPES = re.compile(
    r"\b(?:sk-(?:proj-)?[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})\b"
)
"""Tokens whose shape names them: OpenAI, Hugging Face, GitHub, Slack, AWS keys."""
_PEM = re.compile(
    r"-----BEGIN (?P<kind>[A-Z ]*PRIVATE KEY)-----.*?(?:-----END (?P=kind)-----|\Z)", re.S
)


_PLACEHOLDER = re.compile(r"<[\w .-]*>|\$\{?\w+\}?")
"""A value a help text shows in place of the secret: ``<token>``, ``$HF_TOKEN``."""


def is_secret_name(name: str, in_query: bool = False) -> bool:
    """Whether a key called ``name`` holds a secret (``HF_TOKEN`` yes, ``max_tokens`` no)."""
    words = [w for w in re.split(r"[_.\-]", name.lower()) if w]
    if not words or words[-1] in NOT_SECRET_LAST:
        return False
    if len(words) == 1 and not in_query:  # "KEY=VALUE" in a help text; ?key=, ?sig= are
        return words[0] in ALONE_SECRET
    return any(w in SECRET_WORDS for w in words)


def _userinfo(m: re.Match[str]) -> str:
    info = m["info"]
    user, _, password = info.partition(":")
    return f"{m['scheme']}{user}:{MASK}@" if user and password else f"{m['scheme']}{MASK}@"


def _named(m: re.Match[str], in_query: bool = False) -> str:
    value = m["value"]
    keyed = in_query or bool(m.groupdict().get("q"))  # ?key=, "key": …
    if not is_secret_name(m["name"], keyed) or _PLACEHOLDER.fullmatch(value):
        return m[0]
    if value.strip("\"'").lower() in HTTP_SCHEMES:  # "Authorization: Bearer ***": done
        return m[0]
    quote = value[0] if value[:1] in "\"'" and len(value) > 1 else ""
    return f"{m['lead']}{quote}{MASK}{quote}"


def redact_text(text: str) -> str:
    """``text`` with every URL's user info, secret query value and secret-named
    assignment masked (see the module's docstring)."""
    if not text:
        return text
    text = _PEM.sub(lambda m: f"-----BEGIN {m['kind']}----- {MASK}", text)
    text = _URL_USERINFO.sub(_userinfo, text)
    text = _QUERY.sub(lambda m: _named(m, in_query=True), text)
    text = _HTTP_CREDENTIAL.sub(lambda m: f"{m['lead'] or m['bare']}{MASK}", text)
    text = TOKEN_SHAPES.sub(MASK, text)
    return _ASSIGN.sub(_named, text)


def redact(value: Any, key: str = "") -> Any:
    """``value`` (a record: dicts, lists, scalars) with its secrets masked."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if key and value not in (None, "") and is_secret_name(key, in_query=True):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_exc(error: BaseException) -> str:
    """``Type: message`` of an exception, redacted (connect errors name their URL)."""
    return redact_text(f"{type(error).__name__}: {error}")


def install_log_redaction() -> None:
    """Make every log record of this process redacted as it is made (idempotent).

    A record factory, not a handler's filter: it covers every logger and every
    handler a library adds later (Hydra's, Ray's, MLflow's), and the text of an
    exception logged with its traceback.
    """
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: logging reports it
            return record
        clean = redact_text(text)
        if clean != text:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return record

    redacted_record.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacted_record)
