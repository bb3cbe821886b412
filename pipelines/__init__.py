"""council-eval: batch evaluation of councils of LLM agents."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding ``conf/``, ``datasets/`` and ``models/``."""


class UserError(Exception):
    """Bad input or set-up that the user can fix; printed without a traceback."""
