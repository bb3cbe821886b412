"""The code sandbox, attacked for real: each test runs the escape attempt a proposal
could make and checks what the host saw."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

import psutil
import pytest

from pipelines import PROJECT_ROOT
from pipelines.flow.tasks import TaskFileError, load_tasks
from pipelines.runtime import sandbox
from pipelines.runtime.sandbox import Limits, run_python
from pipelines.spec.verifiers import PYTHON_TESTS, Reference


def left_behind(marker: str) -> list[int]:
    """Processes on this host whose command line holds ``marker``."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if marker in " ".join(p.info["cmdline"] or []):
            found.append(p.info["pid"])
    return found


def test_it_runs_code_and_reports_its_output() -> None:
    done = run_python("print(sum(range(10)))")
    assert done.passed and done.output == "45\n"
    failed = run_python("raise SystemExit(3)")
    assert (failed.status, failed.returncode) == ("failed", 3)


def test_a_proposal_cannot_read_the_run_folder_the_project_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "results.parquet").write_text("secret answers")
    monkeypatch.setenv("COUNCIL_TEST_SECRET", "s3cr3t-value")
    program = f"""
import json, os
seen = {{}}
for path in [{str(run / "results.parquet")!r}, {str(PROJECT_ROOT / "README.md")!r}, "/etc/shadow"]:
    try:
        seen[path] = open(path).read()[:20]
    except OSError as e:
        seen[path] = type(e).__name__
seen["root"] = sorted(os.listdir("/"))
seen["env"] = dict(os.environ)
open("mine.txt", "w").write("a proposal may write its own folder")
print(json.dumps(seen))
"""
    done = run_python(program)
    assert done.passed, done.output
    seen = json.loads(done.output)
    assert seen[str(run / "results.parquet")] == "FileNotFoundError"
    assert seen[str(PROJECT_ROOT / "README.md")] == "FileNotFoundError"
    assert seen["/etc/shadow"] == "FileNotFoundError"
    assert seen["root"] == ["bin", "dev", "lib", "lib64", "proc", "python", "sandbox", "tmp", "usr"]
    assert "COUNCIL_TEST_SECRET" not in seen["env"] and "s3cr3t" not in done.output


def test_a_proposal_cannot_open_a_socket_to_the_host() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    program = f"""
import socket
for target in [("127.0.0.1", {port}), ("1.1.1.1", 80)]:
    try:
        socket.create_connection(target, timeout=2)
        print("connected", target)
    except OSError as e:
        print("refused", target, type(e).__name__)
"""
    done = run_python(program)
    with pytest.raises(TimeoutError):
        server.accept()  # nothing reached the host's loopback
    server.close()
    assert "connected" not in done.output
    assert done.output.count("refused") == 2, done.output


def test_a_fork_bomb_is_capped_and_leaves_nothing_running() -> None:
    many = """
import os, time
forks = 0
for _ in range(200):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        forks += 1
    except OSError:
        break
print(forks)
"""
    counted = run_python(many, Limits(wall_s=5))
    assert counted.passed and int(counted.output) < Limits().processes
    start = time.monotonic()
    bomb = run_python(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        Limits(wall_s=3),
    )
    assert bomb.status == "timeout" and time.monotonic() - start < 10
    time.sleep(0.5)
    assert left_behind("/sandbox/main.py") == []


def test_a_proposal_cannot_outlive_its_timeout_or_leave_a_daemon() -> None:
    marker = f"daemon-{uuid.uuid4().hex}"
    program = f"""
import subprocess, sys, time
# a grandchild in its own session, as a daemon would
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)  # {marker}"],
                 start_new_session=True)
print("spawned", flush=True)
time.sleep(120)
"""
    start = time.monotonic()
    done = run_python(program, Limits(wall_s=2))
    assert done.status == "timeout" and time.monotonic() - start < 6
    time.sleep(0.5)
    assert left_behind(marker) == []
    # Ending on time does not leave its daemon either.
    quick = run_python(program.replace("time.sleep(120)\n", "\n"), Limits(wall_s=10))
    assert quick.passed
    time.sleep(0.5)
    assert left_behind(marker) == []


def test_cpu_memory_and_file_limits_hold() -> None:
    start = time.monotonic()
    spin = run_python("while True:\n    pass", Limits(wall_s=30, cpu_s=1))
    assert spin.status == "timeout" and time.monotonic() - start < 10
    memory = run_python("x = bytearray(2 * 1024**3)", Limits(memory_mb=256))
    assert memory.status == "failed" and "MemoryError" in memory.output
    big = run_python("open('big', 'wb').write(b'x' * 5 * 1024 * 1024)", Limits(file_mb=1))
    assert big.status == "failed" and "File too large" in big.output


def test_python_tests_pass_a_right_function_and_fail_a_wrong_one() -> None:
    ref = Reference(
        "def add(a, b):\n    return a + b",
        PYTHON_TESTS,
        metadata={"preamble": "def add(a: int, b: int) -> int:\n    '''a + b'''\n"},
        tests="def check(candidate):\n    assert candidate(2, 3) == 5\n",
        entry_point="add",
    )
    right = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```"
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    assert ref.check(ref.extract(right) or "")
    assert not ref.check(ref.extract(wrong) or "")
    assert ref.extract("def add(a, b): return a + b") is None  # no code block: no answer


@pytest.mark.parametrize(
    "exit_early",
    ["import os\nos._exit(0)", "raise SystemExit(0)", "import sys\nsys.exit()"],
    ids=["os._exit", "SystemExit", "sys.exit"],
)
def test_a_proposal_that_exits_0_before_the_tests_is_not_a_pass(exit_early: str) -> None:
    ref = Reference(
        "def add(a, b):\n    return a + b",
        PYTHON_TESTS,
        tests="def check(candidate):\n    assert candidate(2, 3) == 5\n",
        entry_point="add",
    )
    proposal = f"```python\ndef add(a, b):\n    return a - b\n{exit_early}\n```"
    assert run_python(exit_early).passed  # it does exit 0 ...
    assert not ref.check(ref.extract(proposal) or "")  # ... and is scored wrong


def test_code_scoring_stops_at_its_time_budget_and_leaves_the_rest_unscored() -> None:
    """Each proposal may take its whole wall limit: 1,000 proposals sleeping 10 s each
    held the scoring for hours. Past ``code_budget_s`` a proposal is not run, and
    not run is not wrong."""
    import time

    import pandas as pd

    from pipelines.scoring.truth import UNSCORED, score_truth, task_truth

    ref = Reference(
        "def add(a, b):\n    return a + b",
        PYTHON_TESTS,
        tests="def check(candidate):\n    assert candidate(2, 3) == 5\n",
        entry_point="add",
    )
    slow = "```python\nimport time\ntime.sleep(1)\ndef add(a, b):\n    return a + b\n```"
    rows = pd.DataFrame(
        {
            "role": "dev",
            "task_id": "c1",
            "repeat": 0,
            "agent_index": range(1, 6),
            "proposal": [slow] * 5,
            "error": [None] * 5,
        }
    )
    start = time.monotonic()
    scored = score_truth(rows, {("dev", "c1"): ref}, code_budget_s=1.5)
    took = time.monotonic() - start
    assert scored["verdict"].tolist() == ["correct", "correct", UNSCORED, UNSCORED, UNSCORED]
    assert scored["correct"].tolist()[:2] == [1.0, 1.0] and scored["correct"][2:].isna().all()
    assert took < 4.5, took  # two runs, not five
    assert task_truth(scored).empty  # a council vote with unrun proposals is not judged
    unlimited = score_truth(rows.head(2), {("dev", "c1"): ref})
    assert unlimited["verdict"].tolist() == ["correct", "correct"]


def test_code_tasks_are_refused_without_bubblewrap_faked_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = {
        "task_id": "c1",
        "role": "dev",
        "prompt": "Write add.",
        "keywords": ["add"],
        "answer": "def add(a, b):\n    return a + b",
        "verifier": "python_tests",
        "tests": "def check(c):\n    assert c(1, 2) == 3\n",
        "entry_point": "add",
    }
    path = tmp_path / "code.jsonl"
    path.write_text(json.dumps(task) + "\n")
    assert load_tasks(path)[0].verified_by == PYTHON_TESTS
    monkeypatch.setattr(sandbox, "bwrap", lambda: None)
    with pytest.raises(TaskFileError, match=r"code\.jsonl:1: .*needs bubblewrap: apt-get install"):
        load_tasks(path)


def test_a_flood_of_output_fails_the_program_without_filling_the_driver() -> None:
    """Output is read as it comes, its tail kept: 512 MiB printed costs the driver
    nothing like it (it used to be read whole: +1.5 GiB peak)."""
    probe = (
        "import resource, sys\n"
        "from pipelines.runtime.sandbox import Limits, run_python\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "done = run_python(\"import sys\\nfor _ in range(512): sys.stdout.write('x' * (1 << 20))\","
        " Limits(wall_s=30, file_mb=1))\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(done.status, len(done.output), (after - before) // 1024)\n"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT
    )
    status, length, grown_mb = out.stdout.split()
    assert status == "failed" and int(length) < 3000, out.stdout
    assert int(grown_mb) < 64, out.stdout


def test_the_process_limit_of_a_non_root_driver_counts_its_threads() -> None:
    """RLIMIT_NPROC counts the user's threads: a limit set from its processes left a
    driver with idle threads unable to start bwrap ("Creating new namespace failed"),
    and every code proposal scored wrong. (This host runs the tests as root, whose
    sandbox runs as nobody; here the non-root arithmetic is checked on its own.)"""
    import threading

    import psutil

    from pipelines.runtime.sandbox import _processes

    stop = threading.Event()
    idle = [threading.Thread(target=stop.wait) for _ in range(40)]
    for t in idle:
        t.start()
    try:
        limit = _processes(Limits(processes=16), root=False)
        threads = sum(
            p.num_threads() for p in psutil.process_iter() if p.uids().real == os.getuid()
        )
    finally:
        stop.set()
    assert limit >= threads - 5 + 16 and limit >= 40 + 16
    assert _processes(Limits(processes=16), root=True) == 16


def test_a_sandbox_that_cannot_start_is_an_error_not_a_wrong_answer_fault_injected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bwrap is made to fail as it does when it cannot make its namespaces (the
    fault is injected: an option this bwrap refuses)."""
    from pipelines import RunStopped

    real = sandbox._command
    monkeypatch.setattr(
        sandbox, "_command", lambda *a, **k: [real(*a, **k)[0], "--no-such-option", "x"]
    )
    ref = Reference(
        "def add(a, b):\n    return a + b",
        PYTHON_TESTS,
        tests="def check(candidate):\n    assert candidate(2, 3) == 5\n",
        entry_point="add",
    )
    with pytest.raises(RunStopped, match="the code sandbox does not start: bwrap: "):
        ref.check("def add(a, b):\n    return a + b")


def test_every_writable_place_is_a_bounded_tmpfs_and_the_code_is_read_only() -> None:
    """Files of 1 MB each (under the file-size limit) until the place is full: each
    stops at its tmpfs's 16 MB, not at the host's disk or half its RAM."""
    program = (
        "import os\n"
        "for place in ('/sandbox', '/tmp', '/dev/shm'):\n"
        "    written = 0\n"
        "    try:\n"
        "        for i in range(200):\n"
        "            with open(f'{place}/f{i}', 'wb') as f:\n"
        "                f.write(b'x' * (1 << 20))\n"
        "            written += 1\n"
        "    except OSError as e:\n"
        "        print(place, written, e.errno)\n"
        "try:\n"
        "    open('/sandbox/code/main.py', 'a').write('#')\n"
        "except OSError as e:\n"
        "    print('code', e.errno)\n"
        "try:  # the host's TemporaryDirectory cleanup would follow it (CVE-2023-6597)\n"
        "    os.symlink('/etc/passwd', '/sandbox/code/link')\n"
        "except OSError as e:\n"
        "    print('link', e.errno)\n"
    )
    done = run_python(program, Limits(wall_s=30))
    lines = dict(line.split(" ", 1) for line in done.output.splitlines())
    for place in ("/sandbox", "/tmp", "/dev/shm"):
        written, errno = map(int, lines[place].split())
        assert written <= 16 and errno == 28, (place, lines)  # ENOSPC
    assert int(lines["code"]) in (13, 30)  # EACCES / EROFS
    assert int(lines["link"]) in (13, 30)
