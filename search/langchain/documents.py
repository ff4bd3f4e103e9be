"""LangChain ``Document`` objects of babelindex hits and stored documents: the metadata layout.

A hit (:func:`to_document`, what :class:`~search.langchain.BabelIndexRetriever` returns) becomes
a ``Document`` whose ``page_content`` is the chunk's text, ``id`` the chunk id as a string, and
whose ``metadata`` is flat, as LangChain code expects (``doc.metadata["source"]``):

- the document's own metadata keys (record fields, an HTML or PDF title), at the top level;
- babelindex's fields of the hit (:data:`HIT_FIELDS`: ``score``, ``doc_id``, ``chunk_id``,
  ``source``, ``lang``, ``start``, ``end``, ``signals`` as a list), at the top level too.

Where the document's own metadata has a key of one of those names, the document's value keeps
the name and babelindex's field moves to ``babelindex_<name>`` (``babelindex_source``): no value
is ever hidden, and the user's data is never overwritten.

A stored document (:func:`stored_document`, what :class:`~search.langchain.BabelIndexVectorStore`
returns) comes back as it was added: its text, its own metadata exactly, its id.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document

from search.hit import Hit

HIT_FIELDS = ("score", "doc_id", "chunk_id", "source", "lang", "start", "end", "signals")
"""babelindex's fields of a hit, as keys of a retrieved ``Document``'s metadata."""
COLLISION_PREFIX = "babelindex_"
"""Prefix of a babelindex field whose name the document's own metadata already uses."""


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """The flat metadata of a hit's ``Document``: a copy of the document's own metadata plus
    :data:`HIT_FIELDS` (renamed ``babelindex_<name>`` where the document's metadata has that key)."""
    own = copy.deepcopy(hit.metadata) if hit.metadata else {}
    fields = hit.as_json()
    out = dict(own)
    for name in HIT_FIELDS:
        out[COLLISION_PREFIX + name if name in own else name] = fields[name]
    return out


def to_document(hit: Hit) -> Document:
    """A LangChain ``Document`` of one hit: the chunk's text, :func:`hit_metadata`, and the
    chunk id (a string) as ``id``."""
    return Document(page_content=hit.text, metadata=hit_metadata(hit), id=str(hit.chunk_id))


def stored_document(record: Mapping[str, Any]) -> Document:
    """The ``Document`` of a stored document, from ``Index.get_document(doc_id)``'s record:
    its text (:func:`document_text`), its own metadata, and its id."""
    return Document(
        page_content=document_text(record["chunks"], int(record["n_chars"])),
        metadata=dict(record["metadata"]),
        id=str(record["doc_id"]),
    )


def document_text(chunks: Sequence[Mapping[str, Any]], n_chars: int) -> str:
    """A document's text put back together from its chunks (``text``, ``start``, ``end``:
    character offsets), overlaps taken once. Characters no chunk covers are whitespace only
    (chunking keeps every other character) and come back as spaces; ``n_chars`` long."""
    out = [" "] * n_chars
    for chunk in chunks:
        start, text = int(chunk["start"]), str(chunk["text"])
        out[start : start + len(text)] = text
    return "".join(out[:n_chars])
