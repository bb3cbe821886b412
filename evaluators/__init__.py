"""Pure scoring functions for council proposals: no I/O, no engines, no globals."""

from evaluators.diversity import normalize, unique_ratio
from evaluators.keywords import keyword_hits, keyword_relevance

__all__ = ["keyword_hits", "keyword_relevance", "normalize", "unique_ratio"]
