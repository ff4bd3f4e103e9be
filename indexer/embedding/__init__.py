"""Embedding models behind one :class:`Embedder` protocol, and :func:`load_embedder`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from indexer.choices import PRECISIONS
from indexer.embedding.base import Embedder, describe, same_model
from indexer.embedding.registry import DEFAULT_NAME as DEFAULT_MODEL
from indexer.embedding.registry import REGISTRY, ModelSpec, display, list_models, resolve
from indexer.embedding.use_multilingual import NAME as USE_MULTILINGUAL
from store.records import ModelRecord

log = logging.getLogger("babelindex.models")
"""Says what loading takes: the model loaded (and how long it took), precisions measured.
The CLI prints these lines on stderr; the server logs them."""


def is_available(name: str) -> bool:
    """Whether the model ``name`` can be loaded now, without trying to download it."""
    if name == USE_MULTILINGUAL:
        return True
    from indexer.embedding.transformer import is_available as transformer_available

    return transformer_available(resolve(name))


def load_embedder(name: str | None = None, *, precision: str | None = None) -> Embedder:
    """Load a model: a registry name (see ``indexer models``), a Hub id or a local directory.

    ``None`` means the default, ``distilmbert`` (``distilbert-base-multilingual-cased``).
    ``precision`` is ``auto``, ``fp32``, ``bf16`` or ``int8`` for transformer models (None
    reads ``$BABELINDEX_PRECISION``, else ``auto``); ``use-multilingual`` runs in fp32 only.
    Raises ``ModelNotAvailable`` with the ways out when the model cannot be had, and
    ``InvalidInput`` for a precision this machine or model cannot run.
    """
    from indexer.embedding.precision import requested

    name = name or DEFAULT_MODEL
    wanted = requested(precision)
    if name == USE_MULTILINGUAL:
        if wanted not in ("auto", "fp32"):
            from store.errors import InvalidInput

            raise InvalidInput(
                f"use-multilingual runs in fp32 only (numpy); use --precision auto or fp32, not {wanted}."
            )
        from indexer.embedding.use_multilingual import UseMultilingualEmbedder

        return _timed(name, UseMultilingualEmbedder)
    from indexer.embedding.transformer import TransformerEmbedder

    return _timed(name, lambda: TransformerEmbedder(name, precision=wanted, source=resolve(name)))


def _timed(name: str, load: Callable[[], Embedder]) -> Embedder:
    log.info("loading the model %s …", display(name))
    started = time.perf_counter()
    embedder = load()
    log.info("loaded the model %s in %.1f s", display(name), time.perf_counter() - started)
    return embedder


def require_same_model(recorded: ModelRecord, embedder: Embedder, index: object, advice: str) -> None:
    """Raise ``ModelMismatch`` naming both models and ``advice`` (the way out) unless
    ``embedder`` gives the vectors of the model ``recorded`` in the index at ``index``."""
    if same_model(recorded, embedder):
        return
    from store.errors import ModelMismatch

    raise ModelMismatch(
        f"{index} was built with the model {display(recorded.name)} ({recorded.dimension} dimensions), "
        f"but {display(embedder.name)} ({embedder.dimension} dimensions) gives other vectors. {advice}"
    )


def verify_model(recorded: ModelRecord) -> bool:
    """Load the recorded model now and say whether it still gives the recorded probe embedding
    (``indexer check --verify-model``); raises ``ModelNotAvailable`` when it cannot be loaded."""
    return same_model(recorded, load_embedder(recorded.name))


__all__ = [
    "DEFAULT_MODEL",
    "PRECISIONS",
    "REGISTRY",
    "USE_MULTILINGUAL",
    "Embedder",
    "ModelSpec",
    "describe",
    "display",
    "is_available",
    "list_models",
    "load_embedder",
    "require_same_model",
    "resolve",
    "same_model",
    "verify_model",
]
