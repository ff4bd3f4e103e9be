"""The ingestion engine: every write path of an index goes through :class:`Writer`.

Builds (:mod:`indexer.build`, also ``--engine ray``), API upserts (:mod:`indexer.update`,
the HTTP server) and vector imports (:mod:`indexer.importing`) hand their documents to one
:class:`Writer`, which owns what they share:

1. **triage** against the index: each document's content hash (text, metadata, chunking)
   says whether it is new, changed, unchanged, a duplicate id, or already stored by an
   interrupted run (:meth:`Writer.triage`);
2. **chunking and batching**: new and changed documents are chunked and gathered until
   :data:`PENDING_CHUNKS` chunks wait, so that the model's batches are long and sorted by
   length; a document of more than :data:`FLUSH_CHUNKS` chunks is embedded and written in
   parts, so memory stays bounded;
3. **embedding** with the index's model, refusing a document whose vectors are not finite
   (its indexed version, if any, is kept);
4. **pending writes**: each batch is one SQLite transaction of whole documents, pending
   until the publish, so readers never see half a change and an interrupted run resumes;
5. **reuse**: a new or changed document whose content (text, metadata, chunking) some
   stored version already has, such as a renamed or copied file, takes that version's chunks
   and vectors instead of being embedded again;
6. **removals** of a corpus's documents that are gone (:meth:`Writer.finish`), in a whole
   build, or within a :class:`Scope` (the files and folders ``indexer watch`` saw change);
7. **publishing** the FAISS version with the report filled in (:meth:`Writer.publish`).

Its settings (:class:`~store.records.IndexSettings`) and the model record
(:class:`~store.records.ModelRecord`) are typed records, given, else as the index records
them, else the defaults (:func:`resolve_settings`, :func:`open_model`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from indexer import language
from indexer.chunking import chunk_text
from indexer.documents import Document, Skipped
from indexer.embedding import DEFAULT_MODEL, Embedder, describe, prompts_for, require_same_model, to_embedder
from indexer.progress import Progress
from indexer.reading import describe_error
from store.errors import BabelIndexError, InvalidInput
from store.faults import crash_point
from store.index_dir import IndexDir
from store.index_types import PQ_KINDS, PQ_MIN_VECTORS, require_index_type
from store.metadata_json import check_label, metadata_json
from store.records import DocumentState, FaissInfo, FieldRule, IndexSettings, StoredChunk, StoredDocument

FLUSH_CHUNKS = 512
"""Chunks of one large document embedded and written together (one SQLite transaction each)."""
PENDING_CHUNKS = 2048
"""Chunks of small documents gathered before they are embedded together and written in one
transaction. A wider window sorts more chunks by length into the model's batches (less
padding; see bench/RESULTS.md); a build killed meanwhile embeds at most this many chunks
again when it resumes."""
MIN_CHUNK_TOKENS = 8

__all__ = [
    "FLUSH_CHUNKS",
    "PENDING_CHUNKS",
    "BuildReport",
    "Chunker",
    "EmbeddedDocument",
    "Progress",
    "Scope",
    "Writer",
    "check_chunk_tokens",
    "content_hash",
    "open_model",
    "publish",
    "resolve_settings",
    "usable",
]


@dataclass
class BuildReport:
    """What a write did. ``seconds`` is the wall-clock time of the whole call.

    ``skipped``: one ``{"source", "reason"}`` per file or record that gave no document.
    ``warnings``: one ``{"source", "warning"}`` per document indexed with a change made while
    reading it (NULs removed, bytes that are not UTF-8 replaced, …).
    ``chunks_reused``: chunks whose vectors were taken from a stored version with the same
    content (a renamed or copied file) instead of being embedded.
    ``steps``: seconds per step of a distributed build (``read_embed``, ``merge``, ``publish``,
    …); empty for local builds.
    """

    index: str
    model: str
    index_type: str = ""
    documents_added: int = 0
    documents_updated: int = 0
    documents_removed: int = 0
    documents_unchanged: int = 0
    documents_skipped: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- settings and model -----------------------------------------------------------------------
def resolve_settings(
    idx: IndexDir,
    chunk_tokens: int | None = None,
    overlap_tokens: int | None = None,
    index_type: str | None = None,
    *,
    text_field: str | None = None,
    id_field: str | None = None,
    field_rules: Sequence[FieldRule] = (),
) -> IndexSettings:
    """Chunking, index type and record fields: given, else as the index records them, else
    the defaults; checked, then recorded for later builds (and ``indexer watch``).

    ``text_field`` / ``id_field`` replace the recorded corpus-wide record fields (``""``: back
    to detection, resp. record numbers); ``field_rules`` the recorded rules of their patterns
    (:meth:`store.records.FieldSettings.updated`). Raises :class:`InvalidInput` for bad values.
    """
    old = idx.settings()
    new = IndexSettings(
        chunk_tokens=chunk_tokens or old.chunk_tokens,
        overlap_tokens=overlap_tokens if overlap_tokens is not None else old.overlap_tokens,
        index_type=index_type or old.index_type,
        fields=old.fields.updated(text_field, id_field, field_rules),
    )
    if new.chunk_tokens < MIN_CHUNK_TOKENS:
        raise InvalidInput(
            f"--chunk-tokens {new.chunk_tokens} is too small; use {MIN_CHUNK_TOKENS} or more (default 256)."
        )
    if new.overlap_tokens < 0 or new.overlap_tokens >= new.chunk_tokens:
        raise InvalidInput("--overlap-tokens must be at least 0 and smaller than --chunk-tokens.")
    require_index_type(new.index_type)
    idx.record_settings(new)
    return new


def open_model(
    idx: IndexDir,
    model: str | Embedder | None,
    precision: str | None = None,
    *,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> Embedder:
    """The model to write ``idx`` with: ``model`` (a name, directory or loaded embedder), else
    the one the index records, else the default, with the prompts given, else those the index
    records, else the model's own. A new index records it; an existing one raises
    ``ModelMismatch`` unless it is the recorded model with the recorded prompts."""
    recorded = idx.model_record()
    if model is None:
        model = recorded.name if recorded else DEFAULT_MODEL
    embedder = to_embedder(model, precision=precision, **prompts_for(recorded, model, query_prompt, document_prompt))
    if recorded is None:
        idx.record_model(describe(embedder))
    else:
        require_same_model(
            recorded,
            embedder,
            idx.path,
            f"Build with --model {recorded.name!r} (or no --model), or into a new --index.",
        )
    return embedder


def publish(
    idx: IndexDir,
    settings: IndexSettings,
    *,
    dimension: int | None = None,
    report: BuildReport | None = None,
    rebuild: bool = False,
) -> FaissInfo | None:
    """Publish what was written (see :meth:`store.index_dir.IndexDir.publish`) and fill in the
    report's ``index_type`` and ``chunks_total``. ``dimension`` defaults to the recorded model's."""
    if dimension is None:
        recorded = idx.model_record()
        if recorded is None:
            return None  # nothing was ever written
        dimension = recorded.dimension
    info = idx.publish(settings.index_type, dimension, rebuild=rebuild)
    if report is not None:
        report.index_type = info.factory if info else ""
        report.chunks_total = idx.meta.count("chunks")
        if info is not None and settings.index_type in PQ_KINDS and info.kind == "flat":
            report.warnings.append(
                {
                    "source": str(idx.path.name),
                    "warning": f"index type {settings.index_type} needs at least {PQ_MIN_VECTORS:,} chunks to train "
                    f"its code books; the {info.ntotal:,} chunks are searched exactly (flat) until there are enough, "
                    f"then the index becomes {settings.index_type} by itself",
                }
            )
    return info


def check_chunk_tokens(chunk_tokens: int | None, embedder: Embedder) -> None:
    """Refuse a ``--chunk-tokens`` above what the model reads after its document prompt (it
    would be cut to the model's limit without a word). Raises :class:`InvalidInput` saying the limit."""
    if chunk_tokens is not None and chunk_tokens > embedder.max_tokens:
        prompt = str(embedder.fingerprint().get("document_prompt") or "")
        after = f" after its document prompt {prompt!r}" if prompt else ""
        raise InvalidInput(
            f"--chunk-tokens {chunk_tokens} is above what the model {embedder.name} reads{after} "
            f"({embedder.max_tokens} tokens); use {embedder.max_tokens} or fewer."
        )


# -- documents --------------------------------------------------------------------------------
def content_hash(doc: Document, settings: IndexSettings) -> str:
    """sha256 of a document's text, metadata and chunking: a change in any re-indexes it.

    With the chunking inside the hash, a build interrupted while re-chunking after a change
    of ``--chunk-tokens`` resumes with exactly the documents still to do.
    """
    payload = json.dumps(
        [doc.text, doc.metadata, settings.chunk_tokens, settings.overlap_tokens],
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class Chunker:
    """Chunks documents for a model and settings: offsets, token counts and languages.

    The document's language picks the sentence rules; each chunk's own language is detected
    too (documents may mix languages), except for a single chunk, which has the document's.
    Chunking runs with one BLAS thread: idle OpenBLAS threads of language detection's small
    numpy work otherwise spin for a while after each call and slow the model that runs next
    (see bench/RESULTS.md).
    """

    def __init__(self, embedder: Embedder, settings: IndexSettings):
        self.embedder, self.settings = embedder, settings
        self._blas = ThreadpoolController()

    def __call__(self, doc: Document) -> list[StoredChunk]:
        """The chunks of ``doc`` (``vector`` still None), in order; empty for a blank text."""
        with self._blas.limit(limits=1, user_api="blas"):
            doc_lang = language.detect(doc.text)
            spans = chunk_text(
                doc.text,
                self.embedder.count_tokens,
                max_tokens=self.embedder.max_tokens,
                target_tokens=self.settings.chunk_tokens,
                overlap_tokens=self.settings.overlap_tokens,
                lang=doc_lang,
            )
            return [
                StoredChunk(
                    text=doc.text[s.start : s.end],
                    start=s.start,
                    end=s.end,
                    n_tokens=s.n_tokens,
                    lang=doc_lang if len(spans) == 1 else language.detect(doc.text[s.start : s.end]),
                    vector=None,
                )
                for s in spans
            ]


def usable(chunks: list[StoredChunk]) -> list[StoredChunk] | None:
    """The chunks if every vector is finite, else None (the model gave an unusable vector)."""
    return chunks if all(c.vector is not None and np.isfinite(c.vector).all() for c in chunks) else None


@dataclass(frozen=True)
class EmbeddedDocument:
    """A document whose chunks already carry their vectors (a distributed build's shard, an
    import). Its ``document.text`` may be empty: ``n_chars`` counts its characters."""

    document: Document
    content_hash: str
    n_chars: int
    chunks: list[StoredChunk]


@dataclass(frozen=True)
class Scope:
    """The part of a corpus a partial build read: these files, and everything under these folders.

    Paths are relative to the corpus root, ``/``-separated, as documents' ``source``; folders
    without a trailing ``/``. :meth:`covers` looks up each parent folder of a source, so a
    scope of thousands of paths costs the same per document as a scope of one.
    """

    files: frozenset[str] = frozenset()
    folders: frozenset[str] = frozenset()

    def covers(self, source: str) -> bool:
        """Whether the file ``source`` lies in this scope."""
        if source in self.files:
            return True
        parts = source.split("/")
        return any("/".join(parts[:n]) in self.folders for n in range(1, len(parts)))


class Writer:
    """Classifies documents (new, changed, unchanged), batches the work, writes it.

    ``corpus`` is the absolute corpus root of a build (its documents that are gone get
    removed by :meth:`finish`), None for upserts and imports. With ``scope``, the build read
    only that part of the corpus, and :meth:`finish` removes only the gone documents of it. ``embedder`` may be None only
    for a writer that is given embedded documents (:meth:`write_embedded`). Writes are
    pending until :meth:`publish`.
    """

    def __init__(
        self,
        idx: IndexDir,
        embedder: Embedder | None,
        settings: IndexSettings,
        report: BuildReport,
        *,
        corpus: str | None = None,
        scope: Scope | None = None,
        progress: Progress | None = None,
    ):
        self.idx, self.embedder, self.settings = idx, embedder, settings
        self.corpus, self.scope, self.report, self.progress = corpus, scope, report, progress or Progress()
        self.states = idx.meta.document_states()
        self.ready: list[StoredDocument] = []
        self._by_hash: dict[str, str] | None = None
        self.seen: set[str] = set()
        self.keep: list[str] = []
        self.unreadable_files: set[str] = set()
        self.kept_ids: set[str] = set()
        self.kept_files: set[str] = set()
        self.kept_reports: list[tuple[int, Skipped]] = []
        self.dropped_reports: list[tuple[int, Skipped]] = []
        self.pending: list[tuple[Document, str, list[StoredChunk]]] = []
        self.pending_chunks = 0
        self._chunker = Chunker(embedder, settings) if embedder is not None else None

    def skip(self, item: Skipped) -> None:
        """Report a file or records that give no document, with the reason.

        What :meth:`finish` does with their indexed versions depends on the cause. A skip
        marked ``kept`` (records that lack the text or id field the build chose: the choice,
        not the content, is wrong) keeps them: those of its ``doc_ids``, or where not every id
        is known, every document of its file that this build did not read. Any other skip (the
        content cannot be indexed now: an empty, binary or unreadable file, a record with an
        empty text, …) leaves them to be removed, as a clean build would not have them. The
        reason says which, where the index held a version.
        """
        self._report_skip(item)
        if item.kept:
            if item.doc_ids:
                self.kept_ids.update(item.doc_ids)
            else:
                self.kept_files.add(item.source)
            self.kept_reports.append((len(self.report.skipped) - 1, item))
        elif item.line is None:
            self.unreadable_files.add(item.source)
        elif item.doc_ids:
            self.dropped_reports.append((len(self.report.skipped) - 1, item))

    def _report_skip(self, item: Skipped) -> None:
        self.report.documents_skipped += item.records
        self.report.skipped.append({"source": item.where, "reason": item.reason})

    def _drop(self, item: Skipped, doc: Document) -> None:
        """Skip a document that cannot be indexed now; :meth:`finish` removes its old version."""
        self.seen.discard(doc.doc_id)
        self.skip(item)

    def add(self, doc: Document) -> None:
        """Triage a document and, if it is new or changed, queue it to be embedded.

        A failure while hashing or chunking this one document (any exception but
        babelindex's own errors) skips it with the reason, and its indexed version, if any,
        is removed by :meth:`finish`; the build goes on.
        """
        for note in doc.notes:
            self.report.warnings.append({"source": doc.source, "warning": note})
        refused = self._refused(doc)
        if refused is not None:
            self._drop(refused, doc)
            return
        try:
            digest = content_hash(doc, self.settings)
            if not self.triage(doc.doc_id, doc.source, digest):
                return
            if self._reuse(doc, digest):
                return
            chunks = self.chunk(doc)
        except BabelIndexError:
            raise
        except Exception as exc:  # one bad document never stops a build
            self._drop(Skipped(doc.source, f"cannot index document {doc.doc_id!r}: {describe_error(exc)}"), doc)
            return
        self.embed_and_write(doc, digest, chunks)

    def _reuse(self, doc: Document, digest: str) -> bool:
        """Queue ``doc`` with the chunks and vectors of a stored version of the same content
        (a renamed or copied file), if there is one; whether it was."""
        if self._by_hash is None:
            self._by_hash = {}
            for doc_id, state in self.states.items():
                if state.live_hash is not None:
                    self._by_hash.setdefault(state.live_hash, doc_id)
                if state.pending_hash is not None and state.pending_complete:
                    self._by_hash.setdefault(state.pending_hash, doc_id)
        donor = self._by_hash.get(digest)
        if donor is None:
            return False
        chunks = self.idx.meta.stored_chunks(donor, digest)
        if not chunks:
            return False
        self.ready.append(self._stored(doc, digest, chunks))
        self._count(doc.doc_id)
        self.report.chunks_reused += len(chunks)
        self.pending_chunks += len(chunks)
        if self.pending_chunks >= PENDING_CHUNKS:
            self.flush()
        return True

    def _refused(self, doc: Document) -> Skipped | None:
        """Why the store would refuse ``doc`` (its id, source or metadata: NaN, too large, too
        deep; see :mod:`store.metadata_json`), as a skip; None if it can be stored."""
        try:
            check_label(doc.doc_id, "id")
            check_label(doc.source, "source")
            metadata_json(doc.metadata, repr(doc.doc_id))
        except InvalidInput as exc:
            return Skipped(doc.source, str(exc))
        return None

    def chunk(self, doc: Document) -> list[StoredChunk]:
        """The chunks of ``doc`` with this writer's model and settings (no vectors yet)."""
        if self._chunker is None:
            raise InvalidInput("this writer has no model to chunk and embed documents with")
        return self._chunker(doc)

    def embed_and_write(self, doc: Document, digest: str, chunks: list[StoredChunk] | None = None) -> None:
        """Chunk (unless ``chunks`` are given) and queue a document that :meth:`triage` found
        new or changed; embedded and stored with the next full batch (at once if it is large)."""
        if chunks is None:
            chunks = self.chunk(doc)
        if not chunks:
            self._drop(Skipped(doc.source, "no text to index"), doc)
            return
        if len(chunks) > FLUSH_CHUNKS:
            self.flush()
            self._write_large(doc, digest, chunks, self._embed)
            return
        self.pending.append((doc, digest, chunks))
        self.pending_chunks += len(chunks)
        if self.pending_chunks >= PENDING_CHUNKS:
            self.flush()

    def stored_keys(self) -> set[tuple[str, str]]:
        """``(doc_id, content hash)`` of the versions :meth:`triage` would not embed again: the
        live ones and the complete pending ones (a distributed build's workers skip these)."""
        keys = set()
        for doc_id, state in self.states.items():
            if state.live_hash is not None:
                keys.add((doc_id, state.live_hash))
            if state.pending_hash is not None and state.pending_complete:
                keys.add((doc_id, state.pending_hash))
        return keys

    def triage(self, doc_id: str, source: str, digest: str) -> bool:
        """Whether a document read from the corpus (content hash ``digest``) must be embedded.

        If not, it is accounted for here: a duplicate id is skipped, an unchanged document
        counted (and what an interrupted run had started for it undone), one stored complete
        by an interrupted run counted as added or updated. Distributed builds call this on
        the driver, so they embed exactly the documents a local build would.
        """
        if doc_id in self.seen:
            self._report_skip(Skipped(source, f"duplicate document id {doc_id!r}; ids must be unique (see --id-field)"))
            return False
        self.seen.add(doc_id)
        state = self.states.get(doc_id, DocumentState())
        if state.live_hash == digest:
            self.report.documents_unchanged += 1
            if state.live_retired or state.pending_hash is not None:
                self.keep.append(doc_id)  # undo what an interrupted run had started
            return False
        if state.pending_hash == digest and state.pending_complete:
            self._count(doc_id)  # stored by an interrupted run: nothing to embed
            return False
        return True

    def _count(self, doc_id: str) -> None:
        if self.states.get(doc_id, DocumentState()).live_hash is not None:
            self.report.documents_updated += 1
        else:
            self.report.documents_added += 1

    def _stored(
        self, doc: Document, digest: str, chunks: list[StoredChunk], n_chars: int | None = None
    ) -> StoredDocument:
        return StoredDocument(
            doc_id=doc.doc_id,
            source=doc.source,
            corpus=self.corpus,
            content_hash=digest,
            lang=language.majority([c.lang for c in chunks], [c.end - c.start for c in chunks]),
            metadata=doc.metadata,
            n_chars=len(doc.text) if n_chars is None else n_chars,
            chunks=chunks,
        )

    def _embed(self, chunks: list[StoredChunk]) -> list[StoredChunk] | None:
        """The chunks with their vectors, or None if the model gave an unusable vector."""
        if self.embedder is None:
            raise InvalidInput("this writer has no model to embed documents with")
        vectors = self.embedder.embed_documents([c.text for c in chunks])
        crash_point("embed")
        self.report.chunks_embedded += len(chunks)
        self.progress.chunks_embedded(len(chunks))
        if not np.isfinite(vectors).all():
            return None
        return [
            StoredChunk(c.text, c.start, c.end, c.n_tokens, c.lang, v) for c, v in zip(chunks, vectors, strict=True)
        ]

    def flush(self) -> None:
        """Embed the pending documents together and store them, with the reused ones, in one transaction."""
        docs, self.ready = self.ready, []
        if not self.pending:
            if docs:
                self.idx.meta.write_documents(docs)
            self.pending_chunks = 0
            return
        all_chunks = [c for _, _, chunks in self.pending for c in chunks]
        embedded = self._embed(all_chunks)
        at = 0
        for doc, digest, chunks in self.pending:
            mine = None if embedded is None else embedded[at : at + len(chunks)]
            at += len(chunks)
            if embedded is None:  # find the culprit document by itself
                mine = self._embed(chunks)
            if mine is None:
                self._unusable(doc)
                continue
            docs.append(self._stored(doc, digest, mine))
            self._count(doc.doc_id)
            self._remember(doc.doc_id, digest)
        self.idx.meta.write_documents(docs)
        self.pending, self.pending_chunks = [], 0

    def _remember(self, doc_id: str, digest: str) -> None:
        """A version just stored can give its vectors to a later copy in the same run."""
        if self._by_hash is not None:
            self._by_hash.setdefault(digest, doc_id)

    def write_embedded(self, items: Sequence[EmbeddedDocument]) -> None:
        """Store documents whose chunks already carry their vectors.

        The rules are those of documents embedded here: no chunks or an unusable vector
        skips the document with its reason; more than :data:`FLUSH_CHUNKS` chunks are
        written in parts; the rest in one transaction.
        """
        docs = []
        for item in items:
            doc, digest, n_chars, chunks = item.document, item.content_hash, item.n_chars, item.chunks
            refused = self._refused(doc)
            if refused is not None:
                self._report_skip(refused)
            elif not chunks:
                self._report_skip(Skipped(doc.source, "no text to index"))
            elif len(chunks) > FLUSH_CHUNKS:
                self._write_large(doc, digest, chunks, usable, n_chars=n_chars)
            elif usable(chunks) is None:
                self._unusable(doc)
            else:
                docs.append(self._stored(doc, digest, chunks, n_chars))
                self._count(doc.doc_id)
        self.idx.meta.write_documents(docs)

    def _write_large(
        self,
        doc: Document,
        digest: str,
        chunks: list[StoredChunk],
        embed: Callable[[list[StoredChunk]], list[StoredChunk] | None],
        *,
        n_chars: int | None = None,
    ) -> None:
        """Store a document with many chunks in parts, so memory stays bounded."""
        row = self.idx.meta.begin_document(self._stored(doc, digest, [], n_chars))
        for lo in range(0, len(chunks), FLUSH_CHUNKS):
            part = embed(chunks[lo : lo + FLUSH_CHUNKS])
            if part is None:
                self.idx.meta.keep_documents([doc.doc_id])  # drops the unfinished version
                self._unusable(doc)
                return
            self.idx.meta.add_chunks(row, part, first=lo)
        self.idx.meta.complete_document(row, doc.doc_id)
        self._count(doc.doc_id)

    def _unusable(self, doc: Document) -> None:
        self._report_skip(
            Skipped(
                doc.source,
                f"the model gave no usable vector (NaN, infinite or zero) for "
                f"part of document {doc.doc_id!r}; its indexed version, if any, is kept",
            )
        )

    def finish(self) -> None:
        """Write what is pending; in a build, remove the corpus's documents it did not index.

        Those are the documents whose file or record is gone, and those of files and records
        whose content gives no document now (empty, binary, unreadable, …): a build leaves the
        index as a clean build would. Only the skips marked ``kept`` keep their documents (see
        :meth:`skip`). A skip whose documents are removed, or kept, says so in its reason.
        ``documents_removed`` counts the published documents that go, including those an
        interrupted run had already marked for removal.
        """
        self.flush()
        if self.keep:
            self.idx.meta.keep_documents(self.keep)
        if self.corpus is not None:
            sources: dict[str, str] = {}
            kept: Counter[str] = Counter()
            for doc_id, source in self.idx.meta.documents_of_corpus(self.corpus):
                if (
                    doc_id in self.seen
                    or doc_id in self.kept_ids
                    or not (self.scope is None or self.scope.covers(source))
                ):
                    continue
                if source in self.kept_files:
                    kept[source] += self._is_live(doc_id)
                else:
                    sources.setdefault(doc_id, source)
            gone = sorted(sources)
            self.idx.meta.delete_documents(gone)
            removed = [d for d in gone if self._is_live(d)]
            self.report.documents_removed = len(removed)
            self._say_removed(Counter(sources[d] for d in removed))
            self._say_records_removed(set(removed))
            self._say_kept(kept)

    def _is_live(self, doc_id: str) -> bool:
        return self.states.get(doc_id, DocumentState()).live_hash is not None

    def _say_records_removed(self, removed: set[str]) -> None:
        """Add to the reason of each skipped record whose indexed version was removed that it was."""
        for at, item in self.dropped_reports:
            if any(d in removed for d in item.doc_ids):
                self.report.skipped[at]["reason"] += " (its indexed version was removed from the index)"

    def _say_kept(self, kept_by_source: Counter[str]) -> None:
        """Add to the reason of each ``kept`` skip that its indexed documents are kept."""
        for at, item in self.kept_reports:
            if item.doc_ids:
                n = sum(self._is_live(d) for d in dict.fromkeys(item.doc_ids) if d not in self.seen)
            else:
                n = kept_by_source.pop(item.source, 0)
            if not n:
                continue
            if item.line is None or item.records == 1:
                what = "its indexed version is" if n == 1 else f"its {n} indexed documents are"
            else:
                what = "their indexed versions are" if n == item.records else f"{n} indexed versions are"
            self.report.skipped[at]["reason"] += f" ({what} kept)"

    def _say_removed(self, removed_by_source: Counter[str]) -> None:
        """Add to the reason of each skipped file that its indexed documents were removed."""
        for entry in self.report.skipped:
            n = removed_by_source.get(entry["source"], 0)
            if n and entry["source"] in self.unreadable_files:
                what = "its indexed version was" if n == 1 else f"its {n} indexed documents were"
                entry["reason"] += f" ({what} removed from the index)"

    def publish(self, *, dimension: int | None = None) -> FaissInfo | None:
        """Make everything written live (:func:`publish`), filling in the report."""
        if dimension is None and self.embedder is not None:
            dimension = self.embedder.dimension
        return publish(self.idx, self.settings, dimension=dimension, report=self.report)
