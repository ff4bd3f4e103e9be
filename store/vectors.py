"""FAISS indexes derived from the vectors in SQLite: choosing, building, publishing, loading.

A FAISS index is a cache of ``meta.db``: its ids are chunk ids (``add_with_ids``), its
vectors float32 L2-normalised, its metric inner product (cosine). Each published version is
a new file ``faiss/v<NNNNNN>.faiss`` (never overwritten), written to a temporary name,
fsynced, renamed, the directory fsynced, and only then made current by recording its name,
size and sha256 in SQLite. Readers verify the checksum before they deserialise.

Index types (``--index-type``):

* ``flat``: ``IDMap2,Flat``, exact search; chosen by ``auto`` below :data:`FLAT_MAX` chunks.
* ``ivf``: ``IVF<nlist>,Flat`` with ``nlist ≈ 4·√n`` (at most ``n / 39`` so that every list
  gets enough training points), trained on a seeded sample of at most ``256·nlist`` stored
  vectors; its default ``nprobe`` is the smallest that reaches recall@10 ≥ 0.95 against
  exact search on a sample of the collection's own vectors.
* ``ivf-sq8``: ``IVF<nlist>,SQ8``, one byte per dimension.
* ``ivf-pq``: ``IVF<nlist>,PQ<m>`` with ``m ≈ d/8`` one-byte codes per vector.
* ``ivf-opq``: ``OPQ<m>,IVF<nlist>,PQ<m>``: the same codes after a learned rotation (OPQ)
  that spreads the variance evenly over the ``m`` sub-spaces; same bytes as ``ivf-pq``.
* ``hnsw``: ``IDMap2,HNSW32``.

IVF kinds can be memory-mapped instead of loaded (``read_version(..., mmap=True)``): their
inverted lists (codes and ids) stay in the file and the page cache, so an index larger than
RAM can be searched; only the coarse centroids and code books are read into memory.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from store.errors import CorruptIndex, InvalidInput
from store.faults import crash_point

FAISS_DIR = "faiss"
FLAT_MAX = 20_000
"""``auto`` picks exact search up to this many chunks, IVF above."""
RETRAIN_GROWTH = 4.0
"""An IVF index is retrained once the collection is this many times what it was trained on."""
TARGET_RECALL = 0.95
PLATEAU = 0.002
"""``tune_nprobe`` stops doubling nprobe once recall@10 grows by less than this."""
INDEX_TYPES = ("auto", "flat", "ivf", "ivf-sq8", "ivf-pq", "ivf-opq", "hnsw")
IVF_KINDS = ("ivf", "ivf-sq8", "ivf-pq", "ivf-opq")
PQ_MIN_VECTORS = 1000
"""Below this many vectors ``ivf-pq`` and ``ivf-opq`` cannot train their 256-code books well: flat is used."""
SMALL_TRAINING = 1 << 24
"""Training samples of fewer values (vectors × dimensions) are trained with one BLAS thread."""
HNSW_M = 32
HNSW_EF_SEARCH = 128


@dataclass
class FaissInfo:
    """What SQLite records about the current FAISS version (setting ``faiss``)."""

    version: int
    file: str
    sha256: str
    size: int
    ntotal: int
    kind: str
    factory: str
    nlist: int | None = None
    nprobe: int | None = None
    trained_on: int | None = None
    tuned_recall: float | None = None
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaissInfo:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PARAM_KEYS = ("kind", "factory", "nlist", "nprobe", "trained_on", "tuned_recall")
UPDATABLE_KINDS = ("flat", "ivf", "ivf-sq8", "ivf-pq", "ivf-opq")
"""Kinds whose versions can drop ids in place; HNSW is rebuilt when ids go."""
"""The recorded parameters of an index kind, kept when a version is updated in place."""


def needs_retraining(info: FaissInfo, n: int) -> bool:
    """Whether an IVF index trained as ``info`` should be retrained for ``n`` vectors.

    Yes once the collection is :data:`RETRAIN_GROWTH` times what the centroids were trained
    on, or has shrunk so far that ``nlist`` is more than 4× off the rule.
    """
    if info.nlist is None:
        return False
    if n > RETRAIN_GROWTH * (info.trained_on or 0):
        return True
    rule = choose_nlist(n)
    return info.nlist > 4 * rule and n >= 39


def choose_kind(n: int, requested: str) -> str:
    """The index kind for ``n`` chunks: ``flat`` or ``ivf`` (``requested`` may be ``auto``)."""
    if requested not in INDEX_TYPES:
        raise InvalidInput(f"unknown index type {requested!r}; choose one of {', '.join(INDEX_TYPES)}")
    if requested == "auto":
        return "flat" if n <= FLAT_MAX else "ivf"
    if requested in ("ivf-pq", "ivf-opq") and n < PQ_MIN_VECTORS:
        return "flat"
    return requested


def choose_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: ``4·√n``, capped at ``n / 39`` and at least 1."""
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


VectorSource = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]
"""A callable that streams ``(ids int64 (b,), vectors float32 (b, d))`` batches anew."""


def build_index(
    kind: str,
    dimension: int,
    all_ids: np.ndarray,
    stream: VectorSource,
    fetch: Callable[[np.ndarray], np.ndarray],
    *,
    seed: int = 0,
) -> tuple[faiss.Index, dict[str, Any]]:
    """Build a FAISS index of ``kind`` over every vector ``stream`` yields.

    ``all_ids`` are the ids to index; ``stream`` yields all their vectors in batches; ``fetch``
    returns the vectors of given ids (the training and tuning samples). Returns the index
    and its recorded parameters (``kind``, ``factory``, and for IVF kinds ``nlist``,
    ``nprobe``, ``trained_on``, ``tuned_recall``).
    """
    n = len(all_ids)
    if kind == "flat" or n == 0:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        params: dict[str, Any] = {"kind": "flat", "factory": "IDMap2,Flat"}
    elif kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        index = faiss.IndexIDMap2(hnsw)
        params = {"kind": "hnsw", "factory": f"IDMap2,HNSW{HNSW_M}"}
    else:
        nlist = choose_nlist(n)
        rng = np.random.default_rng(seed)
        quantizer = faiss.IndexFlatIP(dimension)
        if kind == "ivf":
            index, factory = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT), f"IVF{nlist},Flat"
        elif kind == "ivf-sq8":
            index = faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                  faiss.METRIC_INNER_PRODUCT)
            factory = f"IVF{nlist},SQ8"
        elif kind == "ivf-pq":
            m = pq_subquantizers(dimension)
            index, factory = faiss.IndexIVFPQ(quantizer, dimension, nlist, m, 8, faiss.METRIC_INNER_PRODUCT), f"IVF{nlist},PQ{m}"
        elif kind == "ivf-opq":
            # Built by hand, not with index_factory, which also turns on polysemous training
            # (slow, and of no use to a search that does not use polysemous codes).
            m = pq_subquantizers(dimension)
            ivfpq = faiss.IndexIVFPQ(quantizer, dimension, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
            index, factory = faiss.IndexPreTransform(faiss.OPQMatrix(dimension, m), ivfpq), f"OPQ{m},IVF{nlist},PQ{m}"
        else:
            raise InvalidInput(f"unknown index type {kind!r}; choose one of {', '.join(INDEX_TYPES)}")
        faiss.extract_index_ivf(index).cp.seed = seed
        sample = fetch(np.sort(rng.choice(all_ids, size=min(n, max(256 * nlist, 10_000)), replace=False)))
        # Small training sets run many small BLAS calls, which threads slow down (badly on a
        # busy machine: OPQ's 50 rounds took 10-20 s instead of 1 s for 1,200 × 32): one thread.
        with threadpool_limits(1) if sample.size < SMALL_TRAINING else nullcontext():
            index.train(sample)
        params = {"kind": kind, "factory": factory, "nlist": nlist, "trained_on": n}
    for ids, vecs in stream():
        index.add_with_ids(vecs, ids)
    if ivf_of(index) is not None:
        rng = np.random.default_rng(seed + 1)
        queries = fetch(np.sort(rng.choice(all_ids, size=min(n, 500), replace=False)))
        params["nprobe"], params["tuned_recall"] = tune_nprobe(index, stream, queries)
    return index, params


def pq_subquantizers(dimension: int) -> int:
    """Sub-quantizers for IVF-PQ: about one per 8 dimensions, dividing ``dimension``."""
    for m in range(max(1, dimension // 8), 0, -1):
        if dimension % m == 0:
            return m
    return 1


def bytes_per_vector(info: FaissInfo, dimension: int) -> int:
    """Bytes one vector's code takes in an index of ``info.kind`` (ids, lists, graph excluded)."""
    if info.kind == "ivf-sq8":
        return dimension
    if info.kind in ("ivf-pq", "ivf-opq"):
        return pq_subquantizers(dimension)
    return 4 * dimension


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF index inside ``index`` (itself, or wrapped by an OPQ transform), else None."""
    return faiss.try_extract_index_ivf(index)


def ivf_params(index: faiss.Index, nprobe: int, sel: faiss.IDSelector | None = None) -> faiss.SearchParameters:
    """Per-call IVF search parameters for ``index``, wrapped for an OPQ pre-transform.

    The returned object keeps a reference to the objects it points to (SWIG does not).
    """
    inner = faiss.SearchParametersIVF(nprobe=int(nprobe))
    if sel is not None:
        inner.sel = sel
    if not isinstance(index, faiss.IndexPreTransform):
        inner.referenced = (sel,)
        return inner
    outer = faiss.SearchParametersPreTransform()
    outer.index_params = inner
    outer.referenced = (inner, sel)
    return outer


def memory_report(index: faiss.Index, info: FaissInfo, mapped: bool) -> dict[str, Any]:
    """What a loaded index costs: bytes per vector on disk and in memory.

    Returns ``code_bytes_per_vector`` (its code: 4·d for flat, d for SQ8, m for PQ),
    ``file_bytes_per_vector`` (the FAISS file's size over its vectors: codes, 8-byte ids,
    centroids and code books), ``memory_bytes`` (this process's heap for the index: the file
    size when loaded, and only what lies outside the inverted lists when memory-mapped: the
    mapped lists live in the page cache, which the kernel fills and evicts on demand) and
    ``memory_bytes_per_vector``.
    """
    n = max(int(index.ntotal), 1)
    ivf = ivf_of(index)
    if ivf is not None:
        code = int(ivf.code_size)
    else:
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2 | faiss.IndexIDMap) else index
        if isinstance(inner, faiss.IndexHNSW):
            inner = faiss.downcast_index(inner.storage)
        code = int(getattr(inner, "code_size", 0))
    memory = info.size
    if mapped and ivf is not None:
        memory = max(0, info.size - int(index.ntotal) * (code + 8))
    elif mapped:  # flat codes (and HNSW's vectors) mapped; ids and the graph in memory
        memory = max(0, info.size - int(index.ntotal) * code)
    return {
        "code_bytes_per_vector": code,
        "file_bytes_per_vector": round(info.size / n, 1),
        "memory_bytes": int(memory),
        "memory_bytes_per_vector": round(memory / n, 1),
        "mmap": mapped,
    }


def tune_nprobe(index: faiss.Index, stream: VectorSource, queries: np.ndarray, k: int = 10) -> tuple[int, float]:
    """The smallest nprobe (powers of two) whose recall@k against exact search ≥ 0.95, or
    where recall stops growing (doubling nprobe gains less than :data:`PLATEAU`: the codes,
    not the lists visited, limit it, as with PQ), or all lists.

    ``queries`` float32 ``(q, d)`` are stored vectors. Returns ``(nprobe, recall)``.
    """
    truth = exact_search(stream, queries, k)
    nlist = ivf_of(index).nlist
    nprobe, recall = 1, 0.0
    previous: tuple[int, float] | None = None
    while True:
        _, found = index.search(queries, k, params=ivf_params(index, nprobe))
        recall = recall_at_k(found, truth)
        if previous is not None and recall - previous[1] < PLATEAU:
            return previous
        if recall >= TARGET_RECALL or nprobe >= nlist:
            return nprobe, recall
        previous = (nprobe, recall)
        nprobe = min(nprobe * 2, nlist)


def exact_search(stream: VectorSource, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force top-``k`` ids by inner product over a vector stream: int64 ``(q, k)``."""
    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    for ids, vecs in stream():
        scores = queries @ vecs.T
        kk = min(k, len(ids))
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        heap.add_result(np.take_along_axis(scores, top, axis=1), ids[top])
    heap.finalize()
    return heap.I


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true top-k ids (``truth``, ``-1`` = none) present in ``found``."""
    hits = total = 0
    for f, t in zip(found, truth, strict=True):
        t = set(t[t >= 0].tolist())
        hits += len(t & set(f.tolist()))
        total += len(t)
    return hits / total if total else 1.0


def index_ids(index: faiss.Index) -> np.ndarray:
    """The ids held by a FAISS index built here (IDMap2 or IVF), int64, unsorted."""
    if isinstance(index, faiss.IndexIDMap2 | faiss.IndexIDMap):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = ivf_of(index)
    lists = ivf.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
        for i in range(ivf.nlist)
        if lists.list_size(i)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)


def search(
    index: faiss.Index, queries: np.ndarray, k: int, nprobe: int | None, ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` by inner product: scores float32 ``(q, k)``, ids int64 ``(q, k)`` (``-1`` pad).

    ``nprobe`` is passed per call (never set on the shared index). ``ids`` (int64), if
    given, restricts the search to those ids with a FAISS ID selector, inside the search.
    An IVF index may still return fewer than ``k`` when the visited lists hold fewer
    matching ids, and HNSW when its candidate list holds fewer: callers fall back to exact.
    """
    ivf = ivf_of(index)
    if ids is None:
        if ivf is not None and nprobe is not None:
            return index.search(queries, k, params=ivf_params(index, nprobe))
        return index.search(queries, k)
    sel = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
    if ivf is not None:
        params = ivf_params(index, nprobe or ivf.nprobe, sel)
    else:
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2 | faiss.IndexIDMap) else index
        if isinstance(inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(int(inner.hnsw.efSearch), k))
        else:
            params = faiss.SearchParameters(sel=sel)
    return index.search(queries, k, params=params)


def exact_subset(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``queries`` among ``vectors`` (float32 ``(n, d)``) with ``ids``:
    scores float32 ``(q, kk)``, ids int64 ``(q, kk)``, ``kk = min(k, n)``, best first."""
    scores = queries @ vectors.T
    kk = min(k, len(ids))
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < len(ids) else np.tile(np.arange(len(ids)), (len(queries), 1))
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top_scores, order, axis=1), ids[np.take_along_axis(top, order, axis=1)]


# -- files ----------------------------------------------------------------------------------
def write_version(index_dir: Path, version: int, index: faiss.Index) -> tuple[str, str, int]:
    """Write ``faiss/v<version>.faiss`` atomically; returns ``(file name, sha256, size)``."""
    folder = Path(index_dir) / FAISS_DIR
    folder.mkdir(exist_ok=True)
    data = faiss.serialize_index(index).tobytes()
    name = f"v{version:06d}.faiss"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        crash_point("faiss-write")
        fh.write(data[len(data) // 2 :])
        fh.flush()
        os.fsync(fh.fileno())
    crash_point("rename")
    os.replace(tmp, folder / name)
    fsync_dir(folder)
    return name, hashlib.sha256(data).hexdigest(), len(data)


HASH_BLOCK = 16 << 20
"""Bytes read at a time when a memory-mapped version's checksum is computed."""


def read_version(index_dir: Path, info: FaissInfo, *, mmap: bool = False) -> faiss.Index:
    """Load a published version after checking its size and sha256; else :class:`CorruptIndex`.

    With ``mmap``, the file is hashed in blocks of :data:`HASH_BLOCK` bytes (memory stays
    constant: one sequential read of the file, at disk or page-cache speed) and then mapped
    read-only instead of read: for IVF kinds the inverted lists (``IO_FLAG_MMAP``, FAISS's
    on-disk inverted lists), for ``flat`` and ``hnsw`` the stored vectors (``IO_FLAG_MMAP_IFC``,
    FAISS ≥ 1.10; HNSW's graph is still read into memory). Published files are never
    rewritten in place (each version is a new file), so the bytes hashed are the bytes
    mapped; a mapped version stays readable after a writer removes its file.
    """
    path = Path(index_dir) / FAISS_DIR / info.file
    how = "Run `indexer repair` to rebuild it from the vectors stored in meta.db (no re-embedding)."
    if mmap:
        flags = _mmap_flags(info)
        try:
            size = path.stat().st_size
            digest = _sha256_file(path) if size == info.size else None
        except FileNotFoundError:
            raise CorruptIndex(f"the FAISS file {path} is missing. {how}") from None
    else:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CorruptIndex(f"the FAISS file {path} is missing. {how}") from None
        size, digest = len(data), hashlib.sha256(data).hexdigest() if len(data) == info.size else None
    if size != info.size:
        raise CorruptIndex(f"the FAISS file {path} is truncated or damaged ({size} bytes, {info.size} expected). {how}")
    if digest != info.sha256:
        raise CorruptIndex(f"the FAISS file {path} fails its checksum (its sha256 differs from the recorded one): it is damaged. {how}")
    if mmap:
        return faiss.read_index(str(path), flags)
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


def _mmap_flags(info: FaissInfo) -> int:
    """FAISS read flags that map ``info``'s kind read-only; InvalidInput where FAISS cannot."""
    if info.kind in IVF_KINDS:
        return faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", None)
    if flag is None:
        raise InvalidInput(
            f"this FAISS ({faiss.__version__}) can memory-map only IVF indexes, and this one is {info.factory}. "
            "Switch it with `indexer reindex --index-type ivf-pq` (or ivf, ivf-sq8, ivf-opq), upgrade faiss-cpu "
            "to 1.10 or later, or open it without --mmap."
        )
    return flag | faiss.IO_FLAG_READ_ONLY


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def remove_old_versions(index_dir: Path, keep: set[str]) -> None:
    """Delete FAISS files and leftover temporaries other than ``keep``."""
    folder = Path(index_dir) / FAISS_DIR
    for path in folder.glob("*"):
        if path.name not in keep and (path.suffix == ".faiss" or path.name.endswith(".tmp")):
            path.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
