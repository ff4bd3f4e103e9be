"""Persistence of an index directory: SQLite metadata, FAISS files, locking, checksums."""

from store.errors import (
    BabelIndexError,
    CorruptIndex,
    DimensionMismatch,
    IndexLocked,
    IndexNotFound,
    InvalidInput,
    MissingDependency,
    ModelError,
    ModelMismatch,
    ModelNotAvailable,
    SchemaVersionError,
    UnsafeFilesystem,
)
from store.index_dir import IndexDir
from store.metadata import StoredChunk, StoredDocument

__all__ = [
    "BabelIndexError",
    "CorruptIndex",
    "DimensionMismatch",
    "IndexDir",
    "IndexLocked",
    "IndexNotFound",
    "InvalidInput",
    "MissingDependency",
    "ModelError",
    "ModelMismatch",
    "ModelNotAvailable",
    "SchemaVersionError",
    "StoredChunk",
    "StoredDocument",
    "UnsafeFilesystem",
]
