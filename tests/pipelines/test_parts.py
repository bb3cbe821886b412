"""Parts: atomic per-batch files, and which requests they already hold."""

from pathlib import Path

import pandas as pd

from pipelines.config import CouncilSpec
from pipelines.flow.council import expand
from pipelines.flow.parts import held_keys, part_files, read_parts, write_part
from pipelines.flow.tasks import Task

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


FULL_DISK = """
import os, resource, sys
from pathlib import Path
import pandas as pd
from pipelines.flow.parts import write_part
from pipelines.sinks.messages import Message
from pipelines.sinks.outbox import append_outbox

run = Path(sys.argv[1])
# Messages of run r1 (an outbox line of another run is never read back).
small = [Message("agent.response.completed", f"r1.m{i}", {"run_id": "r1", "text": "x" * 100})
         for i in range(3)]
append_outbox(run, small)
# The file-size limit: what a full disk does to the next writes (EFBIG, as ENOSPC).
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
big = [Message("agent.response.completed", f"r1.n{i}", {"run_id": "r1", "text": "y" * 1000})
       for i in range(9)]
for write in (
    lambda: append_outbox(run, big),
    lambda: write_part(run, 7, pd.DataFrame({"proposal": [os.urandom(20_000).hex()]})),
):
    try:
        write()
        print("written")
    except OSError as e:
        print("refused", e.errno)
"""


def test_a_full_disk_leaves_no_torn_outbox_line_and_no_partial_part(tmp_path: Path) -> None:
    """Real short writes: the child process runs under a file-size limit (RLIMIT_FSIZE)."""
    import errno
    import subprocess
    import sys

    from pipelines import PROJECT_ROOT
    from pipelines.sinks.messages import Message
    from pipelines.sinks.outbox import append_outbox, read_outbox

    child = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.stdout.split() == ["refused", str(errno.EFBIG)] * 2, child.stderr
    # The outbox is cut back to its last whole line; a resume appends after it.
    append_outbox(tmp_path, [Message("agent.response.completed", "r1.later", {"run_id": "r1"})])
    assert [m.msg_id for m in read_outbox(tmp_path)] == ["r1.m0", "r1.m1", "r1.m2", "r1.later"]
    assert part_files(tmp_path) == []
    assert list((tmp_path / "results").iterdir()) == []  # no temporary file left either


def test_parts_from_before_repeats_are_repeat_zero(tmp_path: Path) -> None:
    requests = expand(TASKS, CouncilSpec(agents=2, repeats=2), {"dev": "s"}, batch_size=4)
    old = requests[requests["repeat"] == 0].drop(columns="repeat").assign(proposal="a")
    write_part(tmp_path, 0, old)
    assert read_parts(tmp_path)["repeat"].tolist() == [0] * 6
    assert held_keys(tmp_path, requests).tolist() == ([True] * 2 + [False] * 2) * 3
