"""Continue a killed run: ``python -m pipelines.resume RUN_DIR``.

Rebuilds the run's config and run_id from its ``run.json``, stops what the
killed session left running (``procs.json``), generates only the requests no
part in ``RUN_DIR/results/`` holds, publishes what the outbox holds and the
server never acked, then scores, settles the deliberations and tracks the run
as usual. ``metrics.json`` says how many rows were reused and how many
generated. The run folder is data, not code: endpoints and key variables
come from today's config and environment (``NATS_URL``, ``VLLM_URL``,
``MLFLOW_TRACKING_URI``; a run made against another NATS needs ``NATS_URL``
set to it), and so do the model's path and the engine's settings, a run.json
recording other ones being refused unless ``--trust-run-folder``. A live run's
folder is refused (``<run>/.lock``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from pipelines import EXIT_STOPPED, RunStopped, UserError
from pipelines.config import NatsSinkConfig, RunConfig
from pipelines.durable import hold_run_folder
from pipelines.executors import HeldExecutors
from pipelines.ids import check_id
from pipelines.pipeline import RunOutcome
from pipelines.runinfo import RUN_INFO_FILE, read_run_config

ENDPOINTS = (
    "sink.url",
    "engine.url",
    "engine.api_key_env",
    "tracking.uri",
    "judge.engine.url",
    "judge.engine.api_key_env",
)
"""Where requests and credentials go: a resume always takes them from today's
config and environment (``NATS_URL``, ``VLLM_URL``, ``MLFLOW_TRACKING_URI``).
Whoever can write a run folder could otherwise make the next resume send
``VLLM_API_KEY`` to their host."""

ENGINE_SETTINGS = (
    "model.path",
    "engine.env",
    "engine.extra_engine_kwargs",
    "engine.extra_body",
    "judge.engine.extra_body",
)
"""What the engine loads and is handed: taken from today's config too, and a
run.json that records others is refused (the resumed rows would come from
another model or engine) unless ``--trust-run-folder``."""


def resumed_config(
    run_dir: Path, trust_run_folder: bool = False, today: RunConfig | None = None
) -> RunConfig:
    """The run's config from its ``run.json`` (data: the council, the tasks, the
    budget), with :data:`ENDPOINTS` and :data:`ENGINE_SETTINGS` from today's:
    ``today`` where the caller holds it (a night's job, composed from its
    overrides file), else :func:`today_config`.

    Raises:
        UserError: ``run.json`` records engine settings unlike today's (unless
            ``trust_run_folder``: then the recorded ones are used).
    """
    recorded = read_run_config(run_dir)
    today = today or today_config(recorded)
    log = logging.getLogger("pipelines.resume")
    differ = {
        name: _get(recorded, name)
        for name in ENGINE_SETTINGS
        if _get(recorded, name) not in (_MISSING, None, "", {})
        and _get(recorded, name) != _get(today, name)
    }
    if differ and not trust_run_folder:
        listed = "\n".join(f"  {k}: {v!r} (today: {_get(today, k)!r})" for k, v in differ.items())
        raise UserError(
            f"{run_dir / RUN_INFO_FILE} records engine settings unlike today's config:\n"
            f"{listed}\nset them as the run had them, or pass --trust-run-folder if you "
            "wrote this run folder yourself"
        )
    cfg = recorded
    for name in (*ENDPOINTS, *ENGINE_SETTINGS):
        if name in differ or _get(recorded, name) is _MISSING:
            continue
        if _get(recorded, name) != _get(today, name):
            log.info("resume: %s from today's config, not run.json's", name)
        cfg = _replace(cfg, name, _get(today, name))
    if isinstance(cfg.sink, NatsSinkConfig):
        cfg = dataclasses.replace(
            cfg, sink=dataclasses.replace(cfg.sink, url=cfg.sink.resolved_url())
        )
    return cfg


def today_config(recorded: RunConfig) -> RunConfig:
    """The config a run with ``recorded``'s options would get today."""
    from pipelines.config import ROLE_DIR, compose_config

    models = {
        OmegaConf.load(p).get("name"): p.stem for p in (ROLE_DIR.parent / "model").glob("*.yaml")
    }
    overrides = [
        f"role={recorded.role.name}",
        f"engine={recorded.engine.name}",
        f"sink={recorded.sink.name}",
        f"tracking={recorded.tracking.name}",
        f"judge={recorded.judge.name}",
    ]
    if recorded.model.name in models:
        overrides.append(f"model={models[recorded.model.name]}")
    return compose_config(overrides)


_MISSING = object()


def _get(cfg: Any, dotted_name: str) -> Any:
    for part in dotted_name.split("."):
        cfg = getattr(cfg, part, _MISSING)
        if cfg is _MISSING:
            return _MISSING
    return cfg


def _replace(cfg: Any, dotted_name: str, value: Any) -> Any:
    head, _, rest = dotted_name.partition(".")
    if not rest:
        return dataclasses.replace(cfg, **{head: value})
    return dataclasses.replace(cfg, **{head: _replace(getattr(cfg, head), rest, value)})


@contextmanager
def log_to(run_dir: Path) -> Iterator[None]:
    """Log to the console and, while entered, to ``run_dir/run.log`` (appended)."""
    fmt = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter(fmt))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def resume_run(
    run_dir: Path,
    held: HeldExecutors,
    trust_run_folder: bool = False,
    today: RunConfig | None = None,
) -> tuple[RunConfig, RunOutcome]:
    """Continue the run in ``run_dir`` on an executor from ``held``.

    Raises:
        UserError: a live process holds the folder, its run.json is unusable
            (see :func:`resumed_config`) or its run id is not an id.
    """
    from pipelines.engines import preflight_run
    from pipelines.pipeline import run_pipeline
    from pipelines.reaper import reap_recorded, reaper

    with hold_run_folder(run_dir):  # before reaping: a live run's engines are its own
        cfg = resumed_config(run_dir, trust_run_folder, today)
        run_id = json.loads((run_dir / RUN_INFO_FILE).read_text()).get("run_id")
        try:
            check_id(run_id, "run_id")  # it reaches NATS subjects and keys
        except ValueError as e:
            raise UserError(f"{run_dir / RUN_INFO_FILE}: {e}") from None
        preflight_run(cfg)
        with log_to(run_dir):
            logging.getLogger("pipelines.resume").info("resuming run %s in %s", run_id, run_dir)
            reap_recorded(run_dir)
            with reaper(run_dir):
                outcome = run_pipeline(cfg, run_dir, executor=held, run_id=run_id)
    return cfg, outcome


def main(argv: list[str] | None = None) -> int:
    from pipelines.run import stopped_note
    from pipelines.stopping import EXIT_TERMINATED, Terminated, stop_on_sigterm
    from pipelines.summary import summary
    from pipelines.verdict import EXIT_RUN_FAILED, problems, report

    parser = argparse.ArgumentParser(
        prog="python -m pipelines.resume",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="the run folder (holds run.json)")
    parser.add_argument(
        "--trust-run-folder",
        action="store_true",
        help="use the endpoints and engine settings run.json records where they differ "
        "from today's (only for a run folder nobody else can write)",
    )
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir.resolve()
    try:
        with stop_on_sigterm(), HeldExecutors() as held:
            cfg, outcome = resume_run(run_dir, held, args.trust_run_folder)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Terminated as e:
        print(f"{e}: {stopped_note(run_dir)}", file=sys.stderr, flush=True)
        return EXIT_TERMINATED
    except RunStopped as e:
        print(f"error: {e}\n{stopped_note(run_dir)}", file=sys.stderr, flush=True)
        return EXIT_STOPPED
    print(summary(outcome), flush=True)
    found = problems(outcome.metrics, cfg.fail_on)
    if found:
        print(report(found, str(run_dir)), file=sys.stderr, flush=True)
        return EXIT_RUN_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
