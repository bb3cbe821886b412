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


def test_the_scale_bench_generates_valid_seeded_tasks_for_every_role(tmp_path) -> None:
    from pipelines.bench.scale import synthetic_tasks, write_tasks
    from pipelines.config import known_roles
    from pipelines.flow.tasks import load_tasks

    tasks = synthetic_tasks(200, seed=3)
    assert tasks == synthetic_tasks(200, seed=3) and tasks != synthetic_tasks(200, seed=4)
    loaded = load_tasks(write_tasks(tmp_path / "tasks.jsonl", tasks))  # the loader's checks
    assert len(loaded) == 1000 and {t.role for t in loaded} == set(known_roles())
    assert len({(t.role, t.task_id) for t in loaded}) == 1000
    assert len({t.prompt for t in loaded}) > 990  # varied, not 12 prompts repeated
    assert all(len(t.keywords) == 3 for t in loaded)


def test_the_scale_bench_reads_a_phase_table_against_its_raw_runs() -> None:
    from pipelines.bench.scale import size_row

    run = {
        "total_s": 100.0,
        "phases": {
            "total_s": 90.0,
            "seconds": {"start": 5.0, "generate": 70.0, "score": 3.0, "track": 1.0},
            "after_last_batch_s": 4.0,
        },
        "driver_peak_rss_mb": 700.0,
        "report_html_mb": 0.3,
        "report_mb": 2.0,
        "mlflow_growth_mb": 1.0,
        "console_lines": 40,
    }
    raws = [{"total_s": 80.0, "busy_s": 60.0}, {"total_s": 100.0, "busy_s": 70.0}]
    row = size_row(3000, raws, run)
    assert row["vs_raw"] == pytest.approx(0.9)  # raw's mean 90 s over the pipeline's 100 s
    assert row["start_s"] == pytest.approx(15.0)  # 5 s inside the run, 10 s before it
    assert row["ms_per_request"] == pytest.approx(100 / 3)
    assert row["after_last_batch_share"] == pytest.approx(0.04)


def test_the_scale_bench_reads_the_cost_of_one_more_request_between_sizes() -> None:
    from pipelines.bench.scale import with_marginals

    rows = [
        {"requests": 180, "pipeline_s": 70.0, "raw_s": 55.0},
        {"requests": 3000, "pipeline_s": 263.0, "raw_s": 161.0},
    ]
    first, second = with_marginals(rows)
    assert "marginal_ms_per_request" not in first
    assert second["marginal_ms_per_request"] == pytest.approx(1000 * 193 / 2820)
    assert second["raw_marginal_ms_per_request"] == pytest.approx(1000 * 106 / 2820)
