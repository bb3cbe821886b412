"""Parts: atomic per-batch files, and which requests they already hold."""

from pathlib import Path

import pandas as pd

from pipelines.config import CouncilSpec
from pipelines.council import expand
from pipelines.parts import held_keys, part_files, read_parts, write_part
from pipelines.tasks import Task

TASKS = [Task(task_id=f"dev-{i}", role="dev", prompt="p", keywords=["k"]) for i in range(3)]


def test_parts_hold_what_landed_and_nothing_torn(tmp_path: Path) -> None:
    requests = expand(TASKS, CouncilSpec(agents=2), {"dev": "s"}, batch_size=2)
    assert requests["batch_id"].tolist() == [0, 0, 1, 1, 2, 2]
    assert not held_keys(tmp_path, requests).any()

    write_part(tmp_path, 0, requests[requests["batch_id"] == 0].assign(proposal="a"))
    write_part(tmp_path, 2, requests[requests["batch_id"] == 2].assign(proposal="c"))
    # What a kill during a write leaves: a temporary file, never read as a part.
    (tmp_path / "results" / ".part-00001.parquet.tmp").write_bytes(b"PAR1 torn")

    assert [p.name for p in part_files(tmp_path)] == ["part-00000.parquet", "part-00002.parquet"]
    assert held_keys(tmp_path, requests).tolist() == [True, True, False, False, True, True]
    assert read_parts(tmp_path)["proposal"].tolist() == ["a", "a", "c", "c"]


def test_scaling_arms_are_told_apart(tmp_path: Path) -> None:
    one = expand(TASKS, CouncilSpec(agents=1), {"dev": "s"}, batch_size=8).assign(council_size=1)
    three = expand(TASKS, CouncilSpec(agents=3), {"dev": "s"}, batch_size=8)
    requests = pd.concat([one, three.assign(council_size=3)], ignore_index=True)
    write_part(tmp_path, 0, one)
    held = held_keys(tmp_path, requests)
    assert held.tolist() == [True] * 3 + [False] * 9  # agent 1 of the 3-council is not held
