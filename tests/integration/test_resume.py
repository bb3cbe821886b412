"""Stop a run mid-way (SIGTERM as a pod eviction sends, kill -9, its engine
killed, its disk full), then ``pipelines.resume`` it, which is stopped again,
then resumed to the end: real engine, Ray, NATS, MLflow.

One engine at a time: the in-process reference is released before the runs
(each a subprocess with its own engine) start.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
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
from pipelines.driver.pipeline import run_pipeline
from pipelines.executors.local import LocalExecutor
from pipelines.flow.parts import part_files
from pipelines.sinks.nats_server import embedded_server
from pipelines.status import main as status_main
from tests.nats_helpers import stream_contents
from tests.run_helpers import resume

COUNCIL = ["role=data", "limit=2", "max_tokens=32", "batch_size=2", "embeddings=false"]
COUNCIL += ["engine.batches_in_flight=1"]
"""6 requests in 3 batches, one at a time in the engine (held together, they finish
within milliseconds): a stop after the first part leaves work to resume."""
KEY = ["task_id", "agent_id", "round"]
ROUNDS = [1, 2]
"""Council sizes of the chains: one round, or a deliberation of two (each round-2
request made from its task's round-1 answers, as they land)."""


def rounds(n: int) -> list[str]:
    return [f"deliberation.rounds={n}"]


@pytest.fixture(scope="module")
def reference(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, pd.DataFrame]:
    """The uninterrupted runs' proposals (same seed, same batches), in process, by rounds."""
    out = {}
    with LocalExecutor(ExecutorConfig(name="local")) as local:
        for n in ROUNDS:
            local_only = ["executor=local", "sink=none", "tracking=none"]
            cfg = compose_config([*COUNCIL, *rounds(n), *local_only])
            folder = tmp_path_factory.mktemp("reference")
            out[n] = run_pipeline(cfg, folder, executor=local).results[[*KEY, "proposal"]]
    return out


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


def engine_processes(driver: int, name: str) -> list[psutil.Process]:
    """The processes under ``driver`` whose name or command line holds ``name``."""
    found = []
    for p in psutil.Process(driver).children(recursive=True):
        try:
            if name in p.name() or name in " ".join(p.cmdline()):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def wait_for_part(proc: subprocess.Popen, out: Path, more_than: int) -> int:
    """Wait until the run holds more than ``more_than`` parts; returns how many."""
    deadline = time.monotonic() + 400
    while len(part_files(out)) <= more_than:
        assert proc.poll() is None, "the run ended before its next part"
        assert time.monotonic() < deadline, "no new part within 400 s"
        time.sleep(0.02)
    return len(part_files(out))


def stop_run(stop: str, proc: subprocess.Popen) -> None:
    """Stop the running driver ``proc`` the way ``stop`` names."""
    if stop == "engine-kill":  # the engine dies under the run (OOM killer, a crash)
        cores = engine_processes(proc.pid, "EngineCore")
        hosts = engine_processes(proc.pid, "ray::EngineHost")
        # On a Ray CPU engine host the engine core runs inline: the host is the engine.
        (engine,) = hosts if hosts else cores
        assert not (hosts and cores), "a Ray CPU engine host spawned an engine core"
        engine.kill()
    elif stop == "full-disk":  # the next part write fails for real (EFBIG, as ENOSPC would)
        psutil.Process(proc.pid).rlimit(resource.RLIMIT_FSIZE, (2048, 2048))
    else:
        os.kill(proc.pid, signal.SIGKILL if stop == "kill-9" else signal.SIGTERM)


def check_stopped(stop: str, code: int, said: str, out: Path) -> None:
    """What each stop must leave: its exit status, and for a clean stop, what was
    kept and how to finish, without a traceback."""
    if stop == "kill-9":
        assert code == -signal.SIGKILL
        return
    assert code == {"sigterm": 143, "engine-kill": 4, "full-disk": 4}[stop], said[-3000:]
    assert f"python -m pipelines.resume {out}" in said
    if stop != "full-disk":  # there Python's logging reports each log line it cannot write
        assert "Traceback" not in said, said[-3000:]
    if stop == "sigterm":
        assert not (out / "procs.json").exists()  # nothing left for a resume to reap
    if stop == "engine-kill":  # a dead engine stops the run, never N error rows
        assert "the vLLM engine failed" in said
    if stop == "full-disk":
        # The batch's messages are kept first, then its part: either write may hit it.
        assert re.search(r"cannot (keep|write) batch \d+", said) and "File too large" in said, said[
            -3000:
        ]
        assert not list((out / "results").glob(".*.tmp"))  # nothing torn


@pytest.mark.parametrize(
    ("executor", "stops", "n_rounds"),
    [
        ("ray", ["sigterm", "kill-9"], 1),
        ("local", ["engine-kill", "full-disk"], 2),
        ("ray", ["engine-kill"], 1),
    ],
    ids=[
        "ray-sigterm-then-kill-9",
        "local-deliberation-engine-kill-then-full-disk",
        "ray-engine-kill",
    ],
)
def test_a_stopped_run_resumes_to_the_uninterrupted_results(
    executor: str,
    stops: list[str],
    n_rounds: int,
    reference: dict[int, pd.DataFrame],
    nats_url: str,
    tmp_path: Path,
    capsys,
) -> None:
    """The run is stopped after its first part; the resume that follows is stopped
    again after its own first part (a second fault mid-recovery); a last resume
    finishes. Each session starts where the parts say."""
    out, stream = tmp_path / "run", "COUNCIL"  # one stream holds agent.response.> on a server
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "NATS_URL": nats_url, "MLFLOW_TRACKING_URI": mlflow_uri}
    run = [sys.executable, "-m", "pipelines.run", f"hydra.run.dir={out}", *COUNCIL]
    run += rounds(n_rounds)
    requests = 6 * n_rounds
    total_parts = 3 if n_rounds == 1 else 3 + 2 * 2  # each task's round 2: a batch of 2, then 1
    commands = [
        [*run, f"executor={executor}"],
        *([[sys.executable, "-m", "pipelines.resume", str(out)]] * (len(stops) - 1)),
    ]
    code, parts = 0, 0
    for session, (stop, cmd) in enumerate(zip(stops, commands, strict=True)):
        # stderr through a pipe, as a terminal or a pod's log is: a file here would
        # itself be refused by the full-disk stop's file-size limit.
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(proc.stderr,), daemon=True)
        reader.start()
        parts = wait_for_part(proc, out, parts)
        family = psutil.Process(proc.pid).children(recursive=True)
        if session == 0:
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
        stop_run(stop, proc)
        code = proc.wait(timeout=400)
        reader.join(timeout=10)  # a kill -9 leaves children holding the pipe
        said = "".join(lines)
        parts = len(part_files(out))
        if (executor, stop) == ("ray", "engine-kill"):
            # Ray restarts the engine host, which retries the batches it held: the
            # run completes by itself, each row once, no error row.
            assert code == 0, said[-3000:]
            assert json.loads((out / "metrics.json").read_text())["engine_loads"] == 2
        else:
            assert session + 1 <= parts < total_parts, f"{parts} parts at the stop: not mid-run"
            check_stopped(stop, code, said, out)
        # Nothing the session started outlives it by more than a short grace.
        deadline = time.monotonic() + 15
        while alive(family) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive(family) == []

    held = sum(len(pd.read_parquet(p)) for p in part_files(out))
    if code != 0:
        resume(out, env)

    results = pd.read_parquet(out / "results.parquet")
    expected = reference[n_rounds].to_dict("records")
    assert results[[*KEY, "proposal"]].to_dict("records") == expected
    assert (results["run_id"] == run_id).all()
    assert results["error"].isna().all()
    metrics = json.loads((out / "metrics.json").read_text())
    if code != 0:
        assert metrics["rows_reused"] == held
        assert metrics["rows_generated"] == requests - held
    got = run_messages(nats_url, stream, run_id)
    subjects = Counter(s.split(".")[0] for s, _ in got)
    assert subjects == {"agent": requests, "deliberation": 2}
    ids = [(p["task_id"], p.get("agent_id"), p.get("round")) for _, p in got]
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
