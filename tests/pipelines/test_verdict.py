"""fail_on: which finished runs exit 3."""

from __future__ import annotations

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
