"""Council expansion: every task times every agent, with temperatures and seeds.

Agent ``i`` (1-based) of role ``r`` is ``agent-r-00i``. Agent 1 runs at the base
temperature; agents 2..N at ``base * diversity_factor``, capped at
``max_temperature`` (the "diversity mode"). Each (task, agent) gets a seed
derived from (run seed, task_id, agent_id), so a rerun reproduces its outputs.
With ``repeats=K`` every (task, agent) is sampled K times; repeat 0 keeps that
seed (so a repeated run reuses a single run's cached answers) and repeat k
derives its own from k as well.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence

import pandas as pd

from evaluators.answers import ANSWER_INSTRUCTION, CODE_INSTRUCTION
from pipelines import UserError
from pipelines.config import CouncilSpec
from pipelines.flow.tasks import Task
from pipelines.runtime.ids import agent_id
from pipelines.spec.protocol import PROPOSE
from pipelines.spec.verifiers import PYTHON_TESTS

AGENT_COLUMNS = [
    "task_id",
    "role",
    "agent_id",
    "agent_index",
    "repeat",
    "round",
    "temperature",
    "seed",
]
"""Who answers what, how: the columns a request shares with its result."""
STEP_COLUMNS = ["step", "target", "shown", "json_schema"]
"""What a deliberation request is (``pipelines.deliberation.plan``): ``step`` is ``propose``,
``rank``, ``chair`` or ``judge``; ``target`` the judged agent (or ``chair``) or
the ranking's presentation order; ``shown`` the agents whose texts the prompt
shows, in order (JSON); ``json_schema`` the structured output asked for."""
REQUEST_COLUMNS = [
    "row",
    "batch_id",
    *AGENT_COLUMNS,
    *STEP_COLUMNS,
    "system_prompt",
    "prompt",
    "max_tokens",
]


def agent_temperature(spec: CouncilSpec, index: int) -> float:
    """Temperature of the ``index``-th (1-based) agent under ``spec``."""
    if index == 1:
        return spec.temperature
    return round(min(spec.temperature * spec.diversity_factor, spec.max_temperature), 6)


def request_seed(run_seed: int, task_id: str, agent: str, repeat: int = 0, salt: str = "") -> int:
    """Deterministic 31-bit seed for one (task, agent, repeat) of a run; ``salt`` names
    a deliberation step after the first proposal (round, ranking, chair, judge)."""
    key = f"{run_seed}\x1f{task_id}\x1f{agent}" + (f"\x1f{repeat}" if repeat else "")
    key += f"\x1f{salt}" if salt else ""
    digest = hashlib.blake2b(key.encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") & 0x7FFFFFFF


def agent_prompt(system_prompt: str, personas: Sequence[str], index: int) -> str:
    """The system prompt of the ``index``-th (1-based) agent: the role's, plus its
    persona line when the role has personas (cycled over the agents)."""
    if not personas:
        return system_prompt
    return f"{system_prompt}\n\n{personas[(index - 1) % len(personas)]}"


def user_message(task: Task) -> str:
    """The user turn put to every agent: context (if any), then the prompt, then for
    a task with a reference answer the line that says how to state the answer (a code
    block for a code task)."""
    text = f"{task.context}\n\n{task.prompt}" if task.context else task.prompt
    if task.verified_by is None:
        return text
    code = task.verified_by == PYTHON_TESTS
    return f"{text}\n\n{CODE_INSTRUCTION if code else ANSWER_INSTRUCTION}"


def expand(
    tasks: list[Task],
    spec: CouncilSpec,
    system_prompts: Mapping[str, str],
    batch_size: int,
    personas: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """The request table: one row per (task, repeat, agent), task-major, stable order.

    The pipeline, not the executor, cuts the table into balanced batches of at
    most ``batch_size`` (``batch_id``):
    the numerics of a CPU engine depend on batch composition, so every executor
    must run exactly these batches to give the same text. ``personas``: lines per
    role appended to the agents' prompts (``agent_prompt``); none by default.
    """
    missing = sorted({t.role for t in tasks} - set(system_prompts))
    if missing:
        raise UserError(f"no system prompt for role(s) {missing}")
    total = len(tasks) * spec.agents * spec.repeats
    # Balanced contiguous batches of at most batch_size: 36 requests at 32 give
    # 18 + 18, not 32 + 4 (a nearly empty batch costs as many decode steps).
    n_batches = -(-total // batch_size)
    rows = []
    for task in tasks:
        budget = min(task.max_tokens or spec.max_tokens, spec.max_tokens)
        for repeat, index in itertools.product(range(spec.repeats), range(1, spec.agents + 1)):
            agent = agent_id(task.role, index)
            rows.append(
                {
                    "row": len(rows),
                    "batch_id": len(rows) * n_batches // total,
                    "task_id": task.task_id,
                    "role": task.role,
                    "agent_id": agent,
                    "agent_index": index,
                    "repeat": repeat,
                    "round": 1,
                    "temperature": agent_temperature(spec, index),
                    "seed": request_seed(spec.seed, task.task_id, agent, repeat),
                    "step": PROPOSE,
                    "target": "",
                    "shown": "[]",
                    "json_schema": "",
                    "system_prompt": agent_prompt(
                        system_prompts[task.role], (personas or {}).get(task.role, ()), index
                    ),
                    "prompt": user_message(task),
                    "max_tokens": budget,
                }
            )
    return pd.DataFrame(rows, columns=REQUEST_COLUMNS)


def batches(requests: pd.DataFrame) -> list[pd.DataFrame]:
    """The request table split by ``batch_id``, in order."""
    return [b.reset_index(drop=True) for _, b in requests.groupby("batch_id", sort=True)]
