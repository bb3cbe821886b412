import json
from pathlib import Path

import pytest

from pipelines.config import DATASET_DIR, known_roles
from pipelines.tasks import TaskFileError, load_tasks

GOOD = {"task_id": "devops-001", "role": "devops", "prompt": "p", "keywords": ["k"]}


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("role", known_roles())
def test_shipped_datasets_are_valid(role: str) -> None:
    tasks = load_tasks(DATASET_DIR / f"{role}.jsonl", roles=[role])
    assert len(tasks) >= 12
    assert all(3 <= len(t.keywords) <= 5 for t in tasks)


def test_optional_fields_load(tmp_path: Path) -> None:
    record = {**GOOD, "context": "c", "tags": ["t"], "max_tokens": 64}
    (task,) = load_tasks(write(tmp_path, "", json.dumps(record), ""))
    assert (task.context, task.tags, task.max_tokens) == ("c", ["t"], 64)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "dataset is empty"),
        (["{not json"], ":1: malformed JSON"),
        (["[1, 2]"], ":1: expected a JSON object"),
        ([json.dumps({**GOOD, "keyword": ["x"]})], ":1: field 'keyword': unknown field"),
        ([json.dumps({k: v for k, v in GOOD.items() if k != "prompt"})], ":1: field 'prompt'"),
        ([json.dumps({**GOOD, "keywords": []})], ":1: field 'keywords'"),
        ([json.dumps({**GOOD, "keywords": [" "]})], "keywords must not be blank"),
        ([json.dumps({**GOOD, "max_tokens": 0})], ":1: field 'max_tokens'"),
        ([json.dumps(GOOD), "", json.dumps(GOOD)], ":3: field 'task_id': duplicate 'devops-001'"),
        ([json.dumps({**GOOD, "role": "qa"})], ":1: field 'role': 'qa' is not one of"),
    ],
)
def test_bad_files_name_file_line_and_field(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write(tmp_path, *lines)
    with pytest.raises(TaskFileError, match=str(path)) as err:
        load_tasks(path, roles=["devops"])
    assert message in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="dataset file not found"):
        load_tasks(tmp_path / "nope.jsonl")
