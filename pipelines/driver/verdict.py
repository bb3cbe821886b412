"""Whether a finished run is healthy: what its exit status says.

A run can finish (results on disk, report written) and still have failed its
purpose: messages left unpublished, tracking that never reached the server, or
too many error rows. ``problems`` names each such failure; the entry points
print them and exit :data:`EXIT_RUN_FAILED`, so a scheduled run is not
"Complete" when it reached neither NATS nor MLflow.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pipelines import RunStopped, UserError
from pipelines.config import FailOnConfig
from pipelines.runtime.stopping import Terminated
from pipelines.spec.exits import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_STOPPED,
    EXIT_TERMINATED,
)

ENDINGS = (UserError, Terminated, RunStopped)
"""The exceptions :func:`ended` turns into an exit status."""


def ended(error: BaseException, run_dir: Path | None = None) -> int:
    """Print how a run ended early and return its exit status: :class:`UserError`
    2, :class:`RunStopped` 4, SIGTERM (:class:`Terminated`) 143; the last two name
    the resume command of ``run_dir``."""
    if isinstance(error, UserError):
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    note = stopped_note(run_dir) if run_dir is not None else ""
    if isinstance(error, Terminated):
        print(f"{error}: {note}", file=sys.stderr, flush=True)
        return EXIT_TERMINATED
    if isinstance(error, RunStopped):
        print(f"error: {error}\n{note}", file=sys.stderr, flush=True)
        return EXIT_STOPPED
    raise error


def stopped_note(run_dir: Path) -> str:
    """What a stopped run left, and how to finish it."""
    from pipelines.flow.parts import part_files

    parts = len(part_files(run_dir))
    return f"{parts} part(s) kept in {run_dir}; finish with: python -m pipelines.resume {run_dir}"


def verdict(found: list[str], where: Path) -> int:
    """Print the ``fail_on`` rules a finished run broke (``found``); its exit status."""
    if found:
        print(report(found, str(where)), file=sys.stderr, flush=True)
        return EXIT_RUN_FAILED
    return EXIT_OK


def problems(metrics: dict[str, Any], fail_on: FailOnConfig) -> list[str]:
    """Each ``fail_on`` rule the run's ``metrics.json`` breaks, as one line."""
    found = []
    overall = metrics.get("overall") or {}
    requests, errors = overall.get("requests", 0), overall.get("errors", 0)
    if requests and errors / requests > fail_on.max_error_rate:
        found.append(
            f"{errors} of {requests} requests failed ({errors / requests:.1%} > "
            f"fail_on.max_error_rate {fail_on.max_error_rate:.1%})"
        )
    sink = metrics.get("sink") or {}
    if fail_on.unpublished and sink.get("unpublished"):
        found.append(
            f"{sink['unpublished']} messages unpublished ({sink.get('error')}); "
            "python -m pipelines.replay publishes them"
        )
    tracking = metrics.get("tracking") or {}
    if fail_on.tracking and tracking and not tracking.get("ok"):
        found.append(
            f"tracking failed ({tracking.get('error')}); python -m pipelines.track logs the run"
        )
    return found


def report(problems_found: list[str], where: str) -> str:
    """The console lines for a run that failed its ``fail_on`` rules."""
    lines = [f"RUN FAILED ({where}): exit {EXIT_RUN_FAILED}"]
    lines += [f"  - {p}" for p in problems_found]
    lines.append("  (fail_on.* sets what fails a run)")
    return "\n".join(lines)
