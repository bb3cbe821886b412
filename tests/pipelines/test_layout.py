"""The layout the README draws: each layer imports only layers below it, and
every top-level module is a command that answers ``--help``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "pipelines"
LAYERS = [
    {"runtime", "spec"},
    {"config"},
    {"scoring", "engines"},
    {"sinks", "executors"},
    {"flow"},
    {"deliberation"},
    {"report", "trackers"},
    {"driver", "bench"},
]
"""Bottom to top (README, Layout); the top-level modules, the commands, sit above."""
COMMANDS = sorted(
    [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    + [p.parent.name for p in PACKAGE.glob("*/__main__.py")]
)
"""``python -m pipelines.<name>``: the top-level modules and the packages with a ``__main__``."""


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 3 and not (PACKAGE / parts[-1]).is_dir():
        return len(LAYERS)  # a command
    return next(i for i, names in enumerate(LAYERS) if parts[1] in names)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipelines."):
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pipelines.")}
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE and path.stem == "__init__":
            continue  # the package's root: its ids and errors, then the log redaction
        module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        for target in imports(path):
            if layer(target) > layer(module):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_every_package_is_in_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set().union(*LAYERS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_help(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"pipelines.{command}", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    said = done.stdout + done.stderr
    assert f"python -m pipelines.{command}" in said, said[-2000:]  # its own name, not __main__
