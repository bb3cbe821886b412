"""The run's console: council-eval's lines and everyone's warnings; the engines'
and frameworks' INFO lines in run.log only (real logging handlers, as Hydra sets
them: a stdout handler and a file handler on the root logger)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import PROJECT_ROOT
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


FULL_DISK = """
import logging, resource, sys
from pathlib import Path
from pipelines import RunStopped
from pipelines.driver.resume import log_to

try:
    with log_to(Path(sys.argv[1])):
        logging.getLogger("pipelines.run").info("x" * 1000)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))  # the disk is full now
        logging.getLogger("pipelines.run").info("y" * 5000)
        raise RunStopped("cannot keep batch 2's messages")
except RunStopped as e:
    print(f"stopped: {e}")
"""


def test_a_full_disk_lets_the_runs_own_error_through_the_run_log(tmp_path: Path) -> None:
    """A resume logs to run.log; when the disk fills (a real file-size limit, EFBIG)
    the log's last flush fails too, and the error that stopped the run must still be
    the one that comes out (it says how to finish), not the log's."""
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "stopped: cannot keep batch 2's messages"
    assert (tmp_path / "run.log").stat().st_size <= 2048
