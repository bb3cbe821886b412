"""The generation benchmark's arithmetic: each contender against the raw runs around it."""

from __future__ import annotations

import pytest

from pipelines.bench import summarize


def run(tokens: int, busy: float, total: float, proposals: list[str] | None = None) -> dict:
    return {
        "tokens": tokens,
        "busy_s": busy,
        "total_s": total,
        "start_s": 0.0,
        "load_s": 10.0,
        "stop_s": 1.0,
        "proposals": proposals or ["a", "b"],
    }


def test_each_contender_is_compared_with_its_neighbouring_raw_runs() -> None:
    # The machine slows down during the bench: raw 100 -> 80 -> 60 tokens/s generating.
    runs = [
        ("raw", run(1000, 10.0, 20.0)),
        ("ray", run(1000, 12.5, 25.0)),  # 80 tok/s; raws around: 100 and 80
        ("raw", run(1000, 12.5, 25.0)),
        ("dask", run(1000, 1000 / 63, 40.0, ["a", "c"])),  # 63 tok/s; raws: 80 and 60
        ("raw", run(1000, 1000 / 60, 30.0)),
    ]
    rows = summarize(runs, ["a", "b"]).set_index("contender")

    assert rows.loc["ray", "gen_vs_raw"] == pytest.approx(80 / 90)
    assert rows.loc["dask", "gen_vs_raw"] == pytest.approx(63 / 70)
    assert rows.loc["raw", "gen_vs_raw"].tolist() == [1.0, 1.0, 1.0]
    # End to end: 1000/25 against the mean of 1000/20 and 1000/25.
    assert rows.loc["ray", "e2e_vs_raw"] == pytest.approx(40 / 45)
    assert rows.loc["ray", "identical"]
    assert not rows.loc["dask", "identical"]
