"""``experiment``, ``deliberation`` and ``judge`` groups: what a run measures beyond one answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional  # noqa: UP035

from omegaconf import MISSING

from pipelines import UserError
from pipelines.config.engine import ModelConfig, OpenAIEngineConfig

SCALING, SELF_CONSISTENCY = "scaling", "self_consistency"


@dataclass
class ExperimentConfig:
    name: str = "none"
    # Council sizes of the scaling experiment.
    agents: List[int] = field(default_factory=list)  # noqa: UP006
    # self_consistency: samples of one agent per task; null: as many requests as
    # the council of the run's agents and deliberation.* would spend.
    samples: Optional[int] = None  # noqa: UP045
    # self_consistency: the council whose budget it matches (set by the run).
    budget_of: str = ""


REVISE_PROMPT = (
    "Other members of the council answered the same task. Critique their proposals and "
    "your own: what is right, what is wrong, what is missing. Then write your revised "
    "proposal."
)
RANK_PROMPT = (
    "Rank the proposals below from best to worst for the task: correctness, relevance and "
    "completeness. Answer with JSON only: the proposal letters, best first."
)
CHAIR_PROMPT = (
    "You chair the council. Its members answered the task below and ranked each other's "
    "proposals. Write the council's final answer: keep what the proposals get right, fix "
    "what they get wrong, and be concise."
)
RUBRIC = (
    "Score the answer to the task below from 1 (useless) to 10 (excellent) for correctness, "
    "relevance and completeness. Answer with JSON only."
)


@dataclass
class DeliberationConfig:
    """Rounds of critique and revision, peer ranking and a chair (deliberation/plan.py)."""

    # Rounds of proposals; in round r >= 2 each agent revises after reading the
    # others' round r-1 proposals, anonymized and shuffled.
    rounds: int = 1
    # After the last round each agent ranks the anonymized final proposals, twice
    # (the second time in reversed order, to measure position bias).
    rank: bool = False
    # One more request writes the council's final answer from the proposals and
    # the aggregate ranking; if it fails the top-ranked proposal stands in.
    chair: bool = False
    rank_max_tokens: int = 64
    # null: max_tokens.
    chair_max_tokens: Optional[int] = None  # noqa: UP045
    revise_prompt: str = REVISE_PROMPT
    rank_prompt: str = RANK_PROMPT
    chair_prompt: str = CHAIR_PROMPT

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise UserError(f"deliberation.rounds must be >= 1, got {self.rounds}")
        if self.rank_max_tokens < 1 or (self.chair_max_tokens or 1) < 1:
            raise UserError("deliberation.rank_max_tokens and chair_max_tokens must be >= 1")


@dataclass
class JudgeConfig:
    """Rubric scores (1-10) of each proposal and the chair's answer, as structured
    output; the judge never sees who wrote what. ``judge=none`` is this alone."""

    name: str = MISSING
    max_tokens: int = 16
    temperature: float = 0.0
    rubric: str = RUBRIC

    def __post_init__(self) -> None:
        if self.max_tokens < 1 or self.temperature < 0:
            raise UserError("judge.max_tokens must be >= 1 and judge.temperature >= 0")


@dataclass
class OpenAIJudgeConfig(JudgeConfig):
    """``judge=openai``: the judge is any OpenAI-compatible server, not the council's engine."""

    name: str = "openai"
    engine: OpenAIEngineConfig = field(default_factory=OpenAIEngineConfig)
    # The judge server's model (the name it serves).
    model: Optional[str] = None  # noqa: UP045

    def model_config(self) -> ModelConfig:
        if not self.model:
            raise UserError("judge=openai needs the judge's model: set JUDGE_MODEL or judge.model")
        return ModelConfig(name=self.model, path=self.model)
