"""Scoring a finished run: pure figures over its rows.

- ``metrics``: per-task and run-level figures (keyword relevance, diversity,
  throughput) from ``evaluators/``; ``stats``: bootstrap intervals over tasks.
- ``embeddings``: the offline sentence model for ``embedding_diversity``.
"""
