"""``pipelines.stopping`` stops the drivers that marked themselves, and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipelines import PROJECT_ROOT
from pipelines.runtime.stopping import DRIVERS_ENV, drivers_dir, own_dir

DRIVER = """
import time
from pipelines.runtime.stopping import stop_on_sigterm
with stop_on_sigterm():
    print("ready", flush=True)
    time.sleep(120)
"""
IMPOSTOR = "import time; print('ready', flush=True); time.sleep(120)"


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "council-eval" / "drivers"
    monkeypatch.setenv(DRIVERS_ENV, str(folder))
    return folder


def spawn(*argv: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, *argv], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def stopping(timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.stopping", "--timeout", "15"],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
    )


def test_only_marked_drivers_are_stopped_not_a_command_line_that_looks_like_one(
    markers: Path, procs: list[subprocess.Popen[str]]
) -> None:
    # Another program whose command line holds `-m pipelines.run` (a pattern
    # match on command lines took it for a driver), and a real, marked driver.
    impostor = spawn("-c", IMPOSTOR, "-m", "pipelines.run")
    driver = spawn("-c", DRIVER, "-m", "pipelines.run")
    procs += [impostor, driver]
    (marker,) = markers.glob("*.json")
    assert json.loads(marker.read_text())["pid"] == driver.pid

    done = stopping()

    assert done.returncode == 0, done.stderr
    assert f"[{driver.pid}]" in done.stdout
    assert driver.wait(timeout=10) != 0  # SIGTERM raised Terminated in it
    assert impostor.poll() is None, "a process that only looks like a driver was signalled"
    assert not list(markers.glob("*.json")), "the stopped driver's marker stays behind"


def test_a_marker_whose_pid_now_names_another_process_is_dropped_unsignalled(
    markers: Path, procs: list[subprocess.Popen[str]]
) -> None:
    other = spawn("-c", IMPOSTOR)
    procs.append(other)
    assert own_dir(markers)
    started = psutil.Process(other.pid).create_time()
    # A driver killed with SIGKILL left its marker; the system gave its pid to `other`.
    stale = markers / f"{other.pid}.json"
    stale.write_text(json.dumps({"pid": other.pid, "started": started - 100.0}))

    done = stopping()

    assert "sent SIGTERM to 0 driver(s)" in done.stdout, done.stdout
    time.sleep(0.5)
    assert other.poll() is None
    assert not stale.exists()


def test_a_marker_folder_someone_else_can_write_is_not_trusted(
    markers: Path, procs: list[subprocess.Popen[str]]
) -> None:
    markers.mkdir(parents=True)
    markers.chmod(0o777)  # a trap in a shared temp folder
    driver = spawn("-c", DRIVER)
    procs.append(driver)
    assert not list(markers.glob("*.json"))  # it left no marker there ...

    done = stopping()

    assert "sent SIGTERM to 0 driver(s)" in done.stdout  # ... and nothing reads one there
    assert driver.poll() is None


def test_the_default_marker_folder_is_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DRIVERS_ENV, raising=False)
    assert f"council-eval-{os.getuid()}" in str(drivers_dir())
