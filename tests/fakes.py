"""Test doubles that implement the Embedder protocol cheaply, for tests about everything
around the model (reading, chunking, storing, crashing), not about meaning."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.embedding.base import check_vectors

_TOKEN = re.compile(r"[\u3040-\u9fff\uac00-\ud7af]|[^\s\u3040-\u9fff\uac00-\ud7af]+")


class HashingEmbedder:
    """Feature hashing of tokens (words, and single CJK characters) into ``dimension`` signed
    buckets, L2-normalised: deterministic, fast, and similar texts get similar vectors."""

    name = "hashing-test"
    max_tokens = 512

    def __init__(self, dimension: int = 64):
        self.dimension = dimension

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_TOKEN.findall(t)) for t in texts]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dimension] += 1.0 if (h >> 32) & 1 else -1.0
        return check_vectors(out, list(texts))

    embed_queries = embed_documents

    def fingerprint(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": "test-hashing",
            "revision": "1",
            "pooling": "hashing",
            "max_tokens": self.max_tokens,
            "dimension": self.dimension,
        }
