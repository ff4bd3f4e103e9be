"""An index directory: ``meta.db`` (source of truth), ``faiss/`` (derived), ``write.lock``.

:class:`IndexDir` is the only code that touches the files of an index directory. Writers
open it with :meth:`IndexDir.open_for_writing`, which takes the writer lock; readers with
:meth:`IndexDir.open_for_reading`, which takes none and sees the last published version.
"""

from __future__ import annotations

import os
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import faiss
import numpy as np

from store import compaction, faiss_files, faiss_index
from store.compaction import CompactReport, SpaceUsage
from store.database import CREATING_SUFFIX, MetaStore
from store.errors import BabelIndexError, CorruptIndex, IndexNotFound, InvalidInput, UnsafeFilesystem
from store.faults import crash_point
from store.filesystem import NETWORK_FILESYSTEMS, filesystem_type
from store.index_types import UPDATABLE_KINDS, choose_kind
from store.lock import LOCK_FILE, WriterLock
from store.records import DiskUsage, FaissInfo, IndexParams, IndexSettings, ModelRecord
from store.schema import DB_FILE
from store.staging import StagingArea
from store.storage_errors import storage_errors
from store.worker_status import STATUS_FILE

R = TypeVar("R")
ADD_BATCH = 8192
"""Vectors fetched from SQLite and added to FAISS at a time when a version is updated."""


def _require_index(path: Path) -> None:
    if not (path / DB_FILE).is_file():
        raise IndexNotFound(f"no index at {path}. Build one with `indexer build CORPUS --index {path}`.")


def _check_filesystem(path: Path) -> None:
    """Refuse to write on a network filesystem, where the writer lock cannot be trusted."""
    if os.environ.get("BABELINDEX_ALLOW_NETWORK_FS") == "1":
        return
    fs = filesystem_type(path)
    if fs is None:
        warnings.warn(
            f"babelindex cannot tell which filesystem {path} is on; make sure it is a local disk: "
            "on a network filesystem two writers could corrupt the index.",
            stacklevel=3,
        )
    elif fs in NETWORK_FILESYSTEMS:
        raise UnsafeFilesystem(
            f"{path} is on a network filesystem ({fs}), where file locks are unreliable and two writers "
            "could corrupt the index. Build on a local disk and copy the finished index over, or set "
            "BABELINDEX_ALLOW_NETWORK_FS=1 if you are sure only one process ever writes it."
        )


class IndexDir:
    """One index directory, open for reading or (holding the lock) for writing."""

    def __init__(self, path: Path, meta: MetaStore, lock: WriterLock | None):
        self.path = path
        self.meta = meta
        self._lock = lock

    @classmethod
    def open_for_writing(cls, path: str | Path, *, must_exist: bool = False, wait: float = 0.0) -> IndexDir:
        """Create the directory if needed and take the writer lock, trying for up to ``wait``
        seconds (or raise ``IndexLocked``).

        With ``must_exist``, raise ``IndexNotFound`` instead of creating a new index.
        """
        path = Path(path)
        if must_exist:
            _require_index(path)
        if path.exists() and not path.is_dir():
            raise InvalidInput(f"{path} exists and is not a directory; choose another --index path.")
        # What a writer killed before meta.db was complete leaves behind:
        ours = {LOCK_FILE, faiss_files.FAISS_DIR, DB_FILE + CREATING_SUFFIX, STATUS_FILE}
        if path.is_dir() and any(p.name not in ours for p in path.iterdir()) and not (path / DB_FILE).exists():
            raise InvalidInput(
                f"{path} is a non-empty directory that is not a babelindex index; choose a new or empty --index path."
            )
        with storage_errors(path):
            path.mkdir(parents=True, exist_ok=True)
        _check_filesystem(path)
        lock = WriterLock(path)
        lock.acquire(wait)
        try:
            meta = MetaStore(path / DB_FILE, create=True)
        except BaseException:
            lock.release()
            raise
        return cls(path, meta, lock)

    @classmethod
    def open_for_reading(cls, path: str | Path) -> IndexDir:
        """Open an existing index without a lock; raise ``IndexNotFound`` if there is none."""
        path = Path(path)
        _require_index(path)
        return cls(path, MetaStore(path / DB_FILE, readonly=True), None)

    def close(self) -> None:
        self.meta.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> IndexDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- recorded settings ------------------------------------------------------------------
    def faiss_info(self) -> FaissInfo | None:
        """The current FAISS version's record (``None`` before the first publish)."""
        data = self.meta.get_setting("faiss")
        return None if data is None else self._record("faiss", lambda: FaissInfo.from_json(data))

    def model_record(self) -> ModelRecord | None:
        """The model the index was built with (``None`` before the first build recorded it)."""
        data = self.meta.get_setting("model")
        return None if data is None else self._record("model", lambda: ModelRecord.from_json(data))

    def _record(self, key: str, read: Callable[[], R]) -> R:
        """``read()`` of a recorded setting, or :class:`CorruptIndex` if its fields are wrong."""
        try:
            return read()
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptIndex(
                f"the setting {key!r} in {self.path / DB_FILE} has wrong fields ({exc}): the file was changed "
                "by hand or damaged. Rebuild the index from its corpus with `indexer build` into a new --index."
            ) from None

    def record_model(self, record: ModelRecord) -> None:
        """Record the index's model (once, when it is created)."""
        with self.meta.transaction():
            self.meta.set_setting("model", record.to_json())

    def settings(self) -> IndexSettings:
        """The recorded chunking, index type and record fields (the defaults where nothing is recorded)."""
        data = self.meta.get_setting("build")
        return self._record("build", lambda: IndexSettings.from_json(data))

    def record_settings(self, settings: IndexSettings) -> None:
        """Record the chunking, index type and record fields that later builds keep."""
        with self.meta.transaction():
            self.meta.set_setting("build", settings.to_json())

    def staging(self) -> StagingArea:
        """The staging area where distributed builds put embedded chunks before the merge."""
        return StagingArea(self.path)

    # -- FAISS ------------------------------------------------------------------------------
    def load_faiss(self, *, mmap: bool = False) -> tuple[faiss.Index | None, FaissInfo | None]:
        """The current published FAISS index, checksum-verified (``(None, None)`` if none yet).

        With ``mmap``, memory-mapped read-only instead of read (see
        :func:`store.faiss_files.read_version`). Safe beside a writer: a version replaced
        between reading its record and its file is read again.
        """
        for attempt in range(3):
            info = self.faiss_info()
            if info is None:
                return None, None
            try:
                return faiss_files.read_version(self.path, info, mmap=mmap), info
            except CorruptIndex:
                # A writer may have published a newer version and removed this one between
                # our reading the setting and the file: read the setting again.
                if attempt == 2 or self.faiss_info() == info:
                    raise
        raise AssertionError("unreachable")

    def publish(self, requested_kind: str, dimension: int, *, rebuild: bool = False) -> FaissInfo | None:
        """Make the written changes live (see :meth:`publish_changes`), then give space back
        if the deletes have left enough of it free (:meth:`reclaim_if_due`)."""
        info = self.publish_changes(requested_kind, dimension, rebuild=rebuild)
        self.reclaim_if_due()
        return info

    def publish_changes(self, requested_kind: str, dimension: int, *, rebuild: bool = False) -> FaissInfo | None:
        """Make the written changes live: a FAISS version equal to the target chunk set.

        Updates the current version (adds new ids, removes retired ones) or builds anew (no
        current version, a damaged one, another kind requested, ``rebuild``, or an IVF index
        whose collection grew :data:`~store.faiss_index.RETRAIN_GROWTH` times past its training).
        The new file is written and fsynced first; then one SQLite transaction records it
        and applies the pending changes, so readers see either the old state or the new one.
        Returns the current info (``None`` for an index that has nothing yet).
        """
        target = self.meta.chunk_ids(target=True)
        kind = choose_kind(len(target), requested_kind)
        old = self.faiss_info()
        index = None
        if old is not None and old.kind == kind and not rebuild:
            try:
                index = faiss_files.read_version(self.path, old)
            except CorruptIndex:
                index = None
            if index is not None and faiss_index.needs_retraining(old, len(target)):
                index = None

        def stream() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            return self.meta.iter_vectors(dimension, target=True)

        def fetch(ids: np.ndarray) -> np.ndarray:
            return self.meta.vectors(ids, dimension)

        tune = self.meta.tune_queries(dimension)
        retune = bool(self.meta.get_setting("tune_pending", False))
        params: IndexParams
        if index is None or old is None:
            index, params = faiss_index.build_index(
                kind, dimension, target, stream, fetch, tune_queries=tune, stored_as=self.meta.vector_dtype
            )
        else:
            params = old.params()
            have = faiss_index.index_ids(index)
            stale = np.setdiff1d(have, target)
            missing = np.setdiff1d(target, have)
            if len(stale) and old.kind not in UPDATABLE_KINDS:
                index, params = faiss_index.build_index(
                    kind, dimension, target, stream, fetch, tune_queries=tune, stored_as=self.meta.vector_dtype
                )
                stale = missing = np.empty(0, dtype=np.int64)
                retune = False
            elif not len(stale) and not len(missing) and not (retune and faiss_index.ivf_of(index) is not None):
                if self.meta.has_unpublished_changes():
                    with self.meta.transaction():
                        self.meta.apply_publish()
                return old
            if len(stale):
                index.remove_ids(faiss.IDSelectorBatch(stale))
            for lo in range(0, len(missing), ADD_BATCH):
                part = missing[lo : lo + ADD_BATCH]
                index.add_with_ids(fetch(part), part)
            if retune and faiss_index.ivf_of(index) is not None:  # new tuning queries: tune the lists anew
                params = faiss_index.retune(index, params, stream, fetch, target, tune)
        version = int(self.meta.get_setting("faiss_next_version", 1))
        name, sha256, size = faiss_files.write_version(self.path, version, index)
        info = FaissInfo(
            version=version,
            file=name,
            sha256=sha256,
            size=size,
            ntotal=int(index.ntotal),
            kind=params.kind,
            factory=params.factory,
            nlist=params.nlist,
            nprobe=params.nprobe,
            trained_on=params.trained_on,
            tuned_recall=params.tuned_recall,
            tuned_on=params.tuned_on,
            tuned_queries=params.tuned_queries,
        )
        crash_point("publish")
        with self.meta.transaction():
            self.meta.apply_publish()
            self.meta.set_setting("tune_pending", False)
            self.meta.set_setting("faiss", info.to_json())
            self.meta.set_setting("faiss_next_version", version + 1)
        # Keep the previous version for readers that are about to load it.
        faiss_files.remove_old_versions(self.path, keep={name} | ({old.file} if old else set()))
        return info

    # -- space ------------------------------------------------------------------------------
    def compact(self, *, full: bool = True, remove_superseded: bool = True) -> CompactReport:
        """Give the space deleted documents left back (see :mod:`store.compaction`); the
        writer lock must be held.

        Merges the full-text index, vacuums ``meta.db`` (``full``: a ``VACUUM``; else
        incrementally where the database allows it), checkpoints and truncates the WAL, and
        with ``remove_superseded`` removes every FAISS file but the current version. Readers
        keep answering throughout and see the same results before and after.
        """
        if self._lock is None:
            raise InvalidInput(f"{self.path} is open for reading: compacting it needs the writer lock.")
        started = time.perf_counter()
        before = self.space_usage()
        free = self.meta.free_space()
        merged = self.meta.merge_fts()
        kind = self.meta.vacuum(full=full)
        crash_point("checkpoint")
        checkpointed = self.meta.checkpoint(compaction.CHECKPOINT_WAIT)
        removed: list[str] = []
        if remove_superseded:
            info = self.faiss_info()
            removed = faiss_files.remove_old_versions(self.path, keep={info.file} if info else set())
        return CompactReport(
            index=str(self.path),
            before=before,
            after=self.space_usage(),
            free_pages=free.free,
            page_size=free.page_size,
            vacuum=kind,
            fts_merged=merged,
            checkpointed=checkpointed,
            faiss_removed=tuple(removed),
            seconds=round(time.perf_counter() - started, 3),
        )

    def reclaim_if_due(self) -> CompactReport | None:
        """After a publish: compact (incrementally where the database allows it, the FAISS
        files left as the publish left them) if :func:`store.compaction.reclaim_due` says
        so; ``None`` if not. A failure (a full disk) only warns: what was published stays."""
        if not compaction.reclaim_due(self.meta.free_space()):
            return None
        try:
            return self.compact(full=False, remove_superseded=False)
        except (BabelIndexError, sqlite3.Error) as exc:
            warnings.warn(
                f"{self.path}: the published changes are live, but giving the free space in {DB_FILE} back "
                f"failed ({exc}); run `indexer compact --index {self.path}` later.",
                stacklevel=2,
            )
            return None

    def space_usage(self) -> SpaceUsage:
        """Bytes on disk of ``meta.db``, its WAL files and ``faiss/``."""
        return compaction.space_usage(self.path, faiss_files.FAISS_DIR)

    # -- sizes ------------------------------------------------------------------------------
    def disk_usage(self) -> DiskUsage:
        """Bytes on disk of ``meta.db`` (with its WAL) and of every FAISS version kept."""
        meta = sum(p.stat().st_size for p in self.path.glob(DB_FILE + "*") if p.is_file())
        folder = self.path / faiss_files.FAISS_DIR
        faiss_bytes = sum(p.stat().st_size for p in folder.glob("*.faiss")) if folder.is_dir() else 0
        return DiskUsage(meta_db=meta, faiss=faiss_bytes)
