"""The executor benchmark's arithmetic: each executor against the raw runs around it."""

from __future__ import annotations

import pytest

from pipelines.bench import summarize


def run(tokens: int, window_s: float, busy_s: float, **fixed: float) -> dict:
    times = {"start_s": 0.0, "worker_s": 0.0, "load_s": 10.0, "stop_s": 1.0, **fixed}
    total = sum(times.values()) + window_s
    return {"tokens": tokens, "window_s": window_s, "busy_s": busy_s, "total_s": total, **times}


def test_each_executor_is_compared_with_its_neighbouring_raw_runs() -> None:
    # The machine slows down during the bench: raw 100 -> 80 -> 60 tokens/s.
    runs = [
        ("raw", run(1000, 10.0, 10.0)),
        ("ray", run(1000, 12.5, 11.5, start_s=4.0)),  # 80 tok/s; raws around: 100 and 80
        ("raw", run(1000, 12.5, 12.5)),
        ("dask", run(1000, 1000 / 63, 15.0)),  # 63 tok/s; raws around: 80 and 60
        ("raw", run(1000, 1000 / 60, 1000 / 60)),
    ]
    rows = summarize(runs, n_batches=2).set_index("contender")

    assert rows.loc["ray", "vs_raw"] == pytest.approx(80 / 90)
    assert rows.loc["dask", "vs_raw"] == pytest.approx(63 / 70)
    assert rows.loc["raw", "vs_raw"].tolist() == [1.0, 1.0, 1.0]
    assert rows.loc["ray", "overhead_per_batch_s"] == pytest.approx(0.5)
    assert rows.loc["ray", "vs_ray"] == pytest.approx(1.0)
    assert rows.loc["dask", "vs_ray"] == pytest.approx(63 / 80)
    # End to end counts the fixed costs: 4 s start + 10 s load + 1 s stop.
    assert rows.loc["ray", "e2e_tok_s"] == pytest.approx(1000 / 27.5)
