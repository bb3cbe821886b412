"""Every metric a run reports by name, declared once: which way is better, how
it aggregates, and where it is shown.

Scoring (``scoring.metrics``) aggregates the quality metrics as declared and
gives each a 95 % interval; the report, ``pipelines.compare`` and the tracker
read the lists below, derived from :data:`METRICS`, so a metric added here is
scored, shown and compared the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

QUALITY, COST, DELIBERATION = "quality", "cost", "deliberation"
PROPOSALS, TASK, RUN = "proposals", "task", "run"


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str = QUALITY
    """``quality``: per task, with an interval; ``cost``: the run's figures;
    ``deliberation``: a deliberating run's figures."""
    higher_is_better: bool = True
    over: str = RUN
    """How the run-level figure aggregates: ``proposals``: mean over a task's
    proposals of :attr:`column`, then over tasks; ``task``: one value per task
    (and repeat), mean over tasks; ``run``: one figure per run."""
    column: str = ""
    """The per-proposal column a ``proposals`` metric averages (default: its name)."""
    per_round: bool = False
    """Also figured per deliberation round (``metrics.json``'s ``rounds``)."""
    compared: str = ""
    """``always``: a default column of ``pipelines.compare``; ``present``: one when
    some listed run has the figure (a deliberation's, ground truth's)."""
    truth: bool = False
    """Needs tasks with reference answers (``pipelines.scoring.truth``); absent otherwise."""

    @property
    def source(self) -> str:
        return self.column or self.name


METRICS = (
    Metric("keyword_relevance", over=PROPOSALS, per_round=True, compared="always"),
    Metric("keyword_full_coverage", over=PROPOSALS, column="keyword_full"),
    Metric("unique_ratio", over=TASK, compared="always"),
    Metric("distinct_1", over=TASK),
    Metric("distinct_2", over=TASK, per_round=True, compared="always"),
    Metric("self_bleu", higher_is_better=False, over=TASK, per_round=True, compared="always"),
    Metric("embedding_diversity", over=TASK, per_round=True),
    Metric(
        "accuracy", over=PROPOSALS, column="correct", per_round=True, compared="present", truth=True
    ),
    Metric("answer_accuracy", over=TASK, compared="present", truth=True),
    Metric("majority_accuracy", over=TASK, per_round=True, compared="present", truth=True),
    Metric("pass_at_n", over=TASK, per_round=True, compared="present", truth=True),
    Metric(
        "no_answer_rate", higher_is_better=False, over=PROPOSALS, column="no_answer", truth=True
    ),
    Metric("judge_score", DELIBERATION, per_round=True),
    Metric("tokens_per_s", COST, compared="always"),
    Metric("latency_p50_s", COST, higher_is_better=False),
    Metric("latency_p95_s", COST, higher_is_better=False),
    Metric("wall_s", COST, higher_is_better=False),
    Metric("scaling/5_agents/scaling_factor", COST, compared="always"),
    Metric("round_gain/keyword_relevance", DELIBERATION, compared="present"),
    Metric("round_gain/judge_score", DELIBERATION, compared="present"),
    Metric("judge/mean_score", DELIBERATION, compared="present"),
    Metric("ranking/kendall_w", DELIBERATION, compared="present"),
    Metric("chair/judge_minus_best_agent", DELIBERATION, compared="present"),
)
BY_NAME = {m.name: m for m in METRICS}

QUALITY_METRICS = [m.name for m in METRICS if m.kind == QUALITY]
"""Quality figures, run-level (with an interval) and per task; names are part of the interface."""
DIVERSITY_METRICS = [
    m.name for m in METRICS if m.kind == QUALITY and m.over == TASK and not m.truth
]
"""Per-task figures: the quality metrics that compare a task's proposals."""
TRUTH_METRICS = [m.name for m in METRICS if m.truth]
"""Figures against reference answers: only for tasks that have one."""
ROUND_METRICS = [m.name for m in METRICS if m.per_round]
"""Per-round figures of a deliberation."""
LOWER_IS_BETTER = {m.name for m in METRICS if not m.higher_is_better}
DEFAULT_METRICS = [m.name for m in METRICS if m.compared == "always"]
"""The columns ``pipelines.compare`` shows by default."""
PRESENT_METRICS = [m.name for m in METRICS if m.compared == "present"]
"""Shown by default when some listed run has them."""
