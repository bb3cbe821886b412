"""Continue a killed run in its folder: its config from run.json (endpoints and engine
settings from today's), its reaper, its lock (the library of ``python -m
pipelines.resume``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from pipelines import RunFolderError
from pipelines.config import DATASET_DIR, NatsSinkConfig, RunConfig
from pipelines.driver.pipeline import RunOutcome
from pipelines.driver.runinfo import read_run_config
from pipelines.executors import HeldExecutors
from pipelines.runtime.durable import RunLogHandler, hold_run_folder
from pipelines.runtime.ids import check_id
from pipelines.spec.run_folder import RUN_INFO_FILE, RUN_LOG_FILE

ENDPOINTS = (
    "sink.url",
    "engine.url",
    "engine.api_key_env",
    "tracking.uri",
    "judge.engine.url",
    "judge.engine.api_key_env",
    "executor.address",
    "cache_dir",
)
"""Where requests, credentials and shared state go: a resume always takes them
from today's config and environment (``NATS_URL``, ``VLLM_URL``,
``MLFLOW_TRACKING_URI``, ``RAY_ADDRESS``, ``DASK_SCHEDULER_ADDRESS``). Whoever
can write a run folder could otherwise make the next resume send
``VLLM_API_KEY`` to their host, join their Ray cluster with ``RAY_AUTH_TOKEN``,
unpickle what their Dask scheduler sends, or answer from their cache."""

ENGINE_SETTINGS = (
    "model.path",
    "engine.env",
    "engine.extra_engine_kwargs",
    "engine.extra_body",
    "judge.engine.extra_body",
)
"""What the engine loads and is handed: taken from today's config too, and a
run.json that records others is refused (the resumed rows would come from
another model or engine) unless ``--trust-run-folder``; so is a ``dataset``
outside the project's ``datasets/`` (the files a resume reads)."""


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
    if outside_datasets(recorded.dataset):
        differ["dataset"] = recorded.dataset  # tasks read from anywhere the folder names
    if differ and not trust_run_folder:
        listed = "\n".join(f"  {k}: {v!r} (today: {_get(today, k)!r})" for k, v in differ.items())
        raise RunFolderError(
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
        f"executor={recorded.executor.name}",
    ]
    if recorded.model.name in models:
        overrides.append(f"model={models[recorded.model.name]}")
    return compose_config(overrides)


_MISSING = object()


def unlike_today(cfg: RunConfig, today: RunConfig) -> list[str]:
    """The :data:`ENDPOINTS` and :data:`ENGINE_SETTINGS` ``cfg`` sets unlike ``today``."""
    return [
        name
        for name in (*ENDPOINTS, *ENGINE_SETTINGS)
        if _get(cfg, name) is not _MISSING and _get(cfg, name) != _get(today, name)
    ]


def outside_datasets(dataset: str | None) -> bool:
    """``dataset`` names a file outside the project's ``datasets/``."""
    return bool(dataset) and not Path(dataset).resolve().is_relative_to(DATASET_DIR.resolve())


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
    handler = RunLogHandler(run_dir / RUN_LOG_FILE)
    handler.setFormatter(logging.Formatter(fmt))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        # A full disk refuses the last flush; what stopped the run (its own
        # error, say "cannot keep batch N") must be what propagates, not this.
        with suppress(OSError):
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
    from pipelines.driver.pipeline import run_pipeline
    from pipelines.driver.preflight import preflight_run
    from pipelines.runtime.reaper import reap_recorded, reaper

    with hold_run_folder(run_dir):  # before reaping: a live run's engines are its own
        cfg = resumed_config(run_dir, trust_run_folder, today)
        run_id = json.loads((run_dir / RUN_INFO_FILE).read_text()).get("run_id")
        try:
            check_id(run_id, "run_id")  # it reaches NATS subjects and keys
        except ValueError as e:
            raise RunFolderError(f"{run_dir / RUN_INFO_FILE}: {e}") from None
        preflight_run(cfg)
        with log_to(run_dir):
            logging.getLogger("pipelines.resume").info("resuming run %s in %s", run_id, run_dir)
            reap_recorded(run_dir)
            with reaper(run_dir):
                outcome = run_pipeline(cfg, run_dir, executor=held, run_id=run_id)
    return cfg, outcome
