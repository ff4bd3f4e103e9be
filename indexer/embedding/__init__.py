"""Embedding models behind one :class:`Embedder` protocol, and :func:`load_embedder`."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from indexer.choices import PRECISIONS
from indexer.embedding.base import Embedder, describe, require_embedder, same_model
from indexer.embedding.registry import DEFAULT_NAME as DEFAULT_MODEL
from indexer.embedding.registry import REGISTRY, ModelSpec, display, list_models, resolve
from indexer.embedding.use_multilingual import NAME as USE_MULTILINGUAL
from store.records import ModelRecord

FOREIGN_PREFIX = "langchain:"
"""Names of models babelindex cannot load by name: LangChain ``Embeddings`` objects an index was
built with through ``search.langchain`` (``langchain:<module>.<class>[:<model>]``)."""

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
    if name.startswith(FOREIGN_PREFIX):
        from store.errors import ModelNotAvailable

        raise ModelNotAvailable(
            f"the model {name!r} is a LangChain Embeddings object that an index was built with through "
            "search.langchain; babelindex cannot load it by name. Pass the same embeddings again: "
            "BabelIndexVectorStore(path, embedding=...) or Index.open(path, model=LangChainEmbedder(embeddings))."
        )
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


def to_embedder(model: str | Embedder | Any | None = None, *, precision: str | None = None) -> Embedder:
    """The :class:`Embedder` for anything ``model=`` takes: a name or directory (loaded with
    :func:`load_embedder`; ``None`` is the default model), an ``Embedder`` (returned as it is),
    or a loaded ``sentence_transformers.SentenceTransformer`` (wrapped, used as it is: see
    :func:`indexer.embedding.transformer.from_sentence_transformer`). Anything else raises
    ``InvalidInput`` saying what is accepted."""
    if model is None or isinstance(model, str):
        return load_embedder(model, precision=precision)
    if isinstance(model, Embedder):
        return model
    st = sys.modules.get("sentence_transformers")  # a loaded model means the library is imported
    if st is not None and isinstance(model, st.SentenceTransformer):
        from indexer.embedding.transformer import from_sentence_transformer

        return from_sentence_transformer(model, precision=precision)
    require_embedder(model)  # raises, saying what model= takes
    return model


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
    "FOREIGN_PREFIX",
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
    "require_embedder",
    "require_same_model",
    "resolve",
    "same_model",
    "to_embedder",
    "verify_model",
]
