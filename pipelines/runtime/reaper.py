"""Nothing a run starts outlives it: a sidecar that stops the run's processes if
the run is killed.

A run starts processes of its own: a local Ray (GCS, raylet, dashboard and
runtime-env agents, actors), a Dask ``LocalCluster``, an embedded
``nats-server``, vLLM engine cores. A run that ends normally stops them. A
run killed with SIGKILL cannot, so :func:`reaper` starts a sidecar
(``python -m pipelines.runtime.reaper``, in its own session) that watches the run:
every half second it records the run's descendants (pid, start time) in
``<run>/procs.json``; when the run's end of a pipe closes without a goodbye,
the run died, and it stops every recorded process still alive (SIGTERM, then
SIGKILL after a grace). A resume stops what the file names before it starts
(:func:`reap_recorded`), in case the sidecar died too; the file is data someone
else may have written, so only a process of this user that carries the run's
marker (``COUNCIL_EVAL_RUN_DIR``, the folder's real path, in the environment
it started with: every process the run starts inherits it) is stopped.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.runtime.durable import write_json
from pipelines.spec.exits import EXIT_OK
from pipelines.spec.run_folder import PROCS_FILE

if TYPE_CHECKING:
    import psutil

log = logging.getLogger(__name__)

POLL_S = 0.5
GRACE_S = 5.0
GOODBYE = b"done\n"
MARKER_ENV = "COUNCIL_EVAL_RUN_DIR"


@contextmanager
def reaper(run_dir: Path) -> Iterator[None]:
    """Watch this process from a sidecar for as long as the block runs; what
    the run starts meanwhile carries the run's marker."""
    run_dir.mkdir(parents=True, exist_ok=True)
    before = os.environ.get(MARKER_ENV)
    os.environ[MARKER_ENV] = str(run_dir.resolve())
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.runtime.reaper", str(os.getpid()), str(run_dir)],
        stdin=subprocess.PIPE,
        start_new_session=True,  # not stopped with the run's process group
    )
    try:
        yield
    finally:
        try:
            assert proc.stdin is not None
            proc.stdin.write(GOODBYE)
            proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
        if before is None:
            os.environ.pop(MARKER_ENV, None)
        else:
            os.environ[MARKER_ENV] = before


def stop_processes(procs: dict[int, float], marker: str | None = None) -> list[str]:
    """SIGTERM, then SIGKILL, each process still alive that started at the
    recorded time (a reused pid is left alone) and, given a ``marker``, is this
    user's and carries it. Returns what was stopped."""
    import psutil

    alive = []
    for pid, started in procs.items():
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - started) >= 0.01 or p.status() == psutil.STATUS_ZOMBIE:
                continue
            if marker is not None and not _marked(p, marker):
                log.warning("not stopping process %d %s: not this run's", pid, p.name())
                continue
            alive.append(p)
        except psutil.Error:
            continue
    names = []
    for p in alive:
        try:
            names.append(f"{p.pid} {p.name()}")
            p.terminate()
        except psutil.Error:
            continue
    _, left = psutil.wait_procs(alive, timeout=GRACE_S)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            continue
    return names


def _marked(p: psutil.Process, marker: str) -> bool:
    """``p`` is this user's and started with the run's marker."""
    return p.uids().real == os.getuid() and p.environ().get(MARKER_ENV) == marker


def reap_recorded(run_dir: Path) -> list[str]:
    """Stop what an earlier, killed session of the run left (from ``procs.json``):
    the processes it names that are this user's and carry the run's marker."""
    path = run_dir / PROCS_FILE
    if not path.is_file():
        return []
    try:
        recorded = json.loads(path.read_text())
        procs = {int(pid): float(started) for pid, started in recorded.items()}
    except (ValueError, TypeError, AttributeError) as e:
        log.warning("%s is unreadable (%s); nothing reaped from it", path, e)
        procs = {}
    stopped = stop_processes(procs, marker=str(run_dir.resolve()))
    if stopped:
        log.warning("stopped %d process(es) left by an earlier session: %s", len(stopped), stopped)
    path.unlink(missing_ok=True)
    return stopped


def watch(driver_pid: int, run_dir: Path) -> int:
    """The sidecar: record the driver's descendants until it says goodbye or dies."""
    import psutil

    path = run_dir / PROCS_FILE
    seen: dict[int, float] = {}
    me = os.getpid()
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return EXIT_OK
    stdin = sys.stdin.buffer
    while True:
        ready, _, _ = select.select([stdin], [], [], POLL_S)
        if ready:
            line = stdin.readline()
            if line == GOODBYE:
                path.unlink(missing_ok=True)
                return EXIT_OK
            if not line:
                break  # the pipe closed without a goodbye: the driver died
        try:
            children = driver.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        new = False
        for p in children:
            if p.pid != me and p.pid not in seen:
                try:
                    seen[p.pid] = p.create_time()
                    new = True
                except psutil.Error:
                    continue
        if new:
            write_json(path, seen)
    stopped = stop_processes(seen)
    print(f"reaper: the run died; stopped {len(stopped)} process(es): {stopped}", file=sys.stderr)
    path.unlink(missing_ok=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(watch(int(sys.argv[1]), Path(sys.argv[2])))
