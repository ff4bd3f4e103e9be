"""Query and document prompts: the text a retrieval model wants before each query and passage.

Models such as the multilingual-e5 family (``query: `` / ``passage: ``), EmbeddingGemma or
gte were trained with a prompt before every input; embedded without it, their vectors are
worse, with no error. The prompts of a model, per role, are the first of:

1. the ones given (``--query-prompt`` / ``--document-prompt``, ``query_prompt=`` /
   ``document_prompt=``; ``""`` means none);
2. those the index being opened records (it was built with them; see
   :func:`indexer.embedding.prompts_for`);
3. the model's sentence-transformers configuration (``prompts`` in
   ``config_sentence_transformers.json``), read as ``SentenceTransformer.encode_query`` and
   ``encode_document`` read it: queries take ``"query"``, documents the first non-empty of
   ``"document"``, ``"passage"``, ``"corpus"``. A model that has neither but names a
   ``default_prompt_name`` gets that prompt for both roles, as ``encode`` would give it;
4. the registry entry's prompts (``indexer models``);
5. the e5 convention: a model named ``multilingual-e5-small``, ``-base`` or ``-large`` (or
   ``e5-small``/``-base``/``-large``, with or without ``-v2``) gets ``query: `` / ``passage: ``.

Prompts count: a chunk's token limit is the model's minus the document prompt's tokens (see
:class:`~indexer.embedding.transformer.TransformerEmbedder`), and both prompts are part of
the model's fingerprint, so an index built with other prompts is refused as another model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from indexer.embedding.registry import REGISTRY
from store.records import ModelRecord

E5_QUERY = "query: "
E5_PASSAGE = "passage: "
E5_NAME = re.compile(r"^(multilingual-)?e5-(small|base|large)(-v2)?$", re.IGNORECASE)
"""Model names (the last part of a Hub id or directory) that follow the e5 convention."""
DOCUMENT_NAMES = ("document", "passage", "corpus")
"""Prompt names that mean "a document", in the order ``encode_document`` tries them."""


@dataclass(frozen=True)
class Prompts:
    """The prompts a model runs with (``""``: none), and where they came from.

    Attributes:
        query: put before each query.
        document: put before each document chunk.
        origin: ``given``, ``index``, ``model``, ``registry``, ``e5 convention`` or ``none``
            (of the document prompt where the two differ in origin; for messages).
    """

    query: str = ""
    document: str = ""
    origin: str = "none"


def model_prompts(model: Any, name: str, source: str) -> Prompts:
    """The prompts of a loaded ``SentenceTransformer`` ``model`` named ``name`` (loaded from
    ``source``), from steps 3 to 5 of the module docstring."""
    configured: Mapping[str, str] = {k: v for k, v in (getattr(model, "prompts", None) or {}).items() if v}
    query = configured.get("query", "")
    document = next((configured[n] for n in DOCUMENT_NAMES if n in configured), "")
    default = getattr(model, "default_prompt_name", None)
    if not query and not document and isinstance(default, str) and default in configured:
        query = document = configured[default]
    if query or document:
        return Prompts(query, document, "model")
    spec = REGISTRY.get(name)
    if spec is not None and (spec.query_prompt or spec.document_prompt):
        return Prompts(spec.query_prompt, spec.document_prompt, "registry")
    if any(E5_NAME.match(PurePath(n.rstrip("/\\")).name) for n in (name, source) if n):
        return Prompts(E5_QUERY, E5_PASSAGE, "e5 convention")
    return Prompts()


def resolve_prompts(own: Prompts, query: str | None = None, document: str | None = None) -> Prompts:
    """``own`` (the model's prompts) with those given (None: keep the model's) put in."""
    if query is None and document is None:
        return own
    return Prompts(
        own.query if query is None else query,
        own.document if document is None else document,
        own.origin if document is None else "given",
    )


def fingerprint_prompts(fingerprint: Mapping[str, Any]) -> tuple[str, str]:
    """``(query prompt, document prompt)`` of an ``Embedder.fingerprint()`` (``""`` where absent)."""
    return str(fingerprint.get("query_prompt") or ""), str(fingerprint.get("document_prompt") or "")


def prompt_difference(recorded: ModelRecord, fingerprint: Mapping[str, Any]) -> str | None:
    """Why the prompts of a model (its ``fingerprint``) are not those ``recorded`` in an index,
    and what to do, or None when they are the same. An index that records no prompts (made
    before babelindex recorded them) was embedded without any."""
    mine = dict(zip(("query", "document"), fingerprint_prompts(fingerprint), strict=True))
    theirs = {"query": recorded.query_prompt or "", "document": recorded.document_prompt or ""}
    differ = [role for role in ("document", "query") if mine[role] != theirs[role]]
    if not differ:
        return None
    if recorded.query_prompt is None and recorded.document_prompt is None:
        given = ", ".join(f"the {role} prompt {mine[role]!r}" for role in differ)
        return (
            f"It was built without prompts (by a babelindex that did not apply them), but the model now runs "
            f"with {given}. Rebuild the index to embed with the model's prompts (its vectors are better with "
            "them), or pass --query-prompt '' --document-prompt '' (query_prompt='', document_prompt='' in "
            "Python) to use it as it was built."
        )
    said = "; ".join(f"the {role} prompt {theirs[role]!r}, not {mine[role]!r}" for role in differ)
    options = " ".join(f"--{role}-prompt {theirs[role]!r}" for role in differ)
    return (
        f"It was built with {said}. Pass {options} (or leave the option out: the index's own prompts are the "
        "default) to use it as it was built, or rebuild it with the new prompts into a new index."
    )
