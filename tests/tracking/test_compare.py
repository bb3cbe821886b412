"""compare's table: deltas against the previous run of the same config, best marks."""

import pandas as pd

from pipelines.compare import best_marks, comparison


def runs(rows: list[dict]) -> pd.DataFrame:
    """Rows as ``mlflow.search_runs`` returns them, newest first."""
    return pd.DataFrame(
        [
            {
                "run_id": f"id{i}",
                "tags.mlflow.runName": r["run"],
                "start_time": pd.Timestamp("2026-11-28") - pd.Timedelta(hours=i),
                "params.role": r["role"],
                "params.model": "m",
                "params.agents": str(r.get("agents", 3)),
                "params.temperature": "0.7",
                "params.diversity_factor": "1.3",
                "params.max_tokens": "256",
                "metrics.keyword_relevance": r["kr"],
                "metrics.self_bleu": r.get("bleu"),
            }
            for i, r in enumerate(rows)
        ]
    )


def test_delta_is_against_the_previous_run_of_the_same_config() -> None:
    table = comparison(
        runs(
            [
                {"run": "qa-new", "role": "qa", "kr": 0.50},
                {"run": "dev-new", "role": "dev", "kr": 0.30},
                {"run": "qa-5", "role": "qa", "agents": 5, "kr": 0.90},
                {"run": "qa-old", "role": "qa", "kr": 0.20},
                {"run": "dev-old", "role": "dev", "kr": 0.40},
            ]
        ),
        ["keyword_relevance"],
    ).set_index("run")
    delta = table["Δkeyword_relevance"]
    assert delta["qa-new"] == 0.50 - 0.20  # skips the 5-agent run between them
    assert delta["dev-new"] == 0.30 - 0.40
    assert pd.isna(delta["qa-5"]) and pd.isna(delta["qa-old"]) and pd.isna(delta["dev-old"])


def test_best_is_highest_except_where_lower_is_better_and_blanks_stay_blank() -> None:
    table = comparison(
        runs(
            [
                {"run": "a", "role": "qa", "kr": 0.5, "bleu": 0.30},
                {"run": "b", "role": "qa", "kr": 0.7, "bleu": 0.10},
                {"run": "c", "role": "dev", "kr": 0.6, "bleu": None},
            ]
        ),
        ["keyword_relevance", "self_bleu"],
    )
    shown = best_marks(table, ["keyword_relevance", "self_bleu"]).set_index("run")
    assert shown["keyword_relevance"].tolist() == ["0.500", "0.700*", "0.600"]
    assert shown["self_bleu"].tolist() == ["0.300", "0.100*", ""]
    assert shown.loc["a", "Δkeyword_relevance"] == "-0.200"
