"""Giving deleted space back: what compaction measures, when it runs by itself, what it reports.

Deleting documents frees pages inside ``meta.db`` (SQLite keeps them on its freelist for
later rows rather than shrinking the file) and leaves the previous FAISS version beside the
current one. Compaction (:meth:`store.index_dir.IndexDir.compact`, ``indexer compact``)
merges the full-text index's segments (dropping what deleted chunks left in it), returns the
free pages to the filesystem (a full ``VACUUM``, or an incremental vacuum where the database
allows it), checkpoints and truncates the WAL, and removes every FAISS version but the
current one. Every step is a SQLite transaction or the removal of a file no reader needs, so
a reader sees the state before or after it, and a process killed at any point loses nothing.

After each publish the writer compacts by itself (:func:`reclaim_due`) once the free pages
are both :data:`RECLAIM_FREE_SHARE` of the file and :data:`RECLAIM_MIN_FREE_BYTES`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from store.schema import DB_FILE

RECLAIM_FREE_SHARE = 0.25
"""A publish compacts when at least this share of ``meta.db``'s pages are free …"""
RECLAIM_MIN_FREE_BYTES = 8 << 20
"""… and they add up to at least this many bytes (8 MiB), so a small index is left alone."""
CHECKPOINT_WAIT = 5.0
"""Seconds a compaction waits for readers of an older snapshot before it truncates the WAL;
past that, the file shrinks at a later checkpoint instead."""

WAL_SUFFIXES = ("-wal", "-shm")
"""SQLite's write-ahead log and its shared-memory index, beside ``meta.db``."""


@dataclass(frozen=True)
class FreeSpace:
    """Pages of ``meta.db`` (``page_size`` bytes each, of the current snapshot): ``pages`` in
    all, ``free`` of them on SQLite's freelist (written once, now unused)."""

    page_size: int
    pages: int
    free: int

    @property
    def free_bytes(self) -> int:
        return self.free * self.page_size

    @property
    def free_share(self) -> float:
        """Free pages / all pages, 0.0 to 1.0."""
        return self.free / self.pages if self.pages else 0.0


@dataclass(frozen=True)
class TableSpace:
    """One table or index of ``meta.db``: ``bytes`` of its pages, ``unused`` bytes in them
    (the rest of a page a row did not fill), ``cells`` (rows, index entries and pointers)."""

    name: str
    bytes: int
    unused: int
    cells: int


@dataclass(frozen=True)
class SpaceUsage:
    """Bytes on disk of an index's parts: ``meta_db`` (the file itself), ``wal`` (its
    write-ahead log and shared-memory files), ``faiss`` (every file in ``faiss/``)."""

    meta_db: int
    wal: int
    faiss: int

    @property
    def total(self) -> int:
        return self.meta_db + self.wal + self.faiss

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


@dataclass(frozen=True)
class CompactReport:
    """What a compaction did.

    ``before`` / ``after``: bytes on disk by part. ``free_pages`` and ``page_size``: the free
    pages ``meta.db`` held before. ``vacuum``: ``"full"`` (``VACUUM``: the file rewritten,
    defragmented) or ``"incremental"`` (the free pages cut off its end). ``fts_merged``: the
    full-text index was merged into one segment. ``checkpointed``: the WAL was copied back
    and truncated; ``False`` when a reader kept an older snapshot past
    :data:`CHECKPOINT_WAIT` (``meta.db`` then shrinks at a later checkpoint: the next write,
    or another compaction). ``faiss_removed``: FAISS files removed. ``seconds``: wall time.
    """

    index: str
    before: SpaceUsage
    after: SpaceUsage
    free_pages: int
    page_size: int
    vacuum: str
    fts_merged: bool
    checkpointed: bool
    faiss_removed: tuple[str, ...]
    seconds: float

    @property
    def reclaimed(self) -> int:
        """Bytes given back (negative if the directory grew)."""
        return self.before.total - self.after.total

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["before"], out["after"] = self.before.to_dict(), self.after.to_dict()
        out["faiss_removed"] = list(self.faiss_removed)
        out["reclaimed"] = self.reclaimed
        return out


def reclaim_due(free: FreeSpace) -> bool:
    """Whether a publish that leaves ``free`` should compact (see the module's constants)."""
    return free.free_share >= RECLAIM_FREE_SHARE and free.free_bytes >= RECLAIM_MIN_FREE_BYTES


def space_usage(index_dir: Path, faiss_dir: str) -> SpaceUsage:
    """Bytes on disk of ``meta.db``, its WAL files and the folder ``faiss_dir`` of ``index_dir``."""
    index_dir = Path(index_dir)

    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0

    folder = index_dir / faiss_dir
    faiss = sum(size(p) for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
    wal = sum(size(index_dir / (DB_FILE + suffix)) for suffix in WAL_SUFFIXES)
    return SpaceUsage(meta_db=size(index_dir / DB_FILE), wal=wal, faiss=faiss)
