"""Sinks publish a run's messages as they are given; ``none`` publishes nothing.

A sink is opened for one run (a context manager: it may start a server),
follows the run's deliberations (:meth:`Sink.follow`), is given each batch's
agent messages as the batch lands (:meth:`Sink.publish`), can publish again
what it holds and the server never confirmed (:meth:`Sink.publish_pending`),
waits for the deliberations to end (:meth:`Sink.settle`), and reports what
was acked and what is still pending. Implementations are imported only when
chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipelines import UserError
from pipelines.config import SinkConfig
from pipelines.sinks.messages import Message

SINKS = {
    "none": "pipelines.sinks.none:NoSink",
    "nats": "pipelines.sinks.nats:NatsSink",
}
"""Sink name (``conf/sink/<name>.yaml``) → ``module:class``."""


@dataclass
class SinkReport:
    """What a sink did so far in this run."""

    messages: int = 0
    """Messages given to :meth:`Sink.publish` (or found pending)."""
    acked: int = 0
    """Confirmed by the server (duplicates included)."""
    duplicate: int = 0
    """Confirmed, but the server already held them (a replay)."""
    pending: int = 0
    """Kept for a later publish (the outbox) and not confirmed."""
    dead: int = 0
    """Over the server's ``max_payload``: recorded in ``dead.txt``, never sent."""
    publish_s: float = 0.0
    error: str | None = None


class Sink(Protocol):
    """Where each agent's result and each deliberation goes."""

    name: str

    def __enter__(self) -> Sink: ...

    def __exit__(self, *exc: object) -> None: ...

    def follow(
        self, run_id: str, tasks: list[tuple[str, str]], since_ms: int, timeout_s: float
    ) -> None:
        """Follow the deliberations of ``tasks`` ((role, task_id)) of run ``run_id``,
        started at ``since_ms`` (Unix ms), each timed out after ``timeout_s``."""
        ...

    def settle(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every followed deliberation to end;
        return how many are still open."""
        ...

    def keep(self, messages: list[Message]) -> None:
        """Keep ``messages`` durably for a later :meth:`publish` or replay (a batch's
        messages are kept before its part lands, so no part lacks them)."""
        ...

    def publish(
        self,
        messages: list[Message],
        on_acked: Callable[[], None] | None = None,
        kept: bool = False,
    ) -> None:
        """Keep ``messages`` durably (unless ``kept``: :meth:`keep` did), then
        publish them, without waiting for the server: ``on_acked`` is called once
        all are confirmed. Never raises for an unreachable server (the report
        says what is pending)."""
        ...

    def publish_pending(self) -> None:
        """Publish what was kept earlier and never confirmed (a replay)."""
        ...

    def report(self) -> SinkReport: ...


def build_sink(cfg: SinkConfig, run_dir: Path) -> Sink:
    """The sink named by ``cfg.name`` for the run in ``run_dir`` (not yet opened)."""
    if cfg.name not in SINKS:
        raise UserError(f"unknown sink {cfg.name!r}; known: {sorted(SINKS)}")
    module, cls = SINKS[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg, run_dir)


def republish(cfg: SinkConfig, run_dir: Path) -> SinkReport:
    """Publish what ``run_dir``'s outbox holds and the server never acked (each
    message keeps its ``Nats-Msg-Id``: the server drops what it already holds)."""
    with build_sink(cfg, run_dir) as sink:
        sink.publish_pending()
        return sink.report()
