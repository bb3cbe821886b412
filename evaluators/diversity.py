"""Diversity of a task's proposals across the agents of a council."""

from __future__ import annotations

from collections.abc import Sequence


def normalize(text: str) -> str:
    """Lower-case ``text`` and collapse runs of whitespace to one space."""
    return " ".join(text.lower().split())


def unique_ratio(proposals: Sequence[str]) -> float:
    """Distinct proposals / proposals, after :func:`normalize`.

    1.0 means every agent answered differently; 1/N means all N agreed.
    An empty list scores 0.0.
    """
    if len(proposals) == 0:
        return 0.0
    return len({normalize(p) for p in proposals}) / len(proposals)
