"""Every exit status a council-eval command returns (README, Exit status).

``driver.verdict`` maps how a run ended to one of them; the other commands
(``compare``, ``collect``, ``replay``, ``serve_model``, …) return
:data:`EXIT_OK`, :data:`EXIT_BAD_INPUT` for bad input and :data:`EXIT_FAILED`
when what they were asked for could not be done.
"""

from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_FAILED = 1
"""A command other than a run could not do what it was asked (no runs to compare,
a server that did not start)."""
EXIT_BAD_INPUT = 2
"""Bad input or set-up (:class:`pipelines.UserError`): nothing ran."""
EXIT_RUN_FAILED = 3
"""A run finished but failed a ``fail_on`` rule."""
EXIT_STOPPED = 4
"""A run raised :class:`pipelines.RunStopped` (its engine, a full disk)."""
EXIT_REGRESSED = 5
"""``compare --gate``: run B is worse than run A on a gated metric (its corrected
test rejects and its drop exceeds the metric's tolerance)."""
EXIT_LOCKED = 75
"""``nightly``: another night still held the runs volume's lock after ``--lock-wait``
(EX_TEMPFAIL of sysexits.h): nothing ran, a later try may."""
EXIT_TERMINATED = 128 + signal.SIGTERM
"""143, what a shell reports for a process SIGTERM (or ``nightly --deadline``) ended."""

EXIT_STATUSES = {
    EXIT_OK: "the run (every run) finished and is healthy",
    EXIT_BAD_INPUT: "bad input or set-up: nothing ran",
    EXIT_RUN_FAILED: "a run finished but failed a fail_on rule",
    EXIT_STOPPED: "the run stopped before its end (its engine, a full disk): resume it",
    EXIT_REGRESSED: "compare --gate: B regressed against A on a gated metric",
    EXIT_LOCKED: "nightly: another night held the lock past --lock-wait: nothing ran",
    EXIT_TERMINATED: "stopped by SIGTERM (or nightly's --deadline): resume it",
}
"""Every exit status of the run commands (``run``, ``resume``, ``nightly``)."""
