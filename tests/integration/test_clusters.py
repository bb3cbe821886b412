"""The clusters users already run, started with the engines' own CLIs.

A Ray head (``ray start --head``, token auth on, no CPUs of its own) with two
worker nodes, and a Dask scheduler with two stock ``dask worker`` processes
(nanny, daemonic worker), each on loopback ports of its own and stopped by its
pid. The pipeline joins them by address, or is submitted to the head's job API;
its proposals must equal an in-process run's with the same seed, also when a
node is killed mid-run. One engine at a time, except the two Dask workers,
which each load one (a stock cluster gives each worker its own).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from pipelines import PROJECT_ROOT
from pipelines.flow.parts import part_files, read_parts
from tests.cluster_helpers import (
    DaskCluster,
    Node,
    RayCluster,
    dask_cluster,
    ray_cluster,
    run_driver,
)

COUNCIL = ["role=qa", "limit=2", "max_tokens=24", "batch_size=2", "embeddings=false"]
COUNCIL += ["sink=none", "tracking=none", "engine.batches_in_flight=1"]
"""6 requests in 3 batches, one at a time in each engine: a node killed after the
first part lands leaves batches to retry."""
KEY = ["task_id", "agent_id"]
SAME = [*KEY, "seed", "proposal", "completion_tokens"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> pd.DataFrame:
    """The same council in process (no cluster), the table every cluster must give."""
    out = tmp_path_factory.mktemp("local")
    done = run_driver(out, [*COUNCIL, "executor=local", "engine.inline_core=true"], env=None)
    assert done.returncode == 0, done.stderr[-3000:]
    return pd.read_parquet(out / "results.parquet")


def equal_tables(run: Path, reference: pd.DataFrame) -> None:
    got = pd.read_parquet(run / "results.parquet")
    assert got[SAME].to_dict("records") == reference[SAME].to_dict("records")


def rows_once(run: Path) -> None:
    """Every (task, agent) in exactly one part's rows: nothing generated twice lands twice."""
    counts = Counter(map(tuple, read_parts(run)[KEY].to_numpy().tolist()))
    assert set(counts.values()) == {1}, counts


def wait_for_first_part(proc: subprocess.Popen, run: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not part_files(run):
        assert proc.poll() is None, "the run ended before its first part"
        assert time.monotonic() < deadline, f"no part within {timeout_s} s"
        time.sleep(0.05)


def on_node(node: Node, name: str) -> bool:
    """Whether a process named ``name*`` runs in ``node``'s process tree."""
    try:
        tree = psutil.Process(node.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    return any(_name(p).startswith(name) for p in tree)


def _name(p: psutil.Process) -> str:
    try:
        return p.name()
    except psutil.Error:
        return ""


# --- Ray -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with ray_cluster(tmp_path_factory.mktemp("ray"), worker_cpus=[1, 1]) as cluster:
        yield cluster


@pytest.mark.parametrize(
    ("case", "env", "says"),
    [
        ("no token mode", {"RAY_AUTH_MODE": "disabled"}, "token auth is on there"),
        ("wrong token", {"RAY_AUTH_TOKEN": "0" * 64}, "token refused"),
        ("ray client", {"RAY_ADDRESS": "ray://127.0.0.1:10001"}, "python -m pipelines.submit"),
    ],
)
def test_a_driver_the_head_refuses_stops_in_seconds_with_one_line_naming_the_fix(
    ray_head: RayCluster, tmp_path: Path, case: str, env: dict[str, str], says: str
) -> None:
    start = time.monotonic()
    done = run_driver(tmp_path / "run", COUNCIL, ray_head.driver_env(**env), timeout=120)
    elapsed = time.monotonic() - start

    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    assert says in lines[0]
    if case != "ray client":
        assert "RAY_AUTH_MODE=token" in lines[0] and "RAY_AUTH_TOKEN" in lines[0]
    assert elapsed < 30, f"{case}: {elapsed:.1f} s"  # ray.init's retries took 20 s and more
    assert not (tmp_path / "run" / "results").exists()  # nothing ran


def test_two_nodes_engine_host_on_a_worker_node_and_retried_on_the_other_when_its_node_dies(
    ray_head: RayCluster, tmp_path: Path, reference: pd.DataFrame
) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.run", f"hydra.run.dir={run}", *COUNCIL],
        cwd=PROJECT_ROOT,
        env=ray_head.driver_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_first_part(proc, run)
        (hosting,) = [n for n in ray_head.workers if on_node(n, "ray::EngineHost")]
        hosting.kill()  # the node, whole: its raylet, its workers, the engine host
        said, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, said[-4000:]

    # Ray's state API: the driver on the head, the engine host first on the node
    # that was killed, then restarted once on the other worker node.
    nodes = ray_head.nodes()
    (head,) = [i for i, n in nodes.items() if n["is_head_node"]]
    driver_node = re.search(r"ray: driver on node (\w+)", said)
    first_node = re.search(r"ray: engine host 0 on node (\w+)", said)
    assert driver_node and head.startswith(driver_node[1])
    assert first_node and not head.startswith(first_node[1])
    assert nodes[next(i for i in nodes if i.startswith(first_node[1]))]["state"] == "DEAD"
    job_hosts = [a for a in ray_head.state("actors", class_name="EngineHost")]
    (host,) = [a for a in job_hosts if a["node_id"] != head and int(a["num_restarts"]) == 1]
    assert nodes[host["node_id"]]["state"] == "ALIVE"
    assert not host["node_id"].startswith(first_node[1])

    rows_once(run)
    equal_tables(run, reference)


def test_submit_runs_the_driver_on_the_cluster_and_exits_with_its_status(
    ray_head: RayCluster, tmp_path: Path, reference: pd.DataFrame, model_dir: Path
) -> None:
    env = ray_head.driver_env()
    env.pop("RAY_ADDRESS")
    submit = [sys.executable, "-m", "pipelines.submit", "--address", ray_head.dashboard]
    submit += ["--runs-dir", str(tmp_path / "runs")]
    model = f"model.path={model_dir.resolve()}"  # the cluster's own copy of the model

    done = subprocess.run(
        [*submit, *COUNCIL, model],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
        env=env,
    )

    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert "batch 0 landed" in done.stdout  # the driver's log, streamed
    folder = re.search(r"run folder on the cluster \(driver node \w+\): (\S+)", done.stderr)
    assert folder, done.stderr
    run = Path(folder[1])
    assert run.parent == tmp_path / "runs"
    equal_tables(run, reference)

    refused = subprocess.run(
        [*submit, *COUNCIL, model, "agents=0"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
        env=env,
    )
    assert refused.returncode == 2, refused.stderr[-3000:]  # the driver's own exit status
    assert "agents must be >= 1" in refused.stdout

    without_token = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    unknown = subprocess.run(
        [*submit, "role=qa"], capture_output=True, text=True, timeout=120, env=without_token
    )
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: ray job API") and "RAY_AUTH_MODE=token" in (
        unknown.stderr
    )


def test_a_local_ray_listens_on_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.config import ExecutorConfig
    from pipelines.executors.ray import RayExecutor

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # the test clusters
    with RayExecutor(ExecutorConfig(name="ray")):
        tree = psutil.Process().children(recursive=True)
        ours = [psutil.Process(), *(p for p in tree if p.pid not in before)]
        listening = set()
        for p in ours:
            try:
                conns = p.net_connections(kind="inet")
            except psutil.Error:
                continue
            listening |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
    assert listening, "no Ray process listens at all"
    assert listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening


# --- Dask ------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_stock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    workers = {"gpu-worker": ["--resources", "GPU=1"], "cpu-worker": []}
    with dask_cluster(tmp_path_factory.mktemp("dask"), workers) as cluster:
        yield cluster


def dask_env(cluster: DaskCluster) -> dict[str, str]:
    import os

    return {**os.environ, "DASK_SCHEDULER_ADDRESS": cluster.address}


ENGINE_LOADED = "non-default args"
"""What vLLM logs as it loads an engine (in the worker's own log)."""


def test_stock_dask_workers_run_the_engine_on_the_worker_with_the_gpu_resource(
    dask_stock: DaskCluster, tmp_path: Path, reference: pd.DataFrame
) -> None:
    done = run_driver(tmp_path / "run", [*COUNCIL, "executor=dask"], dask_env(dask_stock))

    assert done.returncode == 0, done.stderr[-3000:]
    equal_tables(tmp_path / "run", reference)
    # The cluster has a GPU resource: each engine asks for one, and lands there.
    assert ENGINE_LOADED in dask_stock.workers["gpu-worker"].text()
    assert ENGINE_LOADED not in dask_stock.workers["cpu-worker"].text()
    assert "daemonic processes are not allowed" not in dask_stock.workers["gpu-worker"].text()


def test_a_dask_worker_killed_mid_run_hands_its_batches_to_the_other(
    dask_stock: DaskCluster, tmp_path: Path, reference: pd.DataFrame
) -> None:
    from distributed import Client

    run = tmp_path / "run"
    # No GPU asked: both workers take batches, one batch each at a time.
    overrides = [*COUNCIL, "executor=dask", "engine.num_gpus=0", "batch_size=1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.run", f"hydra.run.dir={run}", *overrides],
        cwd=PROJECT_ROOT,
        env=dask_env(dask_stock),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_first_part(proc, run)
        with Client(dask_stock.address, timeout=10) as client:
            names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
            busy = [names[a] for a, keys in client.processing().items() if keys]
        assert busy, "no worker holds a batch after the first part: nothing to hand over"
        victim = busy[0]
        dask_stock.workers[victim].kill()
        said, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, said[-4000:]
    assert len(part_files(run)) == 6
    rows_once(run)
    equal_tables(run, reference)
