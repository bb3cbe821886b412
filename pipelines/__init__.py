"""council-eval: batch evaluation of councils of LLM agents.

Where each step of ``python -m pipelines.run`` lives (README, Layout):

1. ``config/``: the composed Hydra config becomes typed :class:`RunConfig`
   objects (one dataclass per config-group option), checked once.
2. ``flow/``: tasks → council (task x agent) → batches fed to an ``executors/``
   executor, each landing as a part and agent messages on a ``sinks/`` sink;
   ``deliberation/`` builds rounds, rankings and a chair on the same steps.
3. ``scoring/`` scores the results with ``evaluators/``, and against reference
   answers where the tasks have them (``scoring/truth``).
4. ``report/`` and ``trackers/`` record the run.

``driver/`` runs the steps in order; the top-level modules are the commands;
``runtime/`` is what everything leans on, ``spec/`` what the steps agree on (the
deliberation protocol, the run folder). No module imports one of a layer
above its own (runtime, spec < config < scoring, engines < sinks, executors < flow
< deliberation < report, trackers < driver < the commands).

Importing the package makes every log record of the process pass through
:func:`pipelines.runtime.redact.redact_text` (a record factory), so that no log line
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
        from pipelines.runtime.redact import redact_text

        return redact_text(super().__str__())


class UserError(_Redacted):
    """Bad input or set-up that the user can fix; printed without a traceback."""


class RunFolderError(UserError):
    """One run folder's own files are unusable (its ``run.json`` unreadable, or
    recording what a resume refuses): that run fails, a night's others go on."""


class RunStopped(_Redacted, RuntimeError):
    """The run stopped before its end for a reason outside its input (its engine
    failed, its disk is full). What landed is on disk, whole; ``pipelines.resume``
    finishes the run. Printed without a traceback."""


def _redact_logs() -> None:
    from pipelines.runtime.redact import install_log_redaction

    install_log_redaction()


_redact_logs()
