"""Clusters as users start them: ``ray start`` and ``dask scheduler`` / ``dask worker``.

Each node is its engine's own CLI in a process group of its own, on free
loopback ports, stopped by that group's pid (never ``ray stop``, which stops
every Ray on the host). Ray resolves a node address of 127.0.0.1 to the
host's routable address for a cluster of several nodes (its single-machine
mode refuses a second node), so these nodes advertise that address; the
head's token keeps them to this test.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from pipelines import PROJECT_ROOT
from pipelines.runtime.procs import free_port, port_open

BIN = Path(sys.executable).parent
RAY_FAST_HEALTH = {
    # A lost node is declared dead after ~5 s of failed checks (default ~15 s);
    # tighter, a node still starting on two busy cores was declared dead too.
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "5",
}


@dataclass
class Node:
    """One CLI process (``ray start --block``, ``dask worker``) and its group."""

    name: str
    proc: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole node: the CLI, its group and every descendant."""
        kill_tree(self.proc)


def kill_tree(proc: subprocess.Popen) -> None:
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in tree:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(tree, timeout=10)
    proc.wait(timeout=10)


def node_env(**extra: str) -> dict[str, str]:
    """A node's environment: this one, no Ray settings of the caller's, and this
    virtual environment first on PATH, as a node's image has it (a job's
    ``python`` is the one the node's PATH names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra}


def start(name: str, cmd: Sequence[str], folder: Path, env: Mapping[str, str]) -> Node:
    log = folder / f"{name}.log"
    proc = subprocess.Popen(
        list(cmd),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
        cwd=folder,
    )
    return Node(name, proc, log)


def wait_for(what: str, ready: object, nodes: Sequence[Node], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():  # type: ignore[operator]
        for node in nodes:
            assert node.proc.poll() is None, f"{node.name} exited:\n{node.text()[-3000:]}"
        assert time.monotonic() < deadline, f"{what} not ready in {timeout_s} s"
        time.sleep(0.3)


@dataclass
class RayCluster:
    """A head (no CPUs: only the driver and Ray's own processes) and worker nodes."""

    gcs: str
    dashboard: str
    token: str
    token_file: Path
    head: Node
    workers: list[Node] = field(default_factory=list)

    def driver_env(self, **extra: str) -> dict[str, str]:
        """A driver's environment as Ray's docs give it: token mode and the token file."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        return {
            **env,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_file),
            "RAY_ADDRESS": self.gcs,
            **extra,
        }

    def state(self, what: str, **filters: str) -> list[dict]:
        """Ray's state API (``/api/v0/<what>`` on the dashboard), with the token."""
        params: dict[str, str | list[str]] = {"detail": "1", "limit": "1000"}
        if filters:
            params["filter_keys"] = list(filters)
            params["filter_predicates"] = ["="] * len(filters)
            params["filter_values"] = list(filters.values())
        reply = httpx.get(
            f"{self.dashboard}/api/v0/{what}",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        reply.raise_for_status()
        return reply.json()["data"]["result"]["result"]

    def nodes(self) -> dict[str, dict]:
        return {n["node_id"]: n for n in self.state("nodes")}


def ray_node_count(cluster: RayCluster) -> int:
    try:
        return sum(n["state"] == "ALIVE" for n in cluster.state("nodes"))
    except httpx.HTTPError:
        return 0


@contextlib.contextmanager
def ray_cluster(folder: Path, worker_cpus: Sequence[int]) -> Iterator[RayCluster]:
    """``ray start --head`` with token auth and a dashboard (the job API), then one
    ``ray start --address`` per entry of ``worker_cpus``."""
    token = secrets.token_hex(32)
    token_file = folder / "auth_token"
    token_file.write_text(token)
    # Unix socket paths must stay short: a temp dir of Ray's own under /tmp.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = node_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file), **RAY_FAST_HEALTH)
    port, dash = free_port(), free_port()
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats", "--block"]
    head = start(
        "ray-head",
        [
            str(BIN / "ray"),
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=0",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--temp-dir={temp_dir}",
            *common,
        ],
        folder,
        env,
    )
    cluster = RayCluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", token, token_file, head)
    nodes = [head]
    try:
        wait_for("ray head", lambda: ray_node_count(cluster) == 1, nodes)
        for i, cpus in enumerate(worker_cpus):
            cmd = [str(BIN / "ray"), "start", f"--address=127.0.0.1:{port}", f"--num-cpus={cpus}"]
            worker = start(f"ray-worker-{i}", [*cmd, *common], folder, env)
            cluster.workers.append(worker)
            nodes.append(worker)
            # One node at a time: two raylets starting together on two cores time out.
            wait_for("ray worker", lambda: ray_node_count(cluster) == len(nodes), nodes)
        yield cluster
    finally:
        for node in reversed(nodes):
            node.kill()
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", temp_dir], check=False)


@dataclass
class DaskCluster:
    address: str
    scheduler: Node
    workers: dict[str, Node] = field(default_factory=dict)


def dask_workers(address: str) -> int:
    from distributed import Client

    try:
        with Client(address, timeout=5) as client:
            return len(client.scheduler_info()["workers"])
    except OSError:
        return 0


@contextlib.contextmanager
def dask_cluster(folder: Path, workers: Mapping[str, Sequence[str]]) -> Iterator[DaskCluster]:
    """``dask scheduler`` and one stock ``dask worker`` (nanny, daemonic worker
    process) per entry of ``workers`` (name → extra CLI arguments)."""
    env = node_env()
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = start(
        "dask-scheduler",
        [str(BIN / "dask"), "scheduler", "--host=127.0.0.1", f"--port={port}", "--no-dashboard"],
        folder,
        env,
    )
    cluster = DaskCluster(address, scheduler)
    nodes = [scheduler]
    try:
        wait_for("dask scheduler", lambda: port_open(port), nodes)
        for name, extra in workers.items():
            cmd = [str(BIN / "dask"), "worker", address, "--nworkers=1", "--nthreads=1"]
            cmd += ["--host=127.0.0.1", "--no-dashboard", f"--name={name}", *extra]
            cluster.workers[name] = start(f"dask-{name}", cmd, folder, env)
            nodes.append(cluster.workers[name])
        wait_for("dask workers", lambda: dask_workers(address) == len(workers), nodes)
        yield cluster
    finally:
        for node in reversed(nodes):
            node.kill()


def run_driver(
    out: Path, overrides: Sequence[str], env: Mapping[str, str] | None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m pipelines.run`` as a user runs it (``env``: None for this process's)."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.run", f"hydra.run.dir={out}", *overrides],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        env=dict(env if env is not None else os.environ),
    )


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
