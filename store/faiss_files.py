"""The FAISS versions of an index on disk: ``faiss/v<NNNNNN>.faiss``, written once, verified on load.

Each published version is a new file (never overwritten), written under a temporary name,
fsynced and renamed (:mod:`store.atomic`), and only then made current by recording its
name, size and sha256 in SQLite. Readers verify the checksum before they deserialise.

IVF kinds can be memory-mapped instead of loaded (``read_version(..., mmap=True)``): their
inverted lists (codes and ids) stay in the file and the page cache, so an index larger than
RAM can be searched; only the coarse centroids and code books are read into memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import faiss

from store.atomic import TMP_SUFFIX, atomic_writer
from store.errors import CorruptIndex, MissingDependency
from store.faults import crash_point
from store.index_types import IVF_KINDS
from store.records import FaissInfo
from store.storage_errors import storage_errors

FAISS_DIR = "faiss"
HASH_BLOCK = 16 << 20
"""Bytes read at a time when a memory-mapped version's checksum is computed."""
REPAIR = "Run `indexer repair` to rebuild it from the vectors stored in meta.db (no re-embedding)."


def version_name(version: int) -> str:
    return f"v{version:06d}.faiss"


def write_version(index_dir: Path, version: int, index: faiss.Index) -> tuple[str, str, int]:
    """Write ``faiss/v<version>.faiss`` atomically; returns ``(file name, sha256, size in bytes)``."""
    folder = Path(index_dir) / FAISS_DIR
    with storage_errors(folder):
        folder.mkdir(exist_ok=True)
    data = faiss.serialize_index(index).tobytes()
    name = version_name(version)
    with atomic_writer(folder / name, before_rename=lambda: crash_point("rename")) as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        crash_point("faiss-write")
        fh.write(data[len(data) // 2 :])
    return name, hashlib.sha256(data).hexdigest(), len(data)


def read_version(index_dir: Path, info: FaissInfo, *, mmap: bool = False) -> faiss.Index:
    """Load a published version after checking its size and sha256; else :class:`CorruptIndex`.

    The file is hashed in blocks of :data:`HASH_BLOCK` bytes (memory stays constant: one
    sequential read, at disk or page-cache speed), then read by FAISS (one copy of the
    index in memory). With ``mmap`` it is mapped read-only instead of read: for IVF kinds the inverted lists (``IO_FLAG_MMAP``, FAISS's
    on-disk inverted lists), for ``flat`` and ``hnsw`` the stored vectors (``IO_FLAG_MMAP_IFC``,
    FAISS ≥ 1.10; HNSW's graph is still read into memory). Published files are never
    rewritten in place (each version is a new file), so the bytes hashed are the bytes
    mapped; a mapped version stays readable after a writer removes its file.
    """
    path = Path(index_dir) / FAISS_DIR / info.file
    flags = _mmap_flags(info) if mmap else 0
    try:
        # Hashed in blocks, then read (or mapped) by FAISS itself: one copy of the index in
        # memory, never the file's bytes beside it.
        size = path.stat().st_size
        digest = sha256_file(path) if size == info.size else None
    except FileNotFoundError:
        raise CorruptIndex(f"the FAISS file {path} is missing. {REPAIR}") from None
    if size != info.size:
        raise CorruptIndex(
            f"the FAISS file {path} is truncated or damaged ({size} bytes, {info.size} expected). {REPAIR}"
        )
    if digest != info.sha256:
        raise CorruptIndex(
            f"the FAISS file {path} fails its checksum (its sha256 differs from the recorded one): it is damaged. {REPAIR}"
        )
    try:
        return faiss.read_index(str(path), flags)
    except RuntimeError as exc:  # FAISS could not deserialise what the checksum vouched for
        raise CorruptIndex(f"the FAISS file {path} cannot be loaded ({exc}). {REPAIR}") from None


def _mmap_flags(info: FaissInfo) -> int:
    """FAISS read flags that map ``info``'s kind read-only; MissingDependency where FAISS cannot."""
    if info.kind in IVF_KINDS:
        return int(faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", None)
    if flag is None:
        raise MissingDependency(
            f"this FAISS ({faiss.__version__}) can memory-map only IVF indexes, and this one is {info.factory}. "
            "Switch it with `indexer reindex --index-type ivf-pq` (or ivf, ivf-sq8, ivf-opq), upgrade faiss-cpu "
            "to 1.10 or later, or open it without --mmap."
        )
    return int(flag | faiss.IO_FLAG_READ_ONLY)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def leftover_temporaries(index_dir: Path) -> list[str]:
    """Names of temporary files an interrupted write left in ``faiss/``, sorted."""
    folder = Path(index_dir) / FAISS_DIR
    return sorted(p.name for p in folder.glob("*" + TMP_SUFFIX)) if folder.is_dir() else []


def version_files(index_dir: Path) -> list[str]:
    """Names of every FAISS version file in ``faiss/``, sorted."""
    folder = Path(index_dir) / FAISS_DIR
    return sorted(p.name for p in folder.glob("*.faiss")) if folder.is_dir() else []


def remove_old_versions(index_dir: Path, keep: set[str]) -> list[str]:
    """Delete FAISS files and leftover temporaries other than ``keep``; returns their names, sorted.

    A reader that has a removed version loaded (or memory-mapped: Linux keeps an unlinked
    file's pages while it is mapped) keeps searching it; one about to load it finds it gone,
    reads the current record again and loads that (:meth:`store.index_dir.IndexDir.load_faiss`).
    """
    folder = Path(index_dir) / FAISS_DIR
    removed = []
    for path in sorted(folder.glob("*")):
        if path.name not in keep and (path.suffix == ".faiss" or path.name.endswith(TMP_SUFFIX)):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed
