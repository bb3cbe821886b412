"""council-eval: batch evaluation of councils of LLM agents.

Where each step of ``python -m pipelines.run`` lives:

1. ``config.py``: the composed Hydra config becomes typed :class:`RunConfig`
   objects (one dataclass per config-group option), checked once.
2. ``tasks.py``: the role's JSONL tasks, validated (file, line, field).
3. ``council.py``: task x agent requests (temperatures, seeds), cut into batches.
4. ``executors/`` maps ``stage.py`` (one ``engines/`` engine per replica) over
   the batches: ray, dask or local.
5. ``stream.py``: each batch, as it lands, becomes a part on disk (``parts.py``)
   and agent messages on the sink (``sinks/``: nats, none), whose collector
   ends each deliberation and keeps its status.
6. ``metrics.py`` scores the results with ``evaluators/``; ``scaling.py`` for
   the scaling experiment.
7. ``runinfo.py``, ``report.py`` and ``trackers/`` record the run (run.json,
   report.html, MLflow).

``pipeline.py`` runs steps 2-7 in order and names no plug-in; ``resume.py``
runs them again on a killed run's folder, and ``reaper.py`` stops what a
killed run left running.

Importing the package makes every log record of the process pass through
:func:`pipelines.redact.redact_text` (a record factory), so that no log line
holds a URL's password, a token or a secret-named value; the errors below
are redacted the same way when printed.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding ``conf/``, ``datasets/`` and ``models/``."""


def runs_root() -> Path:
    """Where run folders go: ``COUNCIL_RUNS_DIR`` (a volume on a cluster), else ``runs/``."""
    return Path(os.environ.get("COUNCIL_RUNS_DIR") or PROJECT_ROOT / "runs")


class _Redacted(Exception):
    """An error whose text never shows a secret (a URL's password, a token)."""

    def __str__(self) -> str:
        from pipelines.redact import redact_text

        return redact_text(super().__str__())


class UserError(_Redacted):
    """Bad input or set-up that the user can fix; printed without a traceback."""


EXIT_STOPPED = 4
"""The exit status of a run that raised :class:`RunStopped`."""


class RunStopped(_Redacted, RuntimeError):
    """The run stopped before its end for a reason outside its input (its engine
    failed, its disk is full). What landed is on disk, whole; ``pipelines.resume``
    finishes the run. Printed without a traceback."""


def _redact_logs() -> None:
    from pipelines.redact import install_log_redaction

    install_log_redaction()


_redact_logs()
