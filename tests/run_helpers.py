"""Running the entry points as a user does, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from pipelines import PROJECT_ROOT


def resume(run_dir: Path, env: Mapping[str, str]) -> None:
    """``python -m pipelines.resume RUN_DIR``; it must finish the run (exit 0)."""
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.resume", str(run_dir)],
        cwd=PROJECT_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
