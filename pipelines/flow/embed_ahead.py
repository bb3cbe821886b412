"""Proposals embedded as their batch lands, not after the last one.

``embedding_diversity`` needs every proposal's sentence embedding: at 15,000
proposals that is the largest share of scoring. While a Ray or Dask council
generates, the driver mostly waits, so each landed batch's proposals are
embedded then, in one background thread, once the embedding model is loaded
(it loads beside generation too; :func:`pipelines.driver.pipeline.generate_all`).
Scoring then finds them computed and embeds only what it has not seen (a
resumed run's earlier parts, rows that landed last).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from pipelines.runtime.procs import renice

log = logging.getLogger(__name__)

Model = Callable[[Sequence[str]], np.ndarray]


BACKGROUND_NICENESS = 10
"""What the embedding threads add to their niceness: beside an engine on the same
cores they take what it leaves (Linux sets niceness per thread)."""


def background_thread() -> None:
    """Make the calling thread yield to an engine on the same cores (niceness up;
    Linux only, where niceness is per thread)."""
    if sys.platform.startswith("linux"):
        renice(threading.get_native_id(), BACKGROUND_NICENESS)


class EmbedAhead:
    """Embeds texts in the background as they come; then a callable over all of them."""

    def __init__(self, model: Future[Model | None]) -> None:
        self._model = model
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="embed-ahead", initializer=background_thread
        )
        self._jobs: list[Future[None]] = []
        self.vectors: dict[str, np.ndarray] = {}

    def add(self, texts: Sequence[str]) -> None:
        """Embed ``texts`` in the background (the ones not embedded already)."""
        self._jobs.append(self._pool.submit(self._embed, list(texts)))

    def _embed(self, texts: list[str]) -> None:
        model = self._model.result()
        todo = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if model is None or not todo:
            return
        import torch

        # One torch thread: two spin against the engine's on shared cores. No
        # engine runs in this process when embedding ahead (Ray, Dask).
        torch.set_num_threads(1)
        for text, vector in zip(todo, model(todo), strict=True):
            self.vectors[text] = vector

    def finish(self) -> Model | None:
        """Wait for what was added; the embedding function over every text (the
        model for those never added), or None when the model is not installed."""
        failed = [e for job in self._jobs if (e := job.exception()) is not None]
        self._pool.shutdown()
        model = self._model.result()  # a model that failed to load raises here, as before
        if failed:  # scoring embeds those batches again
            log.warning("embeddings: %d batch(es) not embedded ahead (%s)", len(failed), failed[0])
        if model is None:
            return None
        return Precomputed(model, self.vectors)


class Precomputed:
    """``model``'s embeddings, looked up where computed already."""

    def __init__(self, model: Model, vectors: dict[str, np.ndarray]) -> None:
        self.model, self.vectors = model, vectors

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if missing:
            for text, vector in zip(missing, self.model(missing), strict=True):
                self.vectors[text] = vector
        return np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, 0))
