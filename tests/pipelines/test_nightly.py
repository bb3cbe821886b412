"""The nightly's plan: overrides from a file, errors with file and line, stable run folders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines import PROJECT_ROOT, UserError
from pipelines.config import DATASET_DIR
from pipelines.driver.night import one_night_at_a_time, plan


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "overrides"
    path.write_text(text)
    return path


def test_plan_sweeps_every_line_and_names_each_run_by_its_choices(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# the nightly benchmark\n"
        "role=dev,qa agents=2,3   # two sweeps\n"
        "engine=openai 'engine.max_concurrency=8'  executor=ray\n",
    )
    jobs = plan(path)
    assert [job.slug for job, _ in jobs] == [
        "role-dev_agents-2",
        "role-dev_agents-3",
        "role-qa_agents-2",
        "role-qa_agents-3",
    ]
    job, cfg = jobs[3]
    assert job.overrides == (
        "role=qa",
        "agents=3",
        "engine=openai",
        "engine.max_concurrency=8",
        "executor=ray",
    )
    assert (cfg.role.name, cfg.agents, cfg.engine.name) == ("qa", 3, "openai")
    assert plan(path) == jobs  # a retry finds the same folders


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("role=dev\nrole=qa 'agents=2\n", ":2: No closing quotation"),
        ("role=dev\n--multirun role=qa\n", ":2: '--multirun' is a flag, not an override"),
        ("role=dev\n\nagents=two\n", ":3: Error merging override agents=two"),
        ("role=nope\n", ":1: In 'config': Could not find 'role/nope'"),
        ("role=dev\nengine.urll=x\n", ":2: Could not override 'engine.urll'"),
        ("role=dev\nagents=0\n", ":2: agents must be >= 1"),
        ("role=dev a=b=c=\n", ":1: 'a=b=c='"),
        ("# nothing\n", "no overrides"),
    ],
)
def test_bad_overrides_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        plan(path)
    assert str(e.value).startswith(str(path)) and message in str(e.value), e.value


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # Each read a secret of the pods or chose where it goes, what runs, what is read.
        ("'role.system_prompt=say ${oc.env:NATS_TOKEN}'", "may not interpolate"),
        ("engine=openai engine.url=http://their-host:8000", "engine.url: set by the night's"),
        ("engine=openai engine.api_key_env=NATS_TOKEN", "engine.api_key_env: set by the night's"),
        ("sink=nats sink.url=nats://their-host:4222", "sink.url: set by the night's"),
        ("tracking.uri=http://their-host:5000", "tracking.uri: set by the night's"),
        ("executor=dask executor.address=tcp://their-host:8786", "executor.address: set by"),
        ("cache_dir=/tmp/their-cache", "cache_dir: set by the night's"),
        ("+engine.env.LD_PRELOAD=/tmp/x.so", "engine.env: set by the night's"),
        ("+engine.extra_engine_kwargs.trust_remote_code=true", "engine.extra_engine_kwargs: set"),
        ("engine=openai +engine.extra_body.x=1", "engine.extra_body: set by the night's"),
        ("judge=openai 'judge.engine={url: http://their-host}'", "judge.engine.url: set by"),
        ("model.path=/tmp/their-model", "model.path: set by the night's"),
        ("dataset=/etc/passwd", "'/etc/passwd' is outside the project's datasets/"),
        ("hydra.job.env_set.X=1", "Hydra's own settings"),
    ],
)
def test_the_overrides_file_cannot_reach_the_pods_secrets_or_choose_what_runs(
    tmp_path: Path, line: str, message: str
) -> None:
    """Whoever may edit the ConfigMap must not get the Secrets: each line below
    used to compose (the token read into a prompt lands in run.json, results and
    MLflow; an endpoint receives ``VLLM_API_KEY`` or ``NATS_TOKEN``)."""
    path = write(tmp_path, f"role=dev\n{line}\n")
    with pytest.raises(UserError) as e:
        plan(path)
    assert str(e.value).startswith(f"{path}:2: ") and message in str(e.value), e.value


def test_a_shipped_dataset_and_the_environments_endpoints_are_the_nights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_URL", "http://vllm:8000")
    path = write(
        tmp_path, f"role=dev engine=openai dataset={DATASET_DIR / 'truth' / 'data.jsonl'}\n"
    )
    ((_, cfg),) = plan(path)
    assert (cfg.engine.url, Path(cfg.dataset).name) == ("http://vllm:8000", "data.jsonl")


def test_check_prints_the_plan_and_bad_input_exits_2(tmp_path: Path) -> None:
    good = write(tmp_path, "role=dev,devops engine=openai\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.nightly", "--check", "--overrides", str(good)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "role-dev: role=dev engine=openai executor=ray model=SmolLM2-135M-Instruct",
        "role-devops: role=devops engine=openai executor=ray model=SmolLM2-135M-Instruct",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.nightly", "--name", "a/b", "--overrides", str(good)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and "--name must be a folder name" in proc.stderr


def test_one_night_at_a_time_on_a_runs_volume(tmp_path: Path) -> None:
    """A second nightly on the same volume is told who holds it; the lock dies with its holder."""
    with one_night_at_a_time(tmp_path) as first:
        assert first is None
        holder = subprocess.run(
            [sys.executable, "-c", LOCK_PROBE, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert holder.stdout.startswith(f"pid {os.getpid()} since ")
    free = subprocess.run(
        [sys.executable, "-c", LOCK_PROBE, str(tmp_path)], capture_output=True, text=True
    )
    assert free.stdout == "None\n", free.stderr


LOCK_PROBE = """
import sys
from pathlib import Path
from pipelines.driver.night import one_night_at_a_time
with one_night_at_a_time(Path(sys.argv[1])) as holder:
    print(holder)
"""


def test_a_crashed_run_does_not_stop_the_night_fault_injected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine crash is injected (start() replaced): the next run still runs."""
    import pipelines.driver.night as nightly

    calls = []

    def fake_start(cfg: object, run_dir: Path, local: object) -> list[str]:
        calls.append(run_dir.name)
        if len(calls) == 1:
            raise RuntimeError("EngineDeadError: engine core died")
        return []

    monkeypatch.setattr(nightly, "start", fake_start)
    overrides = write(tmp_path, "role=dev,qa executor=local\n")
    done = nightly.run_night("n", overrides, tmp_path / "runs")
    assert calls == ["role-dev", "role-qa"]
    what, (problem,) = done["role-dev"]
    assert what == "crashed" and "RuntimeError: EngineDeadError" in problem
    assert "a retry resumes it" in problem
    assert done["role-qa"] == ("started", [])


def nightly(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    overrides = write(tmp_path, "role=dev executor=local sink=none tracking=none\n")
    night = ["--name", "n-1", "--overrides", str(overrides), "--runs-dir", str(tmp_path)]
    return subprocess.run(
        [sys.executable, "-m", "pipelines.nightly", *night, *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def test_a_held_lock_past_its_wait_exits_75_and_runs_nothing(tmp_path: Path) -> None:
    """Not 0: a night that did not run is never reported as done (a RayJob Complete)."""
    with one_night_at_a_time(tmp_path):
        start = time.monotonic()
        proc = nightly(tmp_path, "--lock-wait", "2")
        waited = time.monotonic() - start
    assert proc.returncode == 75, proc.stderr
    assert waited >= 2
    assert f"not run: another night still holds {tmp_path / 'nightly.lock'} after 2 s" in (
        proc.stderr
    )
    assert f"pid {os.getpid()} since" in proc.stderr
    assert not (tmp_path / "n-1" / "role-dev").exists()


def test_the_lock_is_handed_over_once_the_old_night_has_ended(tmp_path: Path) -> None:
    """A stopped night's driver ends a while after `ray job stop`: the new one waits."""
    old = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(tmp_path)], stdout=subprocess.PIPE
    )
    assert old.stdout is not None and old.stdout.readline() == b"held\n"
    start = time.monotonic()
    with one_night_at_a_time(tmp_path, wait_s=30) as holder:
        waited = time.monotonic() - start
        assert holder is None
    assert old.wait(timeout=30) == 0
    assert 1 <= waited < 20


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from pipelines.driver.night import one_night_at_a_time
with one_night_at_a_time(Path(sys.argv[1])) as holder:
    assert holder is None
    print("held", flush=True)
    time.sleep(1.5)
"""


def test_the_deadline_stops_the_night_as_sigterm_does_and_exits_143(tmp_path: Path) -> None:
    """The deadline fires while the night still waits for a lock (a stand-in for a
    long night): the same clean stop as SIGTERM, exit 143, the same --name resumes."""
    with one_night_at_a_time(tmp_path):
        start = time.monotonic()
        proc = nightly(tmp_path, "--deadline", "1.5", "--lock-wait", "60")
        took = time.monotonic() - start
    assert proc.returncode == 143, proc.stderr
    assert took < 30
    assert (
        "nightly n-1: its deadline of 1.5 s passed; its runs' parts are kept: the same --name "
        "resumes them"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_one_unreadable_run_json_fails_its_run_and_the_night_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to stop the whole night at that run: the runs after it never ran."""
    from pipelines.driver.night import run_night
    from tests.engine_helpers import stand_in_engine

    overrides = write(
        tmp_path,
        "role=dev,qa limit=1 agents=1 max_tokens=4 embeddings=false\n"
        "engine=openai executor=local sink=none tracking=none\n",
    )
    broken = tmp_path / "runs" / "night-1" / "role-dev"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text('{"run_id": "20261207-0')  # torn by a full disk
    with stand_in_engine() as server:
        monkeypatch.setenv("VLLM_URL", server)
        done = run_night("night-1", overrides, tmp_path / "runs")
    what, problems = done["role-dev"]
    assert what == "refused" and f"{broken / 'run.json'} is unreadable" in problems[0]
    assert done["role-qa"] == ("started", [])
    assert (tmp_path / "runs" / "night-1" / "role-qa" / "metrics.json").is_file()
