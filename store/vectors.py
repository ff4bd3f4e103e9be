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
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from store.errors import CorruptIndex, InvalidInput

FAISS_DIR = "faiss"
FLAT_MAX = 20_000
"""``auto`` picks exact search up to this many chunks, IVF above."""
RETRAIN_GROWTH = 4.0
"""An IVF index is retrained once the collection is this many times what it was trained on."""
TARGET_RECALL = 0.95
INDEX_TYPES = ("auto", "flat", "ivf")


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
    """Build a FAISS index of kind ``flat`` or ``ivf`` over every stored vector.

    ``all_ids`` are the live chunk ids; ``stream`` yields all vectors in batches; ``fetch``
    returns the vectors of given ids (used for the training sample). Returns the index and
    its recorded parameters (``factory``, ``nlist``, ``nprobe``, ``trained_on``, ``tuned_recall``).
    """
    n = len(all_ids)
    if kind == "flat" or n == 0:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        for ids, vecs in stream():
            index.add_with_ids(vecs, ids)
        return index, {"kind": "flat", "factory": "IDMap2,Flat"}
    nlist = choose_nlist(n)
    rng = np.random.default_rng(seed)
    sample_ids = np.sort(rng.choice(all_ids, size=min(n, 256 * nlist), replace=False))
    train = fetch(sample_ids)
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(train)
    for ids, vecs in stream():
        index.add_with_ids(vecs, ids)
    nprobe, recall = tune_nprobe(index, stream, fetch(np.sort(rng.choice(all_ids, size=min(n, 500), replace=False))))
    return index, {
        "kind": "ivf", "factory": f"IVF{nlist},Flat", "nlist": nlist, "nprobe": nprobe,
        "trained_on": n, "tuned_recall": recall,
    }


def tune_nprobe(index: faiss.IndexIVF, stream: VectorSource, queries: np.ndarray, k: int = 10) -> tuple[int, float]:
    """The smallest nprobe (powers of two) whose recall@k against exact search ≥ 0.95.

    ``queries`` float32 ``(q, d)`` are stored vectors. Returns ``(nprobe, recall)``.
    """
    truth = exact_search(stream, queries, k)
    nprobe, recall = 1, 0.0
    while True:
        _, found = index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=nprobe))
        recall = recall_at_k(found, truth)
        if recall >= TARGET_RECALL or nprobe >= index.nlist:
            return nprobe, recall
        nprobe = min(nprobe * 2, index.nlist)


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
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
        for i in range(ivf.nlist)
        if lists.list_size(i)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)


def search(index: faiss.Index, queries: np.ndarray, k: int, nprobe: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` by inner product: scores float32 ``(q, k)``, ids int64 ``(q, k)`` (``-1`` pad).

    ``nprobe`` is passed per call (never set on the shared index).
    """
    if isinstance(index, faiss.IndexIVF) and nprobe is not None:
        return index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=int(nprobe)))
    return index.search(queries, k)


# -- files ----------------------------------------------------------------------------------
def write_version(index_dir: Path, version: int, index: faiss.Index) -> tuple[str, str, int]:
    """Write ``faiss/v<version>.faiss`` atomically; returns ``(file name, sha256, size)``."""
    folder = Path(index_dir) / FAISS_DIR
    folder.mkdir(exist_ok=True)
    data = faiss.serialize_index(index).tobytes()
    name = f"v{version:06d}.faiss"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / name)
    fsync_dir(folder)
    return name, hashlib.sha256(data).hexdigest(), len(data)


def read_version(index_dir: Path, info: FaissInfo) -> faiss.Index:
    """Load a published version after checking its size and sha256; else :class:`CorruptIndex`."""
    path = Path(index_dir) / FAISS_DIR / info.file
    how = "Run `indexer build` on the index again to rebuild it from the vectors stored in meta.db."
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorruptIndex(f"the FAISS file {path} is missing. {how}") from None
    if len(data) != info.size or hashlib.sha256(data).hexdigest() != info.sha256:
        raise CorruptIndex(
            f"the FAISS file {path} fails its checksum ({len(data)} bytes, {info.size} "
            f"expected): it is damaged. {how}"
        )
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


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
