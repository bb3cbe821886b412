import pytest

from pipelines import UserError
from pipelines.config import CouncilSpec
from pipelines.flow.council import agent_temperature, batches, expand, request_seed
from pipelines.flow.scaling import expand_arms
from pipelines.flow.tasks import Task

TASKS = [
    Task(task_id=f"devops-00{i}", role="devops", prompt=f"p{i}", keywords=["k"]) for i in (1, 2)
]
PROMPTS = {"devops": "sys"}


def test_expansion_is_task_major_with_diversity_schedule() -> None:
    table = expand(TASKS, CouncilSpec(agents=3), PROMPTS, batch_size=4)
    assert len(table) == 6
    assert table["task_id"].tolist() == ["devops-001"] * 3 + ["devops-002"] * 3
    assert table["agent_id"].tolist()[:3] == [
        "agent-devops-001",
        "agent-devops-002",
        "agent-devops-003",
    ]
    assert table["temperature"].tolist()[:3] == [0.7, 0.91, 0.91]
    assert table["batch_id"].tolist() == [0, 0, 0, 1, 1, 1]  # balanced: 3 + 3, not 4 + 2
    assert [len(b) for b in batches(table)] == [3, 3]
    sizes = [len(b) for b in batches(expand(TASKS * 18, CouncilSpec(agents=1), PROMPTS, 32))]
    assert sizes == [18, 18]
    assert table["seed"].nunique() == 6


def test_temperature_is_capped() -> None:
    spec = CouncilSpec(temperature=1.5, diversity_factor=1.3, max_temperature=1.8)
    assert agent_temperature(spec, 1) == 1.5
    assert agent_temperature(spec, 2) == 1.8


def test_seeds_are_deterministic_and_depend_on_every_part() -> None:
    assert request_seed(0, "t", "a") == request_seed(0, "t", "a")
    assert (
        len({request_seed(0, "t", "a"), request_seed(1, "t", "a"), request_seed(0, "t", "b")}) == 3
    )
    assert 0 <= request_seed(7, "t", "a") < 2**31


def test_task_budget_and_context() -> None:
    task = Task(
        task_id="t", role="devops", prompt="do it", keywords=["k"], context="ctx", max_tokens=8
    )
    (row, *_) = expand([task], CouncilSpec(agents=1, max_tokens=64), PROMPTS, 8).itertuples()
    assert row.max_tokens == 8
    assert row.prompt == "ctx\n\ndo it"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agents": 0}, "agents must be >= 1"),
        ({"temperature": -0.1}, "temperature must be >= 0"),
        ({"max_tokens": 0}, "max_tokens must be >= 1"),
        ({"temperature": 1.0, "max_temperature": 0.5}, "max_temperature"),
    ],
)
def test_bad_council(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        CouncilSpec(**kwargs)


def test_scaling_arms_never_share_a_batch_and_keep_their_seeds() -> None:
    tasks = TASKS * 3  # 6 tasks
    arms = expand_arms(tasks, CouncilSpec(), PROMPTS, batch_size=4, sizes=[5, 1, 3])
    assert arms.groupby("council_size").size().to_dict() == {1: 6, 3: 18, 5: 30}
    assert arms.groupby("batch_id")["council_size"].nunique().max() == 1
    assert arms["row"].tolist() == list(range(len(arms)))
    assert arms.groupby("batch_id").size().max() <= 4
    # An agent's request is the same whatever the council size around it.
    one = arms[(arms["council_size"] == 1)][["task_id", "seed"]]
    five = arms[(arms["council_size"] == 5) & (arms["agent_index"] == 1)][["task_id", "seed"]]
    assert one["seed"].tolist() == five["seed"].tolist()


def test_repeats_sample_each_agent_again_with_new_seeds_and_keep_the_first() -> None:
    once = expand(TASKS, CouncilSpec(agents=3), PROMPTS, batch_size=4)
    thrice = expand(TASKS, CouncilSpec(agents=3, repeats=3), PROMPTS, batch_size=4)
    assert len(thrice) == 18 and thrice["seed"].nunique() == 18
    assert thrice["repeat"].tolist()[:9] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    first = thrice[thrice["repeat"] == 0]
    # Repeat 0 is the single run's request: its cached answer is reused.
    assert first["seed"].tolist() == once["seed"].tolist()
    assert first["temperature"].tolist() == once["temperature"].tolist()
    with pytest.raises(UserError, match="repeats"):
        CouncilSpec(repeats=0)
