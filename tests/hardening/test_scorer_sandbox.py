"""Model output never runs as code in the driver: reasoning_gym's scorers, several of
which ``eval()`` the answer, run in a sandboxed worker (pipelines/spec/gym_scorer.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipelines import PROJECT_ROOT
from pipelines.spec.verifiers import GymScorer
from tests.engine_helpers import stand_in_engine

SPIRAL = {"question": "", "answer": "1 2 3 6 9 8 7 4 5", "metadata": {}}


def test_an_answer_that_runs_code_runs_it_in_the_sandbox_not_the_driver(tmp_path: Path) -> None:
    scorer = GymScorer()
    marker = tmp_path / "MARKER"
    attack = f"[__import__('os').system('touch {marker}')]"
    assert scorer.score("spiral_matrix", attack, SPIRAL) == 0.0  # reasoning_gym eval()s it
    assert not marker.exists()
    # The scorer still scores: its exact match, and its partial credit for a list.
    assert scorer.score("spiral_matrix", "1 2 3 6 9 8 7 4 5", SPIRAL) == 1.0
    assert scorer.score("spiral_matrix", "[1, 2, 3, 6, 9, 8, 7, 4, 5]", SPIRAL) == 0.1


@pytest.mark.parametrize(
    "answer",
    [
        "9**9**9**9",  # the scorer would never end
        "[__import__('os')._exit(0)]",  # the worker ends, as if it had finished
        "[print('x' * 10**8)]",  # floods what the worker prints
        "[__import__('os').kill(__import__('os').getppid(), 9)]",  # signals its parent
    ],
    ids=["hang", "exit", "flood", "kill-parent"],
)
def test_an_answer_that_breaks_the_scorer_is_scored_wrong_and_the_next_one_scored(
    answer: str,
) -> None:
    scorer = GymScorer()
    assert scorer.score("spiral_matrix", answer, SPIRAL) == 0.0
    assert scorer.score("spiral_matrix", "1 2 3 6 9 8 7 4 5", SPIRAL) == 1.0


def test_a_hostile_engines_answer_to_a_spiral_matrix_task_is_scored_and_runs_nothing(
    tmp_path: Path,
) -> None:
    """The must-show: scored (wrong), MARKER absent, the run finishes."""
    import reasoning_gym

    (entry,) = reasoning_gym.create_dataset("spiral_matrix", size=1, seed=1)
    task = {
        "task_id": "spiral-0",
        "role": "data",
        "prompt": entry["question"],
        "keywords": ["spiral"],
        "answer": entry["answer"],
        "verifier": "reasoning_gym:spiral_matrix",
        "metadata": entry["metadata"],
    }
    dataset = tmp_path / "spiral.jsonl"
    dataset.write_text(json.dumps(task) + "\n")
    run = tmp_path / "run"
    attack = f"The spiral is below.\nAnswer: [__import__('os').system('touch {tmp_path}/MARKER')]"
    with stand_in_engine(attack) as hostile_engine:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines.run",
                "role=data",
                f"dataset={dataset}",
                "engine=openai",
                f"engine.url={hostile_engine}",
                "executor=local",
                "sink=none",
                "tracking=none",
                "agents=2",
                f"hydra.run.dir={run}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "MARKER").exists()
    results = pd.read_parquet(run / "results.parquet")
    assert results["proposal"].str.contains("__import__").all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["overall"]["accuracy"] == 0.0  # scored, and wrong
    assert metrics["overall"]["no_answer_rate"] == 0.0
    assert PROJECT_ROOT.exists() and not (PROJECT_ROOT / "MARKER").exists()


def test_the_worker_and_its_bwrap_hold_none_of_the_drivers_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bwrap's --clearenv clears its child's environment, not bwrap's own, which a
    non-root sandbox can read at /proc/1/environ: bwrap starts with none."""
    import psutil

    from pipelines.runtime import sandbox

    monkeypatch.setenv("NATS_TOKEN", "s3cret-token")
    source = (
        "import json, os, sys\n"
        "out = os.fdopen(int(sys.argv[1]), 'w', buffering=1)\n"
        "out.write(json.dumps({'ready': True}) + '\\n')\n"
        "for line in sys.stdin:\n"
        "    out.write(json.dumps(dict(os.environ)) + '\\n')\n"
    )
    worker = sandbox.Worker(source)
    try:
        seen = worker.ask({})
        assert worker._child is not None
        bwrap_env = psutil.Process(worker._child.pid).environ()
    finally:
        worker.close()
    # bwrap sets PWD, Python its C locale (LC_CTYPE); nothing of the driver's.
    assert seen is not None and set(seen) <= {*sandbox.THREAD_VARS, "PWD", "LC_CTYPE"}
    assert bwrap_env == {}


def test_a_worker_that_cannot_start_stops_the_run_not_scores_it_wrong() -> None:
    from pipelines import RunStopped
    from pipelines.runtime import sandbox

    worker = sandbox.Worker("import time\ntime.sleep(60)\n", start_s=2)
    with pytest.raises(RunStopped, match="did not start within 2 s"):
        worker.ask({"dataset": "spiral_matrix"})
