"""The roles: their prompts and personas, their task files, and the council spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List  # noqa: UP035

from omegaconf import MISSING

from pipelines import PROJECT_ROOT, UserError
from pipelines.runtime.ids import check_role

ROLE_DIR = PROJECT_ROOT / "conf" / "role"
DATASET_DIR = PROJECT_ROOT / "datasets"
ALL_ROLES = "all"


def known_roles() -> list[str]:
    """Roles with a config file in ``conf/role/`` (``all`` excluded)."""
    return sorted(p.stem for p in ROLE_DIR.glob("*.yaml") if p.stem != ALL_ROLES)


@dataclass
class CouncilSpec:
    """How a council answers: size, temperature schedule, budget, seed.

    The run config extends it, so these are top-level keys (``agents=5``).
    """

    agents: int = 3
    temperature: float = 0.7
    diversity_factor: float = 1.3
    max_temperature: float = 2.0
    # Generation cap per proposal (a task's own max_tokens may lower it).
    max_tokens: int = 256
    # Run seed; per-(task, agent, repeat) seeds derive from it.
    seed: int = 0
    # Samples per (task, agent), each with its own seed; metrics average over them.
    repeats: int = 1
    # Append the role's persona lines (conf/role/<role>.yaml) to its prompt, cycled
    # over the agents: agent i gets persona (i-1) mod len.
    personas: bool = False

    def __post_init__(self) -> None:
        if self.agents < 1:
            raise UserError(f"agents must be >= 1, got {self.agents}")
        if self.repeats < 1:
            raise UserError(f"repeats must be >= 1, got {self.repeats}")
        if self.temperature < 0:
            raise UserError(f"temperature must be >= 0, got {self.temperature}")
        if self.diversity_factor <= 0:
            raise UserError(f"diversity_factor must be > 0, got {self.diversity_factor}")
        if self.max_temperature < self.temperature:
            raise UserError(
                f"max_temperature ({self.max_temperature}) is below temperature "
                f"({self.temperature})"
            )
        if self.max_tokens < 1:
            raise UserError(f"max_tokens must be >= 1, got {self.max_tokens}")


@dataclass
class RolePrompt:
    name: str = MISSING
    # The agents' system prompt.
    system_prompt: str = ""
    # Short persona lines; with personas=true agent i's prompt ends with line (i-1) mod len.
    personas: List[str] = field(default_factory=list)  # noqa: UP006


@dataclass
class RoleConfig(RolePrompt):
    # role=all: every role, composed by Hydra from conf/role/<role>.yaml.
    members: Dict[str, RolePrompt] = field(default_factory=dict)  # noqa: UP006

    def __post_init__(self) -> None:
        if self.name == ALL_ROLES:
            missing = sorted(set(known_roles()) - set(self.members))
            if missing:
                raise UserError(f"conf/role/all.yaml lacks role(s) {missing}")
        elif self.name not in known_roles():
            raise UserError(f"unknown role {self.name!r}; known: {[*known_roles(), ALL_ROLES]}")
        for name in self.prompts:  # it reaches NATS subjects and keys
            try:
                check_role(name)
            except ValueError as e:
                raise UserError(str(e)) from None

    @property
    def system_prompts(self) -> dict[str, str]:
        """System prompt per role evaluated: this role, or every member of ``all``."""
        return {name: r.system_prompt for name, r in self.prompts.items()}

    @property
    def prompts(self) -> dict[str, RolePrompt]:
        """Each role evaluated, by name: this role, or every member of ``all``."""
        if self.members:
            return {m.name: m for m in self.members.values()}
        return {self.name: self}


@dataclass
class DatasetCaps:
    """What one dataset may hold; a line past a cap is refused with its
    ``file:line``. Override in the run: ``dataset_caps.max_tasks=500000``."""

    max_line_bytes: int = 1 << 20
    max_prompt_chars: int = 100_000
    max_keywords: int = 64
    max_keyword_chars: int = 200
    max_tasks: int = 200_000
    max_total_bytes: int = 1 << 30
