import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.config import DATASET_DIR, known_roles
from pipelines.flow.tasks import MAX_PROBLEMS, TaskFileError, load_tasks

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


def test_every_bad_record_of_a_file_is_named_in_one_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps(GOOD),
        "{not json",
        json.dumps({**GOOD, "task_id": "devops-002", "keyword": ["x"]}),
        json.dumps({**GOOD, "task_id": "devops-003"}),
        json.dumps({**GOOD, "task_id": "devops-004", "max_tokens": "64"}),
    )
    with pytest.raises(TaskFileError) as err:
        load_tasks(path, roles=["devops"])
    lines = str(err.value).splitlines()
    assert lines[0] == f"{path}: 3 problems:"
    assert [line.split(": ")[0] for line in lines[1:]] == [f"{path}:{n}" for n in (2, 3, 5)]


def test_a_long_list_of_problems_is_capped(tmp_path: Path) -> None:
    path = write(tmp_path, *["[]"] * (MAX_PROBLEMS + 5))
    with pytest.raises(TaskFileError) as err:
        load_tasks(path)
    assert str(err.value).splitlines()[-1] == "... and 5 more"
    assert len(str(err.value).splitlines()) == 1 + MAX_PROBLEMS + 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe{\x00}\x00\n", ":1: not UTF-8 text (byte 0xff at column 1)"),
        (b"\x00\x01\x02\x03", ":1: malformed JSON"),
        (b"[" * 100_000, ":1: malformed JSON"),
        (b'{"task_id": 1' + b"0" * 5000 + b"}", ":1: malformed JSON"),
    ],
)
def test_encoding_errors_and_garbage_are_clean_errors(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(data)
    with pytest.raises(TaskFileError) as err:
        load_tasks(path)
    assert message in str(err.value)


def test_a_byte_order_mark_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert [t.task_id for t in load_tasks(path)] == ["devops-001"]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
def test_random_bytes_give_only_the_loaders_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("bytes") / "tasks.jsonl"
    path.write_bytes(data)
    with contextlib.suppress(TaskFileError):  # anything else fails the test
        assert isinstance(load_tasks(path), list)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "task_id": JSON | st.text(min_size=1, max_size=10),
        "role": JSON | st.sampled_from(["devops", "qa"]),
        "prompt": JSON | st.text(max_size=20),
        "keywords": JSON | st.lists(st.text(max_size=8), max_size=3),
        "context": JSON,
        "tags": JSON,
        "max_tokens": JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(JSON | RECORDS, max_size=5))
def test_random_json_gives_tasks_or_only_the_loaders_error(
    tmp_path_factory: pytest.TempPathFactory, lines: list
) -> None:
    path = tmp_path_factory.mktemp("json") / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    try:
        tasks = load_tasks(path, roles=["devops"])
    except TaskFileError:
        return
    assert all(t.role == "devops" and t.keywords for t in tasks)
