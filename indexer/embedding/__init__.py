"""Embedding models behind one :class:`Embedder` protocol, and :func:`load_embedder`."""

from __future__ import annotations

from indexer.embedding.base import Embedder, describe, same_model
from indexer.embedding.transformer import DEFAULT_MODEL
from indexer.embedding.use_multilingual import NAME as USE_MULTILINGUAL


def is_available(name: str) -> bool:
    """Whether the model ``name`` can be loaded now, without trying to download it."""
    if name == USE_MULTILINGUAL:
        return True
    from indexer.embedding.transformer import is_available as transformer_available

    return transformer_available(name)


def load_embedder(name: str | None = None) -> Embedder:
    """Load a model by name: ``use-multilingual``, a Hub id or a local directory.

    ``None`` means the default, ``distilbert-base-multilingual-cased``. Raises
    ``ModelNotAvailable`` with the ways out when the model cannot be had.
    """
    name = name or DEFAULT_MODEL
    if name == USE_MULTILINGUAL:
        from indexer.embedding.use_multilingual import UseMultilingualEmbedder

        return UseMultilingualEmbedder()
    from indexer.embedding.transformer import TransformerEmbedder

    return TransformerEmbedder(name)


__all__ = ["DEFAULT_MODEL", "USE_MULTILINGUAL", "Embedder", "describe", "is_available", "load_embedder", "same_model"]
