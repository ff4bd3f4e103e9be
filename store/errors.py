"""The error tree of babelindex.

Every error the library raises on purpose derives from :class:`BabelIndexError`, and every
message says what happened and what to do next, so the CLI can print it as it is::

    BabelIndexError
    ├── IndexNotFound        no index at that path
    ├── IndexLocked          another process is writing the index
    ├── CorruptIndex         a file of the index fails its checksum or cannot be read
    ├── SchemaVersionError   the index was written by a newer babelindex
    ├── UnsafeFilesystem     the index is on a network filesystem with unreliable locks
    ├── DiskFull             the disk has no room for a write (nothing was changed)
    ├── ReadOnlyIndex        the index is on a read-only filesystem: searchable, not writable
    ├── IndexNotReady        the index exists but cannot answer this yet (nothing published,
    │                        no full-text table): its own state, not the caller's input
    ├── ModelError
    │   ├── ModelNotAvailable    the model is neither cached nor reachable
    │   ├── ModelMismatch        the index was built with another model
    │   └── DimensionMismatch    vectors of the wrong width
    ├── InvalidInput         a bad argument or option value
    │   └── InvalidFilter    a search filter that cannot be read or cannot match: an
    │                        unknown language, metadata key or source (HTTP 422)
    └── MissingDependency    an optional extra (e.g. ``babelindex[ray]``) or a newer library
                             (SQLite, FAISS) is needed for this
"""

from __future__ import annotations


class BabelIndexError(Exception):
    """Base class of every error babelindex raises on purpose."""


class IndexNotFound(BabelIndexError):
    """There is no babelindex index at the given path."""


class IndexLocked(BabelIndexError):
    """Another process holds the index's writer lock."""


class CorruptIndex(BabelIndexError):
    """A file of the index is damaged (checksum mismatch, truncated, missing)."""


class SchemaVersionError(BabelIndexError):
    """The index was written with a schema this version of babelindex does not know."""


class UnsafeFilesystem(BabelIndexError):
    """The index directory is on a filesystem where file locks cannot be trusted."""


class DiskFull(BabelIndexError):
    """A write found no room on the disk; what was published before is untouched."""


class ReadOnlyIndex(BabelIndexError):
    """The index lies on a read-only filesystem (or is not writable by this user): it can be
    searched but not written."""


class IndexNotReady(BabelIndexError):
    """The index exists but is not in a state to answer this (e.g. its first build has not
    published anything yet); the message says which command brings it there."""


class ModelError(BabelIndexError):
    """Base class of the embedding-model errors."""


class ModelNotAvailable(ModelError):
    """The embedding model is not in the local cache and cannot be downloaded."""


class ModelMismatch(ModelError):
    """The index was built with a different embedding model than the one given."""


class DimensionMismatch(ModelError):
    """Vectors do not have the dimension the index was built with."""


class InvalidInput(BabelIndexError):
    """An argument or option has a value babelindex cannot use."""


class InvalidFilter(InvalidInput):
    """A search filter (``lang``, ``source``, ``where``) that cannot be read, or that names what
    the index does not hold; the message lists what it holds (languages, metadata keys, the
    closest sources)."""


class MissingDependency(BabelIndexError):
    """An optional feature needs a package that is not installed; the message says how to get it."""


__all__ = [
    "BabelIndexError",
    "CorruptIndex",
    "DimensionMismatch",
    "DiskFull",
    "IndexLocked",
    "IndexNotFound",
    "IndexNotReady",
    "InvalidFilter",
    "InvalidInput",
    "MissingDependency",
    "ModelError",
    "ModelMismatch",
    "ModelNotAvailable",
    "ReadOnlyIndex",
    "SchemaVersionError",
    "UnsafeFilesystem",
]


class BabelIndexWarning(UserWarning):
    """Base class of babelindex's warnings: something given that changes nothing."""


class NprobeIgnored(BabelIndexWarning):
    """``nprobe`` was given for an index that is not IVF (flat, HNSW), where it changes nothing."""
