"""Every numeric figure of metrics.json reaches MLflow under its documented key."""

import pandas as pd
import pytest
from mlflow.utils.validation import _validate_metric_name

from pipelines.trackers.mlflow import flatten_metrics, round_steps


def test_keys_per_level_and_only_numbers() -> None:
    metrics = {
        "run_id": "r",
        "wall_s": 10.0,
        "scoring_s": 1.5,
        "overall": {
            "keyword_relevance": 0.5,
            "requests": 4,
            "keyword_hit_rates": {"edge case": 0.25, "k8s/helm": 1.0},
        },
        "roles": {"qa": {"keyword_relevance": 0.4, "ok": True}},
        "scaling": [{"agents": 1, "scaling_factor": 1.0}, {"agents": 3, "scaling_factor": 2.5}],
        "sink": {"name": "nats", "acked": 8, "error": None},
        "tracking": {"ok": False},
    }
    task_metrics = pd.DataFrame(
        {
            "agent_id": ["a1", "a1", "a2"],
            "keyword_relevance": [0.0, 1.0, 0.5],
            "keyword_full": [False, True, False],
            "completion_tokens": [10, 20, 30],
        }
    )
    flat = flatten_metrics(metrics, task_metrics)
    assert flat == {
        "wall_s": 10.0,
        "scoring_s": 1.5,
        "keyword_relevance": 0.5,
        "requests": 4.0,
        "keyword/edge case/hit_rate": 0.25,
        "keyword/k8s/helm/hit_rate": 1.0,
        "role/qa/keyword_relevance": 0.4,
        "scaling/1_agents/agents": 1.0,
        "scaling/1_agents/scaling_factor": 1.0,
        "scaling/3_agents/agents": 3.0,
        "scaling/3_agents/scaling_factor": 2.5,
        "sink/acked": 8.0,
        "agent/a1/keyword_relevance": 0.5,
        "agent/a1/keyword_full": 0.5,
        "agent/a1/completion_tokens": 15.0,
        "agent/a2/keyword_relevance": 0.5,
        "agent/a2/keyword_full": 0.0,
        "agent/a2/completion_tokens": 30.0,
    }


@pytest.mark.parametrize(
    ("keyword", "key"),
    [
        ("../etc", "keyword/_/etc/hit_rate"),
        ("/abs", "keyword/_/abs/hit_rate"),
        ("a//b", "keyword/a/_/b/hit_rate"),
        ("./x", "keyword/_/x/hit_rate"),
        ("ci/cd.", "keyword/ci/cd./hit_rate"),
        ("naïve\x1b[2J", "keyword/naïve__2J/hit_rate"),
        ("k" * 300, f"keyword/{'k' * 100}/hit_rate"),
    ],
)
def test_a_keyword_mlflow_would_refuse_as_a_path_still_gets_a_key_it_takes(
    keyword: str, key: str
) -> None:
    metrics = {"overall": {"keyword_hit_rates": {keyword: 0.5}}}
    agents = pd.DataFrame(columns=["agent_id", "keyword_relevance", "keyword_full"])
    agents["completion_tokens"] = []
    flat = flatten_metrics(metrics, agents)
    assert flat == {key: 0.5}
    _validate_metric_name(key)  # MLflow's own check: raises on a name it refuses


def test_a_deliberations_rounds_are_steps_and_its_sections_keys() -> None:
    metrics = {
        "overall": {"keyword_relevance": 0.5},
        "rounds": [
            {"round": 1, "keyword_relevance": 0.4, "judge_score": 5.0, "embedding_diversity": None},
            {"round": 2, "keyword_relevance": 0.6, "judge_score": 6.5, "embedding_diversity": None},
        ],
        "round_gain": {"keyword_relevance": 0.2, "judge_score": 1.5},
        "ranking": {"kendall_w": 0.3, "borda": {"agent-dev-001": 4}, "valid": 6},
        "chair": {"fallbacks": 1, "fallback_errors": ["too long"], "judge_score": None},
        "judge": {"name": "council", "mean_score": 5.75},
    }
    per_agent = pd.DataFrame(
        {"agent_id": ["a1"], "keyword_relevance": [0.5], "keyword_full": [False]}
        | {"completion_tokens": [3]}
    )
    flat = flatten_metrics(metrics, per_agent)
    assert {k: v for k, v in flat.items() if "/" in k and not k.startswith("agent/")} == {
        "round_gain/keyword_relevance": 0.2,
        "round_gain/judge_score": 1.5,
        "ranking/kendall_w": 0.3,
        "ranking/valid": 6.0,
        "ranking/borda/agent-dev-001": 4.0,
        "chair/fallbacks": 1.0,
        "judge/mean_score": 5.75,
    }
    assert round_steps(metrics) == [
        ("round/keyword_relevance", 0.4, 1),
        ("round/judge_score", 5.0, 1),
        ("round/keyword_relevance", 0.6, 2),
        ("round/judge_score", 6.5, 2),
    ]
