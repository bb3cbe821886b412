"""The run's console: council-eval's lines and everyone's warnings; the engines'
and frameworks' INFO lines in run.log only (real logging handlers, as Hydra sets
them: a stdout handler and a file handler on the root logger)."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.runtime.console import VLLM_CONFIG_FILE, adopt, log_worker_output, quiet_console


@pytest.fixture
def run_logging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[io.StringIO, Path]]:
    """Root logging as Hydra configures a run: a console on stdout and run.log."""
    console = io.StringIO()
    monkeypatch.setattr(sys, "stdout", console)
    monkeypatch.delenv("VLLM_LOGGING_CONFIG_PATH", raising=False)
    monkeypatch.delenv("VLLM_CONFIGURE_LOGGING", raising=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    screen = logging.StreamHandler(sys.stdout)
    file = logging.FileHandler(tmp_path / "run.log")
    root.handlers = [screen, file]
    root.setLevel(logging.INFO)
    # A library that configured its own console, as vLLM and Ray Data do.
    lib = logging.getLogger("vllm")
    lib_saved = lib.handlers[:], lib.propagate, lib.level
    lib.handlers = [logging.StreamHandler(sys.stdout)]
    lib.propagate = False
    yield console, tmp_path / "run.log"
    file.close()
    root.handlers, root.level = saved
    lib.handlers, lib.propagate, lib.level = lib_saved


def test_third_party_info_goes_to_run_log_only(run_logging: tuple[io.StringIO, Path]) -> None:
    console, run_log = run_logging
    quiet_console(run_log.parent)
    logging.getLogger("vllm.engine").info("Initializing a V1 LLM engine")
    logging.getLogger("ray.data").info("Running Dataset")
    logging.getLogger("pipelines.flow.stream").info("batch 0 landed: 30/30 requests")
    logging.getLogger("mlflow.store").warning("a warning the user must see")
    for h in logging.getLogger().handlers:
        h.flush()
    shown, kept = console.getvalue(), run_log.read_text()
    assert "batch 0 landed" in shown and "a warning the user must see" in shown
    assert "Initializing" not in shown and "Running Dataset" not in shown
    assert all(line in kept for line in ("Initializing", "Running Dataset", "batch 0 landed"))
    # vLLM's engine processes get a logging config that writes to the same run.log.
    config = json.loads((run_log.parent / VLLM_CONFIG_FILE).read_text())
    assert config["handlers"]["file"]["filename"] == str(run_log)


def test_ray_worker_output_is_logged_and_only_alarms_reach_the_console(
    run_logging: tuple[io.StringIO, Path],
) -> None:
    console, run_log = run_logging
    quiet_console(None)
    adopt("ray")
    log_worker_output({"pid": 7, "actor_name": "EngineHost", "lines": ["INFO loading weights"]})
    log_worker_output(
        {
            "pid": 7,
            "actor_name": "EngineHost",
            "lines": ["Traceback (most recent call last):", "  x"],
        }
    )
    for h in logging.getLogger().handlers:
        h.flush()
    shown, kept = console.getvalue(), run_log.read_text()
    assert "loading weights" not in shown and "loading weights" in kept
    assert "(EngineHost pid=7) Traceback (most recent call last):\n  x" in shown


def test_a_users_own_vllm_logging_config_wins(
    run_logging: tuple[io.StringIO, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VLLM_LOGGING_CONFIG_PATH", str(tmp_path / "mine.json"))
    quiet_console(tmp_path)
    assert not (tmp_path / VLLM_CONFIG_FILE).exists()
