"""Whether a finished run is healthy: what its exit status says.

A run can finish (results on disk, report written) and still have failed its
purpose: messages left unpublished, tracking that never reached the server, or
too many error rows. ``problems`` names each such failure; the entry points
print them and exit :data:`EXIT_RUN_FAILED`, so a scheduled run is not
"Complete" when it reached neither NATS nor MLflow.
"""

from __future__ import annotations

from typing import Any

from pipelines.config import FailOnConfig

EXIT_RUN_FAILED = 3
"""Exit status of a run that finished but failed a ``fail_on`` rule (2: bad input)."""


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
