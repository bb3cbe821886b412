"""End to end on real components: vLLM CPU engine, embedded model, local Ray.

One engine at a time: the Ray runs come first (their engine lives in a Ray
actor and dies with the run), then the tests that share one in-process engine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from pipelines import PROJECT_ROOT
from pipelines.config import CouncilSpec, ExecutorConfig, RunConfig, compose_config
from pipelines.driver.night import run_night
from pipelines.driver.pipeline import RESULT_COLUMNS, load_run_tasks, run_pipeline
from pipelines.driver.verdict import problems
from pipelines.executors.local import LocalExecutor
from pipelines.flow.council import batches, expand
from pipelines.flow.parts import part_files, read_parts
from pipelines.flow.stage import OUTPUT_COLUMNS
from pipelines.flow.stream import generate_stage
from pipelines.flow.tasks import Task
from pipelines.replay import main as replay_main
from pipelines.runtime.procs import free_port, live_descendants
from pipelines.sinks.nats_server import embedded_server
from pipelines.spec.metrics import QUALITY_METRICS, TRUTH_METRICS
from pipelines.spec.protocol import ORDERS
from pipelines.track import main as track_main
from pipelines.trackers.mlflow_rows import fluent_uri
from tests.mlflow_helpers import mlflow_server
from tests.nats_helpers import stream_contents

TINY = ["limit=2", "max_tokens=16"]


CONSOLE_NOISE = [
    "Initializing a V1 LLM engine",
    "Starting execution of Dataset",
    "logging_progress",
    "Running Dataset",
    "Evaluating",
]
"""vLLM's INFO lines, Ray Data's progress blocks, MLflow's bar: run.log's, not the console's."""


def run_cli(out: Path, *overrides: str) -> pd.DataFrame:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.run", f"hydra.run.dir={out}", *overrides],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "keyword_relevance" in proc.stdout
    console = proc.stdout + proc.stderr
    assert [n for n in CONSOLE_NOISE if n in console] == [], console[-4000:]
    assert SECRET not in console
    return pd.read_parquet(out / "results.parquet")


SECRET = "S3cretPW"


def secret_shown(root: Path) -> list[str]:
    """Files under ``root`` that hold :data:`SECRET`."""
    return [str(p) for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_ray_pipeline_runs_council_with_its_batches_in_one_engine(
    tmp_path: Path, model_dir: Path
) -> None:
    # The run is also given secrets, as users type them: a password in the NATS
    # URL, a token in the engine's environment. None may reach a file the run
    # writes (the .hydra/ record of the command line excepted), its MLflow store
    # or its console.
    with embedded_server(tmp_path / "nats") as url:
        first = run_cli(
            tmp_path / "a",
            "role=devops",
            "executor=ray",
            "batch_size=2",
            *TINY,
            f"sink.url={url.replace('nats://', f'nats://council:{SECRET}@')}",
            f"+engine.env.HF_TOKEN=hf_{SECRET}",
        )
        assert len(stream_contents(url)) == 6 + 2  # every agent's message, each deliberation
    run_id = json.loads((tmp_path / "a" / "run.json").read_text())["run_id"]
    shown = secret_shown(tmp_path / "a")
    assert shown and all(Path(p).parent.name == ".hydra" for p in shown), shown
    client = MlflowClient()
    (tracked,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`council.run_id` = '{run_id}'",
    )
    store = Path(client.tracking_uri.removeprefix("sqlite:///"))
    assert SECRET.encode() not in store.read_bytes()
    artifacts = Path(tracked.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / ".hydra" / "overrides.yaml").is_file()
    assert secret_shown(artifacts) == []
    # What the console left out is in run.log: the engine host's vLLM, Ray Data.
    log_text = (tmp_path / "a" / "run.log").read_text()
    assert "batch 0 landed" in log_text  # the run's own lines are in both
    assert "Initializing a V1 LLM engine" in log_text
    assert "Starting execution of Dataset" in log_text

    assert list(first.columns) == RESULT_COLUMNS
    assert len(first) == 2 * 3
    assert first.groupby("task_id").size().tolist() == [3, 3]
    assert first["temperature"].tolist()[:3] == pytest.approx([0.7, 0.91, 0.91])
    assert first["agent_id"].tolist()[:3] == [f"agent-devops-00{i}" for i in (1, 2, 3)]
    assert (first["proposal"].str.strip().str.len() > 0).all()
    assert first["error"].isna().all()
    assert (first["completion_tokens"] > 0).all() and (first["completion_tokens"] <= 16).all()
    assert first["run_id"].nunique() == 1
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())["overall"]
    assert metrics["requests"] == 6
    for name in QUALITY_METRICS:  # the tasks have no reference answers: no truth figures
        assert name in TRUTH_METRICS or 0 <= metrics[name] <= 1, name
    assert not set(TRUTH_METRICS) & set(metrics)
    task_metrics = pd.read_parquet(tmp_path / "a" / "task_metrics.parquet")
    assert len(task_metrics) == 6 and task_metrics["self_bleu"].notna().all()
    # Three batches, all in the engine at once (Ray Data's async calls, one host).
    parts = [pd.read_parquet(p) for p in part_files(tmp_path / "a")]
    assert len(parts) == 3
    starts = [p["started_at"].iloc[0] for p in parts]
    ends = [p["started_at"].iloc[0] + p["batch_s"].iloc[0] for p in parts]
    assert max(starts) < min(ends)


EQUIVALENT = ["task_id", "agent_id", "temperature", "seed", "proposal", "completion_tokens"]


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Equal (task, agent) -> proposal tables, whatever the column dtypes."""
    return a[EQUIVALENT].to_dict("records") == b[EQUIVALENT].to_dict("records")


@pytest.fixture(scope="module")
def ray_data_run(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> pd.DataFrame:
    """The reference table for executor equivalence: role=data on Ray."""
    return run_cli(tmp_path_factory.mktemp("ray"), "role=data", "executor=ray", *TINY)


def our_engine_processes() -> list[str]:
    """vLLM engine processes among this test process's descendants (live ones)."""
    return [f"{p.pid} {p.name()}" for p in live_descendants("VLLM::")]


def test_dask_gives_the_same_table_as_ray(ray_data_run: pd.DataFrame, tmp_path: Path) -> None:
    settings = compose_config(["role=data", "executor=dask", *TINY])
    outcome = run_pipeline(settings, tmp_path)
    dask_run = outcome.results
    assert len(part_files(tmp_path)) == 1  # 6 requests, one batch, one part
    # Landing (driver receives the rows, writes the part) is short beside the batch.
    part = pd.read_parquet(part_files(tmp_path)[0])
    assert outcome.metrics["landing_delay_max_s"] < part["batch_s"].iloc[0]
    # The worker's engine is closed with the cluster, not left running as an orphan.
    assert our_engine_processes() == []

    assert list(dask_run.columns) == list(ray_data_run.columns)
    assert same_rows(dask_run, ray_data_run)


def test_multirun_on_ray_loads_one_engine_and_compare_finds_no_difference_between_seeds(
    tmp_path: Path,
) -> None:
    """A seed sweep on Ray shares one engine host; compare then finds the two runs,
    the same config drawn with two seeds, not significantly different."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.run",
            "-m",
            "seed=0,1",
            "role=all",
            "executor=ray",
            "limit=2",
            "max_tokens=24",
            "sink=none",
            f"tracking.uri={uri}",
            f"hydra.sweep.dir={tmp_path / 'multi'}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = sorted(
        (tmp_path / "multi").glob("*/metrics.json"), key=lambda p: int(p.parent.name.split("-")[0])
    )
    assert len(runs) == 2
    # One engine, two jobs: the first job loads it, the second finds it up.
    loads = [json.loads(p.read_text())["engine_loads"] for p in runs]
    assert loads == [1, 0]

    def compare(*args: str) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.compare", "--uri", uri, *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=PROJECT_ROOT,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return out

    listing = compare("--csv", str(tmp_path / "c.csv"))
    table = pd.read_csv(tmp_path / "c.csv")
    assert sorted(table["run"]) == sorted(json.loads(p.read_text())["run_id"] for p in runs)
    for path in runs:
        m = json.loads(path.read_text())
        row = table[table["run"] == m["run_id"]].iloc[0]
        assert row["keyword_relevance"] == pytest.approx(m["overall"]["keyword_relevance"])
    # Same config, another seed: no run is significantly best at anything.
    assert "*" not in listing.stdout.split("\n\n")[0]

    paired = compare("all/latest~1", "all/latest", "--csv", str(tmp_path / "p.csv"))
    diffs = pd.read_csv(tmp_path / "p.csv").set_index("metric")
    assert "10 shared tasks" in paired.stdout
    assert set(diffs.index) == set(QUALITY_METRICS) - set(TRUTH_METRICS)
    assert (diffs["verdict"] == "not significant").mean() >= 0.95, paired.stdout
    seed0, seed1 = (json.loads(p.read_text())["overall"] for p in runs)
    for metric, row in diffs.iterrows():
        assert row["B-A"] == pytest.approx(seed1[metric] - seed0[metric], abs=1e-9)
        low, high = (float(x) for x in row["95% CI"].strip("[]").split(","))
        assert low <= row["B-A"] <= high


@pytest.fixture(scope="module")
def local(model_dir: Path) -> Iterator[LocalExecutor]:
    """One in-process engine shared by the tests below, released after them."""
    with LocalExecutor(ExecutorConfig(name="local")) as executor:
        yield executor
    assert our_engine_processes() == []


def test_local_gives_the_same_table_as_ray(
    ray_data_run: pd.DataFrame, local: LocalExecutor, tmp_path: Path
) -> None:
    settings = compose_config(["role=data", "executor=local", *TINY])
    local_run = run_pipeline(settings, tmp_path, executor=local).results
    assert same_rows(local_run, ray_data_run)


def test_role_all_runs_every_role_through_one_engine(local: LocalExecutor, tmp_path: Path) -> None:
    settings = compose_config(["role=all", "limit=1", "agents=2", "max_tokens=8"])
    outcome = run_pipeline(settings, tmp_path, executor=local)

    assert sorted(outcome.results["role"].unique()) == settings.roles
    assert len(outcome.results) == 5 * 2
    assert set(outcome.metrics["roles"]) == set(settings.roles)
    assert outcome.metrics["overall"]["requests"] == 10
    # Each task keeps its own role's system prompt.
    assert outcome.results.groupby("role")["agent_id"].first()["qa"] == "agent-qa-001"


def test_many_seeded_requests_in_one_batch_are_stable(local: LocalExecutor) -> None:
    """More prompt tokens than one prefill step holds, all seeded, in one batch.

    The CPU build crashed on this with chunked prefill on; the same batch must
    also give the same text twice.
    """
    stage = generate_stage(compose_config(), local)
    tasks = [
        Task(
            task_id=f"t{i:03d}",
            role="dev",
            prompt=f"Explain idea number {i}. " * 12,
            keywords=["x"],
        )
        for i in range(40)
    ]
    requests = expand(tasks, CouncilSpec(agents=1, max_tokens=4), {"dev": "Be brief."}, 64)
    assert requests["prompt"].str.len().sum() / 4 > 2048  # ~4 chars a token: > one step

    first = pd.concat(list(local.map(stage, [requests])))
    again = pd.concat(list(local.map(stage, [requests])))

    assert first["error"].isna().all()
    assert (first["completion_tokens"] > 0).all()
    assert first["proposal"].tolist() == again["proposal"].tolist()


def test_batches_share_the_engine_and_deterministic_mode_takes_one_at_a_time(
    local: LocalExecutor,
) -> None:
    """By default every batch is in the engine at once; deterministic=true takes them
    one after the other, on the same engine (no reload), with the same texts."""
    overrides = ["role=all", "limit=1", "agents=2", "max_tokens=4"]
    settings = compose_config(overrides)
    requests = expand(load_run_tasks(settings), settings, settings.system_prompts, 4)
    parts = batches(requests)
    assert [len(p) for p in parts] == [4, 3, 3]

    def timeline(cfg: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
        before = time.time()
        outs = list(local.map(generate_stage(cfg, local), parts))
        after = time.time()
        assert sorted(len(o) for o in outs) == [3, 3, 4]
        assert all(set(OUTPUT_COLUMNS) <= set(o.columns) for o in outs)
        table = pd.concat(outs).sort_values("row")
        per_batch = table.groupby("batch_id").agg(
            at=("started_at", "first"), busy=("batch_s", "first"), load=("load_s", "max")
        )
        assert per_batch.index.tolist() == [0, 1, 2]
        assert per_batch["at"].min() >= before
        assert (per_batch["at"] + per_batch["busy"]).max() <= after
        assert (per_batch["busy"] > 0).all()
        return table, per_batch

    together, shared = timeline(settings)
    ends = shared["at"] + shared["busy"]
    assert (shared["at"] < ends.min()).all()  # all three in before the first finished
    assert (shared["load"] > 0).sum() <= 1  # the engine load is reported once

    apart, one_by_one = timeline(compose_config([*overrides, "deterministic=true"]))
    ends = one_by_one["at"] + one_by_one["busy"]
    assert (one_by_one["at"].iloc[1:].to_numpy() >= ends.iloc[:-1].to_numpy()).all()
    assert (one_by_one["load"] == 0).all()  # same engine: taking a new depth is no reload
    # Per-request seeds: on this engine the batch's company does not change a text.
    assert apart["proposal"].tolist() == together["proposal"].tolist()


def test_scaling_experiment_times_each_council_size_on_its_own(
    local: LocalExecutor, tmp_path: Path
) -> None:
    settings = compose_config(
        ["experiment=scaling", "role=dev", "limit=2", "max_tokens=8", "batch_size=4"]
    )
    outcome = run_pipeline(settings, tmp_path, executor=local)

    table = pd.read_parquet(tmp_path / "scaling.parquet")
    assert table["agents"].tolist() == [1, 3, 5]
    assert table["requests"].tolist() == [2, 6, 10]
    assert (table["time_per_task_s"] > 0).all()
    results = outcome.results
    assert results.groupby("council_size").size().tolist() == [2, 6, 10]
    scored = pd.read_parquet(tmp_path / "task_metrics.parquet")
    assert len(scored) == 10  # quality figures describe the full council only
    # The full council's throughput is over its own time, not every arm's.
    overall = outcome.metrics["overall"]
    full_tokens = int(results.loc[results["council_size"] == 5, "completion_tokens"].sum())
    assert overall["completion_tokens"] == full_tokens
    assert overall["tokens_per_s"] > full_tokens / outcome.metrics["wall_s"]


def test_nats_sink_publishes_every_agent_and_deliberation(
    local: LocalExecutor, tmp_path: Path
) -> None:
    """Embedded server; one task's prompt is longer than the model's context, so
    its agents fail for real and land on agent.response.failed."""
    dataset = tmp_path / "tasks.jsonl"
    long = {"context": "word " * 3000}
    dataset.write_text(
        "\n".join(
            json.dumps(
                {
                    "task_id": f"dev-{i}",
                    "role": "dev",
                    "prompt": "Design a cache.",
                    "keywords": ["cache"],
                    **(long if i == 2 else {}),
                }
            )
            for i in (1, 2)
        )
    )
    settings = compose_config(
        [f"dataset={dataset}", "role=dev", "sink=nats", "sink.stream=TESTS", "max_tokens=8"]
    )
    outcome = run_pipeline(settings, tmp_path / "run", executor=local)

    assert outcome.metrics["sink"]["acked"] == outcome.metrics["sink"]["messages"] == 6 + 2
    with embedded_server(tmp_path / "run" / "nats") as url:
        got = stream_contents(url, "TESTS")
    subjects = Counter(s for s, _ in got)
    assert subjects == {
        "agent.response.completed": 3,
        "agent.response.failed": 3,
        "deliberation.completed": 1,
        "deliberation.failed": 1,
    }
    failed = [p for s, p in got if s == "agent.response.failed"]
    assert {p["task_id"] for p in failed} == {"dev-2"} and all(p["error"] for p in failed)
    # Replaying the run (its stream from run.json) publishes nothing new.
    assert replay_main([str(tmp_path / "run"), "--all"]) == 0
    with embedded_server(tmp_path / "run" / "nats") as url:
        assert len(stream_contents(url, "TESTS")) == 8


def test_mlflow_down_then_track_later_logs_once_over_http(
    local: LocalExecutor, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    settings = compose_config(
        [
            "role=qa",
            "limit=2",
            "max_tokens=24",
            "sink=none",
            "tracking=mlflow",
            f"tracking.uri={down}",
            "tracking.experiment=council-tests/qa",
            "tracking.traces=true",
        ]
    )
    outcome = run_pipeline(settings, tmp_path / "run", executor=local)
    assert outcome.metrics["tracking"]["ok"] is False
    # The run finished, but failed its purpose: its exit status will say so.
    (problem,) = problems(outcome.metrics, settings.fail_on)
    assert problem.startswith("tracking failed (") and "python -m pipelines.track" in problem
    assert (tmp_path / "run" / "results.parquet").is_file()
    assert (tmp_path / "run" / "report.html").is_file()

    # track rebuilds the run's tracking settings from run.json (the experiment
    # here); --uri points it at the server that is up now.
    with mlflow_server(tmp_path / "mlflow") as url:
        assert track_main([str(tmp_path / "run"), "--uri", url]) == 0
        assert track_main([str(tmp_path / "run"), "--uri", url]) == 0  # idempotent
        shown = capfd.readouterr()
        assert "Evaluating" not in shown.err + shown.out  # MLflow's bar and banner: the log's
        assert "Evaluation completed" not in shown.err + shown.out
        client = MlflowClient(tracking_uri=url)
        exp_id = client.get_experiment_by_name("council-tests/qa").experiment_id
        (run,) = client.search_runs([exp_id])
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        traces = client.search_traces(locations=[exp_id], run_id=run.info.run_id)
        with fluent_uri(url):
            table = mlflow.load_table("proposals.json", run_ids=[run.info.run_id])

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["overall"]
    for name in ("keyword_relevance", "unique_ratio", "self_bleu", "tokens_per_s"):
        assert run.data.metrics[name] == pytest.approx(metrics[name])
    low, high = (run.data.metrics[f"keyword_relevance_ci_{end}"] for end in ("low", "high"))
    assert low <= metrics["keyword_relevance"] <= high
    assert run.data.params["agents"] == "3" and run.data.params["role"] == "qa"
    assert run.data.tags["council.run_id"] == outcome.run_id
    assert {"results.parquet", "metrics.json", "report.html", "task_metrics.json"} <= artifacts
    assert any(k.startswith("agent/agent-qa-002/") for k in run.data.metrics)

    # Every proposal is a row of the run in MLflow's UI, with the pipeline's scores.
    tm = pd.read_parquet(tmp_path / "run" / "task_metrics.parquet")
    want = {(r.task_id, r.agent_id, r.keyword_relevance, r.keyword_full) for r in tm.itertuples()}
    got = set()
    for trace in traces:
        inputs = json.loads(trace.data.request)
        scores = {a.name: a.value for a in trace.info.assessments if a.name.startswith("keyword")}
        got.add(
            (
                inputs["task_id"],
                inputs["agent_id"],
                scores["keyword_relevance"],
                scores["keyword_full"],
            )
        )
    assert got == want and len(traces) == len(tm) == 6
    # ... and a row of the run's proposals.json table, written in one call.
    rows = {
        (r.task_id, r.agent_id, r.keyword_relevance, r.keyword_full, r.proposal)
        for r in table.itertuples()
    }
    results = pd.read_parquet(tmp_path / "run" / "results.parquet")
    texts = dict(
        zip(zip(results.task_id, results.agent_id, strict=True), results.proposal, strict=True)
    )
    assert rows == {(*w, texts[w[0], w[1]]) for w in want} and len(table) == 6

    # Where the run's time went, phase by phase, after the last batch included.
    phases = json.loads((tmp_path / "run" / "phases.json").read_text())
    assert set(phases["seconds"]) >= {"generate", "results", "score", "report", "track"}
    assert 0 < phases["after_last_batch_s"] < phases["total_s"]


def test_nightly_continues_its_night_by_name_and_exits_3_when_tracking_is_down(
    local: LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried night: the finished run is not redone, the interrupted one resumes,
    both at the endpoints of the night's environment (an overrides file may not
    set one)."""
    runs, overrides = tmp_path / "runs", tmp_path / "overrides"
    with mlflow_server(tmp_path / "mlflow") as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        overrides.write_text(
            "role=dev,qa agents=2 limit=1 max_tokens=4 batch_size=1  # two runs, two parts each\n"
            "executor=local sink=none tracking.experiment=council-tests/night\n"
        )
        first = run_night("night-1", overrides, runs, local=local)
        assert first == {"role-dev": ("started", []), "role-qa": ("started", [])}
        assert os.environ["MLFLOW_TRACKING_URI"] == url  # a run leaves it as it was

        # The qa run is cut short: its last part and its metrics never landed.
        qa = runs / "night-1" / "role-qa"
        before = pd.read_parquet(qa / "results.parquet")
        run_id = json.loads((qa / "metrics.json").read_text())["run_id"]
        (qa / "metrics.json").unlink()
        part_files(qa)[-1].unlink()

        second = run_night("night-1", overrides, runs, local=local)
        assert second == {"role-dev": ("finished earlier", []), "role-qa": ("resumed", [])}
        metrics = json.loads((qa / "metrics.json").read_text())
        assert metrics["run_id"] == run_id and metrics["rows_reused"] == 1
        assert same_rows(pd.read_parquet(qa / "results.parquet"), before)
        client = MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name("council-tests/night").experiment_id
        tracked = client.search_runs([experiment])
        assert sorted(r.data.params["role"] for r in tracked) == ["dev", "qa"]  # once each

    # MLflow is down now: the retried night says so and exits 3, generating nothing.
    night = ["--name", "night-1", "--overrides", str(overrides), "--runs-dir", str(runs)]
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.nightly", *night],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert proc.stdout.count("finished earlier FAILED") == 2
    assert "tracking failed" in proc.stdout and "python -m pipelines.track" in proc.stdout


def test_a_rerun_is_answered_by_the_cache_and_starts_no_engine(
    local: LocalExecutor, tmp_path: Path
) -> None:
    cache = ["cache=true", f"cache_dir={tmp_path / 'cache'}"]
    run = ["role=qa", "limit=1", "agents=2", "max_tokens=8", "sink=none", "tracking=none"]
    first = run_pipeline(compose_config([*run, *cache]), tmp_path / "a", executor=local)
    assert first.metrics["cache"] == {"mode": "true", "hits": 0, "misses": 2}
    assert not first.results["cached"].any()

    # Another process, executor=ray: every request hits, so no Ray and no engine start.
    start = time.perf_counter()
    second = run_cli(tmp_path / "b", *run, "executor=ray", *cache)
    wall = time.perf_counter() - start
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["cache"] == {"mode": "true", "hits": 2, "misses": 0}
    assert metrics["rows_generated"] == 0 and metrics["overall"]["tokens_per_s"] == 0
    assert second["cached"].all()
    assert second["proposal"].tolist() == first.results["proposal"].tolist()
    log = (tmp_path / "b" / "run.log").read_text()
    assert "Started a local Ray instance" not in log and "vllm: loaded" not in log
    # The proposals' embeddings were kept too: embedding_diversity without its model.
    assert "loading the model" not in log
    first_overall = first.metrics["overall"]
    assert metrics["overall"]["embedding_diversity"] == first_overall["embedding_diversity"]
    assert wall < 60, wall

    # refresh: generated again (same seeds, same text) and kept.
    third = run_pipeline(
        compose_config([*run, "cache=refresh", cache[1]]), tmp_path / "c", executor=local
    )
    assert third.metrics["cache"] == {"mode": "refresh", "hits": 0, "misses": 2}
    assert third.results["proposal"].tolist() == first.results["proposal"].tolist()

    # repeats=2: repeat 0 is the cached run's sample, repeat 1 is drawn with new seeds.
    fourth = run_pipeline(
        compose_config([*run, *cache, "repeats=2"]), tmp_path / "d", executor=local
    )
    assert fourth.metrics["cache"] == {"mode": "true", "hits": 2, "misses": 2}
    results = fourth.results.set_index(["agent_id", "repeat"]).sort_index()
    assert results.xs(0, level="repeat")["proposal"].tolist() == first.results["proposal"].tolist()
    assert results.xs(0, level="repeat")["cached"].all()
    assert not results.xs(1, level="repeat")["cached"].any()
    assert results["seed"].nunique() == 4
    overall = fourth.metrics["overall"]
    assert overall["repeats"] == 2 and "keyword_relevance_repeat_sd" in overall


DELIBERATION = [
    "role=dev",
    "max_tokens=24",
    "batch_size=3",
    "deliberation.rounds=2",
    "deliberation.rank=true",
    "deliberation.chair=true",
    "judge=council",
    "tracking=none",
]


def short_first_task(tmp_path: Path) -> Path:
    """Three dev tasks; the first with a 6-token budget, so its round 1 lands first."""
    lines = (PROJECT_ROOT / "datasets" / "dev.jsonl").read_text().splitlines()[:3]
    tasks = [json.loads(line) for line in lines]
    tasks[0]["max_tokens"] = 6
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in tasks) + "\n")
    return path


def test_deliberation_rounds_rank_chair_and_judge_stream_through_one_engine(
    local: LocalExecutor, tmp_path: Path
) -> None:
    dataset = short_first_task(tmp_path)
    run = [f"dataset={dataset}", *DELIBERATION, "cache=true", f"cache_dir={tmp_path / 'cache'}"]
    out = tmp_path / "a"
    nats = ["sink=nats", "sink.stream=DELIBERATION"]
    outcome = run_pipeline(compose_config([*run, *nats]), out, executor=local)

    results = pd.read_parquet(out / "results.parquet")
    assert results.groupby("round").size().to_dict() == {1: 9, 2: 9}
    per_task = results.groupby(["round", "task_id"])["agent_id"].apply(sorted)
    assert all(agents == [f"agent-dev-00{i}" for i in (1, 2, 3)] for agents in per_task)
    rankings = pd.read_parquet(out / "rankings.parquet")
    assert len(rankings) == 3 * 3 * 2  # tasks x rankers x (forward, reversed)
    for r in rankings.itertuples():  # a ranking is the shown agents in some order, or an error
        assert (r.ranking is not None and sorted(r.ranking) == sorted(r.shown)) or (
            r.ranking is None and r.error.startswith("malformed ranking")
        )
    assert sorted(rankings.groupby(["task_id", "ranker"])["order"].apply(sorted).iloc[0]) == [
        "forward",
        "reversed",
    ]
    for _, pair in rankings.groupby(["task_id", "ranker"]):  # the second showing is reversed
        forward, reversed_ = (list(pair[pair["order"] == o]["shown"].iloc[0]) for o in ORDERS)
        assert reversed_ == forward[::-1]
    chair = pd.read_parquet(out / "chair.parquet")
    assert len(chair) == 3 and not chair["fallback"].any() and chair["answer"].str.len().all()
    judge = pd.read_parquet(out / "judge.parquet")
    assert len(judge) == 9 * 2 + 3
    assert judge["score"].dropna().between(1, 10).all() and judge["score"].notna().sum() >= 18
    assert set(judge["target"]) == {"agent-dev-001", "agent-dev-002", "agent-dev-003", "chair"}

    # Anonymized: no agent id in any prompt that shows others' texts, and an agent's
    # own proposal is not always shown at the same place.
    parts = read_parts(out)
    shows = parts[(parts["step"] != "propose") | (parts["round"] > 1)]
    assert not shows["prompt"].str.contains("agent-").any()
    ranks = parts[parts["step"] == "rank"]
    own_at = {
        json.loads(s).index(a) for s, a in zip(ranks["shown"], ranks["agent_id"], strict=True)
    }
    assert len(own_at) > 1
    # The judge sees the task and one text: no agent id, no other proposal.
    judged = parts[parts["step"] == "judge"]
    assert not judged["prompt"].str.contains("agent-").any()
    assert (judged["shown"] == "[]").all()

    # Streaming: the short task's round 2 entered the engine before the others' round 1 ended.
    proposals = parts[parts["step"] == "propose"]
    ends = proposals.assign(end=proposals["started_at"] + proposals["batch_s"])
    round1_end = ends[ends["round"] == 1].groupby("task_id")["end"].max()
    round2_start = proposals[proposals["round"] == 2].groupby("task_id")["started_at"].min()
    assert round2_start["dev-001"] < round1_end.drop("dev-001").max()

    m = outcome.metrics
    assert [r["round"] for r in m["rounds"]] == [1, 2]
    assert set(m["round_gain"]) >= {"keyword_relevance", "distinct_2", "judge_score"}
    assert m["ranking"]["rankings"] == 18 and 0 <= (m["ranking"]["kendall_w"] or 0) <= 1
    assert m["chair"]["answers"] == 3 and m["chair"]["fallbacks"] == 0
    assert m["judge"]["scores"] + m["judge"]["errors"] == 21
    assert m["engine_loads"] <= 1  # every round and step on the engine already up
    report = (out / "report.html").read_text()
    assert "Per round: quality, diversity, judge" in report
    assert report.count("from the chair") == 3  # each task's card ends with the council's answer

    # NATS: every round, ranking, chair answer and score is an agent message; each
    # deliberation message carries the last round, the ranking, the chair and the scores.
    with embedded_server(out / "nats") as url:
        got = stream_contents(url, "DELIBERATION")
    steps = Counter((p["step"], p["round"]) for s, p in got if s.startswith("agent."))
    assert steps == {
        ("propose", 1): 9,
        ("propose", 2): 9,
        ("rank", 2): 18,
        ("chair", 2): 3,
        ("judge", 1): 9,
        ("judge", 2): 12,
    }
    ended = [p for s, p in got if s == "deliberation.completed"]
    assert len(ended) == 3
    for p in ended:
        assert p["rounds"] == 2 and len(p["final_round"]) == 3
        assert p["ranking"]["rankings"] == 6 and p["chair"][0]["fallback"] is False
        assert len(p["judge"]) == 7

    # The chair's prompt over the model's context: the engine refuses it and the
    # top-ranked proposal stands in. Every other request is the first run's, answered
    # by the cache: the seeded permutations rendered the same prompts.
    long_chair = "deliberation.chair_prompt='" + "Merge the proposals into one answer. " * 400 + "'"
    second = run_pipeline(
        compose_config([*run, "sink=none", long_chair]), tmp_path / "b", executor=local
    )
    # (Error rows are never cached: a malformed ranking or score is asked again.)
    errors = int(rankings["error"].notna().sum() + judge["error"].notna().sum())
    assert second.metrics["cache"] == {"mode": "true", "hits": 54 - errors, "misses": 3 + errors}
    fallback = pd.read_parquet(tmp_path / "b" / "chair.parquet")
    assert fallback["fallback"].all()
    assert fallback["error"].str.contains("maximum context length").all()
    assert fallback["source"].tolist() == [order[0] for order in chair["order"]]
    finals = results[results["round"] == 2].set_index(["task_id", "agent_id"])["proposal"]
    assert fallback["answer"].tolist() == [
        finals[(t, s)] for t, s in zip(fallback["task_id"], fallback["source"], strict=True)
    ]
    assert second.metrics["chair"]["fallbacks"] == 3

    # A ranking cut off before its JSON closes does not parse: an error row, not a default.
    ranking_only = [
        f"dataset={dataset}",
        "role=dev",
        "max_tokens=24",
        "batch_size=3",
        "sink=none",
        "tracking=none",
        "cache=true",
        f"cache_dir={tmp_path / 'cache'}",
        "deliberation.rank=true",
        "deliberation.rank_max_tokens=3",
    ]
    third = run_pipeline(compose_config(ranking_only), tmp_path / "c", executor=local)
    cut = pd.read_parquet(tmp_path / "c" / "rankings.parquet")
    assert len(cut) == 18 and cut["ranking"].isna().all()
    assert cut["error"].str.startswith("malformed ranking").all()
    assert third.metrics["ranking"]["errors"] == 18


def test_a_verifiable_set_is_scored_against_its_answers_and_the_equal_budget_baseline(
    local: LocalExecutor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Accuracy, majority, pass@N, rounds, flips and the chair from a real deliberation,
    each recomputed here from results.parquet with reasoning-gym's own scorer; then
    self-consistency at the same budget and the paired compare of the two."""
    import reasoning_gym

    from evaluators.answers import extract_answer, majority
    from pipelines.compare import main as compare_main

    council = [
        f"dataset={PROJECT_ROOT / 'datasets' / 'truth' / 'data.jsonl'}",
        "role=data",
        "limit=8",
        "max_tokens=32",
        "sink=none",
        "deliberation.rounds=2",
        "deliberation.chair=true",
    ]
    debate = run_pipeline(compose_config(council), tmp_path / "debate", executor=local)
    tasks = {t.task_id: t for t in load_run_tasks(compose_config(council))}
    score = reasoning_gym.get_score_answer_fn("basic_arithmetic")

    def right(task_id: str, text: str) -> float:
        t, answer = tasks[task_id], extract_answer(text)
        entry = {"question": t.prompt, "answer": t.answer, "metadata": t.metadata}
        return float(answer is not None and score(answer, entry) == 1.0)

    results = pd.read_parquet(tmp_path / "debate" / "results.parquet")
    results["right"] = [
        right(t, p) for t, p in zip(results["task_id"], results["proposal"], strict=True)
    ]
    assert 0 < results["right"].sum() < len(results)  # the scorer said both
    m = debate.metrics
    for figures in m["rounds"]:
        part = results[results["round"] == figures["round"]]
        assert figures["accuracy"] == pytest.approx(part["right"].mean())
        assert figures["pass_at_n"] == pytest.approx(part.groupby("task_id")["right"].max().mean())
    last = results[results["round"] == 2]
    assert m["overall"]["accuracy"] == pytest.approx(last["right"].mean())
    votes = (
        last.sort_values("agent_index")
        .groupby("task_id")["proposal"]
        .apply(lambda texts: majority([extract_answer(t) for t in texts]))
    )
    want = [right(t, f"Answer: {v}") if v is not None else 0.0 for t, v in votes.items()]
    assert m["overall"]["majority_accuracy"] == pytest.approx(sum(want) / len(want))
    wide = results.pivot_table(index=["task_id", "agent_id"], columns="round", values="right")
    [flips] = m["truth"]["flips"]
    assert flips["right_to_wrong"] == int(((wide[1] == 1) & (wide[2] == 0)).sum())
    assert flips["wrong_to_right"] == int(((wide[1] == 0) & (wide[2] == 1)).sum())
    chair = pd.read_parquet(tmp_path / "debate" / "chair.parquet")
    chair_right = [right(t, a) for t, a in zip(chair["task_id"], chair["answer"], strict=True)]
    assert m["truth"]["chair"]["accuracy"]["mean"] == pytest.approx(sum(chair_right) / 8)
    assert m["overall"]["answer_accuracy"] == pytest.approx(sum(chair_right) / 8)
    report = (tmp_path / "debate" / "report.html").read_text()
    shown = re.findall(r"council's answer</b>[^<]*<span class=\"verdict\">([^<]+)<", report)
    assert len(shown) == 8 and sum(v.endswith(": correct") for v in shown) == sum(chair_right), (
        shown
    )
    verdicts = m["overall"]["truth"]
    assert verdicts["correct"] + verdicts["wrong"] + verdicts["no_answer"] == 24

    baseline = run_pipeline(
        compose_config([*council, "experiment=self_consistency"]),
        tmp_path / "baseline",
        executor=local,
    )
    sampled = pd.read_parquet(tmp_path / "baseline" / "results.parquet")
    assert len(sampled) == 8 * 7 and sampled["round"].eq(1).all()  # 3 x 2 proposals + 1 chair
    assert sampled["temperature"].nunique() == 1
    assert "majority_accuracy" in baseline.metrics["overall"]
    capsys.readouterr()
    assert compare_main([debate.run_id, baseline.run_id]) == 0
    shown = capsys.readouterr().out
    assert "experiment=self_consistency (budget of agents=3 rounds=2 chair)" in shown
    assert "answer_accuracy" in shown and "8 shared tasks" in shown
