"""The SQLite metadata store: the source of truth of an index.

``meta.db`` (WAL mode) holds the documents, their chunks, every chunk's vector (float32
BLOB, little-endian, ``dimension * 4`` bytes) and the settings (model fingerprint, chunking,
the current FAISS version). The FAISS files are derived from it and can always be rebuilt
from it without re-embedding.

Chunk ids come from ``INTEGER PRIMARY KEY AUTOINCREMENT``: a counter that only grows, so an
id is never reused after a delete. FAISS ids are these chunk ids.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from store.errors import CorruptIndex, SchemaVersionError
from store.faults import crash_point
from store.vectors import fsync_dir

SCHEMA_VERSION = 1
DB_FILE = "meta.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL                 -- JSON
);
CREATE TABLE IF NOT EXISTS documents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id       TEXT NOT NULL,         -- the user's id: a relative path, a record id
    pending      INTEGER NOT NULL,      -- 1: written, waiting for the next publish; 0: live
    complete     INTEGER NOT NULL,      -- 1: all its chunks and vectors are stored
    retired      INTEGER NOT NULL DEFAULT 0,  -- live, but the next publish removes it
    source       TEXT NOT NULL,         -- the file it came from, relative to its corpus root
    corpus       TEXT,                  -- absolute corpus root it was read from (NULL: API)
    content_hash TEXT NOT NULL,         -- sha256 of text, metadata and chunking
    lang         TEXT,                  -- ISO 639-1, detected
    metadata     TEXT NOT NULL,         -- JSON object
    n_chars      INTEGER NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (doc_id, pending)
);
CREATE INDEX IF NOT EXISTS documents_corpus_source ON documents (corpus, source);
CREATE INDEX IF NOT EXISTS documents_source ON documents (source);
CREATE TABLE IF NOT EXISTS chunks (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    document  INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ord       INTEGER NOT NULL,         -- position of the chunk in its document
    text      TEXT NOT NULL,
    start     INTEGER NOT NULL,         -- character offsets in the document text
    "end"     INTEGER NOT NULL,
    n_tokens  INTEGER NOT NULL,         -- counted with the model's tokenizer
    lang      TEXT
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document);
CREATE TABLE IF NOT EXISTS vectors (
    chunk  INTEGER PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
    vector BLOB NOT NULL                -- float32, L2-normalised
);
"""

_FTS_SCHEMA = (
    # Full text of the chunks (an external-content FTS5 table over ``chunks``), kept in step
    # by triggers; chunk texts are never updated in place.
    """CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (
        text, content = 'chunks', content_rowid = 'id', tokenize = 'trigram')""",
    """CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text); END""",
    """CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END""",
)
FTS_MIN_SQLITE = (3, 34, 0)
"""The trigram tokenizer (substring matching, also for CJK) needs SQLite 3.34."""

LIVE = "d.pending = 0"
"""Rows readers see: exactly the chunks of the current FAISS version."""
TARGET = "((d.pending = 1 AND d.complete = 1) OR (d.pending = 0 AND d.retired = 0))"
"""Rows the next publish makes live: finished new versions, and live rows not retired."""


@dataclass(frozen=True)
class DocumentState:
    """What the store holds for one doc_id: the live version and a pending one, if any."""

    live_hash: str | None = None
    live_retired: bool = False
    pending_hash: str | None = None
    pending_complete: bool = False


@dataclass(frozen=True)
class StoredChunk:
    """A chunk ready to be written: its text, offsets, token count, language and vector.

    ``vector`` is float32 of shape ``(dimension,)``, L2-normalised.
    """

    text: str
    start: int
    end: int
    n_tokens: int
    lang: str | None
    vector: np.ndarray


@dataclass(frozen=True)
class StoredDocument:
    """A document ready to be written, with all of its chunks."""

    doc_id: str
    source: str
    corpus: str | None
    content_hash: str
    lang: str | None
    metadata: dict[str, Any]
    n_chars: int
    chunks: Sequence[StoredChunk]


_SCHEMA_TRANSACTION = (
    "BEGIN IMMEDIATE;" + _SCHEMA + "INSERT OR IGNORE INTO settings (key, value) "
    f"VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
)

CREATING_SUFFIX = ".new"
"""A database being created is built under ``meta.db.new`` and renamed into place when complete."""


def _create_database(path: Path) -> None:
    """Create ``path`` with its schema and version, atomically: built under a temporary name,
    fsynced, then renamed. A process killed on the way leaves no ``meta.db`` at all (SQLite
    creates its file on connect, before any table exists), so no half-made index is ever seen.
    The full-text table follows when :class:`MetaStore` opens it (``_ensure_fts``, itself atomic)."""
    tmp = path.with_name(path.name + CREATING_SUFFIX)
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")  # recorded in the file's header
        crash_point("create-db")
        conn.executescript(_SCHEMA_TRANSACTION)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class MetaStore:
    """Reads and writes ``meta.db``. Writers must hold the index's :class:`WriterLock`."""

    def __init__(self, path: Path, *, create: bool = False, readonly: bool = False):
        self.path = Path(path)
        if create and not self.path.exists():
            _create_database(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if readonly:
                conn.execute("PRAGMA query_only = ON")
            else:
                self.db.enable_wal()
                conn.execute("PRAGMA synchronous = NORMAL")
            if create:
                # Idempotent; brings an index written by an older babelindex up to date.
                conn.executescript(_SCHEMA_TRANSACTION)
                self._ensure_fts()
            version = self.get_setting("schema_version")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CorruptIndex(
                f"{self.path} is not a readable SQLite database ({exc}). "
                "Rebuild the index from its corpus with `indexer build`."
            ) from exc
        if version is None:
            conn.close()
            raise CorruptIndex(f"{self.path} has no schema version: it is not a babelindex index.")
        if version > SCHEMA_VERSION:
            conn.close()
            raise SchemaVersionError(
                f"{self.path} has schema version {version}, newer than this babelindex "
                f"understands ({SCHEMA_VERSION}). Upgrade babelindex."
            )

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def has_fts(self) -> bool:
        """Whether the full-text table ``chunks_fts`` exists (indexes written before it lack it)."""
        return self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'chunks_fts')"
        ).fetchone()[0] == 1

    def _ensure_fts(self) -> None:
        """Create the full-text table and its triggers if missing, and fill it from the chunks."""
        if sqlite3.sqlite_version_info < FTS_MIN_SQLITE or self.has_fts():
            return
        self.conn.execute("BEGIN IMMEDIATE")  # not a crash point: atomic, and done again if lost
        try:
            for statement in _FTS_SCHEMA:
                self.conn.execute(statement)
            self.conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on error)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            crash_point("commit")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- settings ---------------------------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        """Write a setting; inside :meth:`transaction` it commits with the transaction."""
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, ensure_ascii=False)),
        )

    # -- documents --------------------------------------------------------------------------
    # A write never changes what readers see: new versions are written as pending rows,
    # removals mark live rows retired, and :meth:`apply_publish` makes both take effect in
    # the transaction that records the new FAISS version.
    def document_states(self) -> dict[str, DocumentState]:
        """The :class:`DocumentState` of every doc_id in the store."""
        states: dict[str, DocumentState] = {}
        for doc_id, pending, complete, retired, digest in self.conn.execute(
            "SELECT doc_id, pending, complete, retired, content_hash FROM documents"
        ):
            old = states.get(doc_id, DocumentState())
            if pending:
                states[doc_id] = DocumentState(old.live_hash, old.live_retired, digest, bool(complete))
            else:
                states[doc_id] = DocumentState(digest, bool(retired), old.pending_hash, old.pending_complete)
        return states

    def documents_of_corpus(self, corpus: str) -> list[tuple[str, str]]:
        """``(doc_id, source)`` of every document read from the corpus root ``corpus``."""
        return self.conn.execute(
            "SELECT DISTINCT doc_id, source FROM documents WHERE corpus = ?", (corpus,)
        ).fetchall()

    def doc_ids_of_sources(self, sources: Sequence[str]) -> dict[str, list[str]]:
        """``{source: [doc_id, ...]}`` for documents whose source or doc_id is given."""
        found: dict[str, list[str]] = {}
        for source in sources:
            rows = self.conn.execute(
                "SELECT DISTINCT doc_id FROM documents WHERE (source = ? OR doc_id = ?) AND retired = 0",
                (source, source),
            ).fetchall()
            found[source] = sorted(r[0] for r in rows)
        return found

    def write_documents(self, docs: Iterable[StoredDocument]) -> int:
        """Store new versions of documents, complete with chunks and vectors, in one transaction.

        Each becomes a pending row (replacing an earlier pending one) and retires the live
        version, if any; both take effect at the next publish. Returns chunks written.
        """
        written = 0
        with self.transaction():
            for doc in docs:
                row = self._begin(doc)
                self._add_chunks(row, doc.chunks, first=0)
                self._complete(row, doc.doc_id)
                written += len(doc.chunks)
        return written

    def begin_document(self, doc: StoredDocument) -> int:
        """Start a pending version of a document too large for one transaction; returns its row."""
        with self.transaction():
            return self._begin(doc)

    def add_chunks(self, row: int, chunks: Sequence[StoredChunk], first: int) -> None:
        """Store chunks ``first, first + 1, …`` of the pending document ``row``."""
        with self.transaction():
            self._add_chunks(row, chunks, first)

    def complete_document(self, row: int, doc_id: str) -> None:
        """Mark the pending document ``row`` complete and retire its live version."""
        with self.transaction():
            self._complete(row, doc_id)

    def _begin(self, doc: StoredDocument) -> int:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.conn.execute("DELETE FROM documents WHERE doc_id = ? AND pending = 1", (doc.doc_id,))
        cur = self.conn.execute(
            "INSERT INTO documents (doc_id, pending, complete, source, corpus, content_hash, lang,"
            " metadata, n_chars, updated_at) VALUES (?, 1, 0, ?, ?, ?, ?, ?, ?, ?)",
            (doc.doc_id, doc.source, doc.corpus, doc.content_hash, doc.lang,
             json.dumps(doc.metadata, ensure_ascii=False, default=str), doc.n_chars, now),
        )
        return int(cur.lastrowid)

    def _add_chunks(self, row: int, chunks: Sequence[StoredChunk], first: int) -> None:
        for ord_, chunk in enumerate(chunks, start=first):
            cur = self.conn.execute(
                'INSERT INTO chunks (document, ord, text, start, "end", n_tokens, lang)'
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row, ord_, chunk.text, chunk.start, chunk.end, chunk.n_tokens, chunk.lang),
            )
            self.conn.execute(
                "INSERT INTO vectors (chunk, vector) VALUES (?, ?)", (cur.lastrowid, _to_blob(chunk.vector))
            )

    def _complete(self, row: int, doc_id: str) -> None:
        self.conn.execute("UPDATE documents SET complete = 1 WHERE id = ?", (row,))
        self.conn.execute("UPDATE documents SET retired = 1 WHERE doc_id = ? AND pending = 0", (doc_id,))

    def keep_documents(self, doc_ids: Sequence[str]) -> None:
        """Undo pending changes to these documents: their live versions stay as they are."""
        with self.transaction() as conn:
            for doc_id in doc_ids:
                conn.execute("DELETE FROM documents WHERE doc_id = ? AND pending = 1", (doc_id,))
                conn.execute("UPDATE documents SET retired = 0 WHERE doc_id = ? AND pending = 0", (doc_id,))

    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        """Retire documents (effective at the next publish); returns how many were live."""
        retired = 0
        with self.transaction() as conn:
            for doc_id in doc_ids:
                conn.execute("DELETE FROM documents WHERE doc_id = ? AND pending = 1", (doc_id,))
                retired += conn.execute(
                    "UPDATE documents SET retired = 1 WHERE doc_id = ? AND pending = 0 AND retired = 0", (doc_id,)
                ).rowcount
        return retired

    def has_unpublished_changes(self) -> bool:
        """Whether any pending, incomplete or retired row waits for a publish."""
        return self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM documents WHERE pending = 1 OR retired = 1)"
        ).fetchone()[0] == 1

    def apply_publish(self) -> None:
        """Inside the publishing transaction: retired and unfinished rows go, pending ones go live."""
        self.conn.execute("DELETE FROM documents WHERE retired = 1 OR (pending = 1 AND complete = 0)")
        self.conn.execute("UPDATE documents SET pending = 0 WHERE pending = 1")

    # -- chunks and vectors -----------------------------------------------------------------
    def count(self, table: str) -> int:
        """Live rows of ``documents`` or ``chunks`` (what readers see), or all rows of another table."""
        if table == "documents":
            sql = f"SELECT count(*) FROM documents d WHERE {LIVE}"
        elif table == "chunks":
            sql = f"SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document WHERE {LIVE}"
        else:
            sql = f"SELECT count(*) FROM {table}"
        return self.conn.execute(sql).fetchone()[0]

    def chunk_ids(self, target: bool = False) -> np.ndarray:
        """Ids of the live chunks (or, with ``target``, of those the next publish makes live).

        int64, ascending.
        """
        where = TARGET if target else LIVE
        rows = self.conn.execute(
            f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document WHERE {where} ORDER BY c.id"
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def live_chunk_ids_where(self, condition: str, params: Sequence[Any]) -> np.ndarray:
        """Ids of the live chunks meeting an SQL ``condition`` over ``c`` (chunks) and ``d``
        (documents) with bound ``params`` (built by :mod:`search.filters`): int64, ascending."""
        rows = self.conn.execute(
            f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document WHERE {LIVE} AND ({condition}) ORDER BY c.id",
            list(params),
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors(self, ids: Sequence[int], dimension: int) -> np.ndarray:
        """Vectors of the given chunk ids, in that order: float32 ``(len(ids), dimension)``."""
        out = np.empty((len(ids), dimension), dtype=np.float32)
        for lo in range(0, len(ids), 900):
            part = [int(i) for i in ids[lo : lo + 900]]
            marks = ",".join("?" * len(part))
            rows = dict(
                self.conn.execute(f"SELECT chunk, vector FROM vectors WHERE chunk IN ({marks})", part)
            )
            for j, chunk_id in enumerate(part):
                out[lo + j] = _from_blob(rows[chunk_id], dimension)
        return out

    def iter_vectors(self, dimension: int, batch: int = 8192, target: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(ids int64 (n,), vectors float32 (n, dimension))`` of the live chunks by id.

        With ``target``, the chunks the next publish makes live.
        """
        where = TARGET if target else LIVE
        last = -1
        while True:
            rows = self.conn.execute(
                f"""SELECT v.chunk, v.vector FROM vectors v JOIN chunks c ON c.id = v.chunk
                    JOIN documents d ON d.id = c.document
                    WHERE v.chunk > ? AND {where} ORDER BY v.chunk LIMIT ?""",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.stack([_from_blob(r[1], dimension) for r in rows])
            yield ids, vecs
            last = int(ids[-1])

    def hits(self, chunk_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Chunk and document fields of live chunks, keyed by chunk id.

        Ids of chunks no longer live (deleted since the FAISS version was loaded) are absent.
        """
        ids = [int(i) for i in chunk_ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            f"""SELECT c.id, c.text, c.start, c."end", c.lang, d.doc_id, d.source, d.lang,
                       d.metadata
                FROM chunks c JOIN documents d ON d.id = c.document
                WHERE c.id IN ({marks}) AND {LIVE}""",
            ids,
        ).fetchall()
        return {
            r[0]: {
                "chunk_id": r[0], "text": r[1], "start": r[2], "end": r[3], "lang": r[4] or r[7],
                "doc_id": r[5], "source": r[6], "metadata": json.loads(r[8]),
            }
            for r in rows
        }

    def document(self, doc_id: str) -> dict[str, Any] | None:
        """A live document's fields and its chunks in order, or ``None`` if there is none.

        ``{"doc_id", "source", "lang", "metadata", "n_chars", "updated_at", "chunks": [{"chunk_id",
        "ord", "text", "start", "end", "lang"}]}``; offsets are characters in the document's text.
        """
        row = self.conn.execute(
            f"SELECT d.id, d.doc_id, d.source, d.lang, d.metadata, d.n_chars, d.updated_at FROM documents d "
            f"WHERE d.doc_id = ? AND {LIVE}", (doc_id,),
        ).fetchone()
        if row is None:
            return None
        chunks = self.conn.execute(
            'SELECT id, ord, text, start, "end", lang FROM chunks WHERE document = ? ORDER BY ord', (row[0],)
        ).fetchall()
        return {
            "doc_id": row[1], "source": row[2], "lang": row[3], "metadata": json.loads(row[4]),
            "n_chars": row[5], "updated_at": row[6],
            "chunks": [
                {"chunk_id": c[0], "ord": c[1], "text": c[2], "start": c[3], "end": c[4], "lang": c[5] or row[3]}
                for c in chunks
            ],
        }

    def chunk_texts(self, limit: int | None = None) -> list[str]:
        """The text of every live chunk (or the first ``limit``), by id."""
        sql = f"SELECT c.text FROM chunks c JOIN documents d ON d.id = c.document WHERE {LIVE} ORDER BY c.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [r[0] for r in self.conn.execute(sql)]

    def languages(self) -> dict[str, int]:
        """Live documents per detected language, most frequent first."""
        rows = self.conn.execute(
            f"SELECT coalesce(d.lang, 'unknown'), count(*) FROM documents d WHERE {LIVE} GROUP BY 1 ORDER BY 2 DESC"
        )
        return dict(rows.fetchall())


def _to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _from_blob(blob: bytes, dimension: int) -> np.ndarray:
    vec = np.frombuffer(blob, dtype="<f4")
    if vec.shape != (dimension,):
        raise CorruptIndex(
            f"a stored vector has {vec.size} values where the index has dimension {dimension}. "
            "Rebuild the index with `indexer build`."
        )
    return vec
