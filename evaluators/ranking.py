"""Peer rankings: Borda counts, agreement (Kendall's W) and position bias.

A ranking is a list of item names, best first, over the same items for every
ranker of a task.
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import kendalltau


def borda(rankings: Sequence[Sequence[str]], items: Sequence[str]) -> dict[str, int]:
    """Borda count of each item: ``n - 1 - position`` points per ranking of ``n`` items.

    Every item of ``items`` is in the result (0 when no ranking names it).
    """
    points = dict.fromkeys(items, 0)
    for ranking in rankings:
        n = len(ranking)
        for position, item in enumerate(ranking):
            points[item] = points.get(item, 0) + n - 1 - position
    return points


def top(points: dict[str, int], order: Sequence[str]) -> list[str]:
    """Items by Borda points, most first; ties keep the order of ``order``."""
    rank = {item: i for i, item in enumerate(order)}
    return sorted(points, key=lambda item: (-points[item], rank.get(item, len(rank))))


def standing(
    rankings: Sequence[Sequence[str]], names: Sequence[str]
) -> tuple[dict[str, int], list[str]]:
    """A council's standing over one (task, repeat): the Borda points of ``names``
    (the agents that answered) from ``rankings``, and the names by points, ties in
    the order of ``names``.

    The one rule behind the chair's prompt (proposals in this order), the
    fallback for a failed chair (the first name stands in) and the collector's
    message: each applies it to the rankings of one repeat only.
    """
    points = borda(rankings, names)
    return points, top(points, names)


def kendall_w(rankings: Sequence[Sequence[str]]) -> float | None:
    """Kendall's coefficient of concordance of ``rankings`` (same items, no ties):
    1 when every ranker agrees, 0 when their rank sums are all equal. None for
    fewer than two rankings or two items."""
    m = len(rankings)
    if m < 2:
        return None
    items = sorted(rankings[0])
    n = len(items)
    if n < 2 or any(sorted(r) != items for r in rankings):
        return None
    sums = dict.fromkeys(items, 0)
    for ranking in rankings:
        for position, item in enumerate(ranking):
            sums[item] += position + 1
    mean = m * (n + 1) / 2
    s = sum((total - mean) ** 2 for total in sums.values())
    return 12 * s / (m**2 * (n**3 - n))


def rank_agreement(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Kendall's tau between two rankings of the same items: 1 identical, -1 reversed.

    Between a ranking of a set shown in one order and of the same set shown in
    reverse order, 1 means the order of presentation did not matter and -1 that
    it alone decided (position bias).
    """
    if sorted(a) != sorted(b) or len(a) < 2:
        return None
    position = {item: i for i, item in enumerate(b)}
    tau = kendalltau(range(len(a)), [position[item] for item in a]).statistic
    return float(tau)
