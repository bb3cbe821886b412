"""Ground truth: the task fields, the verdicts, majority vote, pass@N, AUROC, and the
self-consistency baseline's budget."""

from __future__ import annotations

import itertools
import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import PROJECT_ROOT
from pipelines.config import compose_config
from pipelines.deliberation.accuracy import flips
from pipelines.driver.pipeline import council_requests
from pipelines.flow.task_sources import reasoning_gym_tasks
from pipelines.flow.tasks import Task, TaskFileError, load_tasks, reference, references
from pipelines.make_dataset import main as make_dataset
from pipelines.scoring.metrics import score_rows, task_figures, task_metrics, task_scores
from pipelines.scoring.truth import auroc, truth_section


def write(path: Path, *records: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


BASE = {"role": "data", "prompt": "What is 2 + 2?", "keywords": ["4"]}


def test_the_loader_names_each_bad_reference_by_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.jsonl",
        {**BASE, "task_id": "ok", "answer": "4", "verifier": "numeric"},
        {**BASE, "task_id": "a", "answer": "four", "verifier": "numeric"},
        {**BASE, "task_id": "b", "verifier": "exact"},
        {**BASE, "task_id": "c", "answer": "C", "verifier": "choice", "choices": ["1", "2"]},
        {**BASE, "task_id": "d", "answer": "4", "verifier": "regex"},
        {**BASE, "task_id": "e", "answer": "4", "verifier": "reasoning_gym:no_such"},
        {**BASE, "task_id": "f", "answer": "4", "verifier": "reasoning_gym:basic_arithmetic"},
        {**BASE, "task_id": "g", "answer": 4},
    )
    with pytest.raises(TaskFileError) as err:
        load_tasks(path)
    lines = str(err.value).splitlines()[1:]
    assert lines == [
        f"{path}:2: field 'answer': 'four' is not one number (verifier 'numeric')",
        f"{path}:3: field 'answer': required by verifier 'exact'",
        f"{path}:4: field 'answer': 'C' is none of the choices (a letter or a text)",
        f"{path}:5: field 'verifier': unknown 'regex' (one of exact, numeric, choice, "
        "reasoning_gym:<dataset>, python_tests)",
        f"{path}:6: field 'verifier': reasoning_gym has no dataset 'no_such'",
        f"{path}:7: field 'metadata': required by verifier 'reasoning_gym:basic_arithmetic' "
        "(its scorer reads it)",
        f"{path}:8: field 'answer': Input should be a valid string",
    ]


def test_an_answer_alone_is_checked_exactly_and_the_prompt_asks_for_it(tmp_path: Path) -> None:
    tasks = load_tasks(write(tmp_path / "t.jsonl", {**BASE, "task_id": "a", "answer": "4"}))
    assert tasks[0].verified_by == "exact"
    requests = council_requests(compose_config(["role=data", "agents=2"]), tasks)
    assert requests["prompt"].str.endswith("`Answer: <your final answer>`.").all()
    plain = Task(task_id="b", role="data", prompt="Say hi.", keywords=["hi"])
    assert council_requests(compose_config(["role=data"]), [plain])["prompt"].eq("Say hi.").all()


def results_of(tasks: list[Task], texts: dict[tuple[str, int], str | None]) -> pd.DataFrame:
    """A results table: ``texts[(task_id, agent_index)]``, None for a failed request."""
    rows = []
    for task, index in itertools.product(tasks, (1, 2, 3)):
        text = texts[(task.task_id, index)]
        rows.append(
            {
                "run_id": "r",
                "role": task.role,
                "task_id": task.task_id,
                "agent_id": f"agent-data-00{index}",
                "agent_index": index,
                "repeat": 0,
                "round": 1,
                "temperature": 0.7,
                "proposal": text or "",
                "error": None if text is not None else "EngineError: boom",
                "completion_tokens": 3,
            }
        )
    return pd.DataFrame(rows)


def test_verdicts_majority_and_pass_at_n_from_a_generated_set() -> None:
    records = reasoning_gym_tasks("basic_arithmetic", 3, 5, "data", {"max_terms": 2})
    tasks = [Task.model_validate(r) for r in records]
    a, b, c = (t.answer for t in tasks)
    wrong = "Answer: 123456789"
    texts = {
        # task 0: agents 2 and 3 right, agent 1 wrong: majority right, pass@3 right
        (tasks[0].task_id, 1): wrong,
        (tasks[0].task_id, 2): f"So it is {a}.\nAnswer: {a}",
        (tasks[0].task_id, 3): f"**Answer:** {a}",
        # task 1: one right, one silent, one failed: a lone vote is the majority
        (tasks[1].task_id, 1): f"Answer: {b}",
        (tasks[1].task_id, 2): "I think it is hard.",
        (tasks[1].task_id, 3): None,
        # task 2: all wrong, two agreeing on the same wrong answer
        (tasks[2].task_id, 1): wrong,
        (tasks[2].task_id, 2): wrong,
        (tasks[2].task_id, 3): f"Answer: {c}1",
    }
    refs = references(tasks)
    scored = score_rows(results_of(tasks, texts), {k: [v.answer] for k, v in refs.items()}, refs)
    assert scored["verdict"].tolist() == [
        *("wrong", "correct", "correct"),
        *("correct", "no_answer", "failed"),
        *("wrong", "wrong", "wrong"),
    ]
    per_task = task_figures(scored, None, refs)
    assert per_task["majority_accuracy"].tolist() == [1.0, 1.0, 0.0]
    assert per_task["pass_at_n"].tolist() == [1.0, 1.0, 0.0]
    assert per_task["majority_answer"].tolist()[2] == "123456789"
    # The run-level figures average per task, as their intervals resample.
    table = task_scores(task_metrics(scored, per_task))
    assert table["accuracy"].tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert table["no_answer_rate"].tolist() == pytest.approx([0.0, 1 / 3, 0.0])
    truth = truth_section(scored, per_task)
    assert (truth["correct"], truth["wrong"], truth["no_answer"], truth["failed"]) == (3, 4, 1, 1)
    assert truth["agents"]["agent-data-002"]["mean"] == pytest.approx(1 / 3)
    assert truth["agents"]["agent-data-001"]["tasks"] == 3


def test_tasks_without_a_reference_have_no_truth_figures() -> None:
    task = Task(task_id="a", role="data", prompt="Say hi.", keywords=["hi"])
    results = results_of([task], {("a", i): "hi there" for i in (1, 2, 3)})
    scored = score_rows(results, {("data", "a"): ["hi"]}, references([task]))
    assert "correct" not in scored
    assert "majority_accuracy" not in task_figures(scored, None, references([task]))


def test_auroc_counts_pairs_like_the_definition() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(1, 6, size=40).astype(float)  # ties on purpose
    labels = rng.integers(0, 2, size=40).astype(float)
    right, wrong = scores[labels == 1], scores[labels == 0]
    pairs = [(r > w) + 0.5 * (r == w) for r in right for w in wrong]
    assert auroc(scores, labels) == pytest.approx(np.mean(pairs))
    assert auroc([1, 2], [1, 1]) is None  # no wrong answer: undefined
    assert auroc([1, 2, 3], [0, 1, 1]) == 1.0


def test_flips_count_changes_between_rounds() -> None:
    rows = []
    for agent, (r1, r2) in {"a1": (1, 0), "a2": (0, 1), "a3": (1, 1), "a4": (0, 0)}.items():
        for rnd, correct in ((1, r1), (2, r2)):
            rows.append(
                {
                    "role": "data",
                    "task_id": "t",
                    "repeat": 0,
                    "agent_id": agent,
                    "round": rnd,
                    "correct": float(correct),
                    "verdict": "correct" if correct else "wrong",
                }
            )
    [f] = flips(pd.DataFrame(rows))
    assert f == {
        "from_round": 1,
        "to_round": 2,
        "answers": 4,
        "right_to_wrong": 1,
        "wrong_to_right": 1,
    }


def test_self_consistency_samples_agent_one_at_the_councils_request_budget() -> None:
    council = ["role=data", "agents=3", "deliberation.rounds=2", "deliberation.chair=true"]
    cfg = compose_config([*council, "experiment=self_consistency"])
    assert (cfg.agents, cfg.experiment.samples) == (7, 7)  # 3 x 2 proposals + 1 chair
    assert cfg.experiment.budget_of == "agents=3 rounds=2 chair"
    assert not cfg.deliberates
    ranked = compose_config([*council, "deliberation.rank=true", "experiment=self_consistency"])
    assert ranked.agents == 3 * 2 + 3 * 2 + 1  # two orderings per ranker
    task = Task(task_id="a", role="data", prompt="2+2?", keywords=["4"], answer="4")
    requests = council_requests(cfg, [task])
    assert len(requests) == 7 and requests["round"].eq(1).all()
    assert requests["temperature"].nunique() == 1 and requests["seed"].nunique() == 7
    assert requests["system_prompt"].nunique() == 1
    with pytest.raises(Exception, match="judge=none"):
        compose_config([*council, "judge=council", "experiment=self_consistency"])


def test_make_dataset_writes_a_file_that_runs_and_refuses_unknown_generators(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "arith.jsonl"
    argv = ["reasoning_gym", "basic_arithmetic", "--size", "4", "--seed", "9"]
    assert make_dataset([*argv, "--set", "max_terms=2", "--out", str(out)]) == 0
    first = out.read_text()
    assert make_dataset([*argv, "--set", "max_terms=2", "--out", str(out)]) == 0
    assert out.read_text() == first  # same seed, same file
    tasks = load_tasks(out, roles=["data"])
    assert len(tasks) == 4 and all(t.verified_by == "reasoning_gym:basic_arithmetic" for t in tasks)
    assert make_dataset(["reasoning_gym", "no_such", "--out", str(tmp_path / "x")]) == 2
    assert "reasoning_gym has no dataset 'no_such'" in capsys.readouterr().err

    # --choices: a yes/no generator verified by 'choice', so "yes" is as right as "Yes"
    out = tmp_path / "syllogism.jsonl"
    argv = ["reasoning_gym", "syllogism", "--size", "4", "--choices", "Yes,No", "--role", "qa"]
    assert make_dataset([*argv, "--out", str(out)]) == 0
    (task, *_) = load_tasks(out, roles=["qa"])
    ref = reference(task)
    assert ref is not None and ref.verifier == "choice" and ref.choices == ("Yes", "No")
    wrong = "No" if ref.answer == "Yes" else "Yes"
    assert ref.check(ref.answer.lower()) and not ref.check(wrong)
    argv = ["reasoning_gym", "basic_arithmetic", "--choices", "Yes,No", "--out", str(out)]
    assert make_dataset(argv) == 2
    assert "its answer" in capsys.readouterr().err


@pytest.mark.parametrize("role", ["data", "qa", "dev"])
def test_every_shipped_reference_passes_its_own_verifier(role: str) -> None:
    tasks = load_tasks(PROJECT_ROOT / "datasets" / "truth" / f"{role}.jsonl", roles=[role])
    refs = references(tasks)
    assert len(refs) == len(tasks) >= 50
    assert all(ref.check(ref.answer) for ref in refs.values())


def test_the_shipped_sets_are_what_their_documented_commands_write(tmp_path: Path) -> None:
    readme = (PROJECT_ROOT / "datasets" / "README.md").read_text()
    for name in ("data", "qa", "dev"):
        line = next(x for x in readme.splitlines() if x.startswith(f"| `truth/{name}.jsonl`"))
        command = line.split("`")[3]  # | `file` | role | `command` ...
        argv = shlex.split(command)[3:]  # after python -m pipelines.make_dataset
        out = argv.index("--out") + 1
        argv[out] = str(tmp_path / f"{name}.jsonl")
        assert make_dataset(argv) == 0
        shipped = PROJECT_ROOT / "datasets" / "truth" / f"{name}.jsonl"
        assert (tmp_path / f"{name}.jsonl").read_bytes() == shipped.read_bytes(), name


def test_the_judge_is_scored_against_the_truth_of_what_it_judged() -> None:
    from pipelines.deliberation.accuracy import judge_agreement

    scored = pd.DataFrame(
        {
            "role": "data",
            "task_id": ["t1", "t1", "t2", "t2"],
            "repeat": 0,
            "round": 1,
            "agent_id": ["a1", "a2", "a1", "a2"],
            "correct": [1.0, 0.0, 1.0, 0.0],
            "verdict": ["correct", "wrong", "correct", "wrong"],
        }
    )
    judge = scored[["role", "task_id", "repeat", "round"]].assign(
        target=scored["agent_id"], score=[9.0, 2.0, 3.0, 3.0]
    )
    chair_row = {"role": "data", "task_id": "t1", "repeat": 0, "round": 1, "target": "chair"}
    judge = pd.concat([judge, pd.DataFrame([{**chair_row, "score": 10.0}])])
    # right {9, 3} against wrong {2, 3}: 9>2, 9>3, 3>2, 3=3 (the chair's 10 is not an agent's)
    assert judge_agreement(judge, scored) == pytest.approx((1 + 1 + 1 + 0.5) / 4)


def test_repeats_vote_each_on_their_own_and_spread_over_repeats() -> None:
    from pipelines.scoring.metrics import repeat_spread

    records = reasoning_gym_tasks("basic_arithmetic", 6, 5, "data", {"max_terms": 2})
    tasks = [Task.model_validate(r) for r in records]
    frames = []
    for repeat in (0, 1):
        texts = {
            (t.task_id, i): f"Answer: {t.answer if (i + repeat + n) % 2 else 99}"
            for n, t in enumerate(tasks)
            for i in (1, 2, 3)
        }
        frames.append(results_of(tasks, texts).assign(repeat=repeat))
    refs = references(tasks)
    scored = score_rows(pd.concat(frames), {k: [v.answer] for k, v in refs.items()}, refs)
    per_task = task_figures(scored, None, refs)
    assert len(per_task) == 12  # one vote per task and repeat
    # agents 1 and 3 agree in a repeat: the majority follows them, and it alternates
    by_repeat = per_task.groupby("repeat")["majority_accuracy"].mean()
    assert by_repeat[0] + by_repeat[1] == pytest.approx(1.0)
    spread = repeat_spread(task_metrics(scored, per_task))
    assert spread["repeats"] == 2 and "majority_accuracy_repeat_sd" in spread
