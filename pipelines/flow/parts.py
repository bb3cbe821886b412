"""Result parts: each batch's rows on disk as it lands, the unit of durability and resume.

``<run>/results/part-<batch>.parquet`` is written to a temporary name, flushed
and renamed, so a kill never leaves a torn part: a part is there whole or not
at all. ``results.parquet`` at the end of a run is the union of the parts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.runtime.durable import own_dir, write_parquet
from pipelines.spec.run_folder import PARTS_DIR, upgrade

KEY_COLUMNS = ["role", "task_id", "agent_id", "repeat", "step", "round", "target"]
"""What identifies a request across a run and its resumes (plus ``council_size``
in the scaling experiment)."""


def part_path(run_dir: Path, batch_id: int, *, cached: bool = False) -> Path:
    """A batch's part; the rows of it a cache answered are a part of their own (the
    engine answers the rest of that batch later)."""
    return run_dir / PARTS_DIR / f"part-{batch_id:05d}{'-cached' if cached else ''}.parquet"


def write_part(run_dir: Path, batch_id: int, rows: pd.DataFrame, *, cached: bool = False) -> Path:
    """Write one batch's rows atomically (temporary name, fsync, rename)."""
    path = part_path(run_dir, batch_id, cached=cached)
    own_dir(path.parent)
    return write_parquet(path, rows)


def part_files(run_dir: Path) -> list[Path]:
    """The run's finished parts, in batch order (temporary files left out)."""
    return sorted((run_dir / PARTS_DIR).glob("part-*.parquet"))


def read_parts(run_dir: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Every row the run's parts hold (``columns`` only, when given)."""
    files = part_files(run_dir)
    if not files:
        return pd.DataFrame(columns=columns or [])
    return pd.concat([_read_part(f, columns) for f in files], ignore_index=True)


def _read_part(path: Path, columns: list[str] | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    present = set(pq.read_schema(path).names)
    rows = pd.read_parquet(path, columns=[c for c in columns if c in present] if columns else None)
    rows = upgrade(rows, columns)
    return rows[columns] if columns else rows


def key_columns(table: pd.DataFrame) -> list[str]:
    return [*KEY_COLUMNS, "council_size"] if "council_size" in table else KEY_COLUMNS


def held_keys(run_dir: Path, requests: pd.DataFrame) -> pd.Series:
    """For each request row, whether some part already holds its result."""
    keys = key_columns(requests)
    held = read_parts(run_dir, keys)
    if held.empty:
        return pd.Series(False, index=requests.index)
    done = set(held.itertuples(index=False, name=None))
    return pd.Series(
        [k in done for k in requests[keys].itertuples(index=False, name=None)],
        index=requests.index,
    )
