"""Pure scoring functions for council proposals: no I/O, no engines, no globals."""

from evaluators.diversity import (
    distinct_1,
    distinct_2,
    distinct_n,
    mean_pairwise_cosine_distance,
    normalize,
    self_bleu,
    unique_ratio,
)
from evaluators.keywords import (
    coverage,
    full_coverage,
    keyword_hit_rates,
    keyword_hits,
    keyword_relevance,
)

__all__ = [
    "coverage",
    "distinct_1",
    "distinct_2",
    "distinct_n",
    "full_coverage",
    "keyword_hit_rates",
    "keyword_hits",
    "keyword_relevance",
    "mean_pairwise_cosine_distance",
    "normalize",
    "self_bleu",
    "unique_ratio",
]
