"""Persistence of an index directory: SQLite metadata, FAISS files, locking, checksums.

The bottom layer: it imports nothing from ``indexer`` or ``search``. Its names load lazily,
so ``import store.errors`` (or ``from store import InvalidInput``) loads neither FAISS nor
sqlite-utils; ``from store import IndexDir`` loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store.errors import (
    BabelIndexError,
    CorruptIndex,
    DimensionMismatch,
    DiskFull,
    IndexLocked,
    IndexNotFound,
    IndexNotReady,
    InvalidFilter,
    InvalidInput,
    MissingDependency,
    ModelError,
    ModelMismatch,
    ModelNotAvailable,
    ReadOnlyIndex,
    SchemaVersionError,
    UnsafeFilesystem,
)
from store.lazy import lazy_attributes

if TYPE_CHECKING:
    from store.index_dir import IndexDir
    from store.records import FaissInfo, IndexSettings, ModelRecord, StoredChunk, StoredDocument

_LAZY = {
    "IndexDir": "store.index_dir",
    "FaissInfo": "store.records",
    "IndexSettings": "store.records",
    "ModelRecord": "store.records",
    "StoredChunk": "store.records",
    "StoredDocument": "store.records",
}


__getattr__ = lazy_attributes("store", _LAZY, globals())


__all__ = [
    "BabelIndexError",
    "CorruptIndex",
    "DimensionMismatch",
    "DiskFull",
    "FaissInfo",
    "IndexDir",
    "IndexLocked",
    "IndexNotFound",
    "IndexNotReady",
    "IndexSettings",
    "InvalidFilter",
    "InvalidInput",
    "MissingDependency",
    "ModelError",
    "ModelMismatch",
    "ModelNotAvailable",
    "ModelRecord",
    "ReadOnlyIndex",
    "SchemaVersionError",
    "StoredChunk",
    "StoredDocument",
    "UnsafeFilesystem",
]
