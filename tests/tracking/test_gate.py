"""The gate (``compare A B --gate``): its statistics on simulated nights, and the
command on real runs in a real MLflow store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pipelines import PROJECT_ROOT
from pipelines.scoring.gate import benjamini_hochberg, detectable_drop, gate, holm, tasks_for


def test_holm_and_bh_adjust_as_their_definitions_say() -> None:
    p = [0.01, 0.04, None, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, running maximum.
    assert holm(p) == pytest.approx([0.03, 0.06, None, 0.06, 0.02])
    bh = benjamini_hochberg(p)
    assert bh[2] is None
    expected = stats.false_discovery_control([0.01, 0.04, 0.03, 0.005], method="bh")
    assert [bh[i] for i in (0, 1, 3, 4)] == pytest.approx(list(expected))


def night(rng: np.random.Generator, truth: dict[str, np.ndarray], drop: float) -> dict:
    """One night's per-task values: accuracy a 0/1 draw per task, the unanswered rate
    the mean of 3 agents' draws; ``drop`` lowers each task's accuracy."""
    accuracy = rng.random(len(truth["p"])) < np.clip(truth["p"] - drop, 0, 1)
    unanswered = (rng.random((len(truth["q"]), 3)) < truth["q"][:, None]).mean(axis=1)
    return {"answer_accuracy": accuracy.astype(float), "no_answer_rate": unanswered}


def alarm_rates(drop: float, correction: str | None, nights: int = 1000) -> float:
    """The share of simulated nights the gate fails, B drawn ``drop`` below A."""
    rng = np.random.default_rng(7)
    tasks = 60  # the shipped sets' size
    truth = {"p": rng.beta(2, 2, tasks), "q": rng.beta(1, 6, tasks)}
    tolerances = {"answer_accuracy": 0.02, "no_answer_rate": 0.02}
    failed = 0
    for _ in range(nights):
        a, b = night(rng, truth, 0.0), night(rng, truth, drop)
        pairs = {m: (a[m], b[m]) for m in a}
        if correction is None:  # each metric at alpha on its own
            results = [
                gate({m: pairs[m]}, tolerances, frozenset({"no_answer_rate"}))[0] for m in pairs
            ]
        else:
            results = gate(pairs, tolerances, frozenset({"no_answer_rate"}), correction=correction)
        failed += any(r.regressed for r in results)
    return failed / nights


def test_the_gate_rarely_fails_an_unchanged_council_and_catches_large_drops() -> None:
    """1,000 simulated nights of 60 tasks each: an unchanged council fails at most
    alpha of them; a council that lost 3x, 5x, 10x the tolerance in accuracy is
    caught more often as the drop grows. Measured: 0.025 false alarms; power
    0.10, 0.17, 0.66: 60 tasks of 0/1 answers catch a 20-point drop two times in
    three, and a 6-point one rarely (what ``detects`` says on a real pair)."""
    unchanged = alarm_rates(0.0, "holm")
    assert unchanged <= 0.05 + 0.02, unchanged  # alpha and the simulation's own noise
    power = [alarm_rates(k * 0.02, "holm", nights=300) for k in (3, 5, 10)]
    print(f"\nfalse alarms {unchanged:.3f}; power at 3x, 5x, 10x the tolerance: {power}")
    assert power[0] < power[1] < power[2] and power[2] > 0.5


def test_the_power_figures_invert_each_other() -> None:
    detects = detectable_drop(sd=0.5, n=60, level=0.025)
    assert detects == pytest.approx((1.96 + 0.8416) * 0.5 / 60**0.5, rel=1e-3)
    assert tasks_for(detects, sd=0.5, level=0.025) == 60
    # The README's figure: 0/1 answers at p = 0.5 drawn twice (sd of a drop
    # sqrt(2 * 0.25)), Holm over the 2 default metrics, a 5-point drop.
    assert tasks_for(0.05, sd=0.5**0.5, level=0.025) == 1570


def test_compare_gate_fails_a_worse_run_and_passes_an_equal_one(tmp_path: Path) -> None:
    """Real runs (a stand-in engine) tracked in a real MLflow store: B's answers
    hold none of the tasks' keywords, A's hold them all."""
    from pipelines.config import compose_config
    from pipelines.driver.pipeline import run_pipeline
    from tests.engine_helpers import stand_in_engine

    tasks = [json.loads(line) for line in (PROJECT_ROOT / "datasets/devops.jsonl").open()][:20]
    every_keyword = " ".join(k for t in tasks for k in t["keywords"])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def run(name: str, content: str) -> str:
        with stand_in_engine(content) as server:
            cfg = compose_config(
                [
                    "role=devops",
                    f"limit={len(tasks)}",
                    "agents=2",
                    "max_tokens=8",
                    "embeddings=false",
                    "engine=openai",
                    f"engine.url={server}",
                    "executor=local",
                    "sink=none",
                    f"tracking.uri={uri}",  # its own store: council-eval/devops
                ]
            )
            return run_pipeline(cfg, tmp_path / name, executor=None).run_id

    good, same, worse = run("a", every_keyword), run("a2", every_keyword), run("b", "no idea")

    def gate_cli(a: str, b: str, *more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipelines.compare", "--uri", uri, a, b, "--gate", *more],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=PROJECT_ROOT,
        )

    regressed = gate_cli(good, worse)
    assert regressed.returncode == 5, regressed.stdout + regressed.stderr[-2000:]
    assert regressed.stdout.startswith("REGRESSED: keyword_relevance dropped +")
    passed = gate_cli(good, same, "--tasks-for", "0.05")
    assert passed.returncode == 0, passed.stdout + passed.stderr[-2000:]
    assert passed.stdout.startswith("passed: no gated metric regressed")
    assert f"{len(tasks)} shared tasks" in passed.stdout
    # Identical answers: the drops never vary, so any drop would show at once.
    assert "keyword_relevance: 2 paired tasks detect a drop of 0.05 (80% power)" in passed.stdout
