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
SIGKILL after a grace). A resume stops what the file names, and only that,
before it starts (:func:`reap_recorded`), in case the sidecar died too.
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

from pipelines.spec.exits import EXIT_OK
from pipelines.spec.run_folder import PROCS_FILE

log = logging.getLogger(__name__)

POLL_S = 0.5
GRACE_S = 5.0
GOODBYE = b"done\n"


@contextmanager
def reaper(run_dir: Path) -> Iterator[None]:
    """Watch this process from a sidecar for as long as the block runs."""
    run_dir.mkdir(parents=True, exist_ok=True)
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


def stop_processes(procs: dict[int, float]) -> list[str]:
    """SIGTERM, then SIGKILL, each process still alive that started at the
    recorded time (a reused pid is left alone). Returns what was stopped."""
    import psutil

    alive = []
    for pid, started in procs.items():
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - started) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
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


def reap_recorded(run_dir: Path) -> list[str]:
    """Stop what an earlier, killed session of the run left (from ``procs.json``)."""
    path = run_dir / PROCS_FILE
    if not path.is_file():
        return []
    procs = {int(pid): started for pid, started in json.loads(path.read_text()).items()}
    stopped = stop_processes(procs)
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
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(seen))
            tmp.replace(path)
    stopped = stop_processes(seen)
    print(f"reaper: the run died; stopped {len(stopped)} process(es): {stopped}", file=sys.stderr)
    path.unlink(missing_ok=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(watch(int(sys.argv[1]), Path(sys.argv[2])))
