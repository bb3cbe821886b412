"""compare's table: deltas against the previous run of the same config, best marks."""

import pandas as pd

from pipelines.trackers.comparison import best_marks, comparison


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


def scores(values: dict[str, list[float]], role: str = "qa") -> pd.DataFrame:
    """Per-task scores of one run (``task_scores``'s shape) from per-metric lists."""
    n = len(next(iter(values.values())))
    index = pd.MultiIndex.from_tuples(
        [(role, f"t{i}") for i in range(n)], names=["role", "task_id"]
    )
    return pd.DataFrame(values, index=index)


NOISE = [0.02, -0.01, 0.03, -0.02, 0.0, 0.01, -0.03, 0.02]


def test_best_is_marked_only_where_a_run_is_significantly_best() -> None:
    base = [0.3, 0.5, 0.4, 0.6, 0.2, 0.5, 0.4, 0.3]
    a = {"keyword_relevance": base, "self_bleu": base}
    # b: every task's relevance 0.2 higher (significant); self-BLEU lower by noise only.
    b = {
        "keyword_relevance": [v + 0.2 + n for v, n in zip(base, NOISE, strict=True)],
        "self_bleu": [v - 0.01 + n for v, n in zip(base, NOISE, strict=True)],
    }
    table = comparison(
        runs(
            [
                {"run": "a", "role": "qa", "kr": 0.4, "bleu": 0.40},
                {"run": "b", "role": "qa", "kr": 0.6, "bleu": 0.39},
                {"run": "c", "role": "dev", "kr": 0.9, "bleu": None},
            ]
        ),
        ["keyword_relevance", "self_bleu"],
    )
    # c is a dev run: it shares no task with a or b, so it cannot be "best" over them.
    shown = best_marks(
        table,
        ["keyword_relevance", "self_bleu"],
        [scores(a), scores(b), scores({"keyword_relevance": [0.9] * 8}, "dev")],
    ).set_index("run")
    assert shown["keyword_relevance"].tolist() == ["0.400", "0.600", "0.900"]
    assert shown["self_bleu"].tolist() == ["0.400", "0.390", ""]
    # Without c, b is significantly best on relevance, and nobody on self-BLEU.
    shown = best_marks(table.iloc[:2], ["keyword_relevance", "self_bleu"], [scores(a), scores(b)])
    shown = shown.set_index("run")
    assert shown["keyword_relevance"].tolist() == ["0.400", "0.600*"]
    assert shown["self_bleu"].tolist() == ["0.400", "0.390"]


def test_a_delta_within_the_noise_is_shown_in_parentheses() -> None:
    base = [0.3, 0.5, 0.4, 0.6, 0.2, 0.5, 0.4, 0.3]
    new = {"keyword_relevance": [v + n for v, n in zip(base, NOISE, strict=True)]}
    up = {"keyword_relevance": [v + 0.25 for v in base]}
    table = comparison(
        runs(
            [
                {"run": "up", "role": "qa", "kr": 0.68},
                {"run": "new", "role": "qa", "kr": 0.43},
                {"run": "old", "role": "qa", "kr": 0.40},
            ]
        ),
        ["keyword_relevance", "tokens_per_s"],
    )
    table["tokens_per_s"] = [30.0, 20.0, 10.0]
    table["Δtokens_per_s"] = [10.0, 10.0, None]
    shown = best_marks(
        table,
        ["keyword_relevance", "tokens_per_s"],
        [scores(up), scores(new), scores({"keyword_relevance": base})],
    ).set_index("run")
    assert shown["Δkeyword_relevance"].tolist() == ["+0.250", "(+0.030)", ""]
    # Throughput has no per-task figures: shown as is, never marked best.
    assert shown["Δtokens_per_s"].tolist() == ["+10.000", "+10.000", ""]
    assert shown["tokens_per_s"].tolist() == ["30.000", "20.000", "10.000"]
