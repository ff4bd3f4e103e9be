"""``build_index``: a corpus folder into an index directory, incrementally.

Documents stream from :func:`~indexer.reading.read_corpus`; each new or changed one is
chunked, embedded in batches, and written to SQLite together with its chunks and vectors in
one transaction (so an interrupted build resumes where it stopped: a document counts as
indexed only once all its vectors are stored). Documents of the same corpus root that are
gone are removed. Last, the FAISS index is brought in line with SQLite and published.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from indexer import language
from indexer.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS, chunk_text
from indexer.embedding import DEFAULT_MODEL, Embedder, describe, load_embedder, require_same_model
from indexer.reading import Document, RecordFields, Skipped, read_corpus
from store import IndexDir, InvalidInput, StoredChunk, StoredDocument
from store.faults import crash_point
from store.metadata import DocumentState

ENGINES = ("local", "ray")
FLUSH_CHUNKS = 512
"""Chunks of one large document embedded and written together (one SQLite transaction each)."""
PENDING_CHUNKS = 2048
"""Chunks of small documents gathered before they are embedded together and written in one
transaction. A wider window sorts more chunks by length into the model's batches (less
padding): bench/build.py's build/pure ratio went from 0.84–0.88 with 512 to 0.89 with 2,048;
a build killed meanwhile embeds at most this many chunks again when it resumes."""


@dataclass
class BuildReport:
    """What a build did. ``seconds`` is wall-clock time of the whole build."""

    index: str
    model: str
    index_type: str = ""
    documents_added: int = 0
    documents_updated: int = 0
    documents_removed: int = 0
    documents_unchanged: int = 0
    documents_skipped: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    skipped: list[dict[str, str]] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)
    """Seconds per step of a distributed build: ``read`` (read, hash, triage), ``embed`` (chunk,
    embed, shards written), ``merge`` (shards into SQLite), ``publish`` (FAISS); empty for local builds."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Progress:
    """Progress callbacks; the CLI passes tqdm bars, the library default does nothing."""

    def document_read(self) -> None: ...
    def chunks_embedded(self, n: int) -> None: ...
    def close(self) -> None: ...


def build_index(
    corpus: str | Path,
    index: str | Path,
    *,
    model: str | Embedder | None = None,
    chunk_tokens: int | None = None,
    overlap_tokens: int | None = None,
    index_type: str | None = None,
    text_field: str = "text",
    id_field: str | None = None,
    progress: Progress | None = None,
    precision: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
) -> BuildReport:
    """Index the files under ``corpus`` (a folder or one file) into the index ``index``.

    Args:
        model: a registry name (``indexer models``), Hub id, directory or loaded
            :class:`Embedder`. Default: the model the index was built with, or ``distilmbert``
            (``distilbert-base-multilingual-cased``) for a new index.
        precision: ``auto``, ``fp32``, ``bf16`` or ``int8`` when a model is loaded here
            (default ``$BABELINDEX_PRECISION``, else ``auto``: the fastest that agrees with fp32).
        chunk_tokens / overlap_tokens: chunk size and overlap in model tokens (default: as
            recorded in the index, else 256 / 32). Changing them re-chunks every document.
        index_type: ``auto``, ``flat`` or ``ivf`` (default: as recorded, else ``auto``).
        text_field / id_field: the record fields of ``.jsonl``/``.csv`` files.
        engine: ``local`` (this process) or ``ray``: reading, chunking and embedding on a Ray
            cluster, merged here into the same index (see :mod:`indexer.ray_engine`).
        ray_address: the Ray cluster to use with ``engine="ray"`` (default: the one this
            process is connected to, else ``$RAY_ADDRESS``, else a local one started here).
    Raises:
        ModelMismatch: the index was built with another model.
        IndexLocked: another process is writing the index.
        MissingDependency: ``engine="ray"`` without Ray installed.
    """
    started = time.perf_counter()
    corpus = Path(corpus)
    if not corpus.exists():
        raise InvalidInput(f"the corpus {corpus} does not exist; give a folder or a file to index.")
    if engine not in ENGINES:
        raise InvalidInput(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}.")
    if engine == "ray":
        from indexer import ray_engine

        ray_engine.require_ray()
    progress = progress or Progress()
    is_new = not Path(index).exists()
    with IndexDir.open_for_writing(index) as idx:
        try:
            embedder = _embedder_for(idx, model, precision)
        except BaseException:
            if is_new:  # nothing was recorded: leave no empty index behind
                shutil.rmtree(index, ignore_errors=True)
            raise
        settings = _settings(idx, chunk_tokens, overlap_tokens, index_type)
        report = BuildReport(index=str(index), model=embedder.name)
        if engine == "ray":
            ray_engine.run(idx, embedder, settings, corpus, RecordFields(text_field, id_field), report, progress,
                           model=model, ray_address=ray_address)
        else:
            writer = _Writer(idx, embedder, settings, str(corpus.resolve()), report, progress)
            for item in read_corpus(corpus, RecordFields(text_field, id_field), exclude=idx.path):
                if isinstance(item, Skipped):
                    writer.skip(item)
                else:
                    writer.add(item)
                progress.document_read()
            writer.finish()
        published = time.perf_counter()
        info = idx.publish(settings["index_type"], embedder.dimension)
        if engine == "ray":
            report.steps["publish"] = round(time.perf_counter() - published, 3)
        report.index_type = info.factory if info else ""
        report.chunks_total = idx.meta.count("chunks")
    progress.close()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _embedder_for(idx: IndexDir, model: str | Embedder | None, precision: str | None = None) -> Embedder:
    """Load the model and check it against the one the index was built with (or record it)."""
    recorded = idx.model_record()
    if model is None:
        model = recorded["name"] if recorded else DEFAULT_MODEL
    embedder = load_embedder(model, precision=precision) if isinstance(model, str) else model
    if recorded is None:
        with idx.meta.transaction():
            idx.meta.set_setting("model", describe(embedder))
    else:
        require_same_model(recorded, embedder, idx.path,
                           f"Build with --model {recorded['name']!r} (or no --model), or into a new --index.")
    return embedder


def _settings(idx: IndexDir, chunk_tokens: int | None, overlap_tokens: int | None, index_type: str | None) -> dict[str, Any]:
    """Chunking and index-type settings: given, else recorded, else defaults; then recorded."""
    old = idx.meta.get_setting("build", {})
    new = {
        "chunk_tokens": chunk_tokens or old.get("chunk_tokens", DEFAULT_CHUNK_TOKENS),
        "overlap_tokens": overlap_tokens if overlap_tokens is not None else old.get("overlap_tokens", DEFAULT_OVERLAP_TOKENS),
        "index_type": index_type or old.get("index_type", "auto"),
    }
    if new["chunk_tokens"] < 8:
        raise InvalidInput(f"--chunk-tokens {new['chunk_tokens']} is too small; use 8 or more (default 256).")
    if new["overlap_tokens"] < 0 or new["overlap_tokens"] >= new["chunk_tokens"]:
        raise InvalidInput("--overlap-tokens must be at least 0 and smaller than --chunk-tokens.")
    from store.vectors import choose_kind

    choose_kind(0, new["index_type"])  # validates the name
    with idx.meta.transaction():
        idx.meta.set_setting("build", new)
    return new


def content_hash(doc: Document, chunk_tokens: int, overlap_tokens: int) -> str:
    """sha256 of a document's text, metadata and chunking: a change in any re-indexes it.

    With the chunking inside the hash, a build interrupted while re-chunking after a change
    of ``--chunk-tokens`` resumes with exactly the documents still to do.
    """
    payload = json.dumps([doc.text, doc.metadata, chunk_tokens, overlap_tokens], ensure_ascii=False,
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def chunk_document(doc: Document, embedder: Embedder, chunk_tokens: int, overlap_tokens: int) -> list[StoredChunk]:
    """A document's chunks with offsets, token counts and languages (``vector`` still None).

    The document's language picks the sentence rules; each chunk's own language is detected
    too (documents may mix languages), except for a single chunk, which has the document's.
    """
    doc_lang = language.detect(doc.text)
    spans = chunk_text(
        doc.text, embedder.count_tokens, max_tokens=embedder.max_tokens,
        target_tokens=chunk_tokens, overlap_tokens=overlap_tokens, lang=doc_lang,
    )
    return [
        StoredChunk(text=doc.text[s.start : s.end], start=s.start, end=s.end, n_tokens=s.n_tokens,
                    lang=doc_lang if len(spans) == 1 else language.detect(doc.text[s.start : s.end]),
                    vector=None)
        for s in spans
    ]


def chunk_quietly(blas: ThreadpoolController, doc: Document, embedder: Embedder,
                  settings: dict[str, Any]) -> list[StoredChunk]:
    """:func:`chunk_document` with the build's settings, BLAS held to one thread.

    One BLAS thread for the small numpy work of language detection: idle OpenBLAS threads
    otherwise spin for a while after each call and slow the model that runs next by about
    10% on two cores (measured with bench/build.py).
    """
    with blas.limit(limits=1, user_api="blas"):
        return chunk_document(doc, embedder, settings["chunk_tokens"], settings["overlap_tokens"])


def _usable(chunks: list[StoredChunk]) -> list[StoredChunk] | None:
    """The chunks if every vector is finite, else None (the model gave an unusable vector)."""
    return chunks if all(np.isfinite(c.vector).all() for c in chunks) else None


class _Writer:
    """Classifies documents (new, changed, unchanged), batches the work, writes it.

    Used by builds (``corpus`` set: documents of that root that are gone get removed) and
    by API upserts (``corpus`` None). Writes are pending until the caller publishes.
    """

    def __init__(self, idx: IndexDir, embedder: Embedder, settings: dict[str, Any], corpus: str | None,
                 report: BuildReport, progress: Progress):
        self.idx, self.embedder, self.settings = idx, embedder, settings
        self.corpus, self.report, self.progress = corpus, report, progress
        self.states = idx.meta.document_states()
        self.seen: set[str] = set()
        self.keep: list[str] = []
        self.unreadable_files: set[str] = set()
        self.pending: list[tuple[Document, str, list[StoredChunk]]] = []
        self.pending_chunks = 0
        self.blas = ThreadpoolController()

    def skip(self, item: Skipped) -> None:
        self.report.documents_skipped += 1
        self.report.skipped.append({"source": item.where, "reason": item.reason})
        if item.line is None:
            self.unreadable_files.add(item.source)

    def add(self, doc: Document) -> None:
        digest = content_hash(doc, self.settings["chunk_tokens"], self.settings["overlap_tokens"])
        if self.triage(doc.doc_id, doc.source, digest):
            self.embed_and_write(doc, digest)

    def embed_and_write(self, doc: Document, digest: str) -> None:
        """Chunk and queue a document that :meth:`triage` found new or changed; embedded and
        stored with the next full batch (at once if it is large)."""
        chunks = self._chunk(doc)
        if not chunks:
            self.skip(Skipped(doc.source, "no text to index"))
            return
        if len(chunks) > FLUSH_CHUNKS:
            self.flush()
            self._write_large(doc, digest, chunks)
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
            self.skip(Skipped(source, f"duplicate document id {doc_id!r}; ids must be unique (see --id-field)"))
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

    def _chunk(self, doc: Document) -> list[StoredChunk]:
        return chunk_quietly(self.blas, doc, self.embedder, self.settings)

    def _count(self, doc_id: str) -> None:
        if self.states.get(doc_id, DocumentState()).live_hash is not None:
            self.report.documents_updated += 1
        else:
            self.report.documents_added += 1

    def _stored(self, doc: Document, digest: str, chunks: list[StoredChunk], n_chars: int | None = None) -> StoredDocument:
        return StoredDocument(
            doc_id=doc.doc_id, source=doc.source, corpus=self.corpus, content_hash=digest,
            lang=language.majority([c.lang for c in chunks], [c.end - c.start for c in chunks]),
            metadata=doc.metadata, n_chars=len(doc.text) if n_chars is None else n_chars, chunks=chunks,
        )

    def _embed(self, chunks: list[StoredChunk]) -> list[StoredChunk] | None:
        """The chunks with their vectors, or None if the model gave an unusable vector."""
        vectors = self.embedder.embed_documents([c.text for c in chunks])
        crash_point("embed")
        self.report.chunks_embedded += len(chunks)
        self.progress.chunks_embedded(len(chunks))
        if not np.isfinite(vectors).all():
            return None
        return [StoredChunk(c.text, c.start, c.end, c.n_tokens, c.lang, v) for c, v in zip(chunks, vectors, strict=True)]

    def flush(self) -> None:
        """Embed the pending documents together and store them in one transaction."""
        if not self.pending:
            return
        all_chunks = [c for _, _, chunks in self.pending for c in chunks]
        embedded = self._embed(all_chunks)
        docs, at = [], 0
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
        self.idx.meta.write_documents(docs)
        self.pending, self.pending_chunks = [], 0

    def write_embedded(self, items: Sequence[tuple[Document, str, int, list[StoredChunk]]]) -> None:
        """Store documents whose chunks already carry their vectors (a distributed build's shards).

        ``items`` are ``(document, content hash, n_chars, chunks)``; the document's text may be
        left empty (``n_chars`` counts its characters). The rules are those of documents
        embedded here: no chunks or an unusable vector skips the document with its reason;
        more than :data:`FLUSH_CHUNKS` chunks are written in parts; the rest in one transaction.
        """
        docs = []
        for doc, digest, n_chars, chunks in items:
            if not chunks:
                self.skip(Skipped(doc.source, "no text to index"))
            elif len(chunks) > FLUSH_CHUNKS:
                self._write_large(doc, digest, chunks, embed=_usable, n_chars=n_chars)
            elif _usable(chunks) is None:
                self._unusable(doc)
            else:
                docs.append(self._stored(doc, digest, chunks, n_chars))
                self._count(doc.doc_id)
        self.idx.meta.write_documents(docs)

    def _write_large(self, doc: Document, digest: str, chunks: list[StoredChunk], *,
                     embed: Callable[[list[StoredChunk]], list[StoredChunk] | None] | None = None,
                     n_chars: int | None = None) -> None:
        """Store a document with many chunks in parts, so memory stays bounded."""
        embed = embed or self._embed
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
        self.skip(Skipped(doc.source, f"the model gave no usable vector (NaN, infinite or zero) for "
                                      f"part of document {doc.doc_id!r}; its indexed version, if any, is kept"))

    def finish(self) -> None:
        """Write what is pending; in a build, remove the corpus's documents that are gone."""
        self.flush()
        if self.keep:
            self.idx.meta.keep_documents(self.keep)
        if self.corpus is not None:
            gone = [doc_id for doc_id, source in self.idx.meta.documents_of_corpus(self.corpus)
                    if doc_id not in self.seen and source not in self.unreadable_files]
            self.report.documents_removed = self.idx.meta.delete_documents(sorted(set(gone)))
