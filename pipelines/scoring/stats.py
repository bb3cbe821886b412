"""Uncertainty of run figures: bootstrap confidence intervals over tasks, and the
paired comparison of two runs on the tasks they share.

The unit of resampling is the task (a cluster of its agents' proposals and its
repeats): proposals of one task are not independent draws, so resampling them
one by one would give intervals that are too narrow. Every resampling is
seeded, so the same tables give the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 9999
BATCH = 500
"""Resamples drawn at once: memory stays at BATCH x tasks values whatever the run's size."""
SEED = 0
MIN_PAIRED_TASKS = 6
"""Below this many shared tasks a two-sided Wilcoxon signed-rank test cannot
reach p < 0.05 (its exact minimum p with 5 pairs is 0.0625): no difference is
called significant."""


def bootstrap_ci(values: np.ndarray, seed: int = SEED) -> tuple[float, float] | None:
    """95 % percentile bootstrap interval of the mean of per-task ``values``.

    NaN values (a task with no figure, e.g. no successful proposal) are left
    out. Returns None with fewer than 2 tasks: one task says nothing about the
    spread.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return None
    if np.all(x == x[0]):  # every resample has the same mean
        return float(x[0]), float(x[0])
    res = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
        # Resamples in batches: all 9,999 at once over 5,000 tasks hold 400 MB.
        batch=BATCH,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class Paired:
    """The paired difference ``b - a`` of one metric over shared tasks."""

    tasks: int
    mean_a: float
    mean_b: float
    diff: float
    ci: tuple[float, float] | None
    p_value: float | None
    significant: bool

    @property
    def verdict(self) -> str:
        if self.tasks < MIN_PAIRED_TASKS:
            return f"not significant (too few tasks: {self.tasks} < {MIN_PAIRED_TASKS})"
        if not self.significant:
            return "not significant"
        return "significant: B higher" if self.diff > 0 else "significant: B lower"


def paired(a: np.ndarray, b: np.ndarray, seed: int = SEED) -> Paired:
    """Compare two runs on the same tasks (``a[i]`` and ``b[i]`` are task i).

    The interval is a percentile bootstrap of the mean difference over tasks;
    the p-value is the two-sided Wilcoxon signed-rank test (exact for small
    samples). A difference is significant only when both agree: the interval
    excludes 0 and p < 0.05. Pairs with a NaN on either side are left out.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = len(a)
    if n == 0:
        return Paired(0, np.nan, np.nan, np.nan, None, None, False)
    d = b - a
    ci = bootstrap_ci(d, seed)
    p = wilcoxon_p(d)
    significant = (
        n >= MIN_PAIRED_TASKS
        and ci is not None
        and (ci[0] > 0 or ci[1] < 0)
        and p is not None
        and p < 1 - CONFIDENCE
    )
    return Paired(n, float(a.mean()), float(b.mean()), float(d.mean()), ci, p, significant)


def wilcoxon_p(d: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of differences ``d``.

    Zero differences count as ties split between both signs (``zsplit``), so a
    pair of identical scores pulls the test towards "no difference" instead of
    being dropped. None with fewer than 2 differences.
    """
    if len(d) < 2:
        return None
    if np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="zsplit", alternative="two-sided").pvalue)
