"""fail_on: which finished runs exit 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import FailOnConfig
from pipelines.driver.verdict import problems


def metrics(errors: int = 0, unpublished: int = 0, tracking_ok: bool | None = True) -> dict:
    m: dict = {"overall": {"requests": 200, "errors": errors}}
    m["sink"] = {"unpublished": unpublished, "error": "TimeoutError"}
    if tracking_ok is not None:
        m["tracking"] = {"ok": tracking_ok, "error": "ConnectionError: refused"}
    return m


def test_a_healthy_run_has_no_problem() -> None:
    assert problems(metrics(errors=2), FailOnConfig()) == []  # 1% is not more than 1%
    assert problems(metrics(tracking_ok=None), FailOnConfig()) == []  # tracking=none


def test_each_rule_fails_the_run_and_says_how_to_recover() -> None:
    (errors,) = problems(metrics(errors=3), FailOnConfig())
    assert errors.startswith("3 of 200 requests failed (1.5% > fail_on.max_error_rate 1.0%)")
    (unpublished,) = problems(metrics(unpublished=7), FailOnConfig())
    assert "7 messages unpublished (TimeoutError)" in unpublished
    assert "pipelines.replay" in unpublished
    (tracking,) = problems(metrics(tracking_ok=False), FailOnConfig())
    assert "tracking failed (ConnectionError: refused)" in tracking
    assert "pipelines.track" in tracking


def test_rules_can_be_relaxed() -> None:
    relaxed = FailOnConfig(unpublished=False, tracking=False, max_error_rate=0.5)
    assert problems(metrics(errors=90, unpublished=7, tracking_ok=False), relaxed) == []


def test_the_readme_lists_every_exit_status_the_commands_use() -> None:
    import re

    from pipelines import PROJECT_ROOT
    from pipelines.spec.exits import EXIT_STATUSES

    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme.split("### Exit status", 1)[1].split("\n\n", 2)[1]
    listed = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert listed == set(EXIT_STATUSES)


def test_an_early_end_maps_to_its_exit_status_and_names_the_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines import RunStopped, UserError
    from pipelines.driver.verdict import ended
    from pipelines.runtime.stopping import Terminated

    assert ended(UserError("no dataset")) == 2
    assert ended(RunStopped("engine died"), tmp_path) == 4
    assert ended(Terminated(), tmp_path) == 143
    said = capsys.readouterr().err
    assert "error: no dataset" in said
    assert said.count(f"python -m pipelines.resume {tmp_path}") == 2
