"""babelindex: cross-lingual semantic search over FAISS and SQLite.

The public API for programs (RAG prototypes)::

    from search import Index, build_index
    build_index("corpus/", "my.idx")
    hits = Index.open("my.idx").search("¿Qué es la fotosíntesis?", k=5)

Names load on first use: ``import search`` (and its error classes) loads neither FAISS nor
torch; ``Index`` loads FAISS, and the model loads on the first query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store.errors import (
    BabelIndexError,
    BabelIndexWarning,
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
    NprobeIgnored,
    ReadOnlyIndex,
    SchemaVersionError,
    UnsafeFilesystem,
)
from store.lazy import lazy_attributes

if TYPE_CHECKING:
    from indexer.build import build_index
    from indexer.writer import BuildReport
    from search.hit import Hit
    from search.index import Index

_LAZY = {
    "BuildReport": "indexer.writer",
    "build_index": "indexer.build",
    "Hit": "search.hit",
    "Index": "search.index",
}


__getattr__ = lazy_attributes("search", _LAZY, globals())


__all__ = [
    "BabelIndexError",
    "BabelIndexWarning",
    "BuildReport",
    "CorruptIndex",
    "DimensionMismatch",
    "DiskFull",
    "Hit",
    "Index",
    "IndexLocked",
    "IndexNotFound",
    "IndexNotReady",
    "InvalidFilter",
    "InvalidInput",
    "MissingDependency",
    "ModelError",
    "ModelMismatch",
    "ModelNotAvailable",
    "NprobeIgnored",
    "ReadOnlyIndex",
    "SchemaVersionError",
    "UnsafeFilesystem",
    "build_index",
]
