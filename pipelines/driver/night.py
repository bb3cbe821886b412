"""A night's runs, continued where they stopped: plan the jobs from an overrides file,
start, resume or finish each (the library of ``python -m pipelines.nightly``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines import RunFolderError, UserError
from pipelines.config import RunConfig, compose_config
from pipelines.executors import HeldExecutors
from pipelines.executors.local import LocalExecutor
from pipelines.runtime.redact import redact_exc

log = logging.getLogger("pipelines.nightly")

OVERRIDES_ENV = "COUNCIL_OVERRIDES_FILE"
DEFAULT_OVERRIDES = Path("/etc/council/overrides")
LOCK_FILE = "nightly.lock"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Job:
    """One run of the night: its overrides and its folder's name."""

    slug: str
    overrides: tuple[str, ...]


def read_overrides(path: Path) -> dict[str, int]:
    """The overrides in ``path`` (override -> line); a bad one is a :class:`UserError`
    naming file and line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if not path.is_file():
        raise UserError(f"overrides file {path} not found (--overrides or ${OVERRIDES_ENV})")
    parser = OverridesParser.create()
    found: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as e:
            raise UserError(f"{path}:{lineno}: {e}") from None
        for token in tokens:
            if token.startswith("-"):
                raise UserError(
                    f"{path}:{lineno}: {token!r} is a flag, not an override "
                    "(a comma list already sweeps: role=dev,qa)"
                )
            if "${" in token:
                raise UserError(
                    f"{path}:{lineno}: {token!r}: an overrides file may not interpolate "
                    "(${...} reads the pod's environment and files: its secrets)"
                )
            try:
                parsed = parser.parse_override(token)
            except HydraException as e:
                raise UserError(f"{path}:{lineno}: {token!r}: {e}") from None
            if parsed.get_key_element().lstrip("+~").split(".")[0].startswith("hydra"):
                raise UserError(f"{path}:{lineno}: {token!r}: Hydra's own settings are not a run's")
            found.setdefault(token, lineno)
    if not found:
        raise UserError(f"{path}: no overrides (a line like: role=dev,qa engine=openai)")
    return found


def expand(overrides: list[str]) -> list[Job]:
    """One job per combination of the sweeps, in a stable order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    # Per override, its choices as (folder-name part, override); one choice unless swept.
    axes: list[list[tuple[str, str]]] = []
    parsed_all = OverridesParser.create().parse_overrides(overrides)
    for line, parsed in zip(overrides, parsed_all, strict=True):
        key = parsed.get_key_element()
        if parsed.is_sweep_override():
            axes.append([(f"{key}-{v}", f"{key}={v}") for v in parsed.sweep_string_iterator()])
        else:
            axes.append([("", line)])
    jobs = []
    for combo in itertools.product(*axes):
        choices = "_".join(part for part, _ in combo if part)
        slug = re.sub(r"[^A-Za-z0-9._=-]+", "-", choices) or "run"
        jobs.append(Job(slug, tuple(override for _, override in combo)))
    return jobs


def plan(path: Path) -> list[tuple[Job, RunConfig]]:
    """Every job of the overrides file with its composed, checked config."""
    from hydra.errors import HydraException

    lines = read_overrides(path)
    planned = []
    for job in expand(list(lines)):
        try:
            cfg = compose_config(job.overrides)
        except (HydraException, UserError) as e:
            cause = f"{e}: {e.__cause__}" if e.__cause__ else str(e)
            first = cause.splitlines()[0]
            # The line of the override the message names, else the first line.
            lineno = next(
                (n for o, n in lines.items() if o.split("=")[0].lstrip("+~") in first),
                min(lines.values()),
            )
            raise UserError(f"{path}:{lineno}: {first} (run {job.slug})") from None
        if why := not_the_files(cfg):
            name, reason = why
            lineno = next(
                (n for exact in (True, False) for o, n in lines.items() if _sets(o, name, exact)),
                min(lines.values()),
            )
            raise UserError(f"{path}:{lineno}: {name}: {reason} (run {job.slug})")
        planned.append((job, cfg))
    return planned


def not_the_files(cfg: RunConfig) -> tuple[str, str] | None:
    """A setting the overrides file may not choose, and why; None when there is none.

    Whoever may edit the file (a ConfigMap) must not get the pods' secrets: where
    requests and credentials go (the endpoints), what the engine loads and is
    handed, and files outside ``datasets/`` come from the manifests (the pods'
    environment), as a resume takes them (:mod:`pipelines.driver.resume`).
    """
    from pipelines.driver.resume import outside_datasets, today_config, unlike_today

    unlike = unlike_today(cfg, today_config(cfg))
    if unlike:
        return unlike[0], "set by the night's environment (its manifests), not its overrides"
    if outside_datasets(cfg.dataset):
        return "dataset", f"{cfg.dataset!r} is outside the project's datasets/"
    return None


def _sets(override: str, name: str, exact: bool) -> bool:
    """``override`` sets ``name`` (a dotted setting) or a part of it (``exact``),
    else a whole it belongs to (a config group: ``engine=openai``)."""
    key = override.split("=")[0].lstrip("+~").split("@")[0]
    if exact:
        return key == name or key.startswith(f"{name}.")
    return name.startswith(f"{key}.")


def state(run_dir: Path) -> str:
    """``finished`` (metrics.json of its run), ``started`` (run.json) or ``new``."""
    from pipelines.spec.run_folder import METRICS_FILE, RUN_INFO_FILE

    info, metrics = run_dir / RUN_INFO_FILE, run_dir / METRICS_FILE
    if not info.is_file():
        return "new"
    try:
        run_id = json.loads(info.read_text())["run_id"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise RunFolderError(f"{info} is unreadable ({type(e).__name__}: {e})") from None
    try:  # torn or foreign: the run did not finish, its resume writes it again
        finished = json.loads(metrics.read_text()).get("run_id") == run_id
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        finished = False
    return "finished" if finished else "started"


def start(cfg: RunConfig, run_dir: Path, held: HeldExecutors) -> list[str]:
    """A new run in ``run_dir``; returns the ``fail_on`` rules it broke."""
    from pipelines.driver.pipeline import run_pipeline
    from pipelines.driver.preflight import preflight_run
    from pipelines.driver.resume import log_to
    from pipelines.driver.summary import summary
    from pipelines.driver.verdict import problems
    from pipelines.runtime.reaper import reaper

    preflight_run(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    with log_to(run_dir), reaper(run_dir):
        outcome = run_pipeline(cfg, run_dir, executor=held)
    print(summary(outcome), flush=True)
    return problems(outcome.metrics, cfg.fail_on)


def resume(run_dir: Path, held: HeldExecutors, today: RunConfig) -> list[str]:
    """Continue the run in ``run_dir``: its endpoints come from tonight's job
    (``today``, from the overrides file), not from its run.json."""
    from pipelines.driver.resume import resume_run
    from pipelines.driver.summary import summary
    from pipelines.driver.verdict import problems

    cfg, outcome = resume_run(run_dir, held, today=today)
    print(summary(outcome), flush=True)
    return problems(outcome.metrics, cfg.fail_on)


def finish(run_dir: Path, today: RunConfig) -> list[str]:
    """A finished run: publish what was never acked, track it (both idempotent),
    at tonight's endpoints (``today``)."""
    from pipelines.config import MlflowTrackingConfig, NatsSinkConfig
    from pipelines.driver.resume import resumed_config
    from pipelines.driver.verdict import problems
    from pipelines.sinks import republish
    from pipelines.spec.run_folder import METRICS_FILE, OUTBOX_FILE
    from pipelines.trackers.mlflow import track_run

    cfg = resumed_config(run_dir, today=today)
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    figures: dict = {"overall": metrics.get("overall") or {}}
    if isinstance(cfg.sink, NatsSinkConfig) and (run_dir / OUTBOX_FILE).is_file():
        sent = republish(cfg.sink, run_dir)
        print(f"{run_dir}: republished, acked {sent.acked}, unpublished {sent.pending}")
        if sent.pending:
            figures["sink"] = {
                "unpublished": sent.pending,
                "error": "replay could not publish them",
            }
    if isinstance(cfg.tracking, MlflowTrackingConfig):
        try:
            tracked = track_run(run_dir, cfg.tracking)
            print(tracked.line(run_dir))
            figures["tracking"] = {"ok": True}
        except Exception as e:  # noqa: BLE001 - reported as a fail_on rule
            figures["tracking"] = {"ok": False, "error": redact_exc(e)}
    return problems(figures, cfg.fail_on)


def run_night(
    name: str, overrides: Path, root: Path, local: LocalExecutor | None = None
) -> dict[str, tuple[str, list[str]]]:
    """Every run of the night, continued where it stopped: slug -> (what was done, problems).

    ``local`` (else one of its own) serves the executor=local runs: one engine
    for all; the runs on one Ray or Dask config share that executor's engines.
    """
    night = root / name
    night.mkdir(parents=True, exist_ok=True)
    jobs = plan(overrides)
    log.info("nightly %s: %d run(s) in %s", name, len(jobs), night)
    done: dict[str, tuple[str, list[str]]] = {}
    with contextlib.ExitStack() as stack:
        held = stack.enter_context(HeldExecutors(*([local] if local else [])))
        for job, cfg in jobs:
            run_dir = night / job.slug
            try:
                found = state(run_dir)
                log.info("nightly %s: run %s is %s", name, job.slug, found)
                if found == "finished":
                    done[job.slug] = ("finished earlier", finish(run_dir, cfg))
                elif found == "started":
                    done[job.slug] = ("resumed", resume(run_dir, held, cfg))
                else:
                    done[job.slug] = ("started", start(cfg, run_dir, held))
            except RunFolderError as e:  # this run's folder, not the night's set-up
                log.error("nightly %s: run %s: %s", name, job.slug, e)
                done[job.slug] = ("refused", [f"{e}; move {run_dir} away to start it again"])
            except UserError:
                raise  # bad set-up: every run would meet it
            except Exception as e:  # the other runs of the night go on
                log.exception("nightly %s: run %s crashed", name, job.slug)
                crash = f"crashed: {redact_exc(e)}; its parts are kept, a retry resumes it"
                done[job.slug] = ("crashed", [crash])
    return done


def default_name() -> str:
    return f"nightly-{datetime.now(UTC):%Y%m%d}"


LOCK_POLL_S = 1.0


@contextlib.contextmanager
def one_night_at_a_time(root: Path, wait_s: float = 0.0) -> Iterator[str | None]:
    """Hold ``root/nightly.lock`` while entered; yields None, or what still holds it
    after ``wait_s`` seconds.

    Two schedulers (or a late night and the next) never run nights on one
    runs volume at once. The lock dies with its process: a killed night never
    blocks the next, and a stopped one (``ray job stop``, a deleted RayJob) hands
    it over once its driver has ended, which the wait covers.
    """
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a+") as lock:
        end, said = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "unknown"
                left = end - time.monotonic()
                if left <= 0:
                    yield holder
                    return
                if not said:
                    log.info("nightly: %s holds %s; waiting up to %g s", holder, LOCK_FILE, wait_s)
                    said = True
                time.sleep(min(LOCK_POLL_S, left))
        lock.truncate(0)
        lock.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        lock.flush()
        try:
            yield None
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
