"""Queries that tune an IVF index's ``nprobe`` (``indexer build --tune-queries FILE``).

``nprobe`` is tuned for recall against exact search (see :mod:`store.faiss_index`). Real
queries are the best judges of it: they lie farther from the corpus's clusters than any
stored vector, the more so across languages. A user's queries are read from a BEIR
``queries.jsonl`` (its ``text`` fields) or a text file of one query per line, sampled to at
most :data:`MAX_TUNE_QUERIES` (seeded), embedded as queries with the index's model, and
stored in the index, so that every later retraining tunes with them too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.embedding.base import Embedder
from indexer.jsonl import read_jsonl
from store.errors import InvalidInput
from store.index_dir import IndexDir

MAX_TUNE_QUERIES = 1_000
"""Queries kept for tuning: enough for recall to ±0.01, few enough to tune in seconds."""
EMBED_BATCH = 256


def read_tune_queries(path: str | Path) -> list[str]:
    """The query texts of ``path``: a ``.jsonl`` file's ``text`` fields (BEIR ``queries.jsonl``),
    else one query per non-blank line. Raises ``InvalidInput`` for a missing file, a bad
    line or no query at all."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"--tune-queries {path}: no such file; give a BEIR queries.jsonl or one query per line.")
    texts: list[str] = []
    if path.suffix.lower() == ".jsonl":
        for line in read_jsonl(path):
            if line.record is None:
                raise InvalidInput(f"{path}:{line.number}: {line.problem}.")
            text = line.record.get("text")
            if not isinstance(text, str):
                raise InvalidInput(f'{path}:{line.number}: a query record needs a "text" string.')
            if text.strip():
                texts.append(text.strip())
    else:
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
        texts = [line.strip() for line in content.splitlines() if line.strip()]
    if not texts:
        raise InvalidInput(f"{path} holds no query; give a BEIR queries.jsonl or one query per line.")
    return texts


def sample_queries(texts: Sequence[str], limit: int = MAX_TUNE_QUERIES, seed: int = 0) -> list[str]:
    """``texts`` without repeats, at most ``limit`` of them (a seeded sample, in file order)."""
    unique = list(dict.fromkeys(texts))
    if len(unique) <= limit:
        return unique
    keep = np.sort(np.random.default_rng(seed).choice(len(unique), size=limit, replace=False))
    return [unique[i] for i in keep]


def digest(texts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def store_tune_queries(idx: IndexDir, embedder: Embedder, texts: Sequence[str]) -> bool:
    """Embed a sample of ``texts`` as queries and store them in ``idx`` for the next publish to
    tune ``nprobe`` with. Returns False (nothing embedded) when the index already holds
    exactly these queries."""
    chosen = sample_queries(texts)
    if not chosen:
        raise InvalidInput("no tuning query was given; give a BEIR queries.jsonl or one query per line.")
    name = digest(chosen)
    if idx.meta.tune_queries_digest() == name:
        return False
    parts = [embedder.embed_queries(chosen[lo : lo + EMBED_BATCH]) for lo in range(0, len(chosen), EMBED_BATCH)]
    vectors = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    usable = np.asarray(np.isfinite(vectors).all(axis=1), dtype=bool)
    idx.meta.set_tune_queries([t for t, ok in zip(chosen, usable.tolist(), strict=True) if ok], vectors[usable], name)
    return True
