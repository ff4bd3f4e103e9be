"""The SQLite metadata store, ``meta.db``: the source of truth of an index.

It holds the documents, their chunks, every chunk's vector and the settings (see
:mod:`store.schema`); the FAISS files are derived from it and can always be rebuilt from it
without re-embedding. :class:`MetaStore` owns its connection: every method takes the
store's lock, so one store may be shared between threads (a server's request threads).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import sqlite_utils

from store import lexical
from store.atomic import atomic_rename
from store.compaction import FreeSpace, TableSpace
from store.errors import CorruptIndex, InvalidInput, SchemaVersionError
from store.faults import crash_point
from store.filtering import Filter, sql_of
from store.metadata_json import check_label, metadata_json
from store.records import (
    ChunkRow,
    DocumentChunk,
    DocumentPage,
    DocumentRow,
    DocumentState,
    DocumentSummary,
    StoredChunk,
    StoredDocument,
)
from store.schema import FTS_MIN_SQLITE, FTS_STATEMENTS, LIVE, LIVE_CHUNKS, SCHEMA_TRANSACTION, SCHEMA_VERSION, TARGET
from store.storage_errors import read_only, storage_errors, translate

CREATING_SUFFIX = ".new"
"""A database being created is built under ``meta.db.new`` and renamed into place when complete."""
ID_BATCH = 900
"""Ids bound in one ``IN (…)`` (SQLite allows 999 parameters in older builds)."""
PROGRESS_STEPS = 100
"""SQLite VM steps between two checks of a :meth:`MetaStore.budget` deadline (and, inside a
vacuum, between two passages of the crash point ``vacuum``)."""
BUSY_SECONDS = 30
"""How long a connection waits for a lock another connection holds before it gives up."""
PAGE_SIZE = 16384
"""Bytes per page of a new ``meta.db`` (SQLite's default is 4096). A vector row is a BLOB of
``2 · d`` or ``4 · d`` bytes plus a few, and SQLite keeps a row whole in one page when it
fits: with 4 KB pages one 512-dimensional float32 row (2,060 bytes) fills a page that
cannot take a second, and half of every vector page stays empty; 16 KB pages hold seven
such rows (ten of 384 dimensions), 88–94% full. Measured with ``bench/space.py``: ``meta.db`` of 5,000 such rows
22.6 MB with 4 KB pages, 14.0 MB with 16 KB. Set before the first table, so only new
databases get it (WAL mode fixes a database's page size)."""
VECTOR_DTYPES = {"float32": "<f4", "float16": "<f2"}
"""How a stored vector's BLOB is laid out, by the setting ``vector_dtype`` (little-endian)."""
NEW_VECTOR_DTYPE = "float16"
"""The vector format of a new ``meta.db``: IEEE half precision, half the bytes of float32.
A unit vector's components lose at most 2⁻¹² of their value, so a cosine moves by about
10⁻⁵ for a model's dense vectors (up to a few 10⁻⁴ for sparse ones, whose few large
components can all round the same way): less than bf16 inference moves it (``auto``
accepts that, see :mod:`indexer.embedding.precision`) and far below what changes a ranking.
Measured on all-MiniLM-L6-v2's vectors of 6,000 sentences (``bench/peers.py``, 16 KB
pages): ``meta.db`` 13.4 → 8.0 MB. Databases without the setting (written before it
existed) hold float32 and keep it."""
AUTO_VACUUM_INCREMENTAL = 2
"""``PRAGMA auto_vacuum``'s value for INCREMENTAL: free pages can be cut off the file's end
without rewriting it (:meth:`MetaStore.vacuum`)."""

P = ParamSpec("P")
R = TypeVar("R")


def locked(method: Callable[Concatenate[MetaStore, P], R]) -> Callable[Concatenate[MetaStore, P], R]:
    """Run a :class:`MetaStore` method holding the store's lock (re-entrant)."""

    @functools.wraps(method)
    def run(self: MetaStore, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.lock:
            return method(self, *args, **kwargs)

    return run


def _create_database(path: Path) -> None:
    """Create ``path`` with its schema and version, atomically: built under a temporary name,
    fsynced, then renamed. A process killed on the way leaves no ``meta.db`` at all (SQLite
    creates its file on connect, before any table exists), so no half-made index is ever seen.
    The full-text table follows when :class:`MetaStore` opens it (``ensure_fts``, itself atomic)."""
    tmp = path.with_name(path.name + CREATING_SUFFIX)
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before any table, as the next
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before any table: deletes can give space back cheaply
        conn.execute("PRAGMA journal_mode = WAL")  # recorded in the file's header
        crash_point("create-db")
        conn.executescript(SCHEMA_TRANSACTION)
        conn.execute("INSERT INTO settings (key, value) VALUES ('vector_dtype', ?)", (json.dumps(NEW_VECTOR_DTYPE),))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    atomic_rename(tmp, path)


class _NoLock:
    """The lock of a read-only store: each thread has its own connection, so none is needed."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class MetaStore:
    """Reads and writes ``meta.db``. Writers must hold the index's :class:`~store.lock.WriterLock`.

    A writer's store has one connection, guarded by :attr:`lock`. A read-only store gives
    each thread its own connection (SQLite's WAL lets readers run side by side), so that a
    slow search never holds up another; it also works on a read-only filesystem.
    """

    def __init__(self, path: Path, *, create: bool = False, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.lock: threading.RLock | _NoLock = _NoLock() if readonly else threading.RLock()
        """Held by every method of a writer's store; hold it to run several calls as one step."""
        self._local = threading.local()
        self._shared: sqlite3.Connection | None = None
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        if create and not self.path.exists():
            with storage_errors(self.path.parent):
                _create_database(self.path)
        try:
            conn = self.conn
            if create:
                # Idempotent; brings an index written by an older babelindex up to date.
                with storage_errors(self.path.parent):
                    conn.executescript(SCHEMA_TRANSACTION)
                    self.ensure_fts()
            version = self.get_setting("schema_version")
            dtype = self.get_setting("vector_dtype", "float32")
        except sqlite3.DatabaseError as exc:
            self.close()
            better = translate(exc, self.path.parent)
            if better is not exc:
                raise better from exc
            raise CorruptIndex(
                f"{self.path} is not a readable SQLite database ({exc}). "
                "Rebuild the index from its corpus with `indexer build`."
            ) from exc
        except BaseException:
            self.close()
            raise
        if version is None:
            self.close()
            raise CorruptIndex(f"{self.path} has no schema version: it is not a babelindex index.")
        if version > SCHEMA_VERSION:
            self.close()
            raise SchemaVersionError(
                f"{self.path} has schema version {version}, newer than this babelindex "
                f"understands ({SCHEMA_VERSION}). Upgrade babelindex."
            )
        if dtype not in VECTOR_DTYPES:
            self.close()
            raise SchemaVersionError(
                f"{self.path} stores its vectors as {dtype!r}, which this babelindex does not read "
                f"(it reads {', '.join(VECTOR_DTYPES)}). Upgrade babelindex."
            )
        self.vector_dtype: str = dtype
        """How this database stores vectors (a key of :data:`VECTOR_DTYPES`); they are read
        back as float32 whatever it is."""

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            # A read-only directory cannot hold SQLite's shared-memory file: open the database
            # as immutable there (nothing can change it anyway).
            flags = "mode=ro" if os.access(self.path.parent, os.W_OK) else "mode=ro&immutable=1"
            uri = f"file:{urllib.parse.quote(str(self.path))}?{flags}"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=BUSY_SECONDS)
        else:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_SECONDS)
        with self._connections_lock:
            self._connections.append(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        if self.readonly:
            conn.execute("PRAGMA query_only = ON")
        else:
            with storage_errors(self.path.parent):
                sqlite_utils.Database(conn).enable_wal()
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.set_progress_handler(self._over_budget, PROGRESS_STEPS)
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (a reader's) or the store's one (a writer's); for the
        store's own modules and tests. Hold :attr:`lock` while using a writer's."""
        if not self.readonly:
            if self._shared is None:
                self._shared = self._connect()
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _over_budget(self) -> int:
        deadline: float | None = getattr(self._local, "deadline", None)
        return 1 if deadline is not None and time.monotonic() > deadline else 0

    @contextmanager
    def budget(self, seconds: float, what: str = "this search") -> Iterator[None]:
        """Abort the SQL work this thread does inside the block after ``seconds`` with
        :class:`InvalidInput` (a filter or query too costly to answer)."""
        previous = getattr(self._local, "deadline", None)
        self._local.deadline = time.monotonic() + seconds
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "interrupted" not in str(exc):
                raise
            raise InvalidInput(
                f"{what} needs more than {seconds:g} s of work in the database; narrow it (a simpler "
                "glob or fewer terms, filters or values)."
            ) from None
        finally:
            self._local.deadline = previous

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Several reads that see one moment of the store (one read transaction)."""
        with self.lock:
            if not self.readonly or self.conn.in_transaction:
                yield
                return
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                self.conn.execute("COMMIT")

    @locked
    def has_fts(self) -> bool:
        """Whether the full-text table ``chunks_fts`` exists (indexes written before it lack it)."""
        return bool(
            self.conn.execute("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'chunks_fts')").fetchone()[0]
        )

    @locked
    def ensure_fts(self) -> None:
        """Create the full-text table and its triggers if missing, and fill it from the chunks."""
        if sqlite3.sqlite_version_info < FTS_MIN_SQLITE or self.has_fts():
            return
        self.conn.execute("BEGIN IMMEDIATE")  # not a crash point: atomic, and done again if lost
        try:
            for statement in FTS_STATEMENTS:
                self.conn.execute(statement)
            self.conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def rebuild_fts(self) -> None:
        """Rebuild the full-text table from the chunks (``indexer repair``)."""
        if not self.has_fts():
            self.ensure_fts()
            return
        with self.transaction() as conn:
            conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')")

    def close(self) -> None:
        """Close every connection of this store (idempotent)."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._shared = None
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on error),
        holding the store's lock throughout."""
        with self.lock, storage_errors(self.path.parent):
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                crash_point("commit")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
                    conn.execute("ROLLBACK")
                raise

    # -- space ------------------------------------------------------------------------------
    # A writer's store only (see :mod:`store.compaction`): each step is one SQLite transaction,
    # so readers see the state before or after it, and a crash inside one loses nothing.
    @locked
    def free_space(self) -> FreeSpace:
        """Pages of ``meta.db`` and how many of them are free (of the current snapshot)."""
        page_size, pages, free = (
            int(self.conn.execute(f"PRAGMA {name}").fetchone()[0])
            for name in ("page_size", "page_count", "freelist_count")
        )
        return FreeSpace(page_size=page_size, pages=pages, free=free)

    @locked
    def table_space(self) -> list[TableSpace]:
        """Bytes of each table and index of ``meta.db`` (FTS5's shadow tables among them:
        ``chunks_fts_data``, …), from SQLite's ``dbstat``, largest first; empty where this
        SQLite lacks ``dbstat``. Reads every page: for measuring, not for a request."""
        try:
            rows = self.conn.execute(
                "SELECT name, sum(pgsize), sum(unused), sum(ncell) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            ).fetchall()
        except sqlite3.OperationalError:  # no such table: dbstat
            return []
        return [TableSpace(name=str(n), bytes=int(b), unused=int(u), cells=int(c)) for n, b, u, c in rows]

    def merge_fts(self) -> bool:
        """Merge the full-text index into one segment (FTS5 ``optimize``), which drops what
        deleted chunks left in it; ``False`` where there is no full-text table."""
        if not self.has_fts():
            return False
        with self.transaction() as conn:
            conn.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('optimize')")
        return True

    @locked
    def vacuum(self, *, full: bool) -> str:
        """Give ``meta.db``'s free pages back to the filesystem, in one transaction (outside any).

        ``"incremental"`` (``PRAGMA incremental_vacuum``: pages moved into the free slots and
        the file's end cut off; work in proportion to the pages freed) where the database has
        ``auto_vacuum = INCREMENTAL`` and ``full`` is false; else ``"full"`` (``VACUUM``: the
        database rewritten and defragmented, work and transient disk space in proportion to
        its size; it also turns incremental vacuum on for later). Returns which one ran. In
        WAL mode the file itself shrinks at the next complete checkpoint (:meth:`checkpoint`).
        """
        incremental = int(self.conn.execute("PRAGMA auto_vacuum").fetchone()[0]) == AUTO_VACUUM_INCREMENTAL
        kind = "incremental" if incremental and not full else "full"
        conn = self.conn
        conn.set_progress_handler(_vacuum_progress, PROGRESS_STEPS)
        try:
            with storage_errors(self.path.parent):
                if kind == "full":
                    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect with this VACUUM
                    conn.execute("VACUUM")
                else:
                    conn.executescript("PRAGMA incremental_vacuum;")  # stepped to the end: every free page
        finally:
            conn.set_progress_handler(self._over_budget, PROGRESS_STEPS)
        return kind

    @locked
    def checkpoint(self, wait: float) -> bool:
        """Copy the WAL into ``meta.db`` and truncate it to 0 bytes (``wal_checkpoint(TRUNCATE)``),
        waiting up to ``wait`` seconds for readers of an older snapshot; whether it completed
        (if not, a later checkpoint finishes the job: readers are never disturbed)."""
        conn = self.conn
        conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        try:
            with storage_errors(self.path.parent):
                busy = int(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_SECONDS * 1000}")
        return busy == 0

    # -- checks -----------------------------------------------------------------------------
    @locked
    def integrity_problems(self) -> list[str]:
        """What SQLite's integrity and foreign-key checks find (empty: the file is sound).

        Raises ``sqlite3.DatabaseError`` when the file cannot be read at all."""
        integrity = [r[0] for r in self.conn.execute("PRAGMA integrity_check")]
        foreign = self.conn.execute("PRAGMA foreign_key_check").fetchall()
        problems = [] if integrity == ["ok"] else integrity[:3]
        if foreign:
            problems.append(f"{len(foreign)} rows violate foreign keys")
        return problems

    @locked
    def chunks_without_vector(self) -> int:
        """Chunks (of any state) that have no stored vector: a damaged store if not 0."""
        return int(
            self.conn.execute(
                "SELECT count(*) FROM chunks c LEFT JOIN vectors v ON v.chunk = c.id WHERE v.chunk IS NULL"
            ).fetchone()[0]
        )

    @locked
    def unpublished_changes(self) -> int:
        """Document rows an interrupted write left pending or retired (0 after every publish)."""
        return int(self.conn.execute("SELECT count(*) FROM documents WHERE pending = 1 OR retired = 1").fetchone()[0])

    @locked
    def invalid_metadata(self, limit: int = 5) -> tuple[int, list[str]]:
        """Documents whose stored metadata is not a valid JSON object (NaN included): how many,
        and the ids of the first ``limit``."""

        def refuse(constant: str) -> None:
            raise ValueError(constant)

        bad: list[str] = []
        count = 0
        for doc_id, text in self.conn.execute("SELECT doc_id, metadata FROM documents"):
            try:
                valid = isinstance(json.loads(text, parse_constant=refuse), dict)
            except (ValueError, TypeError, RecursionError):
                valid = False
            if not valid:
                count += 1
                if len(bad) < limit:
                    bad.append(str(doc_id))
        return count, bad

    def fts_problems(self) -> str | None:
        """What FTS5's own integrity check finds wrong with the full-text table (None: sound,
        or no table). Raises :class:`ReadOnlyIndex` where the check cannot run (it needs a
        writable database, though it changes nothing: its transaction is rolled back)."""
        if not self.has_fts():
            return None
        if not os.access(self.path.parent, os.W_OK) or not os.access(self.path, os.W_OK):
            raise read_only(self.path.parent)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN")
            try:
                conn.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
            except sqlite3.DatabaseError as exc:
                return str(exc)
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        finally:
            conn.close()
        return None

    @locked
    def has_documents(self) -> bool:
        """Whether any document row (of any state) is stored."""
        return self.conn.execute("SELECT 1 FROM documents LIMIT 1").fetchone() is not None

    # -- settings ---------------------------------------------------------------------------
    @locked
    def get_setting(self, key: str, default: Any = None) -> Any:
        """A setting's JSON value, or ``default``; :class:`CorruptIndex` if it is not JSON."""
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except (TypeError, ValueError):
            raise CorruptIndex(
                f"the setting {key!r} in {self.path} is not valid JSON: the file was changed by hand or damaged. "
                "Rebuild the index from its corpus with `indexer build` into a new --index."
            ) from None

    @locked
    def set_setting(self, key: str, value: Any) -> None:
        """Write a setting; inside :meth:`transaction` it commits with the transaction."""
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, ensure_ascii=False)),
        )

    # -- documents --------------------------------------------------------------------------
    # A write never changes what readers see: new versions are written as pending rows,
    # removals mark live rows retired, and :meth:`apply_publish` makes both take effect in
    # the transaction that records the new FAISS version.
    @locked
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

    @locked
    def documents_of_corpus(self, corpus: str) -> list[tuple[str, str]]:
        """``(doc_id, source)`` of every document read from the corpus root ``corpus``."""
        rows = self.conn.execute("SELECT DISTINCT doc_id, source FROM documents WHERE corpus = ?", (corpus,))
        return [(str(d), str(s)) for d, s in rows]

    @locked
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

    @locked
    def stored_chunks(self, doc_id: str, content_hash: str) -> list[StoredChunk]:
        """The chunks, with vectors (float32 ``(dimension,)`` each), of a complete stored version
        of ``doc_id`` with this content hash, in order; empty if there is none."""
        row = self.conn.execute(
            "SELECT id FROM documents WHERE doc_id = ? AND content_hash = ? AND complete = 1 ORDER BY pending LIMIT 1",
            (doc_id, content_hash),
        ).fetchone()
        if row is None:
            return []
        rows = self.conn.execute(
            'SELECT c.text, c.start, c."end", c.n_tokens, c.lang, v.vector FROM chunks c'
            " JOIN vectors v ON v.chunk = c.id WHERE c.document = ? ORDER BY c.ord",
            (row[0],),
        ).fetchall()
        chunks = []
        layout = VECTOR_DTYPES[self.vector_dtype]
        for text, start, end, n_tokens, lang, blob in rows:
            if not isinstance(blob, bytes) or len(blob) % np.dtype(layout).itemsize:
                return []  # a damaged vector: embed the document again rather than copy it
            chunks.append(
                StoredChunk(text, start, end, n_tokens, lang, np.frombuffer(blob, dtype=layout).astype(np.float32))
            )
        return chunks

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
            (
                check_label(doc.doc_id, "id"),
                check_label(doc.source, "source"),
                doc.corpus,
                doc.content_hash,
                doc.lang,
                metadata_json(doc.metadata, repr(doc.doc_id)),
                doc.n_chars,
                now,
            ),
        )
        return int(cur.lastrowid or 0)

    def _add_chunks(self, row: int, chunks: Sequence[StoredChunk], first: int) -> None:
        for ord_, chunk in enumerate(chunks, start=first):
            if chunk.vector is None:
                raise ValueError(f"chunk {ord_} of document row {row} has no vector; embed it before storing it")
            cur = self.conn.execute(
                'INSERT INTO chunks (document, ord, text, start, "end", n_tokens, lang) VALUES (?, ?, ?, ?, ?, ?, ?)',
                (row, ord_, chunk.text, chunk.start, chunk.end, chunk.n_tokens, chunk.lang),
            )
            self.conn.execute(
                "INSERT INTO vectors (chunk, vector) VALUES (?, ?)",
                (cur.lastrowid, _to_blob(chunk.vector, self.vector_dtype)),
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

    @locked
    def has_unpublished_changes(self) -> bool:
        """Whether any pending, incomplete or retired row waits for a publish."""
        return self.unpublished_changes() > 0

    @locked
    def apply_publish(self) -> None:
        """Inside the publishing transaction: retired and unfinished rows go, pending ones go live."""
        self.conn.execute("DELETE FROM documents WHERE retired = 1 OR (pending = 1 AND complete = 0)")
        self.conn.execute("UPDATE documents SET pending = 0 WHERE pending = 1")

    # -- chunks and vectors -----------------------------------------------------------------
    @locked
    def count(self, table: str) -> int:
        """Live rows of ``documents`` or ``chunks`` (what readers see), or all rows of
        ``vectors`` or ``settings``."""
        if table == "documents":
            sql = f"SELECT count(*) FROM documents d WHERE {LIVE}"
        elif table == "chunks":
            sql = f"SELECT count(*) FROM {LIVE_CHUNKS}"
        elif table in ("vectors", "settings"):
            sql = f"SELECT count(*) FROM {table}"
        else:
            raise ValueError(f"no table {table!r} to count")
        return int(self.conn.execute(sql).fetchone()[0])

    @locked
    def chunk_ids(self, target: bool = False) -> np.ndarray:
        """Ids of the live chunks (or, with ``target``, of those the next publish makes live).

        int64, ascending.
        """
        where = TARGET if target else LIVE
        rows = self.conn.execute(
            f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document WHERE {where} ORDER BY c.id"
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    @locked
    def live_chunk_ids(self, filt: Filter | None = None) -> np.ndarray:
        """Ids of the live chunks that ``filt`` allows (all without it): int64, ascending."""
        condition, params = sql_of(filt)
        rows = self.conn.execute(f"SELECT c.id FROM {LIVE_CHUNKS} AND ({condition}) ORDER BY c.id", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    @locked
    def documents_of_chunks(self, chunk_ids: Sequence[int]) -> list[str]:
        """The distinct doc_ids the given chunks belong to, sorted."""
        found: set[str] = set()
        for lo in range(0, len(chunk_ids), ID_BATCH):
            part = [int(i) for i in chunk_ids[lo : lo + ID_BATCH]]
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT DISTINCT d.doc_id FROM chunks c JOIN documents d ON d.id = c.document WHERE c.id IN ({marks})",
                part,
            )
            found.update(str(r[0]) for r in rows)
        return sorted(found)

    @locked
    def lexical_search(self, query: str, limit: int, filt: Filter | None = None) -> list[tuple[int, float]]:
        """Up to ``limit`` ``(chunk id, score)`` of live chunks matching ``query`` by full text
        (see :mod:`store.lexical`: the query syntax, and scores, higher is better), best first.

        One read transaction: the candidates and the texts they are checked against, read in
        batches, come from the same moment even while a writer publishes meanwhile."""
        with self.snapshot():
            return lexical.search(self.conn, query, limit, filt)

    @locked
    def vectors(self, ids: Sequence[int] | np.ndarray, dimension: int) -> np.ndarray:
        """Vectors of the given chunk ids, in that order: float32 ``(len(ids), dimension)``
        (``KeyError`` for an id that has no vector)."""
        return self._read_vectors(ids, dimension, missing_ok=False)

    @locked
    def vectors_or_nan(self, ids: Sequence[int] | np.ndarray, dimension: int) -> np.ndarray:
        """As :meth:`vectors`, with a row of NaN for an id that has no vector (any more)."""
        return self._read_vectors(ids, dimension, missing_ok=True)

    def _read_vectors(self, ids: Sequence[int] | np.ndarray, dimension: int, *, missing_ok: bool) -> np.ndarray:
        out = np.full((len(ids), dimension), np.nan, dtype=np.float32)
        for lo in range(0, len(ids), ID_BATCH):
            part = [int(i) for i in ids[lo : lo + ID_BATCH]]
            marks = ",".join("?" * len(part))
            rows = dict(self.conn.execute(f"SELECT chunk, vector FROM vectors WHERE chunk IN ({marks})", part))
            for j, chunk_id in enumerate(part):
                if missing_ok and chunk_id not in rows:
                    continue
                out[lo + j] = _from_blob(rows[chunk_id], dimension, self.vector_dtype)
        return out

    # -- tuning queries ---------------------------------------------------------------------
    @locked
    def set_tune_queries(self, texts: Sequence[str], vectors: np.ndarray, digest: str) -> None:
        """Replace the queries that tune ``nprobe`` (``vectors`` float32 ``(len(texts), d)``;
        ``digest`` names the set, see :meth:`tune_queries_digest`) and mark them pending: the
        next publish tunes with them."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM tune_queries")
            conn.executemany(
                "INSERT INTO tune_queries (text, vector) VALUES (?, ?)",
                [(text, _to_blob(vector, self.vector_dtype)) for text, vector in zip(texts, vectors, strict=True)],
            )
            self.set_setting("tune_pending", True)
            self.set_setting("tune_queries_sha256", digest)

    def tune_queries_digest(self) -> str | None:
        """The digest given with the stored tuning queries, None if there are none."""
        digest = self.get_setting("tune_queries_sha256")
        return str(digest) if digest else None

    @locked
    def tune_queries(self, dimension: int) -> np.ndarray | None:
        """The stored tuning query vectors, float32 ``(q, dimension)``, or None if there are none."""
        try:
            rows = self.conn.execute("SELECT vector FROM tune_queries ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # an index written before the table existed, opened to read
            return None
        if not rows:
            return None
        return np.stack([_from_blob(blob, dimension, self.vector_dtype) for (blob,) in rows])

    def iter_vectors(
        self,
        dimension: int,
        batch: int = 8192,
        target: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(ids int64 (n,), vectors float32 (n, dimension))`` of the live chunks by id.

        With ``target``, the chunks the next publish makes live.
        """
        where = TARGET if target else LIVE
        last = -1
        while True:
            with self.lock:
                rows = self.conn.execute(
                    f"""SELECT v.chunk, v.vector FROM vectors v JOIN chunks c ON c.id = v.chunk
                        JOIN documents d ON d.id = c.document
                        WHERE v.chunk > ? AND {where} ORDER BY v.chunk LIMIT ?""",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.stack([_from_blob(r[1], dimension, self.vector_dtype) for r in rows])
            yield ids, vecs
            last = int(ids[-1])

    @locked
    def hits(self, chunk_ids: Sequence[int] | np.ndarray) -> dict[int, ChunkRow]:
        """Live chunks with their documents' fields, keyed by chunk id.

        Ids of chunks no longer live (deleted since the FAISS version was loaded) are absent.
        A document's metadata is read and parsed once: its chunks share one object (treat it
        as read-only), so many hits of one document do not multiply it.
        """
        ids = [int(i) for i in chunk_ids]
        found: dict[int, ChunkRow] = {}
        rows: list[tuple[Any, ...]] = []
        with self.snapshot():  # the chunks and their documents' metadata of one moment
            for lo in range(0, len(ids), ID_BATCH):
                part = ids[lo : lo + ID_BATCH]
                marks = ",".join("?" * len(part))
                rows += self.conn.execute(
                    f"""SELECT c.id, c.text, c.start, c."end", c.lang, d.doc_id, d.source, d.lang, d.id
                        FROM {LIVE_CHUNKS} AND c.id IN ({marks})""",
                    part,
                ).fetchall()
            metadata = self._metadata_of(sorted({r[8] for r in rows}))
        for r in rows:
            found[r[0]] = ChunkRow(
                chunk_id=r[0],
                text=r[1],
                start=r[2],
                end=r[3],
                lang=r[4] or r[7],
                doc_id=r[5],
                source=r[6],
                metadata=metadata[r[8]],
            )
        return found

    def _metadata_of(self, rows: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The parsed metadata of the given document rows."""
        out: dict[int, dict[str, Any]] = {}
        for lo in range(0, len(rows), ID_BATCH):
            part = list(rows[lo : lo + ID_BATCH])
            marks = ",".join("?" * len(part))
            for row, text in self.conn.execute(f"SELECT id, metadata FROM documents WHERE id IN ({marks})", part):
                out[row] = json.loads(text)
        return out

    @locked
    def document(self, doc_id: str) -> DocumentRow | None:
        """A live document and its chunks in order, or ``None`` if there is none."""
        with self.snapshot():  # the document and its chunks of one moment
            row = self.conn.execute(
                f"SELECT d.id, d.doc_id, d.source, d.lang, d.metadata, d.n_chars, d.updated_at FROM documents d "
                f"WHERE d.doc_id = ? AND {LIVE}",
                (doc_id,),
            ).fetchone()
            if row is None:
                return None
            chunks = self.conn.execute(
                'SELECT id, ord, text, start, "end", lang FROM chunks WHERE document = ? ORDER BY ord', (row[0],)
            ).fetchall()
            return DocumentRow(
                doc_id=row[1],
                source=row[2],
                lang=row[3],
                metadata=json.loads(row[4]),
                n_chars=row[5],
                updated_at=row[6],
                chunks=tuple(
                    DocumentChunk(chunk_id=c[0], ord=c[1], text=c[2], start=c[3], end=c[4], lang=c[5] or row[3])
                    for c in chunks
                ),
            )

    @locked
    def list_documents(self, filt: Filter | None, limit: int, offset: int = 0) -> DocumentPage:
        """The live documents with at least one chunk matching ``filt`` (all with None),
        ordered by ``doc_id``: ``limit`` of them from ``offset`` on, and how many match."""
        condition, params = sql_of(filt)
        matching = (
            f"FROM documents d WHERE {LIVE} AND EXISTS (SELECT 1 FROM chunks c WHERE c.document = d.id AND {condition})"
        )
        with self.snapshot():  # the count and the page of one moment
            total = int(self.conn.execute(f"SELECT count(*) {matching}", params).fetchone()[0])
            rows = self.conn.execute(
                "SELECT d.doc_id, d.source, d.lang, d.metadata, d.n_chars, d.updated_at,"
                f" (SELECT count(*) FROM chunks x WHERE x.document = d.id) {matching} ORDER BY d.doc_id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        documents = tuple(
            DocumentSummary(
                doc_id=r[0],
                source=r[1],
                lang=r[2],
                metadata=json.loads(r[3]),
                n_chars=r[4],
                updated_at=r[5],
                chunks=r[6],
            )
            for r in rows
        )
        return DocumentPage(total=total, offset=offset, documents=documents)

    @locked
    def chunk_texts(self, limit: int | None = None) -> list[str]:
        """The text of every live chunk (or the first ``limit``), by id."""
        sql = f"SELECT c.text FROM {LIVE_CHUNKS} ORDER BY c.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [r[0] for r in self.conn.execute(sql)]

    @locked
    def languages(self) -> dict[str, int]:
        """Live documents per detected language, most frequent first."""
        rows = self.conn.execute(
            f"SELECT coalesce(d.lang, 'unknown'), count(*) FROM documents d WHERE {LIVE} GROUP BY 1 ORDER BY 2 DESC"
        )
        return {str(lang): int(n) for lang, n in rows.fetchall()}


def _vacuum_progress() -> int:
    """The progress handler inside a vacuum: the crash point ``vacuum``; never interrupts."""
    crash_point("vacuum")
    return 0


def _to_blob(vector: np.ndarray, dtype: str) -> bytes:
    """The BLOB of ``vector`` (float32 ``(dimension,)``) stored as ``dtype`` (see :data:`VECTOR_DTYPES`)."""
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPES[dtype]).tobytes()


def _from_blob(blob: bytes, dimension: int, dtype: str) -> np.ndarray:
    """The float32 ``(dimension,)`` vector of a BLOB stored as ``dtype``; :class:`CorruptIndex`
    if its size is not that of ``dimension`` such values."""
    layout = np.dtype(VECTOR_DTYPES[dtype])
    if not isinstance(blob, bytes) or len(blob) != layout.itemsize * dimension:
        size = len(blob) if isinstance(blob, bytes) else 0
        raise CorruptIndex(
            f"a stored vector has {size} bytes where the index's vectors have {layout.itemsize * dimension} "
            f"({dimension} {dtype}). Rebuild the index with `indexer build` into a new --index."
        )
    vec = np.frombuffer(blob, dtype=layout)
    if vec.shape != (dimension,):
        raise CorruptIndex(
            f"a stored vector has {vec.size} values where the index has dimension {dimension}. "
            "Rebuild the index with `indexer build`."
        )
    return vec.astype(np.float32)
