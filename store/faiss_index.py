"""FAISS indexes derived from the vectors in SQLite: building, tuning, searching, sizing.

A FAISS index is a cache of ``meta.db``: its ids are chunk ids (``add_with_ids``), its
vectors float32 L2-normalised, its metric inner product (cosine). The index types and how
``auto`` chooses are in :mod:`store.index_types`; how versions are written and loaded, in
:mod:`store.faiss_files`.

* ``ivf`` kinds: ``nlist ≈ 4·√n`` (at most ``n / 39`` so that every list gets enough
  training points), trained on a seeded sample of at most ``256·nlist`` stored vectors;
  their default ``nprobe`` is the smallest that reaches recall@10 ≥ 0.95 *and* finds the
  exact nearest neighbour in the first 10 for ≥ 99% of the tuning queries
  (:func:`tune_nprobe`). The tuning queries are the user's own queries where given
  (``indexer build --tune-queries``), else a sample of stored vectors, each of which does
  not count finding itself (or an identical vector): a stored vector always lies in the
  list of its own centroid, which flatters recall, while real queries (in another
  language than most of what they should find) lie farther from the centroids.
* Lossy kinds (``ivf-sq8``, ``ivf-pq``, ``ivf-opq``) search :data:`RERANK_FACTOR` × k
  candidates and re-rank them by their exact cosine with the float32 vectors in SQLite
  (``refine=`` of :func:`search`): scores are exact and the codes' error costs no ranks.
* ``ivf-opq`` learns a rotation (OPQ) that spreads the variance evenly over the ``m``
  sub-spaces of its product quantizer; same bytes as ``ivf-pq``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any, Literal, overload

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from store.errors import InvalidInput
from store.index_types import INDEX_TYPES, PQ_KINDS, choose_nlist
from store.records import FaissInfo, IndexParams

RETRAIN_GROWTH = 4.0
"""An IVF index is retrained once the collection is this many times what it was trained on."""
TARGET_RECALL = 0.95
PLATEAU = 0.002
"""``tune_nprobe`` stops doubling nprobe once recall@10 grows by less than this."""
SMALL_TRAINING = 1 << 24
"""Training samples of fewer values (vectors × dimensions) are trained with one BLAS thread."""
TARGET_NEAREST = 0.99
"""``tune_nprobe`` also wants the exact nearest neighbour in the first 10 for this share of queries."""
TWIN_COSINE = 1 - 1e-5
"""A stored vector this close to a tuning query is the query itself (or a copy): not counted."""
TUNE_SAMPLE = 500
"""Stored vectors sampled as tuning queries when the user gives none."""
RERANK_FACTOR = 4
"""Lossy kinds fetch this many times ``k`` candidates and re-rank them exactly."""
FLAT_FACTORY = "IDMap2,SQfp16"
"""The ``flat`` kind's FAISS layout over float16 vectors (over the float32 ones of an index
written before float16, ``IDMap2,Flat``)."""
HNSW_M = 32
HNSW_EF_SEARCH = 128

VectorSource = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]
"""A callable that streams ``(ids int64 (b,), vectors float32 (b, d))`` batches anew."""
VectorFetch = Callable[[np.ndarray], np.ndarray]
"""A callable that returns the vectors float32 ``(n, d)`` of the given ids int64 ``(n,)``
(for re-ranking, a row of NaN for an id it no longer has)."""


def needs_retraining(info: FaissInfo, n: int) -> bool:
    """Whether an IVF index trained as ``info`` should be retrained for ``n`` vectors.

    Yes once the collection is :data:`RETRAIN_GROWTH` times what the centroids were trained
    on, or has shrunk so far that ``nlist`` is more than 4× off the rule.
    """
    if info.nlist is None:
        return False
    if n > RETRAIN_GROWTH * (info.trained_on or 0):
        return True
    return info.nlist > 4 * choose_nlist(n) and n >= 39


def build_index(
    kind: str,
    dimension: int,
    all_ids: np.ndarray,
    stream: VectorSource,
    fetch: VectorFetch,
    *,
    seed: int = 0,
    tune_queries: np.ndarray | None = None,
    stored_as: str = "float16",
) -> tuple[faiss.Index, IndexParams]:
    """Build a FAISS index of ``kind`` over every vector ``stream`` yields.

    ``all_ids`` (int64) are the ids to index; ``stream`` yields all their vectors in
    batches; ``fetch`` returns the vectors of given ids (the training and tuning samples,
    and the exact re-ranking of lossy kinds). ``tune_queries``: float32 ``(q, d)`` query
    vectors to tune ``nprobe`` with (default: a sample of the stored vectors).
    Returns the index and its parameters (for IVF kinds with ``nlist``, the tuned
    ``nprobe``, ``trained_on``, ``tuned_recall`` and ``tuned_on``). ``stored_as``: how
    ``meta.db`` stores the vectors (``float16`` or ``float32``): ``flat`` keeps the same values,
    so that its search stays exact on what is stored (``IDMap2,SQfp16``, else ``IDMap2,Flat``).
    """
    n = len(all_ids)
    index: faiss.Index
    if kind == "flat" or n == 0:
        index, factory = flat_index(dimension, stored_as)
        params = IndexParams(kind="flat", factory=factory)
    elif kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        index = faiss.IndexIDMap2(hnsw)
        params = IndexParams(kind="hnsw", factory=f"IDMap2,HNSW{HNSW_M}")
    else:
        nlist = choose_nlist(n)
        index, factory = _ivf(kind, dimension, nlist)
        faiss.extract_index_ivf(index).cp.seed = seed
        rng = np.random.default_rng(seed)
        sample = fetch(np.sort(rng.choice(all_ids, size=min(n, max(256 * nlist, 10_000)), replace=False)))
        # Small training sets run many small BLAS calls, which threads slow down (badly on a
        # busy machine: OPQ's 50 rounds took 10-20 s instead of 1 s for 1,200 × 32): one thread.
        with threadpool_limits(1) if sample.size < SMALL_TRAINING else nullcontext():
            index.train(sample)
        params = IndexParams(kind=kind, factory=factory, nlist=nlist, trained_on=n)
    for ids, vecs in stream():
        index.add_with_ids(vecs, ids)
    if ivf_of(index) is not None:
        params = retune(index, params, stream, fetch, all_ids, tune_queries, seed=seed)
    return index, params


def retune(
    index: faiss.Index,
    params: IndexParams,
    stream: VectorSource,
    fetch: VectorFetch,
    all_ids: np.ndarray,
    tune_queries: np.ndarray | None,
    *,
    seed: int = 0,
) -> IndexParams:
    """``params`` with ``nprobe`` tuned anew for the IVF ``index`` (see :func:`tune_nprobe`):
    on ``tune_queries`` (float32 ``(q, d)``) if given and not empty, else on
    :data:`TUNE_SAMPLE` stored vectors of ``all_ids``."""
    if tune_queries is not None and len(tune_queries):
        queries, tuned_on = np.ascontiguousarray(tune_queries, dtype=np.float32), "queries"
    else:
        rng = np.random.default_rng(seed + 1)
        queries = fetch(np.sort(rng.choice(all_ids, size=min(len(all_ids), TUNE_SAMPLE), replace=False)))
        tuned_on = "stored vectors"
    nprobe, recall = tune_nprobe(index, stream, queries, refine=fetch)
    return IndexParams(
        kind=params.kind,
        factory=params.factory,
        nlist=params.nlist,
        nprobe=nprobe,
        trained_on=params.trained_on,
        tuned_recall=recall,
        tuned_on=tuned_on,
        tuned_queries=len(queries),
    )


def _ivf(kind: str, dimension: int, nlist: int) -> tuple[faiss.Index, str]:
    """An untrained IVF index of ``kind`` with ``nlist`` lists, and its factory string."""
    quantizer = faiss.IndexFlatIP(dimension)
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "ivf":
        return faiss.IndexIVFFlat(quantizer, dimension, nlist, ip), f"IVF{nlist},Flat"
    if kind == "ivf-sq8":
        sq8 = faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit, ip)
        return sq8, f"IVF{nlist},SQ8"
    if kind in PQ_KINDS:
        m = pq_subquantizers(dimension)
        ivfpq = faiss.IndexIVFPQ(quantizer, dimension, nlist, m, 8, ip)
        if kind == "ivf-pq":
            return ivfpq, f"IVF{nlist},PQ{m}"
        # Built by hand, not with index_factory, which also turns on polysemous training
        # (slow, and of no use to a search that does not use polysemous codes).
        return faiss.IndexPreTransform(faiss.OPQMatrix(dimension, m), ivfpq), f"OPQ{m},IVF{nlist},PQ{m}"
    raise InvalidInput(f"unknown index type {kind!r}; choose one of {', '.join(INDEX_TYPES)}")


def flat_index(dimension: int, stored_as: str) -> tuple[faiss.Index, str]:
    """The exhaustive inner-product index over vectors ``meta.db`` stores as ``stored_as``, and
    its factory string: it keeps the same values, so its scores are those of the stored vectors.
    For float16 (``SQfp16``) that is half the bytes of ``Flat``, and FAISS's fp16 kernels were
    also faster than ``Flat`` for single queries (1.4 against 4.9 ms at 20,000 × 384)."""
    if stored_as == "float32":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), "IDMap2,Flat"
    codes = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    codes.train(np.zeros((1, dimension), dtype=np.float32))  # fp16 learns nothing; FAISS wants the call
    return faiss.IndexIDMap2(codes), FLAT_FACTORY


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
    if info.kind in PQ_KINDS:
        return pq_subquantizers(dimension)
    if info.factory.endswith("SQfp16"):
        return 2 * dimension
    return 4 * dimension


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF index inside ``index`` (itself, or wrapped by an OPQ transform), else None."""
    return faiss.try_extract_index_ivf(index)


def _inner(index: faiss.Index) -> faiss.Index:
    """The index inside an ``IDMap2`` wrapper (or ``index`` itself)."""
    if isinstance(index, faiss.IndexIDMap2 | faiss.IndexIDMap):
        return faiss.downcast_index(index.index)
    return index


def ivf_params(index: faiss.Index, nprobe: int, sel: faiss.IDSelector | None = None) -> faiss.SearchParameters:
    """Per-call IVF search parameters for ``index``, wrapped for an OPQ pre-transform.

    The returned object keeps a reference to the objects it points to (SWIG does not).
    (The ``type: ignore`` comments here and below: FAISS's bundled stubs lack the keyword
    constructors and the Python attributes its SWIG classes accept.)
    """
    inner = faiss.SearchParametersIVF(nprobe=int(nprobe))  # type: ignore[call-arg]
    if sel is not None:
        inner.sel = sel
    if not isinstance(index, faiss.IndexPreTransform):
        inner.referenced = (sel,)  # type: ignore[attr-defined]
        return inner
    outer = faiss.SearchParametersPreTransform()
    outer.index_params = inner
    outer.referenced = (inner, sel)  # type: ignore[attr-defined]
    return outer


def memory_report(index: faiss.Index, info: FaissInfo, mapped: bool) -> dict[str, Any]:
    """What a loaded index costs: bytes per vector on disk and in memory.

    Returns ``code_bytes_per_vector`` (its code: 4·d for flat, d for SQ8, m for PQ),
    ``file_bytes_per_vector`` (the FAISS file's size over its vectors: codes, 8-byte ids,
    centroids and code books), ``memory_bytes`` (this process's heap for the index: the file
    size when loaded, and only what lies outside the inverted lists when memory-mapped: the
    mapped lists live in the page cache, which the kernel fills and evicts on demand),
    ``memory_bytes_per_vector`` and ``mmap``.
    """
    n = max(int(index.ntotal), 1)
    ivf = ivf_of(index)
    if ivf is not None:
        code = int(ivf.code_size)
    else:
        inner = _inner(index)
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


def tune_nprobe(
    index: faiss.Index, stream: VectorSource, queries: np.ndarray, k: int = 10, refine: VectorFetch | None = None
) -> tuple[int, float]:
    """The smallest nprobe (powers of two) whose recall@k against exact search is ≥
    :data:`TARGET_RECALL` and which finds each query's exact nearest neighbour in its first
    ``k`` for ≥ :data:`TARGET_NEAREST` of the queries; or where neither grows any more
    (doubling nprobe gains less than :data:`PLATEAU`); or all lists.

    ``queries`` float32 ``(q, d)``: real queries, or stored vectors. A stored vector within
    :data:`TWIN_COSINE` of a query (the query itself, or a copy of it) counts neither in the
    truth nor in what is found. ``refine``: as for :func:`search` (lossy kinds are tuned as
    they are searched, re-ranked). Returns ``(nprobe, recall@k)``.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    scores, ids = exact_search(stream, queries, 2 * k, with_scores=True)
    twins = [set(row[(s >= TWIN_COSINE) & (row >= 0)].tolist()) for s, row in zip(scores, ids, strict=True)]
    truth = [[int(i) for i in row if i >= 0 and i not in twin][:k] for row, twin in zip(ids, twins, strict=True)]
    ivf = ivf_of(index)
    assert ivf is not None, "tune_nprobe needs an IVF index"
    nlist = int(ivf.nlist)
    nprobe = 1
    previous: tuple[int, float, float] | None = None
    while True:
        _, found_ids = search(index, queries, 2 * k, nprobe, refine=refine)
        found = [
            [int(i) for i in row if i >= 0 and i not in twin][:k] for row, twin in zip(found_ids, twins, strict=True)
        ]
        recall = _recall(found, truth)
        nearest = _nearest_found(found, truth)
        if previous is not None and recall - previous[1] < PLATEAU and nearest - previous[2] < PLATEAU:
            return previous[0], previous[1]
        if (recall >= TARGET_RECALL and nearest >= TARGET_NEAREST) or nprobe >= nlist:
            return nprobe, recall
        previous = (nprobe, recall, nearest)
        nprobe = min(nprobe * 2, nlist)


def _recall(found: list[list[int]], truth: list[list[int]]) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    total = sum(len(t) for t in truth)
    return hits / total if total else 1.0


def _nearest_found(found: list[list[int]], truth: list[list[int]]) -> float:
    """The share of queries whose exact nearest neighbour is among what was found."""
    wanted = [(f, t[0]) for f, t in zip(found, truth, strict=True) if t]
    return sum(first in f for f, first in wanted) / len(wanted) if wanted else 1.0


@overload
def exact_search(stream: VectorSource, queries: np.ndarray, k: int) -> np.ndarray: ...
@overload
def exact_search(
    stream: VectorSource, queries: np.ndarray, k: int, *, with_scores: Literal[True]
) -> tuple[np.ndarray, np.ndarray]: ...
def exact_search(
    stream: VectorSource, queries: np.ndarray, k: int, *, with_scores: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` ids by inner product over a vector stream: int64 ``(q, k)``,
    best first (``-1`` pad); with ``with_scores``, ``(scores float32 (q, k), ids)``."""
    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    for ids, vecs in stream():
        scores = queries @ vecs.T
        kk = min(k, len(ids))
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        heap.add_result(np.take_along_axis(scores, top, axis=1), ids[top])
    heap.finalize()
    result: np.ndarray = heap.I
    if with_scores:
        found: np.ndarray = heap.D
        return found, result
    return result


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true top-k ids (``truth``, ``-1`` = none) present in ``found``."""
    hits = total = 0
    for f, t in zip(found, truth, strict=True):
        wanted = set(t[t >= 0].tolist())
        hits += len(wanted & set(f.tolist()))
        total += len(wanted)
    return hits / total if total else 1.0


def index_ids(index: faiss.Index) -> np.ndarray:
    """The ids held by a FAISS index built here (IDMap2 or IVF), int64, unsorted."""
    if isinstance(index, faiss.IndexIDMap2 | faiss.IndexIDMap):
        ids: np.ndarray = faiss.vector_to_array(index.id_map).astype(np.int64)
        return ids
    ivf = ivf_of(index)
    assert ivf is not None, "index_ids reads IDMap2 and IVF indexes"
    lists = ivf.invlists
    assert lists is not None
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy() for i in range(ivf.nlist) if lists.list_size(i)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    nprobe: int | None,
    ids: np.ndarray | None = None,
    *,
    refine: VectorFetch | None = None,
    ef_search: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` by inner product: scores float32 ``(q, k)``, ids int64 ``(q, k)`` (``-1`` pad).

    ``nprobe`` is passed per call (never set on the shared index). ``ids`` (int64), if
    given, restricts the search to those ids with a FAISS ID selector, inside the search.
    An IVF index may still return fewer than ``k`` when the visited lists hold fewer
    matching ids, and HNSW when its candidate list holds fewer: callers fall back to exact.
    ``ef_search`` (HNSW only): the candidate list's length for this call (at least ``k``;
    default the index's own), passed per call like ``nprobe``.
    ``refine``: the exact vectors of ids (see :class:`VectorFetch`; an id it no longer
    has is dropped); given, a lossy index (:func:`is_lossy`) is searched for
    :data:`RERANK_FACTOR` × ``k`` candidates, re-ranked by their exact inner product.
    """
    if refine is not None and is_lossy(index):
        scores, found = search(index, queries, k * RERANK_FACTOR, nprobe, ids, ef_search=ef_search)
        return rerank(queries, found, refine, k)
    ivf = ivf_of(index)
    params: faiss.SearchParameters | None = None
    if ids is None:
        if ivf is not None and nprobe is not None:
            params = ivf_params(index, nprobe)
        else:
            graph = _inner(index)
            if isinstance(graph, faiss.IndexHNSW) and (ef_search is not None or k > int(graph.hnsw.efSearch)):
                # HNSW returns at most efSearch candidates: as many as asked, for large k.
                ef = max(ef_search or int(graph.hnsw.efSearch), k)
                params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]
    else:
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        inner = _inner(index)
        if ivf is not None:
            params = ivf_params(index, nprobe or ivf.nprobe, sel)
        elif isinstance(inner, faiss.IndexHNSW):
            ef = max(ef_search or int(inner.hnsw.efSearch), k)
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)  # type: ignore[attr-defined]
        else:
            params = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
    scores, found = index.search(queries, k) if params is None else index.search(queries, k, params=params)
    return scores, found


def is_lossy(index: faiss.Index) -> bool:
    """Whether the index's scores are approximate (its codes are not the float32 vectors)."""
    ivf = ivf_of(index)
    return ivf is not None and not isinstance(ivf, faiss.IndexIVFFlat)


def rerank(queries: np.ndarray, candidates: np.ndarray, refine: VectorFetch, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of ``candidates`` (int64 ``(q, c)``, ``-1`` pad) by exact inner product
    with ``queries`` (float32 ``(q, d)``), with the vectors ``refine`` gives: scores float32
    ``(q, k)``, ids int64 ``(q, k)``, ``-1`` pad (ids ``refine`` lacks are dropped)."""
    unique = np.unique(candidates[candidates >= 0])
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)
    if not len(unique):
        return out_scores, out_ids
    vectors = refine(unique)
    present = np.asarray(np.isfinite(vectors).all(axis=1), dtype=bool)
    where = np.clip(np.searchsorted(unique, candidates), 0, len(unique) - 1)
    valid = (candidates >= 0) & (unique[where] == candidates) & present[where]
    exact = np.einsum("qd,qcd->qc", queries, vectors[where])
    exact[~valid] = -np.inf
    order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(exact, order, axis=1)
    ids = np.where(np.isfinite(top), np.take_along_axis(candidates, order, axis=1), -1)
    width = top.shape[1]
    out_scores[:, :width], out_ids[:, :width] = top, ids
    return out_scores, out_ids


def exact_subset(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``queries`` among ``vectors`` (float32 ``(n, d)``) with ``ids``:
    scores float32 ``(q, kk)``, ids int64 ``(q, kk)``, ``kk = min(k, n)``, best first."""
    scores = queries @ vectors.T
    kk = min(k, len(ids))
    if kk < len(ids):
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    else:
        top = np.tile(np.arange(len(ids)), (len(queries), 1))
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top_scores, order, axis=1), ids[np.take_along_axis(top, order, axis=1)]
