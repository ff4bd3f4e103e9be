"""The :class:`Embedder` protocol every embedding backend implements, and its fingerprint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from indexer.embedding.prompts import prompt_difference
from store.records import ModelRecord

PROBE_TEXT = "babelindex probe: The quick brown fox jumps over the lazy dog. 敏捷的棕色狐狸。"
"""A fixed text whose embedding is recorded in each index, to recognise the model later."""
PROBE_MIN_COSINE = 0.99
"""Two models whose probe embeddings agree at least this much are taken to be the same."""


@runtime_checkable
class Embedder(Protocol):
    """An embedding model as babelindex uses it.

    Attributes:
        name: how the user named the model (a Hub id, a local directory or a registry
            name); ``load_embedder(name)`` loads it again.
        dimension: width of the vectors.
        max_tokens: the most content tokens (special tokens and the document prompt
            excluded) one document text may have without being truncated by the model.
    """

    name: str
    dimension: int
    max_tokens: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages (with the model's document prompt): float32 ``(len(texts), dimension)``, each row L2-normalised."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries (with the model's query prompt): float32 ``(len(texts), dimension)``, each row L2-normalised."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Content tokens of each text with the model's own tokenizer (no special tokens)."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the model: name, backend, revision, pooling, max tokens, dimension,
        and the ``query_prompt`` / ``document_prompt`` it embeds with (absent: none)."""
        ...


def token_budget_batches(counts: Sequence[int], budget: int, max_batch: int) -> list[np.ndarray]:
    """Group text indices into batches sorted by token count, longest first.

    ``counts`` are tokens per text (specials included). A batch is padded to its longest
    text, so each batch keeps ``len(batch) * longest <= budget`` (a single text longer than
    the budget forms its own batch) and at most ``max_batch`` texts. Sorting by tokens, not
    characters, keeps padding low when scripts mix (a CJK text has few characters and many
    tokens). Returns int64 index arrays that together cover every text once.
    """
    order = np.argsort(-np.asarray(counts, dtype=np.int64), kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(int(counts[order[start]]), 1)
        size = max(1, min(max_batch, budget // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def require_embedder(model: object) -> None:
    """Raise ``InvalidInput`` unless ``model`` is an :class:`Embedder`, saying how to make one
    (a loaded ``SentenceTransformer`` or any other object that is not one would otherwise fail
    later with an ``AttributeError``)."""
    if isinstance(model, Embedder):
        return
    from store.errors import InvalidInput

    raise InvalidInput(
        f"model must be a model name or directory, or a babelindex Embedder, not a {type(model).__name__}. "
        "Wrap a loaded sentence_transformers.SentenceTransformer (or pass anything model= takes) with "
        "indexer.embedding.to_embedder(model)."
    )


def describe(embedder: Embedder) -> ModelRecord:
    """The model record stored in an index: the fingerprint plus a probe embedding."""
    require_embedder(embedder)
    probe = [round(float(x), 6) for x in embedder.embed_documents([PROBE_TEXT])[0]]
    return ModelRecord.from_fingerprint(embedder.fingerprint(), probe)


def same_model(recorded: ModelRecord, embedder: Embedder) -> bool:
    """True if ``embedder`` produces the vectors the index was built with: the same backend,
    dimension and prompts (see :mod:`indexer.embedding.prompts`), and a probe embedding that
    agrees with the recorded one.

    An index of imported vectors whose model could not be loaded at import records no probe
    embedding: then only the dimension can be compared (``indexer import`` documents this).
    """
    require_embedder(embedder)
    mine = embedder.fingerprint()
    if recorded.imported and not recorded.probe:
        return bool(mine.get("dimension") == recorded.dimension)
    if mine.get("dimension") != recorded.dimension or mine.get("backend") != recorded.backend:
        return False
    if prompt_difference(recorded, mine) is not None:
        return False
    probe = recorded.probe_vector
    if probe.shape != (embedder.dimension,):
        return False
    now = embedder.embed_documents([PROBE_TEXT])[0]
    return float(probe @ now / (np.linalg.norm(probe) * np.linalg.norm(now) + 1e-12)) >= PROBE_MIN_COSINE


def check_vectors(vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """L2-normalise model output to float32 ``(n, dimension)``.

    A row that is not finite or has (near) zero length cannot be normalised: it comes back
    all NaN, so that callers can refuse it (a build skips that document with its reason; a
    search reports the query) instead of letting it into FAISS.
    """
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
    norms = np.linalg.norm(vectors, axis=1)
    bad = ~np.isfinite(vectors).all(axis=1) | ~np.isfinite(norms) | (norms < 1e-6)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = vectors / np.where(bad, 1.0, norms)[:, None]
    out[bad] = np.nan
    return out
