"""The gate: did run B get worse than run A, metric by metric, with an error rate
one can state (the library of ``python -m pipelines.compare A B --gate``).

Pure functions over per-task values of two runs on the same tasks. For each
gated metric: the per-task *drop* (A - B where higher is better, B - A where
lower is), its mean, a bootstrap interval, and a one-sided Wilcoxon
signed-rank p-value for "B is worse". The p-values of all gated metrics are
corrected together (Holm's step-down by default: the chance that an unchanged
council fails any metric stays within ``alpha``; Benjamini-Hochberg as an
option, which bounds the share of false alarms among the alarms instead). A
metric *regressed* when its corrected test rejects **and** its mean drop
exceeds its tolerance (the smallest drop that matters, in the metric's units).

Power: with ``n`` paired tasks whose drops spread with standard deviation
``sd``, a one-sided test at level ``a`` detects a true drop of
``(z[1-a] + z[power]) * sd / sqrt(n)`` with probability ``power``
(:func:`detectable_drop`; the normal approximation of the paired test).
Under Holm the first metric is tested at ``alpha / m``: the figure given is at
that level, the conservative one. :func:`tasks_for` inverts it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipelines.scoring.stats import bootstrap_ci

HOLM, BH = "holm", "bh"
CORRECTIONS = (HOLM, BH)
POWER = 0.8


@dataclass(frozen=True)
class GatedMetric:
    """One gated metric of B against A."""

    metric: str
    tasks: int
    mean_a: float
    mean_b: float
    drop: float
    """Mean per-task drop (positive: B worse)."""
    ci: tuple[float, float] | None
    """95 % bootstrap interval of the drop."""
    p: float | None
    """One-sided p-value for "B is worse" (None: under 2 tasks)."""
    p_adjusted: float | None
    tolerance: float
    spread: float
    """Standard deviation of the per-task drops (NaN: under 2 tasks)."""
    level: float
    """The level its power is figured at (``alpha / metrics`` under Holm)."""
    regressed: bool

    @property
    def detectable(self) -> float | None:
        """The drop this pair of runs detects with 80 % power (None: under 2 tasks)."""
        return detectable_drop(self.spread, self.tasks, self.level) if self.tasks > 1 else None


def drops(a: np.ndarray, b: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Per-task drop from ``a`` to ``b`` (positive: worse), pairs with a NaN left out."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    return (a - b)[keep] if higher_is_better else (b - a)[keep]


def p_worse(d: np.ndarray) -> float | None:
    """One-sided Wilcoxon signed-rank p-value that drops ``d`` are positive (zero
    drops split between both signs); None under 2 drops."""
    if len(d) < 2:
        return None
    if np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="zsplit", alternative="greater").pvalue)


def holm(p: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None, and is not counted)."""
    known = [(v, i) for i, v in enumerate(p) if v is not None]
    out: list[float | None] = [None] * len(p)
    running, m = 0.0, len(known)
    for rank, (v, i) in enumerate(sorted(known)):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


def benjamini_hochberg(p: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (scipy's), None kept."""
    known = [i for i, v in enumerate(p) if v is not None]
    out: list[float | None] = [None] * len(p)
    if known:
        adjusted = stats.false_discovery_control([p[i] for i in known], method="bh")
        for i, v in zip(known, adjusted, strict=True):
            out[i] = float(v)
    return out


def detectable_drop(sd: float, n: int, level: float, power: float = POWER) -> float | None:
    """The true mean drop a one-sided paired test at ``level`` finds with ``power``."""
    if n < 2:
        return None
    z = stats.norm.ppf(1 - level) + stats.norm.ppf(power)
    return float(z * sd / math.sqrt(n))


def tasks_for(effect: float, sd: float, level: float, power: float = POWER) -> int:
    """Paired tasks needed to detect a mean drop of ``effect`` (drops' spread ``sd``)."""
    z = stats.norm.ppf(1 - level) + stats.norm.ppf(power)
    return max(2, math.ceil((z * sd / effect) ** 2 - 1e-9))  # 60.0000001 tasks is 60


def gate(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    tolerances: Mapping[str, float],
    lower_is_better: frozenset[str] = frozenset(),
    alpha: float = 0.05,
    correction: str = HOLM,
    seed: int = 0,
) -> list[GatedMetric]:
    """Each metric of ``pairs`` ((A's, B's) per-task values, aligned) gated.

    Args:
        pairs: per metric, A's and B's values on the same tasks, in one order.
        tolerances: the smallest drop that matters, per metric.
        lower_is_better: metrics where a rise is the drop (``no_answer_rate``).
        alpha: the family-wise level (Holm) or false discovery rate (BH).
        correction: ``holm`` or ``bh``.
        seed: the bootstrap's.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r}: one of {CORRECTIONS}")
    names = list(pairs)
    d = {m: drops(*pairs[m], higher_is_better=m not in lower_is_better) for m in names}
    raw = [p_worse(d[m]) for m in names]
    adjusted = holm(raw) if correction == HOLM else benjamini_hochberg(raw)
    level = alpha / max(1, sum(p is not None for p in raw)) if correction == HOLM else alpha
    out = []
    for m, p, q in zip(names, raw, adjusted, strict=True):
        a, b = (np.asarray(x, dtype=float) for x in pairs[m])
        keep = ~(np.isnan(a) | np.isnan(b))
        drop = float(d[m].mean()) if len(d[m]) else math.nan
        tolerance = float(tolerances.get(m, 0.0))
        out.append(
            GatedMetric(
                metric=m,
                tasks=int(keep.sum()),
                mean_a=float(a[keep].mean()) if keep.any() else math.nan,
                mean_b=float(b[keep].mean()) if keep.any() else math.nan,
                drop=drop,
                ci=bootstrap_ci(d[m], seed) if len(d[m]) > 1 else None,
                p=p,
                p_adjusted=q,
                tolerance=tolerance,
                spread=float(d[m].std(ddof=1)) if len(d[m]) > 1 else math.nan,
                level=level,
                regressed=q is not None and q <= alpha and drop > tolerance,
            )
        )
    return out


TOLERANCES = {
    "answer_accuracy": 0.02,
    "no_answer_rate": 0.02,
    "keyword_relevance": 0.02,
}
"""The default gated metrics and the smallest drop of each that matters: accuracy
and unanswered rate where the tasks have references, keyword relevance otherwise."""
TRUTH_GATED = ("answer_accuracy", "no_answer_rate")


def default_metrics(columns: set[str]) -> list[str]:
    """The metrics gated by default among the per-task ``columns`` both runs have."""
    if set(TRUTH_GATED) & columns:
        return [m for m in TRUTH_GATED if m in columns]
    return ["keyword_relevance"] if "keyword_relevance" in columns else []
