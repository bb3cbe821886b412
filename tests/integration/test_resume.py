"""Stop a run mid-way (kill -9, or SIGTERM as a pod eviction sends), then
``pipelines.resume`` it: real engine, Ray, NATS, MLflow.

One engine at a time: the in-process reference is released before the runs
(each a subprocess with its own engine) start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest
from mlflow import MlflowClient

from pipelines import PROJECT_ROOT
from pipelines.config import ExecutorConfig, compose_config
from pipelines.executors.local import LocalExecutor
from pipelines.parts import part_files
from pipelines.pipeline import run_pipeline
from pipelines.sinks.nats_server import embedded_server
from pipelines.status import main as status_main
from tests.nats_helpers import stream_contents
from tests.run_helpers import resume

COUNCIL = ["role=data", "limit=2", "max_tokens=32", "batch_size=2", "embeddings=false"]
COUNCIL += ["engine.batches_in_flight=1"]
"""6 requests in 3 batches, one at a time in the engine (held together, they finish
within milliseconds): a stop after the first part leaves work to resume."""
KEY = ["task_id", "agent_id"]


@pytest.fixture(scope="module")
def reference(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The uninterrupted run's proposals (same seed, same batches), in process."""
    cfg = compose_config([*COUNCIL, "executor=local", "sink=none", "tracking=none"])
    with LocalExecutor(ExecutorConfig(name="local")) as local:
        results = run_pipeline(cfg, tmp_path_factory.mktemp("reference"), executor=local).results
    return results[[*KEY, "proposal"]]


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of the test's own: it outlives the killed runs."""
    with embedded_server(tmp_path_factory.mktemp("nats")) as url:
        yield url


def alive(pids: list[psutil.Process]) -> list[str]:
    out = []
    for p in pids:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {p.name()}")
        except psutil.NoSuchProcess:
            continue
    return out


def run_messages(url: str, stream: str, run_id: str) -> list[tuple[str, dict]]:
    return [(s, p) for s, p in stream_contents(url, stream) if p["run_id"] == run_id]


def engine_cores(driver: int) -> list[psutil.Process]:
    """The vLLM engine core processes under ``driver`` (in-process, or in a Ray actor)."""
    found = []
    for p in psutil.Process(driver).children(recursive=True):
        try:
            if "EngineCore" in " ".join(p.cmdline()) or p.name().startswith("VLLM::EngineC"):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.parametrize(
    ("executor", "stop"),
    [
        ("ray", "kill-9"),
        ("local", "kill-9"),
        ("ray", "sigterm"),
        ("local", "engine-kill"),
        ("ray", "engine-kill"),
    ],
)
def test_a_stopped_run_resumes_to_the_uninterrupted_results(
    executor: str,
    stop: str,
    reference: pd.DataFrame,
    nats_url: str,
    tmp_path: Path,
    capsys,
) -> None:
    out, stream = tmp_path / "run", "COUNCIL"  # one stream holds agent.response.> on a server
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "NATS_URL": nats_url, "MLFLOW_TRACKING_URI": mlflow_uri}
    cmd = [sys.executable, "-m", "pipelines.run", f"hydra.run.dir={out}", *COUNCIL]
    stderr = (tmp_path / "stderr").open("w")
    driver = subprocess.Popen(
        [*cmd, f"executor={executor}"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    deadline = time.monotonic() + 400
    while not part_files(out):
        assert driver.poll() is None, "the run ended before its first part"
        assert time.monotonic() < deadline, "no part within 400 s"
        time.sleep(0.05)
    family = psutil.Process(driver.pid).children(recursive=True)
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    # Live: the first batch's agent messages are in the stream, and status answers.
    deadline = time.monotonic() + 30
    while not run_messages(nats_url, stream, run_id):
        assert time.monotonic() < deadline, "no agent message of the run in the stream"
        time.sleep(0.1)
    capsys.readouterr()
    assert status_main([run_id, "--url", nats_url]) == 0
    live = capsys.readouterr().out.splitlines()
    assert len(live) == 2 + 1 and "deliberations" in live[-1]
    if stop == "engine-kill":  # the engine dies under the run (OOM killer, a crash)
        (core,) = engine_cores(driver.pid)
        core.kill()
    else:
        os.kill(driver.pid, signal.SIGKILL if stop == "kill-9" else signal.SIGTERM)
    code = driver.wait(timeout=400)
    said = (tmp_path / "stderr").read_text()
    before = len(part_files(out))
    if (executor, stop) == ("ray", "engine-kill"):
        # Ray restarts the engine host, which retries the batches it held: the
        # run completes by itself, each row once, no error row.
        assert code == 0, said[-3000:]
        assert json.loads((out / "metrics.json").read_text())["engine_loads"] == 2
    else:
        assert 1 <= before < 3, f"{before} parts at the kill: the kill was not mid-run"
    if stop == "sigterm":
        # A clean stop: exit 143, what was kept and how to finish, no traceback.
        assert code == 143, said[-3000:]
        assert f"python -m pipelines.resume {out}" in said
        assert "Traceback" not in said, said[-3000:]
        assert not (out / "procs.json").exists()  # nothing left for a resume to reap
    elif stop == "kill-9":
        assert code == -signal.SIGKILL
    elif executor == "local":
        # A dead engine stops the run (never N error rows), saying why and what next.
        assert code == 4, said[-3000:]
        assert "the vLLM engine failed" in said
        assert f"python -m pipelines.resume {out}" in said
        assert "Traceback" not in said, said[-3000:]

    # Nothing the run started outlives it by more than a short grace.
    deadline = time.monotonic() + 15
    while alive(family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive(family) == []

    if code != 0:
        resume(out, env)

    results = pd.read_parquet(out / "results.parquet")
    assert results[[*KEY, "proposal"]].to_dict("records") == reference.to_dict("records")
    assert (results["run_id"] == run_id).all()
    assert results["error"].isna().all()
    metrics = json.loads((out / "metrics.json").read_text())
    if code != 0:
        assert metrics["rows_reused"] == 2 * before
        assert metrics["rows_generated"] == 6 - 2 * before
    got = run_messages(nats_url, stream, run_id)
    subjects = Counter(s.split(".")[0] for s, _ in got)
    assert subjects == {"agent": 6, "deliberation": 2}
    ids = [(p["task_id"], p.get("agent_id")) for _, p in got]
    assert len(ids) == len(set(ids))
    assert {p["status"] for s, p in got if s.startswith("deliberation.")} == {"COMPLETED"}
    client = MlflowClient(tracking_uri=mlflow_uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`council.run_id` = '{run_id}'",
    )
    assert len(runs) == 1

    capsys.readouterr()
    assert status_main([run_id, "--url", nats_url]) == 0
    after = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in after[:-1]] == ["COMPLETED", "COMPLETED"]
