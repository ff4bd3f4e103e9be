"""Changing an index without a corpus folder: create, upsert, delete, remove, reindex, repair, compact.

Each call takes the writer lock (``wait``: trying for up to that many seconds while another
writer holds it), writes its changes through the ingestion engine
(:mod:`indexer.writer`) as pending, and publishes them before it returns: once it has
returned, no reader is served a deleted chunk.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.embedding import Embedder
from indexer.reading import Document
from indexer.tune_queries import store_tune_queries
from indexer.writer import BuildReport, Writer, check_chunk_tokens, open_model, publish, resolve_settings
from store.compaction import CompactReport
from store.errors import CorruptIndex, InvalidInput
from store.index_dir import IndexDir
from store.metadata_json import check_label, metadata_json, text_problem
from store.records import FaissInfo
from store.schema import DB_FILE

DocumentLike = Document | Mapping[str, Any]


def _open(index: str | Path, wait: float) -> IndexDir:
    return IndexDir.open_for_writing(index, must_exist=True, wait=wait)


def as_document(item: DocumentLike) -> Document:
    """A :class:`Document` from a Document or a mapping ``{"id", "text", "metadata"?, "source"?}``."""
    if isinstance(item, Document):
        return item
    if not isinstance(item, Mapping):
        raise InvalidInput(f"a document must be a mapping with 'id' and 'text', not {type(item).__name__}.")
    doc_id, text = item.get("id"), item.get("text")
    if doc_id is None or str(doc_id) == "":
        raise InvalidInput("every document needs a non-empty 'id'.")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"document {doc_id!r} needs a non-empty string 'text'.")
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"the 'metadata' of document {doc_id!r} must be a JSON object.")
    doc_id, source = check_label(str(doc_id), "id"), check_label(str(item.get("source") or doc_id), "source")
    problem = text_problem(text)
    if problem:
        raise InvalidInput(f"the text of document {doc_id!r} holds {problem}; remove it.")
    metadata_json(metadata, repr(doc_id))  # NaN, depth, size: refused before anything is embedded
    return Document(doc_id=doc_id, source=source, text=text, metadata=dict(metadata))


def create_index(
    index: str | Path,
    *,
    model: str | Embedder | None = None,
    precision: str | None = None,
    chunk_tokens: int | None = None,
    overlap_tokens: int | None = None,
    index_type: str | None = None,
    exist_ok: bool = False,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> Embedder:
    """Make an empty index at ``index`` for ``model`` (default ``distilmbert``) and these
    settings (defaults as for a build: 256 / 32 tokens, ``auto``), published and ready for
    upserts; returns the loaded model. An existing index raises :class:`InvalidInput`
    unless ``exist_ok``: then it is left as it is, and a ``model`` (or prompts) other than its
    own raises ``ModelMismatch``. ``query_prompt`` / ``document_prompt``: as for
    :func:`indexer.build.build_index`.
    """
    path = Path(index)
    exists = (path / DB_FILE).exists()
    if exists and not exist_ok:
        raise InvalidInput(
            f"{path} is already an index; open it with Index.open (or pass exist_ok=True), or choose a new path."
        )
    with IndexDir.open_for_writing(path) as idx:
        try:
            embedder = open_model(idx, model, precision, query_prompt=query_prompt, document_prompt=document_prompt)
        except BaseException:
            if not exists:
                idx.close()
                shutil.rmtree(path, ignore_errors=True)  # nothing was recorded: leave no empty index
            raise
        try:
            check_chunk_tokens(chunk_tokens, embedder)
        except BaseException:
            if not exists:
                idx.close()
                shutil.rmtree(path, ignore_errors=True)
            raise
        settings = resolve_settings(idx, chunk_tokens, overlap_tokens, index_type)
        if idx.faiss_info() is None:
            publish(idx, settings, dimension=embedder.dimension)
    return embedder


def upsert_documents(
    index: str | Path, documents: Iterable[DocumentLike], *, model: str | Embedder | None = None, wait: float = 0.0
) -> BuildReport:
    """Add or replace documents given as data (no files), and publish.

    Each document is a :class:`~indexer.reading.Document` or a mapping with ``id``,
    ``text`` and optionally ``metadata`` (a JSON object) and ``source``. A document whose
    text and metadata are unchanged is not embedded again. All are checked before any is
    written. Returns the report (``documents_added``, ``documents_updated``, …). A path
    where there is no index yet gets a new one, with ``model`` (default ``distilmbert``),
    as :func:`create_index` makes it.
    """
    started = time.perf_counter()
    docs = [as_document(d) for d in documents]
    if not (Path(index) / DB_FILE).exists():
        model = create_index(index, model=model, exist_ok=True)
    with _open(index, wait) as idx:
        embedder = open_model(idx, model)
        report = BuildReport(index=str(index), model=embedder.name)
        writer = Writer(idx, embedder, resolve_settings(idx), report)
        for doc in docs:
            writer.add(doc)
        writer.finish()
        writer.publish()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def delete_documents(index: str | Path, doc_ids: Sequence[str], *, wait: float = 0.0) -> int:
    """Delete documents by id, and publish; returns how many existed."""
    with _open(index, wait) as idx:
        deleted = idx.meta.delete_documents([str(d) for d in doc_ids])
        publish(idx, idx.settings())
    return deleted


@dataclass(frozen=True)
class RemoveReport:
    """What :func:`remove_sources` did: ``removed`` doc ids per source; ``missing`` sources."""

    removed: dict[str, list[str]]
    missing: list[str]


def remove_sources(index: str | Path, sources: Sequence[str], *, wait: float = 0.0) -> RemoveReport:
    """Delete the documents of the given sources (files, relative to their corpus root) or ids."""
    with _open(index, wait) as idx:
        found = idx.meta.doc_ids_of_sources([str(s) for s in sources])
        idx.meta.delete_documents(sorted({d for ids in found.values() for d in ids}))
        publish(idx, idx.settings())
    return RemoveReport(
        removed={s: ids for s, ids in found.items() if ids}, missing=[s for s, ids in found.items() if not ids]
    )


def reindex(
    index: str | Path,
    index_type: str,
    *,
    wait: float = 0.0,
    tune_queries: Sequence[str] | None = None,
    precision: str | None = None,
) -> FaissInfo | None:
    """Switch the FAISS index type (one of ``indexer.choices.INDEX_TYPES``) from the stored
    vectors, without re-embedding; the type is recorded for later builds. ``None`` for an
    index that has no chunks yet. ``tune_queries``: as for :func:`indexer.build.build_index`
    (only they are embedded, with the index's model at ``precision``)."""
    with _open(index, wait) as idx:
        if tune_queries is not None:
            store_tune_queries(idx, open_model(idx, None, precision), tune_queries)
        return publish(idx, resolve_settings(idx, index_type=index_type), rebuild=True)


def repair(index: str | Path, *, wait: float = 0.0) -> FaissInfo | None:
    """Rebuild the FAISS index from the vectors stored in SQLite (no re-embedding).

    Also rebuilds the full-text table, publishes complete documents an interrupted build
    left pending, drops unfinished ones, and removes leftover temporary files.
    """
    with _open(index, wait) as idx:
        try:
            damage = idx.meta.integrity_problems()
            if damage:
                raise CorruptIndex(
                    f"{idx.path / 'meta.db'} is damaged ({'; '.join(damage)}): repair rebuilds the FAISS and "
                    "full-text indexes from it, and it cannot be trusted now. Rebuild the index from its corpus "
                    "with `indexer build` into a new --index."
                )
            idx.meta.rebuild_fts()
            return publish(idx, idx.settings(), rebuild=True)
        except sqlite3.DatabaseError as exc:
            raise CorruptIndex(
                f"{idx.path / 'meta.db'} cannot be read ({exc}). Rebuild the index from its corpus with "
                "`indexer build` into a new --index."
            ) from None


def compact(index: str | Path, *, wait: float = 0.0) -> CompactReport:
    """Give back the space deleted documents left: merge the full-text index, ``VACUUM``
    ``meta.db``, checkpoint and truncate its WAL, and remove every FAISS version but the
    current one (see :mod:`store.compaction`). Readers keep answering throughout and see
    the same results before and after; a crash at any point loses nothing. Returns the
    bytes before and after by part, and what was done.
    """
    with _open(index, wait) as idx:
        return idx.compact(full=True)
