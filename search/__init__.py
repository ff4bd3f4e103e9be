"""babelindex: cross-lingual semantic search over FAISS and SQLite.

The public API for programs (RAG prototypes)::

    from search import Index, build_index
    build_index("corpus/", "my.idx")
    hits = Index.open("my.idx").search("¿Qué es la fotosíntesis?", k=5)

``search`` does not import torch; the model loads on the first query.
"""

from indexer.build import BuildReport, build_index
from search.hit import Hit
from search.index import Index
from store.errors import (
    BabelIndexError,
    CorruptIndex,
    DimensionMismatch,
    IndexLocked,
    IndexNotFound,
    InvalidInput,
    ModelError,
    ModelMismatch,
    ModelNotAvailable,
    SchemaVersionError,
    UnsafeFilesystem,
)

__all__ = [
    "BabelIndexError",
    "BuildReport",
    "CorruptIndex",
    "DimensionMismatch",
    "Hit",
    "Index",
    "IndexLocked",
    "IndexNotFound",
    "InvalidInput",
    "ModelError",
    "ModelMismatch",
    "ModelNotAvailable",
    "SchemaVersionError",
    "UnsafeFilesystem",
    "build_index",
]
