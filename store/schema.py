"""The SQL schema of ``meta.db`` and the row sets readers and writers see.

``meta.db`` (WAL mode) holds the documents, their chunks, every chunk's vector (a BLOB,
little-endian, laid out as the setting ``vector_dtype`` says: float16, ``dimension * 2``
bytes, in new databases; float32, ``dimension * 4``, in those without it, see
``store.database.VECTOR_DTYPES``) and the settings (model record, chunking, the
current FAISS version). Chunk ids come from ``INTEGER PRIMARY KEY AUTOINCREMENT``: a counter
that only grows, so an id is never reused after a delete. FAISS ids are these chunk ids.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
DB_FILE = "meta.db"

TABLES = """
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
    vector BLOB NOT NULL                -- L2-normalised; float16 (setting vector_dtype) or float32
);
CREATE TABLE IF NOT EXISTS tune_queries (  -- the user's queries that tune nprobe (--tune-queries)
    id     INTEGER PRIMARY KEY,
    text   TEXT NOT NULL,
    vector BLOB NOT NULL                -- as vectors.vector, embedded as a query
);
"""

SCHEMA_TRANSACTION = (
    "BEGIN IMMEDIATE;" + TABLES + "INSERT OR IGNORE INTO settings (key, value) "
    f"VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
)

FTS_STATEMENTS = (
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
LIVE_CHUNKS = f"chunks c JOIN documents d ON d.id = c.document WHERE {LIVE}"
"""The live chunks ``c`` with their documents ``d`` (append ``AND …`` to narrow)."""
