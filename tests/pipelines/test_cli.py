"""The real entry point refuses bad input: clear message, exit 2, nothing run."""

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import PROJECT_ROOT


def run_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.run", f"hydra.run.dir={tmp_path / 'run'}", *overrides],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset=/nonexistent/tasks.jsonl"], "dataset file not found"),
        (["agents=0"], "agents must be >= 1"),
        (["temperature=-0.5"], "temperature must be >= 0"),
        (["model.path=/nonexistent/model"], "python -m pipelines.prepare_model"),
    ],
)
def test_bad_input_exits_2_with_message(tmp_path: Path, overrides: list[str], message: str) -> None:
    proc = run_cli(tmp_path, *overrides)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "results.parquet").exists()


def test_malformed_dataset_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"task_id": "devops-001", "role": "devops", "prompt": "p", "keywords": ["k"]}\n{oops\n'
    )
    proc = run_cli(tmp_path, f"dataset={bad}")
    assert proc.returncode == 2
    assert f"{bad}:2: malformed JSON" in proc.stderr


def test_a_dataset_that_is_not_utf8_exits_2_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "utf16.jsonl"
    bad.write_bytes(b"\xff\xfe{\x00}\x00\n")  # UTF-16 with its byte-order mark
    proc = run_cli(tmp_path, f"dataset={bad}")
    assert proc.returncode == 2, proc.stderr
    assert f"{bad}:1: not UTF-8 text (byte 0xff at column 1)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_role_lists_the_known_ones(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "role=ops")
    assert proc.returncode != 0
    assert "devops" in proc.stderr and "architect" in proc.stderr


def test_help_lists_config_groups(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "--help")
    assert proc.returncode == 0
    for group in ("role", "model", "engine", "executor", "sink", "tracking"):
        assert f"{group}:" in proc.stdout
