"""Every numeric figure of metrics.json reaches MLflow under its documented key."""

import pandas as pd

from pipelines.trackers.mlflow import flatten_metrics


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
