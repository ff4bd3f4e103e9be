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

SCHEMA_VERSION = 1
DB_FILE = "meta.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL                 -- JSON
);
CREATE TABLE IF NOT EXISTS documents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id       TEXT NOT NULL UNIQUE,  -- the user's id: a relative path, a record id
    source       TEXT NOT NULL,         -- the file it came from, relative to its corpus root
    corpus       TEXT,                  -- absolute corpus root it was read from (NULL: API)
    content_hash TEXT NOT NULL,         -- sha256 of text and metadata
    lang         TEXT,                  -- ISO 639-1, detected
    metadata     TEXT NOT NULL,         -- JSON object
    n_chars      INTEGER NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_corpus_source ON documents (corpus, source);
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


class MetaStore:
    """Reads and writes ``meta.db``. Writers must hold the index's :class:`WriterLock`."""

    def __init__(self, path: Path, *, create: bool = False, readonly: bool = False):
        self.path = Path(path)
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
                conn.executescript(_SCHEMA)
                if self.get_setting("schema_version") is None:
                    self.set_setting("schema_version", SCHEMA_VERSION)
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

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on error)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
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
    def document_hashes(self, corpus: str | None = None) -> dict[str, str]:
        """``{doc_id: content_hash}`` of every document (of one corpus root, if given)."""
        if corpus is None:
            rows = self.conn.execute("SELECT doc_id, content_hash FROM documents")
        else:
            rows = self.conn.execute(
                "SELECT doc_id, content_hash FROM documents WHERE corpus = ?", (corpus,)
            )
        return dict(rows.fetchall())

    def documents_of_corpus(self, corpus: str) -> list[tuple[str, str]]:
        """``(doc_id, source)`` of every document read from the corpus root ``corpus``."""
        return self.conn.execute(
            "SELECT doc_id, source FROM documents WHERE corpus = ?", (corpus,)
        ).fetchall()

    def write_documents(self, docs: Iterable[StoredDocument]) -> int:
        """Insert or replace documents with all their chunks and vectors, in one transaction.

        A replaced document's old chunks are deleted (their ids are never reused).
        Returns the number of chunks written.
        """
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        written = 0
        with self.transaction() as conn:
            for doc in docs:
                conn.execute("DELETE FROM documents WHERE doc_id = ?", (doc.doc_id,))
                cur = conn.execute(
                    "INSERT INTO documents (doc_id, source, corpus, content_hash, lang, metadata,"
                    " n_chars, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc.doc_id, doc.source, doc.corpus, doc.content_hash, doc.lang,
                     json.dumps(doc.metadata, ensure_ascii=False), doc.n_chars, now),
                )
                document = cur.lastrowid
                for ord_, chunk in enumerate(doc.chunks):
                    cur = conn.execute(
                        'INSERT INTO chunks (document, ord, text, start, "end", n_tokens, lang)'
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (document, ord_, chunk.text, chunk.start, chunk.end, chunk.n_tokens,
                         chunk.lang),
                    )
                    conn.execute(
                        "INSERT INTO vectors (chunk, vector) VALUES (?, ?)",
                        (cur.lastrowid, _to_blob(chunk.vector)),
                    )
                written += len(doc.chunks)
        return written

    def delete_documents(self, doc_ids: Sequence[str]) -> int:
        """Delete documents with their chunks and vectors; returns how many existed."""
        deleted = 0
        with self.transaction() as conn:
            for doc_id in doc_ids:
                deleted += conn.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,)).rowcount
        return deleted

    # -- chunks and vectors -----------------------------------------------------------------
    def count(self, table: str) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def chunk_ids(self) -> np.ndarray:
        """Ids of every live chunk, int64, ascending."""
        rows = self.conn.execute("SELECT chunk FROM vectors ORDER BY chunk").fetchall()
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

    def iter_vectors(self, dimension: int, batch: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(ids int64 (n,), vectors float32 (n, dimension))`` over all chunks by id."""
        last = -1
        while True:
            rows = self.conn.execute(
                "SELECT chunk, vector FROM vectors WHERE chunk > ? ORDER BY chunk LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dimension)
            yield ids, vecs.astype(np.float32, copy=False)
            last = int(ids[-1])

    def hits(self, chunk_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Chunk and document fields for the given chunk ids, keyed by chunk id.

        Ids of chunks deleted since the FAISS version was loaded are simply absent.
        """
        ids = [int(i) for i in chunk_ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            f"""SELECT c.id, c.text, c.start, c."end", c.lang, d.doc_id, d.source, d.lang,
                       d.metadata
                FROM chunks c JOIN documents d ON d.id = c.document
                WHERE c.id IN ({marks})""",
            ids,
        ).fetchall()
        return {
            r[0]: {
                "chunk_id": r[0], "text": r[1], "start": r[2], "end": r[3], "lang": r[4] or r[7],
                "doc_id": r[5], "source": r[6], "metadata": json.loads(r[8]),
            }
            for r in rows
        }

    def chunk_texts(self, limit: int | None = None) -> list[str]:
        """The text of every chunk (or the first ``limit``), by id."""
        sql = "SELECT text FROM chunks ORDER BY id" + ("" if limit is None else f" LIMIT {int(limit)}")
        return [r[0] for r in self.conn.execute(sql)]

    def languages(self) -> dict[str, int]:
        """Documents per detected language, most frequent first."""
        rows = self.conn.execute(
            "SELECT coalesce(lang, 'unknown'), count(*) FROM documents GROUP BY 1 ORDER BY 2 DESC"
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
