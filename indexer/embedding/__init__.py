"""Embedding models behind one :class:`Embedder` protocol, and :func:`load_embedder`."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from indexer.choices import PRECISIONS
from indexer.embedding.base import Embedder, describe, require_embedder, same_model
from indexer.embedding.prompts import Prompts, fingerprint_prompts, prompt_difference
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


def load_embedder(
    name: str | None = None,
    *,
    precision: str | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> Embedder:
    """Load a model: a registry name (see ``indexer models``), a Hub id or a local directory.

    ``None`` means the default, ``distilmbert`` (``distilbert-base-multilingual-cased``).
    ``precision`` is ``auto``, ``fp32``, ``bf16``, ``ov-bf16`` or ``int8`` for transformer models (None
    reads ``$BABELINDEX_PRECISION``, else ``auto``); ``use-multilingual`` runs in fp32 only.
    ``query_prompt`` / ``document_prompt`` replace the model's own prompts (``""``: none;
    None: the model's, see :mod:`indexer.embedding.prompts`); ``use-multilingual`` takes none.
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
        if query_prompt or document_prompt:
            from store.errors import InvalidInput

            raise InvalidInput("use-multilingual takes no prompts; leave out --query-prompt and --document-prompt.")
        from indexer.embedding.use_multilingual import UseMultilingualEmbedder

        return _timed(name, UseMultilingualEmbedder)
    from indexer.embedding.transformer import TransformerEmbedder

    def load() -> Embedder:
        embedder = TransformerEmbedder(
            name, precision=wanted, source=resolve(name), query_prompt=query_prompt, document_prompt=document_prompt
        )
        _log_prompts(embedder.prompts)
        return embedder

    return _timed(name, load)


def _log_prompts(prompts: Prompts) -> None:
    if prompts.query or prompts.document:
        log.info("prompts (%s): query %r, document %r", prompts.origin, prompts.query or "", prompts.document or "")


def _timed(name: str, load: Callable[[], Embedder]) -> Embedder:
    log.info("loading the model %s …", display(name))
    started = time.perf_counter()
    embedder = load()
    log.info("loaded the model %s in %.1f s", display(name), time.perf_counter() - started)
    return embedder


def to_embedder(
    model: str | Embedder | Any | None = None,
    *,
    precision: str | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> Embedder:
    """The :class:`Embedder` for anything ``model=`` takes: a name or directory (loaded with
    :func:`load_embedder`; ``None`` is the default model), an ``Embedder`` (returned as it is),
    or a loaded ``sentence_transformers.SentenceTransformer`` (wrapped, used as it is: see
    :func:`indexer.embedding.transformer.from_sentence_transformer`). Anything else raises
    ``InvalidInput`` saying what is accepted. ``query_prompt`` / ``document_prompt`` (None: the
    model's own) apply to a name or a ``SentenceTransformer``; given with an ``Embedder``, they
    must be its own (``InvalidInput`` otherwise: it cannot be given others)."""
    if model is None or isinstance(model, str):
        return load_embedder(model, precision=precision, query_prompt=query_prompt, document_prompt=document_prompt)
    if isinstance(model, Embedder):
        _require_own_prompts(model, query_prompt, document_prompt)
        return model
    st = sys.modules.get("sentence_transformers")  # a loaded model means the library is imported
    if st is not None and isinstance(model, st.SentenceTransformer):
        from indexer.embedding.transformer import from_sentence_transformer

        embedder = from_sentence_transformer(
            model, precision=precision, query_prompt=query_prompt, document_prompt=document_prompt
        )
        _log_prompts(embedder.prompts)
        return embedder
    require_embedder(model)  # raises, saying what model= takes
    return model


def _require_own_prompts(embedder: Embedder, query_prompt: str | None, document_prompt: str | None) -> None:
    own = fingerprint_prompts(embedder.fingerprint())
    for role, given, mine in (("query", query_prompt, own[0]), ("document", document_prompt, own[1])):
        if given is not None and given != mine:
            from store.errors import InvalidInput

            raise InvalidInput(
                f"model= is a loaded Embedder whose {role} prompt is {mine!r}, so {role}_prompt={given!r} cannot "
                f"apply to it: load it again with that prompt (load_embedder(name, {role}_prompt=...)), or pass "
                "the model by name."
            )


def prompts_for(recorded: ModelRecord | None, model: object, query: str | None, document: str | None) -> dict[str, Any]:
    """The ``query_prompt`` / ``document_prompt`` arguments to load ``model`` with for an index
    that records ``recorded``: those given, else the index's own (so that queries and new
    documents are embedded as the stored ones were). A loaded ``Embedder`` keeps its own
    prompts: only those given are passed on, to be checked against them."""
    if recorded is not None and not isinstance(model, Embedder):
        query = recorded.query_prompt if query is None else query
        document = recorded.document_prompt if document is None else document
    return {"query_prompt": query, "document_prompt": document}


def require_same_model(recorded: ModelRecord, embedder: Embedder, index: object, advice: str) -> None:
    """Raise ``ModelMismatch`` naming both models and ``advice`` (the way out) unless
    ``embedder`` gives the vectors of the model ``recorded`` in the index at ``index``."""
    if same_model(recorded, embedder):
        return
    from store.errors import ModelMismatch

    mine = embedder.fingerprint()
    prompts = prompt_difference(recorded, mine)
    same_weights = any(
        mine.get(key) is not None and mine.get(key) == getattr(recorded, key) for key in ("revision", "source")
    )
    if prompts is not None and same_weights and recorded.dimension == embedder.dimension:
        raise ModelMismatch(
            f"{index} was built with the model {display(recorded.name)} with other prompts than "
            f"{display(embedder.name)} has now, so its vectors would not compare. {prompts}"
        )
    raise ModelMismatch(
        f"{index} was built with the model {display(recorded.name)} ({recorded.dimension} dimensions), "
        f"but {display(embedder.name)} ({embedder.dimension} dimensions) gives other vectors. {advice}"
    )


def require_recorded_prompts(
    recorded: ModelRecord, query_prompt: str | None, document_prompt: str | None, index: object
) -> None:
    """Raise ``ModelMismatch`` when prompts given to open the index at ``index`` are not those it
    records (an index that records none was embedded without any), before any model is loaded."""
    given = {"query_prompt": query_prompt, "document_prompt": document_prompt}
    if all(v is None for v in given.values()):
        return
    mine = {k: (v if v is not None else (getattr(recorded, k) or "")) for k, v in given.items()}
    theirs = {k: getattr(recorded, k) or "" for k in given}
    if mine == theirs:
        return
    from store.errors import ModelMismatch

    raise ModelMismatch(
        f"{index} was built with the model {display(recorded.name)} with other prompts than those given, so its "
        f"vectors would not compare. {prompt_difference(recorded, mine)}"
    )


def verify_model(recorded: ModelRecord) -> bool:
    """Load the recorded model now and say whether it still gives the recorded probe embedding
    (``indexer check --verify-model``); raises ``ModelNotAvailable`` when it cannot be loaded."""
    return same_model(recorded, load_embedder(recorded.name, **prompts_for(recorded, recorded.name, None, None)))


__all__ = [
    "DEFAULT_MODEL",
    "FOREIGN_PREFIX",
    "PRECISIONS",
    "REGISTRY",
    "USE_MULTILINGUAL",
    "Embedder",
    "ModelSpec",
    "Prompts",
    "describe",
    "display",
    "is_available",
    "list_models",
    "load_embedder",
    "prompts_for",
    "require_embedder",
    "require_recorded_prompts",
    "require_same_model",
    "resolve",
    "same_model",
    "to_embedder",
    "verify_model",
]
