"""Pure scoring functions for council proposals: no I/O, no engines, no globals."""

from evaluators.diversity import (
    distinct_1,
    distinct_2,
    distinct_n,
    lexical_diversity,
    mean_pairwise_cosine_distance,
    normalize,
    self_bleu,
    tokenize,
    unique_ratio,
)
from evaluators.keywords import (
    coverage,
    full_coverage,
    keyword_hit_rates,
    keyword_hits,
    keyword_relevance,
    keyword_spans,
)
from evaluators.ranking import borda, kendall_w, rank_agreement, standing, top

__all__ = [
    "borda",
    "coverage",
    "distinct_1",
    "distinct_2",
    "distinct_n",
    "full_coverage",
    "kendall_w",
    "keyword_hit_rates",
    "keyword_hits",
    "keyword_relevance",
    "keyword_spans",
    "lexical_diversity",
    "mean_pairwise_cosine_distance",
    "normalize",
    "rank_agreement",
    "self_bleu",
    "standing",
    "tokenize",
    "top",
    "unique_ratio",
]
