"""The scheduled benchmark: ``python -m pipelines.nightly --name NIGHT``.

The Hydra overrides come from a file (``--overrides``, default
``$COUNCIL_OVERRIDES_FILE``), never from a command line that a scheduler
built: one or more lines of shell-quoted overrides, ``#`` starts a comment,
and a comma list sweeps as with ``pipelines.run -m`` (``role=dev,qa``). Each
combination is one run, in ``<runs root>/<NIGHT>/<its sweep choices>/``
(runs root: ``$COUNCIL_RUNS_DIR``, else ``runs/``). The file chooses what runs,
never where requests and credentials go: interpolation (``${...}``), endpoints,
engine settings, ``cache_dir``, ``hydra.*`` and a dataset outside ``datasets/``
are refused (they come from the environment, as for ``pipelines.resume``).

Started again with the same name (a retried RayJob, a recovered night), it
continues where the last attempt stopped: a run that finished is not redone
(only its unacked messages and its tracking are retried), a run that started
is resumed (``pipelines.resume``), a run not yet started starts.

One night at a time per runs root: a night that finds the lock held waits
``--lock-wait`` seconds for it (a stopped night's driver ending), then exits 75
and runs nothing. ``--deadline`` stops the night after that many seconds as
SIGTERM does: what landed is kept, the exit status is 143, and the same
``--name`` resumes it.

Exit status: 0 when every run is healthy, 3 when a run failed its ``fail_on``
rules (unpublished messages, failed tracking, too many error rows), 2 on bad
input, 75 when the lock stayed held, 143 when stopped (SIGTERM, the deadline).
``--check`` composes every run's config, prints the plan and exits without
loading a model.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pipelines import UserError, runs_root
from pipelines.driver.night import (
    DEFAULT_OVERRIDES,
    LOCK_FILE,
    NAME,
    OVERRIDES_ENV,
    default_name,
    one_night_at_a_time,
    plan,
    run_night,
)


def seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"seconds must be >= 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    from pipelines.driver.verdict import ended
    from pipelines.runtime.stopping import Terminated, deadline, stop_on_sigterm
    from pipelines.spec.exits import EXIT_LOCKED, EXIT_OK, EXIT_RUN_FAILED, EXIT_TERMINATED

    parser = argparse.ArgumentParser(
        prog="python -m pipelines.nightly",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--name",
        default=os.environ.get("COUNCIL_RUN_NAME") or default_name(),
        help="the night's folder name; a retry passes the same (default: "
        "$COUNCIL_RUN_NAME, else nightly-<UTC date>)",
    )
    parser.add_argument(
        "--overrides",
        type=Path,
        default=Path(os.environ.get(OVERRIDES_ENV) or DEFAULT_OVERRIDES),
        help=f"overrides file (default: ${OVERRIDES_ENV}, else {DEFAULT_OVERRIDES})",
    )
    parser.add_argument("--runs-dir", type=Path, default=None, help="default: runs root")
    parser.add_argument(
        "--deadline",
        type=seconds,
        default=None,
        metavar="S",
        help="stop the night after S seconds as SIGTERM does (exit 143; the same --name "
        "resumes it); default: none",
    )
    parser.add_argument(
        "--lock-wait",
        type=seconds,
        default=0.0,
        metavar="S",
        help="how long to wait for another night's lock before exiting 75 (default: 0)",
    )
    parser.add_argument("--check", action="store_true", help="print the plan; load nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    try:
        if args.check:
            for job, cfg in plan(args.overrides):
                print(
                    f"{job.slug}: role={cfg.role.name} engine={cfg.engine.name} "
                    f"executor={cfg.executor.name} model={cfg.model.name}"
                )
            return EXIT_OK
        if not NAME.match(args.name):
            raise UserError(f"--name must be a folder name ([A-Za-z0-9._-]), got {args.name!r}")
        root = args.runs_dir or runs_root()
        with (
            stop_on_sigterm(),
            deadline(args.deadline) as late,
            one_night_at_a_time(root, args.lock_wait) as holder,
        ):
            if holder is not None:
                print(
                    f"nightly {args.name}: not run: another night still holds {root / LOCK_FILE} "
                    f"after {args.lock_wait:g} s ({holder}) (exit {EXIT_LOCKED})",
                    file=sys.stderr,
                )
                return EXIT_LOCKED
            done = run_night(args.name, args.overrides, root)
    except UserError as e:
        return ended(e)
    except Terminated as e:
        why = f"its deadline of {args.deadline:g} s passed" if late.is_set() else str(e)
        print(
            f"nightly {args.name}: {why}; its runs' parts are kept: the same --name resumes them",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_TERMINATED
    failed = {slug: found for slug, (_, found) in done.items() if found}
    print(f"nightly {args.name}:")
    for slug, (what, found) in done.items():
        print(f"  {slug:<24} {what:<16} {'FAILED' if found else 'ok'}")
        for problem in found:
            print(f"    - {problem}")
    if failed:
        print(
            f"nightly {args.name}: {len(failed)} run(s) failed (exit {EXIT_RUN_FAILED})",
            file=sys.stderr,
        )
        return EXIT_RUN_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
