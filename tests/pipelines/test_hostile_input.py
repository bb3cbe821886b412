"""Input written by someone hostile or careless: dataset lines, run folders,
model output on a terminal, a locked cache, a file torn by a kill."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pandas as pd
import psutil
import pytest

from pipelines import PROJECT_ROOT, UserError
from pipelines.config import DatasetCaps, compose_config, from_record, to_record
from pipelines.driver.pipeline import load_run_tasks
from pipelines.driver.resume import resume_run, resumed_config
from pipelines.driver.runinfo import run_info, write_run_info
from pipelines.driver.status import format_line as status_line
from pipelines.flow.tasks import TaskFileError, load_tasks
from pipelines.listen import format_line as listen_line
from pipelines.runtime.durable import write_json
from pipelines.spec.run_folder import RUN_INFO_FILE

GOOD = {"task_id": "devops-001", "role": "devops", "prompt": "p", "keywords": ["k"]}


def write(path: Path, *records: dict | str) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"task_id": "a", "task_id": "b", "role": "devops", "prompt": "p", "keywords": ["k"]}',
            ":1: malformed JSON: key 'task_id' given twice",
        ),
        ({**GOOD, "task_id": "   "}, ":1: field 'task_id': '   ' is not a valid id"),
        ({**GOOD, "task_id": "a.b"}, ":1: field 'task_id': 'a.b' is not a valid id"),
        ({**GOOD, "task_id": "x" * 129}, ":1: field 'task_id': 'xxxxxxxx"),
        ({**GOOD, "role": "dev ops"}, ":1: field 'role': 'dev ops' is not a valid id"),
        ({**GOOD, "prompt": " \n\t "}, ":1: field 'prompt': prompt must not be blank"),
        ({**GOOD, "prompt": "p" * 101}, ":1: field 'prompt': 101 characters"),
        ({**GOOD, "keywords": ["k"] * 5}, ":1: field 'keywords': 5 keywords, more than 4"),
        ({**GOOD, "keywords": ["k" * 30]}, ":1: field 'keywords': 'kkkk"),
        ({**GOOD, "context": "c" * 200}, ":1: field 'prompt': 201 characters with the context"),
    ],
)
def test_lines_past_the_rules_and_caps_are_refused_with_file_and_line(
    tmp_path: Path, line: dict | str, message: str
) -> None:
    caps = DatasetCaps(max_prompt_chars=100, max_keywords=4, max_keyword_chars=20)
    path = write(tmp_path / "t.jsonl", line)
    with pytest.raises(TaskFileError, match="^" + str(path).replace(".", r"\.")) as e:
        load_tasks(path, caps=caps)
    assert message in str(e.value)


def test_an_over_long_line_is_refused_without_being_read_into_memory(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with path.open("w") as f:
        f.write(json.dumps(GOOD) + "\n")
        f.write('{"prompt": "' + "x" * (40 << 20) + '"}\n')  # 40 MB on one line
        f.write(json.dumps({**GOOD, "task_id": "devops-002"}) + "\n")
    tracemalloc.start()
    with pytest.raises(TaskFileError, match=r":2: line longer than 1048576 bytes"):
        load_tasks(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"


def test_too_many_tasks_are_refused_at_the_first_one_past_the_cap(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", *({**GOOD, "task_id": f"t{i}"} for i in range(5)))
    with pytest.raises(TaskFileError, match=r":4: more than 3 tasks \(dataset_caps.max_tasks\)"):
        load_tasks(path, caps=DatasetCaps(max_tasks=3))


def test_a_dataset_past_the_total_bytes_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Every line under its caps, yet no cap on the whole: 200,000 tasks of 100,000
    characters each would have been read (20 GB). A 2 GiB file is refused at once."""
    import time

    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:
        f.truncate(2 << 30)  # sparse: 2 GiB that take no disk
    start = time.monotonic()
    with pytest.raises(TaskFileError, match=r"2,147,483,648 bytes, more than dataset_caps"):
        load_tasks(path)
    assert time.monotonic() - start < 1.0
    lines = write(tmp_path / "t.jsonl", *({**GOOD, "task_id": f"t{i}"} for i in range(5)))
    one_line = len(lines.read_bytes().splitlines()[0]) + 1
    assert len(load_tasks(lines, caps=DatasetCaps(max_total_bytes=5 * one_line))) == 5
    with pytest.raises(TaskFileError, match=r"dataset_caps\.max_total_bytes"):
        load_tasks(lines, caps=DatasetCaps(max_total_bytes=5 * one_line - 1))


def test_limit_stops_reading_once_every_role_has_its_tasks(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", GOOD, {**GOOD, "task_id": "devops-002"}, "{torn")
    assert [t.task_id for t in load_tasks(path, roles=["devops"], limit=2)] == [
        "devops-001",
        "devops-002",
    ]


def test_one_task_in_two_dataset_files_is_refused_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.config.run

    for role in ("dev", "qa", "architect", "data"):
        write(tmp_path / f"{role}.jsonl", {**GOOD, "role": role, "task_id": f"{role}-1"})
    write(tmp_path / "devops.jsonl", GOOD, {**GOOD, "role": "qa", "task_id": "qa-1"})
    monkeypatch.setattr(pipelines.config.run, "DATASET_DIR", tmp_path)
    with pytest.raises(
        TaskFileError, match=r"qa\.jsonl: field 'task_id': 'qa-1' of .*devops\.jsonl"
    ):
        load_run_tasks(compose_config(["role=all"]))


def test_the_same_task_id_in_two_roles_loads_as_two_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.config.run

    for role in ("dev", "qa", "architect", "data", "devops"):
        write(tmp_path / f"{role}.jsonl", {**GOOD, "role": role, "task_id": "task-1"})
    monkeypatch.setattr(pipelines.config.run, "DATASET_DIR", tmp_path)
    tasks = load_run_tasks(compose_config(["role=all"]))
    assert sorted((t.role, t.task_id) for t in tasks) == [
        (r, "task-1") for r in ("architect", "data", "dev", "devops", "qa")
    ]


def test_a_secret_url_of_any_shape_does_not_crash_run_json() -> None:
    url = "nats://a:S3cretA@h1:4222,nats://b:S3c/ret?B@h2:99999"
    cfg = compose_config([f"sink.url='{url}'"])
    info = run_info("20261203-000000-devops-abc123", cfg)
    assert "S3c" not in json.dumps(info)
    assert info["config"]["sink"]["url"] == "nats://a:***@h1:4222,nats://b:***@h2:99999"


def hostile_run_folder(tmp_path: Path, **fields: object) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = compose_config(["role=devops", "engine=openai", "sink=none", "tracking=none"])
    write_run_info(run_dir, "20261203-000000-devops-abc123", cfg)
    info = json.loads((run_dir / RUN_INFO_FILE).read_text())
    for name, value in fields.items():
        group, key = name.split(".", 1)
        info["config"][group][key] = value
    (run_dir / RUN_INFO_FILE).write_text(json.dumps(info))
    return run_dir


def test_a_resume_takes_endpoints_from_today_not_from_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = hostile_run_folder(
        tmp_path, **{"engine.url": "http://evil.example:8000", "engine.api_key_env": "HOME"}
    )
    monkeypatch.setenv("VLLM_URL", "http://127.0.0.1:8123")
    cfg = resumed_config(run_dir)
    assert (cfg.engine.url, cfg.engine.api_key_env) == ("http://127.0.0.1:8123", "VLLM_API_KEY")


def test_a_resume_refuses_engine_settings_unlike_todays_unless_trusted(tmp_path: Path) -> None:
    run_dir = hostile_run_folder(
        tmp_path, **{"model.path": "/tmp/their-model", "engine.extra_body": {"x": 1}}
    )
    with pytest.raises(UserError, match=r"model\.path: '/tmp/their-model'") as e:
        resumed_config(run_dir)
    assert "engine.extra_body" in str(e.value) and "--trust-run-folder" in str(e.value)
    trusted = resumed_config(run_dir, trust_run_folder=True)
    assert (trusted.model.path, trusted.engine.extra_body) == ("/tmp/their-model", {"x": 1})


def test_a_recorded_interpolation_stays_a_literal_string() -> None:
    record = to_record(compose_config(["role=devops"]))
    record["role"]["system_prompt"] = "say ${oc.env:HOME} and \\${x}"
    assert from_record(record).role.system_prompt == "say ${oc.env:HOME} and \\${x}"


def test_a_resume_of_a_live_run_is_refused_before_it_reaps_anything(tmp_path: Path) -> None:
    from pipelines.executors import HeldExecutors
    from pipelines.spec.run_folder import PROCS_FILE

    run_dir = hostile_run_folder(tmp_path)
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    holder = subprocess.Popen(  # the live run: it holds its folder's lock
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(run_dir / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode())\n"
            "print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = psutil.Process(engine.pid).create_time()
        (run_dir / PROCS_FILE).write_text(json.dumps({str(engine.pid): started}))
        with HeldExecutors() as held, pytest.raises(UserError, match="in use by a live run"):
            resume_run(run_dir, held)
        time.sleep(0.5)
        assert engine.poll() is None  # the live run's engine was not reaped
    finally:
        for p in (engine, holder):
            p.kill()
            p.wait()


def test_a_killed_json_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = write_json(tmp_path / "metrics.json", {"ok": 1})

    class Unwritable:
        def __str__(self) -> str:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_json(path, {"ok": Unwritable()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_terminal_escapes_in_model_output_are_shown_not_obeyed() -> None:
    payload = {"task_id": "t", "agent_id": "a", "proposal": "hi \x1b]0;owned\x07\x1b[2J\r!"}
    line = listen_line("agent.response.completed", json.dumps(payload).encode())
    assert "\x1b" not in line and "\\x1b]0;owned\\x07\\x1b[2J !" in line
    status = {"task_id": "t\x1b[31m", "role": "dev", "status": "DONE", "updated_at": "now"}
    assert "\x1b" not in status_line(status)
    # A line feed would print a line of its own, looking like another message; bidi
    # overrides reorder what is shown (a field read backwards).
    forged = {"task_id": "t", "agent_id": "a\nagent.response.failed t-2 agent-2", "proposal": "x"}
    line = listen_line("agent.response.completed", json.dumps(forged).encode())
    assert "\n" not in line and "a\\x0aagent.response.failed" in line
    bidi = {"task_id": "t", "agent_id": "a", "proposal": "pay \u202eevil\u2066 now"}
    line = listen_line("agent.response.completed", json.dumps(bidi).encode())
    assert "\u202e" not in line and "\u2066" not in line and "\\u202eevil\\u2066" in line


def test_a_locked_cache_costs_hits_not_the_run(tmp_path: Path, caplog) -> None:
    from pipelines.flow.cache import CacheGate, ResponseCache, request_keys

    store = ResponseCache(tmp_path)
    store.timeout_s = 0.2
    other = sqlite3.connect(store.path)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the file (an NFS lock, say)
    try:
        gate = CacheGate(store, {"model": "m"}, "true")
        rows = pd.DataFrame(
            {
                "system_prompt": ["s"],
                "prompt": ["p"],
                "temperature": [0.7],
                "seed": [1],
                "max_tokens": [4],
                "proposal": ["an answer"],
                "prompt_tokens": [1],
                "completion_tokens": [2],
                "finish_reason": ["stop"],
                "latency": [0.1],
                "error": [None],
            }
        )
        gate.keep(rows)  # the run goes on
    finally:
        other.rollback()
        other.close()
    assert "database is locked" in caplog.text and "1 answers not kept" in caplog.text
    assert store.get(request_keys(rows, {"model": "m"})) == {}


def test_a_run_folder_held_by_a_live_process_is_refused_to_a_new_run(tmp_path: Path) -> None:
    from pipelines.runtime.durable import hold_run_folder

    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from pipelines.runtime.durable import hold_run_folder\n"
        f"with hold_run_folder(Path({str(tmp_path)!r})):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(UserError, match=f"pid {holder.pid}"), hold_run_folder(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    with hold_run_folder(tmp_path), hold_run_folder(tmp_path):  # free again; re-entrant
        assert os.path.exists(tmp_path / ".lock")
