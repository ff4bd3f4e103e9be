"""babelindex: cross-lingual semantic search over FAISS and SQLite.

The public API for programs (RAG prototypes)::

    from search import Index, build_index
    build_index("corpus/", "my.idx")
    hits = Index.open("my.idx").search("¿Qué es la fotosíntesis?", k=5)

Names load on first use: ``import search`` (and its error classes) loads neither FAISS nor
torch; ``Index`` loads FAISS, and the model loads on the first query.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from store.errors import (
    BabelIndexError,
    CorruptIndex,
    DimensionMismatch,
    DiskFull,
    IndexLocked,
    IndexNotFound,
    IndexNotReady,
    InvalidInput,
    MissingDependency,
    ModelError,
    ModelMismatch,
    ModelNotAvailable,
    ReadOnlyIndex,
    SchemaVersionError,
    UnsafeFilesystem,
)

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BabelIndexError",
    "BuildReport",
    "CorruptIndex",
    "DimensionMismatch",
    "DiskFull",
    "Hit",
    "Index",
    "IndexLocked",
    "IndexNotFound",
    "IndexNotReady",
    "InvalidInput",
    "MissingDependency",
    "ModelError",
    "ModelMismatch",
    "ModelNotAvailable",
    "ReadOnlyIndex",
    "SchemaVersionError",
    "UnsafeFilesystem",
    "build_index",
]
